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

/**
 * Until when (epoch seconds) a claimed digest must be remembered so that no copy of the packet can
 * pass the age check again. A copy passes while its receive time R satisfies R <= T + age (T the
 * packet's timestamp); a receiver that accepts events up to `lagSec` after their receive time
 * sees such a copy no later than T + age + lagSec on its own clock. Taking the latest of every
 * clock involved (the receiver's `nowSec`, the receive time, T) makes that hold whichever of them
 * runs late; `marginSec` covers the skew between those clocks.
 */
export function replayRetainUntil(
  meta: Pick<ReplayMeta, "seenAt" | "packetTime">,
  nowSec: number,
  maxPacketAge: number,
  lagSec: number,
  marginSec: number,
): number {
  return Math.max(nowSec, meta.seenAt, meta.packetTime) + maxPacketAge + lagSec + marginSec;
}
