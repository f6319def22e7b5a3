/**
 * The keys of the JOSE profile (docs/jose-profile.md): an engineer's Ed25519 signing key, the
 * server's X25519 key, and the authorized key sets (JWK Sets of Ed25519 public keys, each with
 * the username it may sign as). Every key is named by its RFC 7638 thumbprint, computed by `jose`.
 *
 * Parsing is strict: a key set that holds a private key, a key whose `kid` is not its thumbprint,
 * a member this profile does not know: each is refused with the reason, at load, so that a typo
 * shows when the operator reloads and not as a silent refusal at 3 a.m.
 */
import {
  createPrivateKey,
  createPublicKey,
  generateKeyPairSync,
  type KeyObject,
} from "node:crypto";
import { calculateJwkThumbprint } from "jose";
import { validateUsername } from "./access-message.js";
import { isSpaError, SpaError } from "./errors.js";

export type JoseCurve = "Ed25519" | "X25519";

/** A public JWK as this profile writes it: the three RFC 7638 members and the thumbprint. */
export interface PublicJwk {
  readonly kty: "OKP";
  readonly crv: JoseCurve;
  readonly x: string;
  readonly kid: string;
}

/** A private key of ours (a signing key, or the server's key) with the thumbprint of its public half. */
export interface JosePrivateKey {
  readonly kid: string;
  readonly curve: JoseCurve;
  readonly privateKey: KeyObject;
  readonly publicJwk: PublicJwk;
}

/** A server's public key as a client holds it. */
export interface JosePublicKey {
  readonly kid: string;
  readonly curve: JoseCurve;
  readonly publicKey: KeyObject;
}

/** One key of an authorized key set: who may sign with it. */
export interface AuthorizedKey extends JosePublicKey {
  /** The `name` member: the only username this key may sign as (the JWS `sub`). */
  readonly name: string;
}

export interface AuthorizedKeySet {
  /** Where the set came from (a file, a secret), for log lines. */
  readonly origin: string;
  readonly keys: ReadonlyMap<string, AuthorizedKey>;
}

const B64URL_32 = /^[A-Za-z0-9_-]{43}$/;
const PRIVATE_MEMBERS = new Set(["kty", "crv", "x", "d", "kid"]);
const AUTHORIZED_MEMBERS = new Set(["kty", "crv", "x", "kid", "name", "alg", "use"]);

function keyError(origin: string, detail: string): SpaError {
  return new SpaError("KEY_INVALID", `${origin}: ${detail}`);
}

function parseJson(text: string, origin: string): Record<string, unknown> {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    throw keyError(origin, "not JSON (a JWK is one JSON object)");
  }
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    throw keyError(origin, "not a JSON object");
  }
  return value as Record<string, unknown>;
}

function checkMembers(jwk: Record<string, unknown>, allowed: Set<string>, origin: string): void {
  for (const member of Object.keys(jwk)) {
    if (!allowed.has(member)) throw keyError(origin, `unexpected member "${member}"`);
  }
}

function checkOkp(jwk: Record<string, unknown>, curve: JoseCurve, origin: string): string {
  if (jwk.kty !== "OKP" || jwk.crv !== curve) {
    throw keyError(origin, `not an ${curve} key (kty OKP, crv ${curve})`);
  }
  if (typeof jwk.x !== "string" || !B64URL_32.test(jwk.x)) {
    throw keyError(origin, "x is not a 32-byte base64url value");
  }
  return jwk.x;
}

export async function thumbprintOf(curve: JoseCurve, x: string): Promise<string> {
  return calculateJwkThumbprint({ kty: "OKP", crv: curve, x }, "sha256");
}

/** The key's thumbprint; a `kid` the JWK gives must be it. */
async function checkedKid(
  jwk: Record<string, unknown>,
  curve: JoseCurve,
  x: string,
  origin: string,
): Promise<string> {
  const kid = await thumbprintOf(curve, x);
  if (jwk.kid !== undefined && jwk.kid !== kid) {
    throw keyError(origin, `kid is not the key's thumbprint (expected ${kid})`);
  }
  return kid;
}

function nodeKey<T>(origin: string, make: () => T): T {
  try {
    return make();
  } catch (err) {
    if (isSpaError(err)) throw err;
    throw keyError(origin, "the key's bytes are not a valid key of its curve");
  }
}

