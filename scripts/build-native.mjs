#!/usr/bin/env node
// Builds native/udp-batch.c, spaknockd's batched UDP reader, into dist/native/udp-batch.node
// with the machine's C compiler and the Node-API headers of the node that runs this script.
//
//   node scripts/build-native.mjs [--out dist/native/udp-batch.node]
//
// Node-API is ABI-stable: the module built here loads in any Node from 22 on. It is optional:
// without it (no compiler, no headers) spaknockd reads its socket with node:dgram, logs that at
// start-up, and costs more CPU per datagram under a flood. So a failed build warns and exits 0;
// test/agent/batch-receiver.test.ts is what fails if a machine that should have it does not.
//
// Headers: $npm_config_nodedir/include/node (what native npm modules are built against here),
// else next to the running node (official binaries: bin/node and include/node), else
// /usr/include/node (Debian's libnode-dev / nodejs-dev). The compiler: $CC, else cc.
import { execFileSync } from "node:child_process";
import { existsSync, mkdirSync, realpathSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";

const REPO = fileURLToPath(new URL("..", import.meta.url));
const { values: args } = parseArgs({
  options: { out: { type: "string", default: join(REPO, "dist", "native", "udp-batch.node") } },
});

const candidates = [
  process.env.npm_config_nodedir && join(process.env.npm_config_nodedir, "include", "node"),
  // The running node's own tree (process.execPath may be a symlink into it, as npm's bin is).
  join(dirname(realpathSync(process.execPath)), "..", "include", "node"),
  "/usr/include/node",
].filter(Boolean);
const include = candidates.find((dir) => existsSync(join(dir, "node_api.h")));

function skip(why) {
  console.error(
    `build-native: ${why}; spaknockd will read its socket with node:dgram (more CPU per datagram under a flood)`,
  );
  process.exit(0);
}

if (include === undefined) skip(`no node_api.h in ${candidates.join(", ")}`);
mkdirSync(dirname(args.out), { recursive: true });
const cc = process.env.CC || "cc";
try {
  execFileSync(
    cc,
    [
      "-std=c11",
      "-O2",
      "-Wall",
      "-Wextra",
      "-Werror",
      "-fPIC",
      "-shared",
      "-fvisibility=hidden",
      "-D_FORTIFY_SOURCE=2",
      "-fstack-protector-strong",
      "-I",
      include,
      "-o",
      args.out,
      join(REPO, "native", "udp-batch.c"),
    ],
    { stdio: ["ignore", "inherit", "inherit"] },
  );
} catch (err) {
  skip(`${cc} failed (${err instanceof Error ? err.message.split("\n")[0] : String(err)})`);
}
