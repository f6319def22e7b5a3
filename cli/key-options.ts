/**
 * fwknop's key options (`--key-rijndael`, `--key-base64-rijndael`, `--key-hmac`,
 * `--key-base64-hmac`, `--hmac-digest-type`, `--use-hmac`, `-M`), turned into core `SpaKeys`.
 * Errors name the option, never the key.
 */
import {
  assertHmacKey,
  assertRijndaelKey,
  assertUsableKeys,
  isBase64Text,
  parseDigestType,
  parseEncryptionMode,
  type SpaKeys,
} from "../core/index.js";
import { UsageError } from "./exit-codes.js";

export interface KeyOptions {
  keyRijndael?: string;
  keyBase64Rijndael?: string;
  keyHmac?: string;
  keyBase64Hmac?: string;
  hmacDigestType?: string;
  useHmac?: boolean;
  encryptionMode?: string;
}

function decodeBase64Key(text: string, option: string): Buffer {
  if (!isBase64Text(text.trim())) throw new UsageError(`${option}: the value is not base64`);
  return Buffer.from(text.trim(), "base64");
}

export function keysFromOptions(opts: KeyOptions): SpaKeys {
  if (opts.keyRijndael !== undefined && opts.keyBase64Rijndael !== undefined) {
    throw new UsageError("use either --key-rijndael or --key-base64-rijndael, not both");
  }
  if (opts.keyHmac !== undefined && opts.keyBase64Hmac !== undefined) {
    throw new UsageError("use either --key-hmac or --key-base64-hmac, not both");
  }
  const key =
    opts.keyBase64Rijndael !== undefined
      ? decodeBase64Key(opts.keyBase64Rijndael, "--key-base64-rijndael")
      : opts.keyRijndael !== undefined
        ? Buffer.from(opts.keyRijndael, "utf8")
        : undefined;
  if (key === undefined) {
    throw new UsageError("an encryption key is required: --key-rijndael or --key-base64-rijndael");
  }
  assertRijndaelKey(key);
  const hmacKey =
    opts.keyBase64Hmac !== undefined
      ? decodeBase64Key(opts.keyBase64Hmac, "--key-base64-hmac")
      : opts.keyHmac !== undefined
        ? Buffer.from(opts.keyHmac, "utf8")
        : null;
  // Any HMAC option implies --use-hmac, as in fwknop.
  const wantsHmac = opts.useHmac === true || opts.hmacDigestType !== undefined || hmacKey !== null;
  if (wantsHmac && hmacKey === null) {
    throw new UsageError("HMAC requested but no HMAC key: give --key-hmac or --key-base64-hmac");
  }
  if (hmacKey) assertHmacKey(hmacKey);
  const keys: SpaKeys = {
    key,
    mode: parseEncryptionMode(opts.encryptionMode ?? "cbc"),
    hmacKey,
    hmacType: parseDigestType(opts.hmacDigestType ?? "sha256"),
  };
  assertUsableKeys(keys);
  return keys;
}
