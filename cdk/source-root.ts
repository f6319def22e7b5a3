/**
 * Where the spaknock sources are: the folder of the nearest package.json named "spaknock" above
 * this file. The CDK app may run from a bundled copy (cdk/app.mjs builds one under
 * node_modules/.cache), so the construct cannot assume where its own file sits.
 */
import { existsSync, readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

export function findSourceRoot(from: string = dirname(fileURLToPath(import.meta.url))): string {
  for (let dir = from; ; dir = dirname(dir)) {
    const manifest = join(dir, "package.json");
    if (existsSync(manifest)) {
      const { name } = JSON.parse(readFileSync(manifest, "utf8")) as { name?: unknown };
      if (name === "spaknock") return dir;
    }
    if (dirname(dir) === dir) {
      throw new Error(
        `spaknock sources not found above ${from} (no package.json named "spaknock")`,
      );
    }
  }
}