/** A private JWK file's text: our signing key (Ed25519) or the server's key (X25519). */
export async function importPrivateJwk(
  text: string,
  curve: JoseCurve,
  origin: string,
): Promise<JosePrivateKey> {
  const jwk = parseJson(text, origin);
  checkMembers(jwk, PRIVATE_MEMBERS, origin);
  const x = checkOkp(jwk, curve, origin);
  if (jwk.d === undefined) throw keyError(origin, "holds no private key (d): this is a public JWK");
  if (typeof jwk.d !== "string" || !B64URL_32.test(jwk.d)) {
    throw keyError(origin, "d is not a 32-byte base64url value");
  }
  const kid = await checkedKid(jwk, curve, x, origin);
  const privateKey = nodeKey(origin, () =>
    createPrivateKey({ key: { kty: "OKP", crv: curve, x, d: jwk.d as string }, format: "jwk" }),
  );
  // d must be the private half of x, or we would sign with one key and name another.
  const derived = createPublicKey(privateKey).export({ format: "jwk" });
  if (derived.x !== x) throw keyError(origin, "x is not the public half of d");
  return { kid, curve, privateKey, publicJwk: { kty: "OKP", crv: curve, x, kid } };
}

/** A public JWK file's text: the server key a client encrypts to. Refuses a private key. */
export async function importPublicJwk(
  text: string,
  curve: JoseCurve,
  origin: string,
): Promise<JosePublicKey> {
  const jwk = parseJson(text, origin);
  if (jwk.d !== undefined) {
    throw keyError(origin, "holds a private key (d): hand clients the public JWK only");
  }
  checkMembers(jwk, new Set(["kty", "crv", "x", "kid", "alg", "use"]), origin);
  const x = checkOkp(jwk, curve, origin);
  const kid = await checkedKid(jwk, curve, x, origin);
  const publicKey = nodeKey(origin, () =>
    createPublicKey({ key: { kty: "OKP", crv: curve, x }, format: "jwk" }),
  );
  return { kid, curve, publicKey };
}

/**
 * An authorized key set: `{"keys":[{"kty":"OKP","crv":"Ed25519","x":…,"kid":…,"name":…}]}`.
 * Each key needs its `kid` (so that a set can be read and audited by eye) and a `name`.
 */
export async function importAuthorizedKeys(
  text: string,
  origin: string,
): Promise<AuthorizedKeySet> {
  const set = parseJson(text, origin);
  if (!Array.isArray(set.keys) || Object.keys(set).length !== 1) {
    throw keyError(origin, 'not a JWK Set: expected {"keys":[...]} and nothing else');
  }
  const keys = new Map<string, AuthorizedKey>();
  for (const [i, entry] of (set.keys as unknown[]).entries()) {
    const where = `${origin} key #${i + 1}`;
    if (typeof entry !== "object" || entry === null || Array.isArray(entry)) {
      throw keyError(where, "not a JSON object");
    }
    const jwk = entry as Record<string, unknown>;
    if (jwk.d !== undefined) {
      throw keyError(
        where,
        "holds a private key (d): an authorized key set holds public keys only; remove it and treat that key as exposed",
      );
    }
    checkMembers(jwk, AUTHORIZED_MEMBERS, where);
    const x = checkOkp(jwk, "Ed25519", where);
    if (jwk.alg !== undefined && jwk.alg !== "EdDSA") throw keyError(where, "alg is not EdDSA");
    if (jwk.use !== undefined && jwk.use !== "sig") throw keyError(where, 'use is not "sig"');
    if (typeof jwk.kid !== "string") throw keyError(where, "has no kid (its thumbprint)");
    const kid = await checkedKid(jwk, "Ed25519", x, where);
    if (typeof jwk.name !== "string")
      throw keyError(where, "has no name (the username it signs as)");
    const name = jwk.name;
    try {
      validateUsername(name);
    } catch (err) {
      throw keyError(where, `name "${name}": ${err instanceof Error ? err.message : String(err)}`);
    }
    if (keys.has(kid)) throw keyError(where, `kid ${kid} is listed twice`);
    const publicKey = nodeKey(where, () =>
      createPublicKey({ key: { kty: "OKP", crv: "Ed25519", x }, format: "jwk" }),
    );
    keys.set(kid, { kid, curve: "Ed25519", publicKey, name });
  }
  if (keys.size === 0) throw keyError(origin, "the key set is empty");
  return { origin, keys };
}

/** A fresh key pair: the private JWK (with kid) to store, the public JWK (with kid) to hand out. */
export async function generateJwkPair(
  curve: JoseCurve,
): Promise<{ privateJwk: Record<string, string>; publicJwk: PublicJwk }> {
  const pair = curve === "Ed25519" ? generateKeyPairSync("ed25519") : generateKeyPairSync("x25519");
  const jwk = pair.privateKey.export({ format: "jwk" });
  const x = jwk.x as string;
  const kid = await thumbprintOf(curve, x);
  return {
    privateJwk: { kty: "OKP", crv: curve, x, d: jwk.d as string, kid },
    publicJwk: { kty: "OKP", crv: curve, x, kid },
  };
}
