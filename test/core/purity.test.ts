import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";

// core/ is the protocol and the decision, nothing else: no I/O, no AWS, no environment.
const FORBIDDEN_IMPORT =
  /(?:from\s+|import\s*\(\s*|require\s*\(\s*)["'](?:node:)?(?:fs|fs\/promises|net|dgram|child_process|http|https|http2|os|dns|tls|cluster|worker_threads)(?:\/[^"']*)?["']|["']@aws-sdk\/|["']aws-sdk["']/;
const FORBIDDEN_GLOBAL = /\bprocess\s*\.\s*env\b|\bprocess\s*\[\s*["']env["']\s*\]/;

function sourceFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) =>
    entry.isDirectory()
      ? sourceFiles(join(dir, entry.name))
      : entry.name.endsWith(".ts")
        ? [join(dir, entry.name)]
        : [],
  );
}

function impurities(source: string): string[] {
  return source
    .split("\n")
    .filter((line) => FORBIDDEN_IMPORT.test(line) || FORBIDDEN_GLOBAL.test(line));
}

describe("core/ stays pure", () => {
  const files = sourceFiles(new URL("../../core", import.meta.url).pathname);

  it("finds the core sources", () => {
    expect(files.length).toBeGreaterThan(5);
  });

  it.each(files)("%s imports no I/O module, no AWS SDK and reads no process.env", (file) => {
    expect(impurities(readFileSync(file, "utf8"))).toEqual([]);
  });

  it("the check itself catches each kind of impurity", () => {
    for (const bad of [
      'import { readFileSync } from "node:fs";',
      'import { readFile } from "fs/promises";',
      'import * as net from "net";',
      'import dgram from "node:dgram";',
      'const cp = await import("child_process");',
      'import { request } from "node:http";',
      'import os from "os";',
      'import { EC2Client } from "@aws-sdk/client-ec2";',
      "const region = process.env.AWS_REGION;",
    ]) {
      expect(impurities(bad), bad).toHaveLength(1);
    }
    expect(impurities('import { createHash } from "node:crypto";')).toEqual([]);
  });
});
