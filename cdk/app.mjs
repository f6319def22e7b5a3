#!/usr/bin/env node
// The CDK CLI's entry (cdk.json "app"). Node 20 cannot run TypeScript, and tsx/ts-node are not
// dependencies, so the project's esbuild bundles cdk/app.ts (dependencies left external) into
// node_modules/.cache and that bundle runs. A bad spaknock.cloud.json prints one line per bad
// field, without a stack trace, and exits 1.
import { mkdirSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { build } from "esbuild";

const root = dirname(dirname(fileURLToPath(import.meta.url)));
const outfile = join(root, "node_modules", ".cache", "spaknock-cdk", "app.mjs");
mkdirSync(dirname(outfile), { recursive: true });
await build({
  entryPoints: [join(root, "cdk", "app.ts")],
  outfile,
  bundle: true,
  packages: "external",
  platform: "node",
  format: "esm",
  target: "node20",
  logLevel: "error",
});
const { createApp } = await import(pathToFileURL(outfile).href);
try {
  createApp({ cwd: root }).app.synth();
} catch (err) {
  if (err?.name !== "CloudConfigError") throw err;
  process.stderr.write(`${err.message}\n`);
  process.exitCode = 1;
}
