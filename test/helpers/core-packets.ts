/**
 * Shared material for the core tamper, fuzz and message tests: fixed keys with distinctive text
 * (so a test can search error messages for them), reproducible salts, well-formed inputs for
 * every message type, and small assertions about SpaError.
 */
import {
  type BuiltPacket,
  b64Encode,
  buildSpaPacket,
  computeDigest,
  type DigestType,
  type EncryptionMode,
  type MessageType,
  SPA_ERROR_CODES,
  SpaError,
  type SpaErrorCode,
  type SpaKeys,
  type SpaMessageInput,
} from "../../core/index.js";

/** Rijndael and HMAC keys whose text is unlikely to appear in any message by accident. */
export const RIJNDAEL_KEY_TEXT = "rijndael-KEY-Qx7vTm29";
export const HMAC_KEY_TEXT = "hmac-KEY-Zr4pWn81-do-not-log";
export const OTHER_RIJNDAEL_KEY_TEXT = "other-rijndael-KEY-Jd5s";
export const OTHER_HMAC_KEY_TEXT = "other-hmac-KEY-Lb6c-never-shown";

/** Fixed random binary keys (as `fwknop -k` would make: 32 and 64 bytes). */
export const BINARY_KEY = Buffer.from(
  "6f1c0a9e3b7d2258c4e19af07b3355d2e8a41c6f0b9d7e2a5c3f18b6d40e9a71",
  "hex",
);
export const BINARY_HMAC_KEY = Buffer.from(
  "c2a95e1d0f7b3846a1d2e9c07f5b6a3d8e41f2c90b7a6d5e3c28f1a04b9e7d62" +
    "18f7a3c5e9d0b2a4c6e8f1a3b5d7c9e0f2a4b6c8d0e1f3a5b7c9d2e4f6a8b0c1",
  "hex",
);

/** Every text and encoding of the keys above that must never appear in an error. */
export const SECRET_TEXTS: readonly string[] = [
  RIJNDAEL_KEY_TEXT,
  HMAC_KEY_TEXT,
  OTHER_RIJNDAEL_KEY_TEXT,
  OTHER_HMAC_KEY_TEXT,
  BINARY_KEY.toString("hex"),
  BINARY_KEY.toString("base64"),
  BINARY_KEY.toString("latin1"),
  BINARY_HMAC_KEY.toString("hex"),
  BINARY_HMAC_KEY.toString("base64"),
  BINARY_HMAC_KEY.toString("latin1"),
];

export function textKey(text: string): Buffer {
  return Buffer.from(text, "utf8");
}

/** Stanza/client keys: the text keys with HMAC-SHA256 in CBC mode unless overridden. */
export function keysWith(overrides: Partial<SpaKeys> = {}): SpaKeys {
  return {
    key: textKey(RIJNDAEL_KEY_TEXT),
    mode: "cbc",
    hmacKey: textKey(HMAC_KEY_TEXT),
    hmacType: "sha256",
    ...overrides,
  };
}

/** The same keys without HMAC (legacy mode cannot carry one). */
export function noHmacKeys(
  mode: EncryptionMode = "cbc",
  key: Uint8Array = textKey(RIJNDAEL_KEY_TEXT),
): SpaKeys {
  return keysWith({ mode, key, hmacKey: null });
}

/** A reproducible 8-byte salt. */
export function saltOf(n: number): Buffer {
  const salt = Buffer.alloc(8);
  salt.writeUInt32BE(0x5a17c0de, 0);
  salt.writeUInt32BE(n >>> 0, 4);
  return salt;
}

/** The fields of `fwknop -A tcp/22 -a 198.18.0.2 -U alice` at the vectors' timestamp. */
export const ACCESS_INPUT: SpaMessageInput = {
  randomValue: "1427354262114784",
  username: "alice",
  timestamp: 1795605803,
  messageType: 1,
  message: "198.18.0.2,tcp/22",
  natAccess: null,
  clientTimeout: 0,
  digestType: "sha256",
};

/** One well-formed input per message type (docs/protocol.md 1.2). */
export const INPUT_BY_TYPE: Readonly<Record<MessageType, SpaMessageInput>> = {
  0: { ...ACCESS_INPUT, messageType: 0, message: "198.18.0.2,echo hello" },
  1: ACCESS_INPUT,
  2: {
    ...ACCESS_INPUT,
    messageType: 2,
    message: "198.18.0.2,tcp/2222",
    natAccess: "192.168.10.5,22",
  },
  3: { ...ACCESS_INPUT, messageType: 3, clientTimeout: 60 },
  4: {
    ...ACCESS_INPUT,
    messageType: 4,
    message: "198.18.0.2,tcp/2222",
    natAccess: "192.168.10.5,22",
    clientTimeout: 120,
  },
  5: { ...ACCESS_INPUT, messageType: 5, natAccess: "198.18.0.1,22" },
  6: { ...ACCESS_INPUT, messageType: 6, natAccess: "198.18.0.1,22", clientTimeout: 45 },
};

export function buildWith(
  keys: SpaKeys,
  input: SpaMessageInput = ACCESS_INPUT,
  saltNumber = 1,
): BuiltPacket {
  return buildSpaPacket(input, keys, saltOf(saltNumber));
}

/** `E:D` from hand-made fields, with the correct inner digest. */
export function plaintextOf(fields: readonly string[], digestType: DigestType = "sha256"): string {
  const encoded = fields.join(":");
  return `${encoded}:${computeDigest(encoded, digestType)}`;
}

/** The fields of `INPUT_BY_TYPE[1]` as they appear in `E`, to be edited by a test. */
export function accessFields(): string[] {
  return [
    ACCESS_INPUT.randomValue,
    b64Encode(ACCESS_INPUT.username),
    String(ACCESS_INPUT.timestamp),
    "3.0.0",
    "1",
    b64Encode(ACCESS_INPUT.message),
  ];
}

export function isKnownSpaError(err: unknown): err is SpaError {
  return err instanceof SpaError && Object.hasOwn(SPA_ERROR_CODES, err.code);
}

/**
 * The SpaError `act` throws. Anything else thrown is rethrown, and a call that does not throw
 * fails, so a test built on this cannot pass by accident.
 */
export function spaErrorOf(act: () => unknown): SpaError {
  try {
    act();
  } catch (err) {
    if (isKnownSpaError(err)) return err;
    throw err;
  }
  throw new Error("expected a SpaError, but the call succeeded");
}

export function spaCodeOf(act: () => unknown): SpaErrorCode {
  return spaErrorOf(act).code;
}

/** Every place an error could leak text: message, string form, stack, enumerable fields. */
export function errorTexts(err: SpaError): string[] {
  return [err.message, String(err), err.stack ?? "", JSON.stringify(err)];
}
