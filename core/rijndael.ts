/**
 * The Rijndael layer: OpenSSL's `Salted__` framing with EVP_BytesToKey(MD5, 1 round) and
 * AES-256 in the modes fwknop allows. All primitives come from node:crypto.
 */
import { createCipheriv, createDecipheriv, createHash } from "node:crypto";
import { b64Encode, isBase64Text } from "./base64.js";
import { SpaError } from "./errors.js";
import {
  AES_BLOCK_SIZE,
  LEGACY_KEY_SIZE,
  MAX_RIJNDAEL_KEY_SIZE,
  MAX_SPA_ENCODED_MSG_SIZE,
  MIN_SPA_ENCODED_MSG_SIZE,
  RAND_VAL_SIZE,
  RIJNDAEL_B64_PREFIX,
  SALT_SIZE,
} from "./limits.js";

export const ENCRYPTION_MODES = ["cbc", "ecb", "cfb", "ofb", "ctr", "legacy"] as const;
export type EncryptionMode = (typeof ENCRYPTION_MODES)[number];

/** fwknop's enum values and labels, printed by `-v`. */
export const ENCRYPTION_MODE_INFO: Readonly<
  Record<EncryptionMode, { fkoId: number; label: string }>
> = {
  ecb: { fkoId: 1, label: "ECB" },
  cbc: { fkoId: 2, label: "CBC" },
  cfb: { fkoId: 3, label: "CFB" },
  ofb: { fkoId: 5, label: "OFB" },
  ctr: { fkoId: 6, label: "CTR" },
  legacy: { fkoId: 8, label: "Legacy" },
};

const NODE_CIPHER: Readonly<Record<EncryptionMode, string>> = {
  cbc: "aes-256-cbc",
  legacy: "aes-256-cbc",
  ecb: "aes-256-ecb",
  cfb: "aes-256-cfb",
  ofb: "aes-256-ofb",
  ctr: "aes-256-ctr",
};

const SALTED_MAGIC = Buffer.from("Salted__", "latin1");

export function parseEncryptionMode(name: string): EncryptionMode {
  const normal = name.trim().toLowerCase();
  if ((ENCRYPTION_MODES as readonly string[]).includes(normal)) return normal as EncryptionMode;
  throw new SpaError(
    "ARG_INVALID",
    `unknown encryption mode "${name}" (expected one of ${ENCRYPTION_MODES.join(", ")})`,
  );
}

/** Checks a Rijndael key's length; the message never includes the key. */
export function assertRijndaelKey(key: Uint8Array): void {
  if (key.length < 1 || key.length > MAX_RIJNDAEL_KEY_SIZE) {
    throw new SpaError(
      "KEY_INVALID",
      `Rijndael key must be 1..${MAX_RIJNDAEL_KEY_SIZE} bytes, got ${key.length}`,
    );
  }
}

/** Legacy IV mode right-pads a short key with ASCII '0' and truncates a long one, to 16 bytes. */
function effectiveKey(key: Uint8Array, mode: EncryptionMode): Buffer {
  if (mode !== "legacy") return Buffer.from(key);
  const out = Buffer.alloc(LEGACY_KEY_SIZE, 0x30);
  Buffer.from(key).copy(out, 0, 0, Math.min(key.length, LEGACY_KEY_SIZE));
  return out;
}

/** OpenSSL EVP_BytesToKey with MD5 and one round: 32 key bytes then 16 IV bytes. */
export function deriveKeyAndIv(key: Uint8Array, salt: Uint8Array): { key: Buffer; iv: Buffer } {
  const blocks: Buffer[] = [];
  let previous = Buffer.alloc(0);
  while (blocks.length < 3) {
    previous = createHash("md5").update(previous).update(key).update(salt).digest();
    blocks.push(previous);
  }
  const material = Buffer.concat(blocks);
  return { key: material.subarray(0, 32), iv: material.subarray(32, 48) };
}

function pkcs7Pad(data: Buffer): Buffer {
  const n = AES_BLOCK_SIZE - (data.length % AES_BLOCK_SIZE);
  return Buffer.concat([data, Buffer.alloc(n, n)]);
}

/**
 * Every fwknop client pads with PKCS#7 in every mode, a whole block when the plaintext already
 * fills its blocks. libfko strips padding only when it is well-formed and otherwise keeps the
 * bytes; accepting that would let anyone drop a whole-block pad from an HMAC-less packet and get
 * a second, shorter wire form of it with its own replay digest. So padding must be valid.
 */
function strictUnpad(data: Buffer): Buffer {
  const n = data[data.length - 1];
  if (n === undefined || n < 1 || n > AES_BLOCK_SIZE || n > data.length) {
    throw new SpaError("SPA_DECRYPT_FAILED", "invalid padding");
  }
  for (let i = data.length - n; i < data.length; i++) {
    if (data[i] !== n) throw new SpaError("SPA_DECRYPT_FAILED", "invalid padding");
  }
  return data.subarray(0, data.length - n);
}

