// The code's comments point into docs/protocol.md by section number; each section they name
// must exist, so that a reader who follows a pointer finds what it promises.
import { readdirSync, readFileSync, statSync } from "node:fs";
import { join, relative } from "node:path";
import { expect, it } from "vitest";

const ROOT = join(import.meta.dirname, "..", "..");

function files(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    return statSync(path).isDirectory() ? files(path) : /\.(ts|mjs)$/.test(name) ? [path] : [];
  });
}

it("every docs/protocol.md section the source names exists", () => {
  const headings = new Set(
    [
      ...readFileSync(join(ROOT, "docs", "protocol.md"), "utf8").matchAll(
        /^#{2,3} ([0-9]+(?:\.[0-9]+)?)\.? /gm,
      ),
    ].map((m) => m[1]),
  );
  const missing: string[] = [];
  let pointers = 0;
  for (const dir of ["agent", "cli", "core", "lambda", "test", "bench"]) {
    for (const file of files(join(ROOT, dir))) {
      for (const m of readFileSync(file, "utf8").matchAll(
        /docs\/protocol\.md,? (?:section )?([0-9]+(?:\.[0-9]+)?)/g,
      )) {
        pointers++;
        if (!headings.has(m[1] as string)) missing.push(`${relative(ROOT, file)}: section ${m[1]}`);
      }
    }
  }
  expect(missing).toEqual([]);
  expect(pointers).toBeGreaterThan(15);
});

it("every docs/ file the source names exists", () => {
  const missing = new Set<string>();
  for (const dir of ["agent", "cli", "core", "lambda", "test", "bench", "cdk"]) {
    for (const file of files(join(ROOT, dir))) {
      for (const m of readFileSync(file, "utf8").matchAll(/docs\/([a-z0-9-]+\.md)/g)) {
        try {
          statSync(join(ROOT, "docs", m[1] as string));
        } catch {
          missing.add(`${relative(ROOT, file)}: docs/${m[1]}`);
        }
      }
    }
  }
  expect([...missing]).toEqual([]);
});
