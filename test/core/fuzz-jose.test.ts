/**
 * Fuzzing the JOSE profile's receive path through the whole pipeline (knock): whatever arrives,
 * the outcome is a grant or a refusal with a known code, never a throw; a mutated datagram opens
 * only when it still carries a corpus packet's signed content, and then at most once per packet.
 */

import fc from "fast-check";
import { CompactEncrypt } from "jose";
import { beforeAll, describe, expect, it } from "vitest";
import {
  type AuthorizedKeySet,
  importAuthorizedKeys,
  importPrivateJwk,
  type JosePrivateKey,
  type KnockOutcome,
  knock,
  SPA_ERROR_CODES,
} from "../../core/index.js";
import {
  authorizedKeysText,
  buildWithJose,
  type TestJwkPair,
  testKeyPair,
} from "../helpers/jose-packets.js";
import { MemoryFirewall, MemoryReplay, stanza } from "../helpers/knock-fakes.js";

const NOW = 1_795_605_803;
const B64URL = [..."ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"];

let server: TestJwkPair;
let serverKey: JosePrivateKey;
let keys: AuthorizedKeySet;
let corpus: string[] = [];
let innerCorpus: string[] = [];
const codes = new Map<string, number>();
let datagrams = 0;
let grants = 0;

beforeAll(async () => {
  const [alice, bob] = await Promise.all([testKeyPair("Ed25519"), testKeyPair("Ed25519")]);
  server = await testKeyPair("X25519");
  serverKey = await importPrivateJwk(JSON.stringify(server.privateJwk), "X25519", "server.jwk");
  keys = await importAuthorizedKeys(
    authorizedKeysText([
      { key: alice, name: "alice" },
      { key: bob, name: "bob" },
    ]),
    "team.jwks",
  );
  const builds = [
    { signer: alice, username: "alice" },
    { signer: bob, username: "bob", ip: "2001:db8:5a::2", acc: ["tcp/22", "udp/53"], tmo: 60 },
    { signer: alice, username: "alice", ip: "198.18.0.9", acc: ["tcp/443"] },
    { signer: bob, username: "bob", ip: "::" },
  ];
  corpus = await Promise.all(
    Array.from({ length: 16 }, (_, i) =>
      buildWithJose({ server, now: NOW, ...(builds[i % builds.length] as (typeof builds)[0]) }),
    ),
  );
  // The signed content of each packet, to be mutated and then encrypted properly: this reaches
  // the checks behind the decryption (JWS header, signature, claims).
  innerCorpus = await Promise.all(
    corpus.slice(0, 4).map(async (wire) => {
      const { compactDecrypt } = await import("jose");
      return new TextDecoder().decode((await compactDecrypt(wire, server.privateKey)).plaintext);
    }),
  );
});

function tally(outcome: KnockOutcome): void {
  datagrams++;
  if (outcome.granted) {
    grants++;
    return;
  }
  expect(Object.hasOwn(SPA_ERROR_CODES, outcome.code), outcome.code).toBe(true);
  codes.set(outcome.code, (codes.get(outcome.code) ?? 0) + 1);
}

/** Text edits of a compact serialization. */
const edit = fc.oneof(
  fc.tuple(fc.nat(), fc.integer({ min: 0, max: 7 })).map(([p, bit]) => (w: string) => {
    const b = Buffer.from(w, "latin1");
    const i = p % b.length;
    b[i] = (b[i] as number) ^ (1 << bit);
    return b.toString("latin1");
  }),
  fc.array(fc.tuple(fc.nat(), fc.constantFrom(...B64URL, ".")), { minLength: 1, maxLength: 6 }).map(
    (edits) => (w: string) =>
      edits.reduce((acc, [p, ch]) => {
        const i = p % acc.length;
        return acc.slice(0, i) + ch + acc.slice(i + 1);
      }, w),
  ),
  fc.nat().map((n) => (w: string) => w.slice(0, n % w.length)),
  fc.tuple(fc.nat(), fc.string({ minLength: 1, maxLength: 30 })).map(([p, s]) => (w: string) => {
    const i = p % (w.length + 1);
    return w.slice(0, i) + s + w.slice(i);
  }),
  fc.tuple(fc.nat(), fc.nat()).map(([a, b]) => (w: string) => {
    // Swap two of the dot-separated parts.
    const parts = w.split(".");
    const i = a % parts.length;
    const j = b % parts.length;
    [parts[i], parts[j]] = [parts[j] as string, parts[i] as string];
    return parts.join(".");
  }),
);

