/**
 * The JOSE profile's packet (docs/jose-profile.md): a compact JWS signed with the engineer's
 * Ed25519 key, encrypted to the server's X25519 key as a compact JWE (ECDH-ES, A256GCM). All the
 * JOSE and curve work is the `jose` library's; this module holds the profile's rules: the exact
 * headers, the exact claims, and which failure gets which code.
 *
 * Receive side, cheapest first: header shape and `kid` (no crypto) → decrypt (GCM authenticates)
 * → the signer's `kid` → signature → claims. `openJoseEnvelope` does the part that is the same for
 * every stanza; `verifyJoseSignature` and `readJoseClaims` the part that depends on the stanza's
 * authorized key.
 */
import {
  CompactEncrypt,
  CompactSign,
  compactDecrypt,
  compactVerify,
  decodeProtectedHeader,
} from "jose";
import { type ProtoPort, parseProtoPort, validateUsername } from "./access-message.js";
import { parseIpAddress } from "./address.js";
import { SpaError } from "./errors.js";
import type {
  AuthorizedKey,
  AuthorizedKeySet,
  JosePrivateKey,
  JosePublicKey,
} from "./jose-keys.js";
import { MAX_CLIENT_TIMEOUT } from "./limits.js";

export const JOSE_PROFILE_VERSION = 1;
/** The largest packet a client sends: the UDP payload that fits IPv6's minimum MTU unfragmented. */
export const MAX_JOSE_SEND_SIZE = 1232;
/** Ports a JOSE packet may ask for at once: keeps packets well under MAX_JOSE_SEND_SIZE. */
export const MAX_JOSE_PORTS = 16;

const JWE_TYP = "spa+jwe";
const JWS_TYP = "spa+jwt";
const JTI = /^[A-Za-z0-9_-]{22}$/;
const CLAIMS = new Set(["v", "aud", "sub", "iat", "jti", "ip", "acc", "tmo"]);
const REQUIRED_CLAIMS = ["v", "aud", "sub", "iat", "jti", "ip", "acc"] as const;

/** What a JOSE packet asks for, as the client builds it and the receiver reads it. */
export interface JoseRequest {
  readonly username: string;
  /** Epoch seconds. */
  readonly timestamp: number;
  /** Canonical address text; `0.0.0.0` or `::` mean "the packet's source address". */
  readonly allowIp: string;
  readonly ports: readonly ProtoPort[];
  /** Seconds; 0 when the packet asks for none (the stanza's FW_ACCESS_TIMEOUT applies). */
  readonly clientTimeout: number;
  /** 22 characters of base64url: 16 random bytes. */
  readonly jti: string;
}

function sameMembers(obj: object, expected: readonly string[]): boolean {
  const keys = Object.keys(obj);
  return keys.length === expected.length && expected.every((k) => Object.hasOwn(obj, k));
}

function portText(p: ProtoPort): string {
  return `${p.proto}/${p.port}`;
}

/** Builds the datagram text. `jtiBytes` are 16 random bytes from the caller (core draws none). */
export async function buildJosePacket(
  request: Omit<JoseRequest, "jti">,
  jtiBytes: Uint8Array,
  signingKey: JosePrivateKey,
  serverKey: JosePublicKey,
): Promise<string> {
  validateUsername(request.username);
  if (jtiBytes.length !== 16) throw new SpaError("ARG_INVALID", "jti needs 16 random bytes");
  const ip = parseIpAddress(request.allowIp);
  if (ip === null) throw new SpaError("ARG_INVALID", `"${request.allowIp}" is not an IP address`);
  if (request.ports.length < 1 || request.ports.length > MAX_JOSE_PORTS) {
    throw new SpaError("ARG_INVALID", `a JOSE packet asks for 1..${MAX_JOSE_PORTS} ports`);
  }
  const claims: Record<string, unknown> = {
    v: JOSE_PROFILE_VERSION,
    aud: serverKey.kid,
    sub: request.username,
    iat: request.timestamp,
    jti: Buffer.from(jtiBytes).toString("base64url"),
    ip: ip.text,
    acc: request.ports.map(portText),
  };
  if (request.clientTimeout > 0) claims.tmo = request.clientTimeout;
  const jws = await new CompactSign(new TextEncoder().encode(JSON.stringify(claims)))
    .setProtectedHeader({ alg: "EdDSA", kid: signingKey.kid, typ: JWS_TYP })
    .sign(signingKey.privateKey);
  const jwe = await new CompactEncrypt(new TextEncoder().encode(jws))
    .setProtectedHeader({
      alg: "ECDH-ES",
      enc: "A256GCM",
      kid: serverKey.kid,
      cty: "JWT",
      typ: JWE_TYP,
    })
    .encrypt(serverKey.publicKey);
  if (jwe.length > MAX_JOSE_SEND_SIZE) {
    throw new SpaError(
      "ARG_INVALID",
      `the packet is ${jwe.length} bytes, over ${MAX_JOSE_SEND_SIZE}: use a shorter username or fewer ports`,
    );
  }
  return jwe;
}

