#!/usr/bin/env node
// spaknockd as it runs: agent/main.ts bundled by esbuild into one ES module, with what only some
// modes load (the AWS SDK for `relay`, nodemailer for email) split into chunks imported on first
// use. Node's loader costs memory per module file (the `jose` package alone, ~70 files, adds
// about 10 MiB of resident memory loaded file by file and under 1 MiB bundled), so the daemon
// that `npm run build` makes, the tests start, the bench measures and the .deb ships is this one.
//
//   node scripts/bundle-daemon.mjs [--outdir dist/spaknockd] [--out-extension .js]
//                                  [--interpreter /usr/lib/spaknock/node]
//
// The first line of agent/main.ts is the daemon's interpreter line, with the V8 flags it runs
// under; `--interpreter` puts a fixed node path there instead of `/usr/bin/env -S node`.
import { chmodSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { build } from "esbuild";

const REPO = fileURLToPath(new URL("..", import.meta.url));
const ENTRY = join(REPO, "agent", "main.ts");

const { values: args } = parseArgs({
  options: {
    outdir: { type: "string", default: join(REPO, "dist", "spaknockd") },
    "out-extension": { type: "string", default: ".js" },
    interpreter: { type: "string" },
  },
});

/** `#!/usr/bin/env -S node --flag ...` → ["--flag", ...]. */
function daemonNodeFlags(entryText = readFileSync(ENTRY, "utf8")) {
  const first = entryText.split("\n", 1)[0] ?? "";
  const m = /^#!\/usr\/bin\/env -S node((?: --[a-z0-9-]+(?:=[^\s]+)?)*)$/.exec(first);
  if (m === null) throw new Error(`agent/main.ts: unexpected first line: ${first}`);
  return m[1].trim() === "" ? [] : m[1].trim().split(" ");
}

const flags = daemonNodeFlags();
// A kernel passes everything after the interpreter as one argument: with a fixed path, one flag.
if (args.interpreter !== undefined && flags.length > 1) {
  throw new Error("with --interpreter, agent/main.ts may name at most one node flag");
}
const hashbang =
  args.interpreter === undefined
    ? `#!/usr/bin/env -S node ${flags.join(" ")}`.trimEnd()
    : `#!${args.interpreter} ${flags.join(" ")}`.trimEnd();

const ext = args["out-extension"];
rmSync(args.outdir, { recursive: true, force: true });
await build({
  entryPoints: { main: ENTRY },
  bundle: true,
  splitting: true,
  format: "esm",
  platform: "node",
  target: "node22",
  // The AWS SDK's ES module builds (as the Lambda bundles take them): its CommonJS ones do not
  // survive code splitting.
  mainFields: ["module", "main"],
  outdir: args.outdir,
  outExtension: { ".js": ext },
  chunkNames: "chunks/[name]-[hash]",
  // Smaller to parse and hold; names kept so stack traces still say where.
  minify: true,
  keepNames: true,
  legalComments: "none",
  logLevel: "warning",
  // The optional libpcap binding is native: loaded at run time with createRequire.
  external: ["cap"],
  // Some bundled CommonJS modules call require(), which an ES module lacks.
  banner: {
    js: 'import { createRequire as __spaknockRequire } from "node:module"; const require = __spaknockRequire(import.meta.url);',
  },
});
const main = join(args.outdir, `main${ext}`);
const text = readFileSync(main, "utf8").replace(/^#![^\n]*\n/, "");
writeFileSync(main, `${hashbang}\n${text}`);
chmodSync(main, 0o755);
