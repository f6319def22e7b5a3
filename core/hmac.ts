/**
 * The HMAC layer: RFC 2104 HMAC over the base64 ciphertext text including its `U2FsdGVkX1`
 * prefix, appended to the wire without a separator. Verified in constant time, before any
 * decryption is attempted.
 */
import { createHmac, timingSafeEqual } from "node:crypto";
import { stripPadding } from "./base64.js";
import { DIGESTS, type DigestType } from "./digest.js";
import { SpaError } from "./errors.js";
import { MAX_HMAC_KEY_SIZE, MIN_SPA_ENCODED_MSG_SIZE } from "./limits.js";
import { withRijndaelPrefix } from "./rijndael.js";

export function assertHmacKey(key: Uint8Array): void {
  if (key.length < 1 || key.length > MAX_HMAC_KEY_SIZE) {
    throw new SpaError(
      "KEY_INVALID",
      `HMAC key must be 1..${MAX_HMAC_KEY_SIZE} bytes, got ${key.length}`,
    );
  }
}

/** base64 (unpadded) HMAC tag of `message`. */
export function hmacTag(message: string, key: Uint8Array, type: DigestType): string {
  assertHmacKey(key);
  return stripPadding(
    createHmac(DIGESTS[type].nodeName, key).update(message, "latin1").digest("base64"),
  );
}

/**
 * Splits the stanza's tag off the end of the wire data and verifies it. Returns the ciphertext
 * part (prefix not restored). The tag type is the stanza's; it is never guessed from the data.
 */
export function verifyHmac(wire: string, key: Uint8Array, type: DigestType): string {
  const tagLength = DIGESTS[type].b64Length;
  const ciphertext = wire.slice(0, wire.length - tagLength);
  if (wire.length <= tagLength || ciphertext.length < MIN_SPA_ENCODED_MSG_SIZE) {
    throw new SpaError("SPA_HMAC_TOO_SHORT", `${wire.length} characters`);
  }
  const received = Buffer.from(wire.slice(wire.length - tagLength), "latin1");
  const expected = Buffer.from(hmacTag(withRijndaelPrefix(ciphertext), key, type), "latin1");
  if (received.length !== expected.length || !timingSafeEqual(received, expected)) {
    throw new SpaError("SPA_HMAC_MISMATCH", `HMAC type ${type}`);
  }
  return ciphertext;
}