/** The decrypted, not yet verified inner JWS and the signer it names. */
export interface JoseEnvelope {
  readonly signed: string;
  /** The JWS header's `kid`: the thumbprint of the key that claims to have signed. */
  readonly signerKid: string;
}

function protectedHeader(token: string, what: string): Record<string, unknown> {
  try {
    return decodeProtectedHeader(token) as Record<string, unknown>;
  } catch {
    throw new SpaError("JOSE_HEADER", `${what} protected header is not base64url JSON`);
  }
}

/**
 * Checks the JWE header (exact members, our server key), decrypts, and reads the inner JWS
 * header. Does not verify the signature: that needs the stanza's key.
 */
export async function openJoseEnvelope(
  data: string,
  serverKey: JosePrivateKey,
): Promise<JoseEnvelope> {
  const header = protectedHeader(data, "JWE");
  if (
    !sameMembers(header, ["alg", "enc", "epk", "kid", "cty", "typ"]) ||
    header.alg !== "ECDH-ES" ||
    header.enc !== "A256GCM" ||
    header.cty !== "JWT" ||
    header.typ !== JWE_TYP
  ) {
    throw new SpaError(
      "JOSE_HEADER",
      "JWE header is not exactly alg ECDH-ES, enc A256GCM, epk, kid, cty JWT, typ spa+jwe",
    );
  }
  const epk = header.epk;
  if (
    typeof epk !== "object" ||
    epk === null ||
    !sameMembers(epk, ["kty", "crv", "x"]) ||
    (epk as Record<string, unknown>).kty !== "OKP" ||
    (epk as Record<string, unknown>).crv !== "X25519"
  ) {
    throw new SpaError("JOSE_HEADER", "epk is not an X25519 public key");
  }
  if (header.kid !== serverKey.kid) {
    throw new SpaError(
      "JOSE_WRONG_SERVER",
      `JWE kid ${String(header.kid).slice(0, 43)} is not our server key`,
    );
  }
  let plaintext: Uint8Array;
  try {
    ({ plaintext } = await compactDecrypt(data, serverKey.privateKey, {
      keyManagementAlgorithms: ["ECDH-ES"],
      contentEncryptionAlgorithms: ["A256GCM"],
    }));
  } catch {
    throw new SpaError("JOSE_DECRYPT", "the JWE does not decrypt with the server key");
  }
  const signed = Buffer.from(plaintext).toString("latin1");
  if (!/^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$/.test(signed)) {
    throw new SpaError("JOSE_SHAPE", "the decrypted content is not a compact JWS");
  }
  const inner = protectedHeader(signed, "JWS");
  if (
    !sameMembers(inner, ["alg", "kid", "typ"]) ||
    inner.alg !== "EdDSA" ||
    inner.typ !== JWS_TYP ||
    typeof inner.kid !== "string"
  ) {
    throw new SpaError("JOSE_HEADER", "JWS header is not exactly alg EdDSA, kid, typ spa+jwt");
  }
  return { signed, signerKid: inner.kid };
}

/** The key of `signerKid` in an authorized key set, or JOSE_KEY_UNKNOWN. */
export function authorizedKeyOf(set: AuthorizedKeySet | null, signerKid: string): AuthorizedKey {
  const key = set?.keys.get(signerKid);
  if (key === undefined) {
    const where = set === null ? "no AUTHORIZED_KEYS" : `not in ${set.origin}`;
    throw new SpaError("JOSE_KEY_UNKNOWN", `signing key ${signerKid.slice(0, 43)}: ${where}`);
  }
  return key;
}

