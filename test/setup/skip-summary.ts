// One line at the end of a run that skipped tests: how many, for want of what, and what to
// install. The reasons come from test/helpers/peers.ts, which every skip reason goes through and
// which appends them to a file named in SPAKNOCK_SKIP_LOG (set here, before any worker starts).
// Under CI=true or SPAKNOCK_REQUIRE_PEERS=1 peers.ts fails instead, so this line only shows up
// where skipping is allowed.

import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Reporter, TestModule } from "vitest/node";
import { type MissingPeer, SKIP_LOG_ENV } from "../helpers/peers.js";

/** Reads the JSON lines peers.ts wrote: distinct reasons, in first-seen order. */
export function readSkipLog(text: string): MissingPeer[] {
  const seen = new Map<string, MissingPeer>();
  for (const line of text.split("\n")) {
    if (line.trim() === "") continue;
    const peer = JSON.parse(line) as MissingPeer;
    if (!seen.has(peer.reason)) seen.set(peer.reason, peer);
  }
  return [...seen.values()];
}

/** The summary line, or null when nothing was skipped for a missing peer. */
export function skipSummaryLine(
  skippedTests: number,
  peers: readonly MissingPeer[],
): string | null {
  if (peers.length === 0) return null;
  const packages = [...new Set(peers.flatMap((p) => (p.aptPackage ? [p.aptPackage] : [])))];
  const install =
    packages.length > 0
      ? `install with \`apt-get install ${packages.join(" ")}\` (or run \`bash .ci/run\`, which installs every peer)`
      : "see the reasons";
  const what = peers.map((p) => p.reason).join("; ");
  return `spaknock: ${skippedTests} tests skipped for want of: ${what}; ${install}. CI=true or SPAKNOCK_REQUIRE_PEERS=1 turns these skips into failures.`;
}

export default class SkipSummaryReporter implements Reporter {
  private dir: string | null = null;

  onInit(): void {
    this.dir = mkdtempSync(join(tmpdir(), "spaknock-skips-"));
    process.env[SKIP_LOG_ENV] = join(this.dir, "skips.jsonl");
  }

  onTestRunEnd(testModules: ReadonlyArray<TestModule>): void {
    if (this.dir === null) return;
    let text = "";
    try {
      text = readFileSync(join(this.dir, "skips.jsonl"), "utf8");
    } catch {
      // no test skipped for a missing peer
    }
    rmSync(this.dir, { recursive: true, force: true });
    this.dir = null;
    let skipped = 0;
    for (const m of testModules) for (const _ of m.children.allTests("skipped")) skipped++;
    const line = skipSummaryLine(skipped, readSkipLog(text));
    if (line !== null) process.stdout.write(`\n${line}\n`);
  }
}
