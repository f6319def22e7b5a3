/**
 * A whole SPA packet: plaintext, Rijndael layer, HMAC layer and the wire string
 * (docs/protocol.md section 0). `buildSpaPacket` is the client direction; `openSpaPacket` the
 * receiver's, which verifies the HMAC before it decrypts anything.
 */
import type { DigestType } from "./digest.js";
import { SpaError } from "./errors.js";
import { hmacTag, verifyHmac } from "./hmac.js";
import { MIN_GNUPG_MSG_SIZE, RIJNDAEL_B64_PREFIX } from "./limits.js";
import {
  decodePlaintext,
  encodePlaintext,
  type SpaMessage,
  type SpaMessageInput,
} from "./message.js";
import { type EncryptionMode, rijndaelDecrypt, rijndaelEncrypt } from "./rijndael.js";

/** The keys of one side of a conversation: a client's options or a server's access stanza. */
export interface SpaKeys {
  readonly key: Uint8Array;
  readonly mode: EncryptionMode;
  /** null: no HMAC (unauthenticated packets, as fwknop still allows). */
  readonly hmacKey: Uint8Array | null;
  readonly hmacType: DigestType;
}

export interface BuiltPacket {
  readonly encoded: string;
  readonly digest: string;
  /** base64 ciphertext with its `U2FsdGVkX1` prefix: what the HMAC covers. */
  readonly ciphertext: string;
  readonly hmac: string | null;
  /** Exactly what goes into the UDP datagram. */
  readonly wire: string;
}

/** Rejects key combinations that fwknop refuses, without ever echoing a key. */
export function assertUsableKeys(keys: SpaKeys): void {
  if (keys.hmacKey === null) return;
  if (keys.mode === "legacy") {
    throw new SpaError("KEY_INVALID", "legacy encryption mode cannot be combined with HMAC");
  }
  if (Buffer.compare(Buffer.from(keys.key), Buffer.from(keys.hmacKey)) === 0) {
    throw new SpaError("KEY_INVALID", "the HMAC key must differ from the encryption key");
  }
}

export function buildSpaPacket(
  message: SpaMessageInput,
  keys: SpaKeys,
  salt: Uint8Array,
): BuiltPacket {
  assertUsableKeys(keys);
  const { encoded, digest, plaintext } = encodePlaintext(message);
  const ciphertext = rijndaelEncrypt(plaintext, keys.key, keys.mode, salt);
  const hmac = keys.hmacKey ? hmacTag(ciphertext, keys.hmacKey, keys.hmacType) : null;
  const wire = ciphertext.slice(RIJNDAEL_B64_PREFIX.length) + (hmac ?? "");
  return { encoded, digest, ciphertext, hmac, wire };
}

/**
 * Verifies and decodes wire data with one stanza's keys. Order matters: the HMAC is checked in
 * constant time before a single byte is decrypted.
 */
export function openSpaPacket(wire: string, keys: SpaKeys): SpaMessage {
  if (wire.length >= MIN_GNUPG_MSG_SIZE) {
    throw new SpaError("SPA_GPG_UNSUPPORTED", `${wire.length} characters`);
  }
  const ciphertext = keys.hmacKey ? verifyHmac(wire, keys.hmacKey, keys.hmacType) : wire;
  return decodePlaintext(rijndaelDecrypt(ciphertext, keys.key, keys.mode));
}

/** 16 decimal digits from 8 random bytes (bias below 1e-3, irrelevant for a nonce). */
export function randomValueFromBytes(bytes: Uint8Array): string {
  if (bytes.length < 8) throw new TypeError("need 8 random bytes");
  return (Buffer.from(bytes).readBigUInt64BE(0) % 10n ** 16n).toString().padStart(16, "0");
}
