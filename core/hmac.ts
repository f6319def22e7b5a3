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

/** A tag check that failed: the code and detail verifyHmac would throw. */
export interface HmacRefusal {
  readonly code: "SPA_HMAC_TOO_SHORT" | "SPA_HMAC_MISMATCH";
  readonly detail: string;
}

const MISMATCH: Record<DigestType, HmacRefusal> = Object.fromEntries(
  Object.keys(DIGESTS).map((t) => [t, { code: "SPA_HMAC_MISMATCH", detail: `HMAC type ${t}` }]),
) as Record<DigestType, HmacRefusal>;

/** The stanza's tag length split off the end of the wire: [ciphertext, tag] or a refusal. */
function splitTag(wire: string, type: DigestType): [string, string] | HmacRefusal {
  const tagLength = DIGESTS[type].b64Length;
  const ciphertext = wire.slice(0, wire.length - tagLength);
  if (wire.length <= tagLength || ciphertext.length < MIN_SPA_ENCODED_MSG_SIZE) {
    return { code: "SPA_HMAC_TOO_SHORT", detail: `${wire.length} characters` };
  }
  return [ciphertext, wire.slice(wire.length - tagLength)];
}

function tagMatches(ciphertext: string, tag: string, key: Uint8Array, type: DigestType): boolean {
  const received = Buffer.from(tag, "latin1");
  const expected = Buffer.from(hmacTag(withRijndaelPrefix(ciphertext), key, type), "latin1");
  return received.length === expected.length && timingSafeEqual(received, expected);
}

/**
 * verifyHmac without the exception, for the receiver's synchronous screening of every datagram
 * (core/knock.ts screenKnock): null when the stanza's tag verifies, else why not.
 */
export function hmacRefusal(wire: string, key: Uint8Array, type: DigestType): HmacRefusal | null {
  const parts = splitTag(wire, type);
  if (!Array.isArray(parts)) return parts;
  return tagMatches(parts[0], parts[1], key, type) ? null : MISMATCH[type];
}

/**
 * Splits the stanza's tag off the end of the wire data and verifies it. Returns the ciphertext
 * part (prefix not restored). The tag type is the stanza's; it is never guessed from the data.
 */
export function verifyHmac(wire: string, key: Uint8Array, type: DigestType): string {
  const parts = splitTag(wire, type);
  if (!Array.isArray(parts)) throw new SpaError(parts.code, parts.detail);
  if (!tagMatches(parts[0], parts[1], key, type)) {
    throw new SpaError("SPA_HMAC_MISMATCH", `HMAC type ${type}`);
  }
  return parts[0];
}