/** A whole-part splice: this part from another packet (the header is the GCM's AAD). */
const splice = fc.tuple(fc.nat(), fc.nat(), fc.nat({ max: 4 })).map(([a, b, part]) => {
  const mine = (corpus[a % corpus.length] as string).split(".");
  const theirs = (corpus[b % corpus.length] as string).split(".");
  mine[part] = theirs[part] as string;
  return mine.join(".");
});

async function run(wire: string, replay: MemoryReplay, firewall: MemoryFirewall): Promise<void> {
  const outcome = await knock(
    {
      payload: Buffer.from(wire, "latin1"),
      sourceIp: "2001:db8:5a::2",
      sourcePort: 40000,
      destinationIp: null,
      receivedAt: NOW * 1000,
    },
    { stanzas: [stanza({ keys: null, authorizedKeys: keys })], replay, firewall, serverKey },
    { maxPacketAge: 120 },
  );
  tally(outcome);
}

describe("fuzzing the JOSE receive path", () => {
  const replay = new MemoryReplay();
  const firewall = new MemoryFirewall();

  it("the corpus opens, once per packet", async () => {
    for (const wire of corpus) await run(wire, replay, firewall);
    for (const wire of corpus) await run(wire, replay, firewall);
    expect(firewall.opened).toHaveLength(corpus.length);
    expect(codes.get("SPA_REPLAY")).toBe(corpus.length);
  });

  it("mutated and spliced JWEs: typed refusals, no grant beyond the corpus", {
    timeout: 240_000,
  }, async () => {
    await fc.assert(
      fc.asyncProperty(fc.nat(), edit, async (i, mutate) => {
        await run(mutate(corpus[i % corpus.length] as string), replay, firewall);
      }),
      { numRuns: 90_000 },
    );
    await fc.assert(
      fc.asyncProperty(splice, async (wire) => {
        await run(wire, replay, firewall);
      }),
      { numRuns: 4_000 },
    );
    // Every corpus packet was already claimed: a mutation that still decodes to one is a replay.
    expect(firewall.opened).toHaveLength(corpus.length);
  });

  it("mutated inner JWSs sealed properly reach the checks behind the decryption", {
    timeout: 240_000,
  }, async () => {
    await fc.assert(
      fc.asyncProperty(fc.nat(), edit, async (i, mutate) => {
        const jws = mutate(innerCorpus[i % innerCorpus.length] as string);
        const wire = await new CompactEncrypt(new TextEncoder().encode(jws))
          .setProtectedHeader({
            alg: "ECDH-ES",
            enc: "A256GCM",
            kid: server.kid,
            cty: "JWT",
            typ: "spa+jwe",
          })
          .encrypt(server.publicKey);
        await run(wire, replay, firewall);
      }),
      { numRuns: 8_000 },
    );
    expect(firewall.opened).toHaveLength(corpus.length);
  });

  it("reached the shape, header, decryption, signature and claim checks, 100,000 datagrams in all", () => {
    expect([...codes.keys()]).toEqual(
      expect.arrayContaining([
        "SPA_SIZE",
        "SPA_CHARSET",
        "SPA_REPLAY",
        "JOSE_SHAPE",
        "JOSE_HEADER",
        "JOSE_DECRYPT",
        "JOSE_KEY_UNKNOWN",
        "JOSE_SIGNATURE",
      ]),
    );
    expect(datagrams).toBeGreaterThanOrEqual(100_000);
    expect(grants).toBe(corpus.length);
  });
});