/** Verifies the signature with the authorized key; returns the payload's bytes. */
export async function verifyJoseSignature(
  envelope: JoseEnvelope,
  key: AuthorizedKey,
): Promise<Uint8Array> {
  try {
    const { payload } = await compactVerify(envelope.signed, key.publicKey, {
      algorithms: ["EdDSA"],
    });
    return payload;
  } catch {
    throw new SpaError("JOSE_SIGNATURE", `signature does not verify with key ${key.kid}`);
  }
}

function integer(value: unknown, min: number, max: number): number | null {
  return typeof value === "number" && Number.isSafeInteger(value) && value >= min && value <= max
    ? value
    : null;
}

/** The claims, by the profile's rules, for a packet signed by `key` and sent to `serverKid`. */
export function readJoseClaims(
  payload: Uint8Array,
  key: AuthorizedKey,
  serverKid: string,
): JoseRequest {
  let claims: unknown;
  try {
    claims = JSON.parse(Buffer.from(payload).toString("utf8"));
  } catch {
    throw new SpaError("JOSE_CLAIMS", "the payload is not JSON");
  }
  if (typeof claims !== "object" || claims === null || Array.isArray(claims)) {
    throw new SpaError("JOSE_CLAIMS", "the payload is not a JSON object");
  }
  const c = claims as Record<string, unknown>;
  for (const name of Object.keys(c)) {
    if (!CLAIMS.has(name))
      throw new SpaError("JOSE_CLAIMS", `unexpected claim "${name.slice(0, 32)}"`);
  }
  if (c.v !== JOSE_PROFILE_VERSION) {
    throw new SpaError("JOSE_VERSION", `v is ${JSON.stringify(c.v ?? null).slice(0, 16)}, not 1`);
  }
  for (const name of REQUIRED_CLAIMS) {
    if (!Object.hasOwn(c, name)) throw new SpaError("JOSE_CLAIMS", `claim "${name}" is missing`);
  }
  if (c.aud !== serverKid) throw new SpaError("JOSE_AUDIENCE", "aud is another server's key");
  if (c.sub !== key.name) {
    throw new SpaError("JOSE_SUBJECT", `sub is not "${key.name}", the name of the key that signed`);
  }
  const timestamp = integer(c.iat, 0, Number.MAX_SAFE_INTEGER);
  if (timestamp === null) throw new SpaError("JOSE_CLAIMS", "iat is not epoch seconds");
  if (typeof c.jti !== "string" || !JTI.test(c.jti)) {
    throw new SpaError("JOSE_CLAIMS", "jti is not 22 base64url characters");
  }
  const ip = typeof c.ip === "string" ? parseIpAddress(c.ip) : null;
  if (ip === null) throw new SpaError("JOSE_ADDRESS", "ip is not an IPv4 or IPv6 address");
  if (!Array.isArray(c.acc) || c.acc.length < 1 || c.acc.length > MAX_JOSE_PORTS) {
    throw new SpaError("JOSE_CLAIMS", `acc is not a list of 1..${MAX_JOSE_PORTS} proto/port`);
  }
  const ports = c.acc.map((entry) => {
    if (typeof entry !== "string") throw new SpaError("JOSE_CLAIMS", "acc holds a non-string");
    try {
      return parseProtoPort(entry);
    } catch {
      throw new SpaError(
        "JOSE_CLAIMS",
        `acc entry "${entry.slice(0, 16)}" is not tcp/PORT or udp/PORT`,
      );
    }
  });
  let clientTimeout = 0;
  if (c.tmo !== undefined) {
    const tmo = integer(c.tmo, 1, MAX_CLIENT_TIMEOUT);
    if (tmo === null)
      throw new SpaError("JOSE_CLAIMS", `tmo is not 1..${MAX_CLIENT_TIMEOUT} seconds`);
    clientTimeout = tmo;
  }
  return { username: key.name, timestamp, allowIp: ip.text, ports, clientTimeout, jti: c.jti };
}

/** The replay key of a JOSE packet: sha256(kid + "." + jti), in the digest cache's encoding. */
export function joseReplayInput(signerKid: string, jti: string): string {
  return `${signerKid}.${jti}`;
}
