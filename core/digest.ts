/**
 * Digest and HMAC algorithm names as fwknop spells them, with their node:crypto names and the
 * length of their base64 text (which is how a receiver infers the inner digest type).
 */
import { SpaError } from "./errors.js";

export const DIGEST_TYPES = [
  "md5",
  "sha1",
  "sha256",
  "sha384",
  "sha512",
  "sha3_256",
  "sha3_512",
] as const;
export type DigestType = (typeof DIGEST_TYPES)[number];

interface DigestInfo {
  /** fwknop's enum value, printed by `-v`. */
  readonly fkoId: number;
  readonly label: string;
  readonly nodeName: string;
  /** Length of the base64 text without padding. */
  readonly b64Length: number;
}

export const DIGESTS: Readonly<Record<DigestType, DigestInfo>> = {
  md5: { fkoId: 1, label: "MD5", nodeName: "md5", b64Length: 22 },
  sha1: { fkoId: 2, label: "SHA1", nodeName: "sha1", b64Length: 27 },
  sha256: { fkoId: 3, label: "SHA256", nodeName: "sha256", b64Length: 43 },
  sha384: { fkoId: 4, label: "SHA384", nodeName: "sha384", b64Length: 64 },
  sha512: { fkoId: 5, label: "SHA512", nodeName: "sha512", b64Length: 86 },
  sha3_256: { fkoId: 6, label: "SHA3_256", nodeName: "sha3-256", b64Length: 43 },
  sha3_512: { fkoId: 7, label: "SHA3_512", nodeName: "sha3-512", b64Length: 86 },
};

/**
 * Parses a digest name as fwknop's `-m`, `--hmac-digest-type` and `HMAC_DIGEST_TYPE` accept it
 * (case-insensitive; `sha3-256` is tolerated for `sha3_256`).
 */
export function parseDigestType(name: string): DigestType {
  const normal = name.trim().toLowerCase().replace("-", "_");
  if ((DIGEST_TYPES as readonly string[]).includes(normal)) return normal as DigestType;
  throw new SpaError(
    "ARG_INVALID",
    `unknown digest type "${name}" (expected one of ${DIGEST_TYPES.join(", ")})`,
  );
}

/**
 * Candidate inner digest types for a digest text of this length, in the order libfko tries them
 * (SHA-256 before SHA3-256, SHA-512 before SHA3-512).
 */
export function digestTypesForLength(length: number): DigestType[] {
  return DIGEST_TYPES.filter((t) => DIGESTS[t].b64Length === length);
}
