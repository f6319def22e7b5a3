/**
 * JOSE-profile packets built with `jose` directly, not through core/jose-packet.ts: the
 * independent implementation the project's decoder is judged against. Every header member and
 * claim can be overridden, to make each of the profile's refusals.
 */
import {
  createPrivateKey,
  createPublicKey,
  generateKeyPairSync,
  type KeyObject,
  randomBytes,
} from "node:crypto";
import { CompactEncrypt, CompactSign, calculateJwkThumbprint } from "jose";

export interface TestJwkPair {
  readonly kid: string;
  readonly privateJwk: Record<string, string>;
  readonly publicJwk: Record<string, string>;
  readonly privateKey: KeyObject;
  readonly publicKey: KeyObject;
}

export async function testKeyPair(curve: "Ed25519" | "X25519"): Promise<TestJwkPair> {
  const pair = curve === "Ed25519" ? generateKeyPairSync("ed25519") : generateKeyPairSync("x25519");
  const jwk = pair.privateKey.export({ format: "jwk" }) as Record<string, string>;
  const x = jwk.x as string;
  const kid = await calculateJwkThumbprint({ kty: "OKP", crv: curve, x });
  return {
    kid,
    privateJwk: { kty: "OKP", crv: curve, x, d: jwk.d as string, kid },
    publicJwk: { kty: "OKP", crv: curve, x, kid },
    privateKey: createPrivateKey({
      key: { kty: "OKP", crv: curve, x, d: jwk.d as string },
      format: "jwk",
    }),
    publicKey: createPublicKey({ key: { kty: "OKP", crv: curve, x }, format: "jwk" }),
  };
}

/** A JWK Set text naming each user key with its username. */
export function authorizedKeysText(entries: readonly { key: TestJwkPair; name: string }[]): string {
  return JSON.stringify({ keys: entries.map((e) => ({ ...e.key.publicJwk, name: e.name })) });
}

export interface JoseBuild {
  readonly signer: TestJwkPair;
  readonly server: TestJwkPair;
  readonly username: string;
  readonly now: number;
  readonly ip?: string;
  readonly acc?: readonly string[];
  readonly tmo?: number;
  /** Claims to add or replace (undefined removes one). */
  readonly claims?: Record<string, unknown>;
  /** JWS header members to add or replace. */
  readonly jwsHeader?: Record<string, unknown>;
  /** JWE header members to add or replace (the `kid` it names, for instance). */
  readonly jweHeader?: Record<string, unknown>;
  /** Sign with this key instead of the signer's (the header still names the signer). */
  readonly signWith?: KeyObject;
  /** Encrypt to this key instead of the server's. */
  readonly encryptTo?: KeyObject;
}

export async function buildWithJose(b: JoseBuild): Promise<string> {
  const claims: Record<string, unknown> = {
    v: 1,
    aud: b.server.kid,
    sub: b.username,
    iat: b.now,
    jti: randomBytes(16).toString("base64url"),
    ip: b.ip ?? "0.0.0.0",
    acc: b.acc ?? ["tcp/22"],
    ...(b.tmo !== undefined ? { tmo: b.tmo } : {}),
    ...b.claims,
  };
  for (const [k, v] of Object.entries(claims)) if (v === undefined) delete claims[k];
  const jws = await new CompactSign(new TextEncoder().encode(JSON.stringify(claims)))
    .setProtectedHeader({
      alg: "EdDSA",
      kid: b.signer.kid,
      typ: "spa+jwt",
      ...b.jwsHeader,
    } as never)
    .sign(b.signWith ?? b.signer.privateKey);
  return new CompactEncrypt(new TextEncoder().encode(jws))
    .setProtectedHeader({
      alg: "ECDH-ES",
      enc: "A256GCM",
      kid: b.server.kid,
      cty: "JWT",
      typ: "spa+jwe",
      ...b.jweHeader,
    } as never)
    .encrypt(b.encryptTo ?? b.server.publicKey);
}
