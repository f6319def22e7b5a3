// Every reason code a log line, an error or an exit can carry is declared once, in
// core/errors.ts, with a one-line meaning; docs/reason-codes.md is generated from that table.
import { readdirSync, readFileSync, statSync } from "node:fs";
import { join, relative } from "node:path";
import { describe, expect, it } from "vitest";
import { SPA_ERROR_CODES } from "../../core/index.js";

const ROOT = join(import.meta.dirname, "..", "..");
const SOURCE_DIRS = ["core", "agent", "lambda", "cli", "cdk"];

function sourceFiles(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) return sourceFiles(path);
    return /\.(ts|mjs)$/.test(name) ? [path] : [];
  });
}

/** Where a code is used: a `code:` field, a SpaError, or the end of a log line (`…: CODE`). */
const USES = [
  /\bcode: "([A-Z][A-Z0-9_]+)"/g,
  /new SpaError\("([A-Z][A-Z0-9_]+)"/g,
  /noteRefusal\("([A-Z][A-Z0-9_]+)"/g,
  /\.(?:warning|warn|error|info|debug)\([^\n]*: ([A-Z][A-Z0-9]*_[A-Z0-9_]+|OVERLOAD|INTERNAL)\b/g,
];

function renderReasonCodes(): string {
  const rows = Object.entries(SPA_ERROR_CODES).map(
    ([code, meaning]) => `| \`${code}\` | ${meaning} |`,
  );
  return [
    "# Reason codes",
    "",
    "Every refusal, drop and failure that spaknock, spaknockd and the Lambda functions log carries",
    "one of these codes. They are stable: alert on them, count them, `switch` on them. This page is",
    "generated from `core/errors.ts` by `test/core/reason-codes.test.ts`; do not edit it by hand.",
    "",
    "| code | meaning |",
    "| --- | --- |",
    ...rows,
    "",
  ].join("\n");
}

describe("reason codes", () => {
  it("every code used in the source is declared in core/errors.ts", () => {
    const undeclared: string[] = [];
    let uses = 0;
    for (const dir of SOURCE_DIRS) {
      for (const file of sourceFiles(join(ROOT, dir))) {
        const text = readFileSync(file, "utf8");
        for (const pattern of USES) {
          for (const m of text.matchAll(pattern)) {
            uses++;
            const code = m[1] as string;
            if (!Object.hasOwn(SPA_ERROR_CODES, code))
              undeclared.push(`${relative(ROOT, file)}: ${code}`);
          }
        }
      }
    }
    expect(undeclared).toEqual([]);
    // The scan finds the codes it is meant to find (it cannot pass by matching nothing).
    expect(uses).toBeGreaterThan(50);
  });

  it("docs/reason-codes.md is the table, rendered", async () => {
    await expect(renderReasonCodes()).toMatchFileSnapshot(join(ROOT, "docs", "reason-codes.md"));
  });
});