function runCipher(
  direction: "encrypt" | "decrypt",
  mode: EncryptionMode,
  key: Buffer,
  iv: Buffer,
  data: Buffer,
): Buffer {
  const name = NODE_CIPHER[mode];
  const ivOrNull = mode === "ecb" ? null : iv;
  const cipher =
    direction === "encrypt"
      ? createCipheriv(name, key, ivOrNull)
      : createDecipheriv(name, key, ivOrNull);
  // PKCS#7 is applied by hand in every mode, stream modes included, as libfko does.
  cipher.setAutoPadding(false);
  return Buffer.concat([cipher.update(data), cipher.final()]);
}

/**
 * Encrypts the plaintext `E:D` and returns the base64 text `B` (with its `U2FsdGVkX1` prefix,
 * padding stripped). `salt` is 8 random bytes supplied by the caller.
 */
export function rijndaelEncrypt(
  plaintext: string,
  key: Uint8Array,
  mode: EncryptionMode,
  salt: Uint8Array,
): string {
  assertRijndaelKey(key);
  if (salt.length !== SALT_SIZE) throw new TypeError(`salt must be ${SALT_SIZE} bytes`);
  const derived = deriveKeyAndIv(effectiveKey(key, mode), salt);
  const body = runCipher(
    "encrypt",
    mode,
    derived.key,
    derived.iv,
    pkcs7Pad(Buffer.from(plaintext, "latin1")),
  );
  return b64Encode(Buffer.concat([SALTED_MAGIC, salt, body]));
}

/** Restores the prefix that clients strip from the wire. */
export function withRijndaelPrefix(ciphertextB64: string): string {
  return ciphertextB64.startsWith(RIJNDAEL_B64_PREFIX)
    ? ciphertextB64
    : RIJNDAEL_B64_PREFIX + ciphertextB64;
}

/**
 * Decrypts wire ciphertext text (prefix optional) and returns the plaintext `E:D`. Fails with
 * SPA_DECRYPT_FAILED when the result does not look like an SPA plaintext, which is what a wrong
 * key produces.
 */
export function rijndaelDecrypt(
  ciphertextB64: string,
  key: Uint8Array,
  mode: EncryptionMode,
): string {
  assertRijndaelKey(key);
  const text = withRijndaelPrefix(ciphertextB64);
  // Clients strip `=` padding; a packet carrying it is a second encoding of some other packet.
  if (!isBase64Text(text) || text.includes("=")) {
    throw new SpaError("SPA_CHARSET", "ciphertext is not unpadded base64");
  }
  if (text.length < MIN_SPA_ENCODED_MSG_SIZE || text.length >= MAX_SPA_ENCODED_MSG_SIZE) {
    throw new SpaError("SPA_CIPHERTEXT_LENGTH", `ciphertext text length ${text.length}`);
  }
  const raw = Buffer.from(text, "base64");
  // 16 header bytes plus at least one block; the `Salted__` magic itself is not checked (libfko).
  if (raw.length % AES_BLOCK_SIZE !== 0 || raw.length < 2 * AES_BLOCK_SIZE) {
    throw new SpaError("SPA_CIPHERTEXT_LENGTH", `${raw.length} bytes`);
  }
  // Only the canonical encoding: unused low bits in the last character would otherwise give one
  // packet several wire forms, each with its own replay digest (this matters without an HMAC).
  if (b64Encode(raw) !== text) {
    throw new SpaError("SPA_CHARSET", "ciphertext is not canonical base64");
  }
  // libfko does not check the magic; every real client writes it. Checking it closes the last
  // way to re-encode an HMAC-less packet (the first wire character carries some of its bits).
  if (!raw.subarray(0, 8).equals(SALTED_MAGIC)) {
    throw new SpaError("SPA_DECRYPT_FAILED", "no Salted__ header");
  }
  const salt = raw.subarray(8, 16);
  const derived = deriveKeyAndIv(effectiveKey(key, mode), salt);
  const plain = strictUnpad(runCipher("decrypt", mode, derived.key, derived.iv, raw.subarray(16)));
  if (plain.length < MIN_SPA_ENCODED_MSG_SIZE || plain.length >= MAX_SPA_ENCODED_MSG_SIZE) {
    throw new SpaError("SPA_DECRYPT_FAILED", `plaintext length ${plain.length}`);
  }
  for (let i = 0; i < RAND_VAL_SIZE; i++) {
    const c = plain[i] as number;
    if (c < 0x30 || c > 0x39) throw new SpaError("SPA_DECRYPT_FAILED");
  }
  if (plain[RAND_VAL_SIZE] !== 0x3a /* : */) throw new SpaError("SPA_DECRYPT_FAILED");
  return plain.toString("latin1");
}
