/** The replay digest of received SPA data, as fwknopd computes it for its digest cache. */
import * as crypto from "node:crypto";
import type { ReplayMeta } from "./adapters.js";
import { b64Encode } from "./base64.js";

/** base64(SHA-256(data exactly as received, HMAC included)), padding stripped: 43 characters. */
export function replayDigest(spaData: string): string {
  // crypto.hash (Node >= 20.12) is a one-shot digest, several times cheaper than createHash.
  const bytes =
    typeof crypto.hash === "function"
      ? crypto.hash("sha256", Buffer.from(spaData, "latin1"), "buffer")
      : crypto.createHash("sha256").update(spaData, "latin1").digest();
  return b64Encode(bytes);
}

/** How long past its age window a receiver must keep a claimed digest. */
export interface ReplayRetention {
  /** MAX_SPA_PACKET_AGE, seconds. */
  readonly maxPacketAge: number;
  /** How long after its receive time the receiver still accepts a packet's event. */
  readonly eventLagSec: number;
  /** Allowance for skew between the clocks involved. */
  readonly marginSec: number;
}

/**
 * Until when (epoch seconds) a claimed digest must be remembered so that no copy of the packet can
 * pass the age check again. A copy passes while its receive time R satisfies R <= T + age (T the
 * packet's timestamp); a receiver that accepts events up to `eventLagSec` after their receive
 * time sees such a copy no later than T + age + eventLagSec on its own clock. Taking the latest of
 * every clock involved (the receiver's `nowSec`, the receive time, T) makes that hold whichever of
 * them runs late; `marginSec` covers the skew between those clocks.
 */
export function replayRetainUntil(
  meta: Pick<ReplayMeta, "seenAt" | "packetTime">,
  nowSec: number,
  { maxPacketAge, eventLagSec, marginSec }: ReplayRetention,
): number {
  return Math.max(nowSec, meta.seenAt, meta.packetTime) + maxPacketAge + eventLagSec + marginSec;
}
