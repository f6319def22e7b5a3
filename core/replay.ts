/** The replay digest of received SPA data, as fwknopd computes it for its digest cache. */
import * as crypto from "node:crypto";
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
