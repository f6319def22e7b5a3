import { readFileSync } from "node:fs";
import { parseDigestType, parseEncryptionMode, type SpaKeys } from "../../core/index.js";

/** One packet made by the real fwknop 2.6.10 client (`-T -v`), from shared/vectors. */
export interface Vector {
  id: string;
  cmd: string;
  encoded: string;
  digest: string;
  salt: string;
  aes_key: string;
  iv: string;
  hmac: string | null;
  wire: string;
  key: string | null;
  key_base64: string | null;
  hmac_key: string | null;
  hmac_key_base64: string | null;
  hmac_digest_type: string | null;
  digest_type: string;
  encryption_mode: string;
  timestamp: number;
}

export const vectors: Vector[] = JSON.parse(
  readFileSync(new URL("../fixtures/fwknop-2.6.10.json", import.meta.url), "utf8"),
).vectors;

export function keysOf(v: Vector): SpaKeys {
  const key = v.key_base64 ? Buffer.from(v.key_base64, "base64") : Buffer.from(v.key ?? "", "utf8");
  const hmacKey = v.hmac_key_base64
    ? Buffer.from(v.hmac_key_base64, "base64")
    : v.hmac_key
      ? Buffer.from(v.hmac_key, "utf8")
      : null;
  return {
    key,
    mode: parseEncryptionMode(v.encryption_mode),
    hmacKey,
    hmacType: parseDigestType(v.hmac_digest_type ?? "sha256"),
  };
}
