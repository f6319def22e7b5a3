// The skip policy (test/helpers/peers.ts, test/setup/skip-summary.ts): outside CI a missing peer
// skips and is summed in one line; under CI=true or SPAKNOCK_REQUIRE_PEERS=1 it fails and names
// what is missing. The last test runs a real interop file with fwknopd hidden (a bind mount of
// /dev/null over it in a private mount namespace) and CI=true, and expects the run to fail.

import { execFile } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { findExecutable } from "./helpers/netns.js";
import { MissingPeerError, peerSkipReason, peersRequired, SKIP_LOG_ENV } from "./helpers/peers.js";
import { readSkipLog, skipSummaryLine } from "./setup/skip-summary.js";

const FWKNOPD_MISSING = {
  reason: "fwknopd is not installed (apt-get install fwknop-server)",
  aptPackage: "fwknop-server",
};

describe("peerSkipReason", () => {
  it("returns undefined when nothing is missing, even in CI", () => {
    expect(peerSkipReason(undefined, { CI: "true" })).toBeUndefined();
  });

  it.each([[{ CI: "true" }], [{ CI: "1" }], [{ SPAKNOCK_REQUIRE_PEERS: "1" }]])(
    "throws a MissingPeerError naming the peer under %o",
    (env) => {
      expect(() => peerSkipReason(FWKNOPD_MISSING, env)).toThrow(MissingPeerError);
      expect(() => peerSkipReason(FWKNOPD_MISSING, env)).toThrow(/fwknopd is not installed/);
    },
  );

  it("skips outside CI (CI unset or false), and records the reason for the summary", () => {
    // Prepare
    const dir = mkdtempSync(join(tmpdir(), "spk-skiplog-"));
    const log = join(dir, "skips.jsonl");
    try {
      // Act
      const first = peerSkipReason(FWKNOPD_MISSING, { [SKIP_LOG_ENV]: log });
      const second = peerSkipReason(FWKNOPD_MISSING, { CI: "false", [SKIP_LOG_ENV]: log });
      // Assess
      expect(first).toBe(FWKNOPD_MISSING.reason);
      expect(second).toBe(FWKNOPD_MISSING.reason);
      expect(readSkipLog(readFileSync(log, "utf8"))).toEqual([FWKNOPD_MISSING]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("peersRequired reads CI and SPAKNOCK_REQUIRE_PEERS only", () => {
    expect(peersRequired({})).toBe(false);
    expect(peersRequired({ CI: "false", SPAKNOCK_REQUIRE_PEERS: "0" })).toBe(false);
    expect(peersRequired({ CI: "TRUE" })).toBe(true);
  });
});

describe("the end-of-run skip summary", () => {
  it("is one line: how many, for want of what, what to install", () => {
    // Act
    const line = skipSummaryLine(95, [
      FWKNOPD_MISSING,
      { reason: "`nft` is not installed (apt-get install nftables)", aptPackage: "nftables" },
      { reason: "network namespaces need root (run the tests as root)" },
    ]);
    // Assess
    expect(line).not.toContain("\n");
    expect(line).toMatch(/^spaknock: 95 tests skipped for want of: fwknopd is not installed/);
    expect(line).toContain("`apt-get install fwknop-server nftables`");
    expect(line).toContain("run the tests as root");
  });

  it("is absent when no peer was missing", () => {
    expect(skipSummaryLine(3, [])).toBeNull();
  });
});

const ROOT = fileURLToPath(new URL("..", import.meta.url));
const FWKNOPD = findExecutable("fwknopd");
const hideSkip = peerSkipReason(
  process.getuid?.() !== 0 || findExecutable("unshare") === undefined
    ? { reason: "hiding fwknopd needs root and unshare (util-linux)", aptPackage: "util-linux" }
    : undefined,
);

describe.skipIf(hideSkip !== undefined)("a CI-mode run with fwknopd hidden", () => {
  it("fails, and names fwknopd", { timeout: 60_000 }, async () => {
    // Prepare: with fwknopd installed, mount /dev/null over it (not executable) for the child only.
    const hide = FWKNOPD === undefined ? "" : `mount --bind /dev/null '${FWKNOPD}' && `;
    const script = `${hide}exec npx vitest run --reporter=default test/interop/fwknopd-harness.test.ts`;
    // Act
    const run = await new Promise<{ code: number | null; out: string }>((resolve) => {
      execFile(
        "unshare",
        ["-m", "--propagation", "private", "sh", "-c", script],
        {
          cwd: ROOT,
          env: { ...process.env, CI: "true", SPAKNOCK_REQUIRE_PEERS: "1" },
          timeout: 55_000,
        },
        (err, stdout, stderr) =>
          resolve({
            code: err === null ? 0 : typeof err.code === "number" ? err.code : null,
            out: `${stdout}${stderr}`,
          }),
      );
    });
    // Assess
    expect(run.code).toBe(1);
    expect(run.out).toContain("required test peer missing: fwknopd is not installed");
  });
});
