/** The replay digest of received SPA data, as fwknopd computes it for its digest cache. */
import { createHash } from "node:crypto";
import { b64Encode } from "./base64.js";

/** base64(SHA-256(data exactly as received, HMAC included)), padding stripped: 43 characters. */
export function replayDigest(spaData: string): string {
  return b64Encode(createHash("sha256").update(spaData, "latin1").digest());
}
