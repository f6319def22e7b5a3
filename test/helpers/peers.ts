// The one door every "these tests cannot run on this host" reason goes through (root, `ip`,
// fwknop, fwknopd, nft, iptables, sshd, libpcap, the built CLI).
//
// Outside CI a missing peer skips the tests that need it, and test/setup/skip-summary.ts sums the
// skips in one line at the end of the run, with what to install. Under CI=true (or
// SPAKNOCK_REQUIRE_PEERS=1) it throws instead, so the test file fails with the missing thing
// named: a CI run whose package install silently failed cannot report green.

import { appendFileSync } from "node:fs";

/** Where peerSkipReason appends one JSON line per skip reason; set by the skip-summary reporter. */
export const SKIP_LOG_ENV = "SPAKNOCK_SKIP_LOG";

/** Something a test needs that this host lacks. */
export interface MissingPeer {
  /** What is missing, in words: "fwknopd is not installed (apt-get install fwknop-server)". */
  readonly reason: string;
  /** The Debian package that provides it, when one does. */
  readonly aptPackage?: string;
}

export class MissingPeerError extends Error {
  override readonly name = "MissingPeerError";
}

/** True when a missing peer must fail the run: CI=true (or 1), or SPAKNOCK_REQUIRE_PEERS=1. */
export function peersRequired(env: NodeJS.ProcessEnv = process.env): boolean {
  const ci = (env.CI ?? "").toLowerCase();
  return ci === "true" || ci === "1" || env.SPAKNOCK_REQUIRE_PEERS === "1";
}

/**
 * The skip reason for `describe.skipIf` / `it.skipIf`: undefined when nothing is missing; the
 * reason (recorded for the end-of-run summary) when skipping is allowed; a thrown
 * MissingPeerError naming it when it is not.
 */
export function peerSkipReason(
  missing: MissingPeer | undefined,
  env: NodeJS.ProcessEnv = process.env,
): string | undefined {
  if (missing === undefined) return undefined;
  if (peersRequired(env)) {
    throw new MissingPeerError(
      `required test peer missing: ${missing.reason} ` +
        "(CI=true or SPAKNOCK_REQUIRE_PEERS=1: tests may not skip; `bash .ci/run` installs every peer)",
    );
  }
  const log = env[SKIP_LOG_ENV];
  if (log !== undefined && log !== "") {
    appendFileSync(log, `${JSON.stringify(missing)}\n`, { mode: 0o600 });
  }
  return missing.reason;
}
