/**
 * Property-based fuzzing of the receive path: whatever arrives, the only things allowed out of
 * precheckDatagram / openSpaPacket / decodePlaintext are a SpaError with a known code or a
 * message, and a mutated HMAC packet opens only if the mutation left it one of the valid wires.
 */
import fc from "fast-check";
import { afterAll, describe, expect, it } from "vitest";
import {
  b64Encode,
  buildSpaPacket,
  DIGESTS,
  decodePlaintext,
  ENCRYPTION_MODES,
  hmacTag,
  openSpaPacket,
  precheckDatagram,
  rijndaelEncrypt,
  type SpaErrorCode,
  type SpaKeys,
  type SpaMessageInput,
} from "../../core/index.js";
import {
  b64Char,
  b64Text,
  mutation,
  nearValidPlaintext,
  validInput,
} from "../helpers/core-fuzz.js";
import {
  BINARY_HMAC_KEY,
  BINARY_KEY,
  INPUT_BY_TYPE,
  isKnownSpaError,
  keysWith,
  noHmacKeys,
  saltOf,
} from "../helpers/core-packets.js";

type Outcome<T> = { opened: T } | { code: SpaErrorCode };

/** Runs `act`; a SpaError with a known code becomes an outcome, anything else is rethrown. */
function outcomeOf<T>(act: () => T): Outcome<T> {
  try {
    return { opened: act() };
  } catch (err) {
    if (isKnownSpaError(err)) return { code: err.code };
    throw err;
  }
}

/** A stanza and what it must accept: the valid wires (HMAC) or their digests (no HMAC). */
interface Stanza {
  readonly name: string;
  readonly keys: SpaKeys;
  readonly wires: Set<string>;
  readonly digests: Set<string>;
}

function stanza(name: string, keys: SpaKeys): Stanza {
  return { name, keys, wires: new Set(), digests: new Set() };
}

const HMAC_STANZA = stanza("hmac-sha256-cbc", keysWith());
const PLAIN_STANZA = stanza("plain-cbc", noHmacKeys());
const PLAIN_CTR_STANZA = stanza("plain-ctr", noHmacKeys("ctr"));

interface CorpusPacket {
  readonly wire: string;
  readonly tagLength: number;
  /** Its own stanza, and for HMAC packets the same keys without HMAC. */
  readonly stanzas: readonly Stanza[];
}

function corpusEntry(own: Stanza, input: SpaMessageInput, salt: number, alsoPlain?: Stanza) {
  const packet = buildSpaPacket(input, own.keys, saltOf(salt));
  own.wires.add(packet.wire);
  own.digests.add(packet.digest);
  return {
    wire: packet.wire,
    tagLength: own.keys.hmacKey ? DIGESTS[own.keys.hmacType].b64Length : 0,
    stanzas: alsoPlain ? [own, alsoPlain] : [own],
  };
}

const BINARY_SHA384 = stanza(
  "hmac-sha384-cbc-binary",
  keysWith({ key: BINARY_KEY, hmacKey: BINARY_HMAC_KEY, hmacType: "sha384" }),
);
const OWN = {
  sha512ctr: stanza("hmac-sha512-ctr", keysWith({ mode: "ctr", hmacType: "sha512" })),
  md5cfb: stanza("hmac-md5-cfb", keysWith({ mode: "cfb", hmacType: "md5" })),
  sha3ofb: stanza("hmac-sha3_256-ofb", keysWith({ mode: "ofb", hmacType: "sha3_256" })),
  sha1ecb: stanza("hmac-sha1-ecb", keysWith({ mode: "ecb", hmacType: "sha1" })),
  plainLegacy: stanza("plain-legacy", noHmacKeys("legacy")),
  plainEcb: stanza("plain-ecb", noHmacKeys("ecb")),
  plainBinary: stanza("plain-cbc-binary", noHmacKeys("cbc", BINARY_KEY)),
};

const CORPUS: CorpusPacket[] = [
  corpusEntry(HMAC_STANZA, INPUT_BY_TYPE[1], 1, PLAIN_STANZA),
  corpusEntry(HMAC_STANZA, INPUT_BY_TYPE[4], 2, PLAIN_STANZA),
  corpusEntry(HMAC_STANZA, { ...INPUT_BY_TYPE[0], digestType: "sha512" }, 3, PLAIN_STANZA),
  corpusEntry(BINARY_SHA384, INPUT_BY_TYPE[3], 4, OWN.plainBinary),
  corpusEntry(OWN.sha512ctr, INPUT_BY_TYPE[2], 5, PLAIN_CTR_STANZA),
  corpusEntry(OWN.md5cfb, { ...INPUT_BY_TYPE[6], digestType: "md5" }, 6),
  corpusEntry(OWN.sha3ofb, { ...INPUT_BY_TYPE[5], digestType: "sha3_256" }, 7),
  corpusEntry(OWN.sha1ecb, { ...INPUT_BY_TYPE[1], digestType: "sha1" }, 8),
  corpusEntry(PLAIN_STANZA, INPUT_BY_TYPE[1], 9),
  corpusEntry(PLAIN_STANZA, { ...INPUT_BY_TYPE[3], digestType: "sha3_512" }, 10),
  corpusEntry(PLAIN_CTR_STANZA, INPUT_BY_TYPE[6], 11),
  corpusEntry(OWN.plainLegacy, INPUT_BY_TYPE[1], 12),
  corpusEntry(OWN.plainEcb, { ...INPUT_BY_TYPE[2], digestType: "sha384" }, 13),
  corpusEntry(OWN.plainBinary, INPUT_BY_TYPE[0], 14),
];

// A stanza without HMAC also opens the contents of any packet under its key and mode, HMAC
// stripped or not: a key shared with an HMAC-less stanza voids the HMAC.
for (const s of [
  HMAC_STANZA,
  PLAIN_STANZA,
  PLAIN_CTR_STANZA,
  BINARY_SHA384,
  ...Object.values(OWN),
]) {
  if (s.keys.hmacKey) continue;
  for (const other of [
    HMAC_STANZA,
    PLAIN_STANZA,
    PLAIN_CTR_STANZA,
    BINARY_SHA384,
    ...Object.values(OWN),
  ]) {
    if (
      other.keys.mode === s.keys.mode &&
      Buffer.from(other.keys.key).equals(Buffer.from(s.keys.key))
    ) {
      for (const digest of other.digests) s.digests.add(digest);
    }
  }
}

// Tallies, asserted on and printed at the end.
let datagrams = 0;
let plaintexts = 0;
let opened = 0;
const codes = new Map<SpaErrorCode, number>();
const decodeCodes = new Map<SpaErrorCode | "decoded", number>();
const started = Date.now();

function tally(map: Map<string, number>, key: string) {
  map.set(key, (map.get(key) ?? 0) + 1);
}

let prefixedOpened = 0;

/**
 * The receiver's path for one datagram and one stanza; asserts the outcome is allowed.
 * `openSpaPacket` is also given the raw text when the precheck refuses it, since it must be
 * robust on its own.
 */
function throwAt(bytes: Uint8Array, stanzas: readonly Stanza[]): void {
  datagrams++;
  const pre = outcomeOf(() => precheckDatagram(bytes));
  if ("code" in pre) tally(codes, pre.code);
  const text = Buffer.from(bytes).toString("latin1");
  for (const s of stanzas) {
    const out = outcomeOf(() => openSpaPacket(text, s.keys));
    if ("code" in out) {
      tally(codes, out.code);
      continue;
    }
    opened++;
    // Like libfko, openSpaPacket tolerates the `U2FsdGVkX1` prefix a client strips; only the
    // precheck refuses it (the replay-digest dodge). Nothing else the precheck refuses opens.
    let wire = text;
    if ("code" in pre) {
      expect(pre.code, `${s.name} opened what the precheck refused`).toBe("SPA_PREFIXED");
      wire = text.slice("U2FsdGVkX1".length);
      prefixedOpened++;
    }
    // With an HMAC only a valid wire opens; without one, only a valid packet's contents.
    if (s.keys.hmacKey) expect(s.wires.has(wire), `${s.name} opened a changed wire`).toBe(true);
    else expect(s.digests.has(out.opened.digest), `${s.name} opened junk`).toBe(true);
  }
}

const RANDOM_STANZAS = [HMAC_STANZA, PLAIN_STANZA, PLAIN_CTR_STANZA];
const bytesOf = (text: string) => Buffer.from(text, "latin1");

afterAll(() => {
  const seconds = ((Date.now() - started) / 1000).toFixed(1);
  console.log(
    `core fuzz: ${datagrams} datagrams (${opened} opened as valid packets, ${prefixedOpened} of them by openSpaPacket alone with the prefix the precheck refuses), ${plaintexts} plaintexts, ${seconds} s`,
  );
});

describe("fuzzing the receive path", () => {
  it("the corpus opens with its own stanzas", () => {
    // Act + Assess
    for (const packet of CORPUS) {
      const own = packet.stanzas[0] as Stanza;
      expect(openSpaPacket(packet.wire, own.keys).randomValue).toHaveLength(16);
    }
  });

  it("random bytes of length 0..1600", { timeout: 120_000 }, () => {
    // Prepare (the arbitrary), Act + Assess (throwAt allows only SpaError or a valid packet)
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 1600, size: "max" }), (bytes) =>
        throwAt(bytes, RANDOM_STANZAS),
      ),
      { numRuns: 15_000 },
    );
  });

  it("random base64 text of length 100..600 (sometimes with '=')", { timeout: 120_000 }, () => {
    // Prepare
    const text = fc.string({
      unit: fc.oneof(
        { arbitrary: b64Char, weight: 80 },
        { arbitrary: fc.constant("="), weight: 1 },
      ),
      minLength: 100,
      maxLength: 600,
      size: "max",
    });
    // Act + Assess
    fc.assert(
      fc.property(text, (t) => throwAt(bytesOf(t), RANDOM_STANZAS)),
      { numRuns: 25_000 },
    );
  });

  it("correctly framed junk ciphertext (Salted__, salt, whole blocks), with and without a tag", {
    timeout: 120_000,
  }, () => {
    // Prepare
    const framed = fc.record({
      body: fc
        .integer({ min: 1, max: 24 })
        .chain((blocks) =>
          fc.uint8Array({ minLength: 8 + 16 * blocks, maxLength: 8 + 16 * blocks }),
        ),
      tag: fc.oneof(fc.constant(""), b64Text(43, 43), b64Text(20, 90)),
    });
    // Act + Assess
    fc.assert(
      fc.property(framed, ({ body, tag }) => {
        const wire = b64Encode(Buffer.concat([Buffer.from("Salted__"), body])).slice(10) + tag;
        throwAt(bytesOf(wire), RANDOM_STANZAS);
      }),
      { numRuns: 10_000 },
    );
  });

  it("near-valid plaintexts sealed with the stanza's own keys open exactly as decodePlaintext decodes them", {
    timeout: 120_000,
  }, () => {
    // Prepare (the arbitrary; each run then prepares, acts and assesses)
    const modes = ENCRYPTION_MODES.filter((m) => m !== "legacy");
    const sealed = fc.record({
      plaintext: nearValidPlaintext,
      mode: fc.constantFrom(...modes),
      salt: fc.uint8Array({ minLength: 8, maxLength: 8 }),
      withHmac: fc.boolean(),
    });
    fc.assert(
      fc.property(sealed, ({ plaintext, mode, salt, withHmac }) => {
        // Prepare: a key holder encrypting whatever it likes.
        const keys = withHmac ? keysWith({ mode }) : noHmacKeys(mode);
        const ciphertext = rijndaelEncrypt(plaintext, keys.key, mode, salt);
        const tag = keys.hmacKey ? hmacTag(ciphertext, keys.hmacKey, keys.hmacType) : "";
        const wire = ciphertext.slice(10) + tag;
        // Act
        datagrams++;
        const received = outcomeOf(() => openSpaPacket(precheckDatagram(bytesOf(wire)).data, keys));
        const decoded = outcomeOf(() => decodePlaintext(plaintext));
        // Assess: the crypto layers add exactly their own checks, nothing else.
        if ("code" in received) tally(codes, received.code);
        else opened++;
        if (wire.length < 140) expect(received).toEqual({ code: "SPA_SIZE" });
        else if (wire.length >= 400) expect(received).toEqual({ code: "SPA_GPG_UNSUPPORTED" });
        else if (!/^[0-9]{16}:/.test(plaintext))
          expect(received).toEqual({ code: "SPA_DECRYPT_FAILED" });
        else expect(received).toEqual(decoded);
      }),
      { numRuns: 10_000 },
    );
  });

  it("mutations of valid packets: bit flips, substitutions, truncations, insertions, splices", {
    timeout: 180_000,
  }, () => {
    // Prepare
    const mutated = fc
      .tuple(fc.nat({ max: CORPUS.length - 1 }), fc.nat({ max: CORPUS.length - 1 }))
      .chain(([i, j]) => {
        const packet = CORPUS[i] as CorpusPacket;
        const other = CORPUS[j] as CorpusPacket;
        return mutation(packet.tagLength).map((m) => ({
          packet,
          wire: m(packet.wire, other.wire),
        }));
      });
    // Act + Assess: its own stanzas, plus the generic HMAC and no-HMAC stanzas
    fc.assert(
      fc.property(mutated, ({ packet, wire }) => {
        throwAt(bytesOf(wire), [...packet.stanzas, HMAC_STANZA, PLAIN_STANZA]);
      }),
      { numRuns: 55_000 },
    );
  });

  it("reached every transport, HMAC, decryption and decode failure", () => {
    // Assess
    expect([...codes.keys()]).toEqual(
      expect.arrayContaining([
        "SPA_SIZE",
        "SPA_CHARSET",
        "SPA_PREFIXED",
        "SPA_GPG_UNSUPPORTED",
        "SPA_HMAC_TOO_SHORT",
        "SPA_HMAC_MISMATCH",
        "SPA_CIPHERTEXT_LENGTH",
        "SPA_DECRYPT_FAILED",
        "SPA_NON_ASCII",
        "SPA_DIGEST_MISMATCH",
      ]),
    );
    expect(datagrams).toBeGreaterThanOrEqual(100_000);
    expect(opened).toBeGreaterThan(0);
  });
});

describe("fuzzing decodePlaintext with near-valid plaintexts", () => {
  it("only SpaError comes out, and what decodes satisfies every field rule", {
    timeout: 120_000,
  }, () => {
    // Prepare: the nearValidPlaintext arbitrary
    fc.assert(
      fc.property(nearValidPlaintext, (plaintext) => {
        // Act
        plaintexts++;
        const out = outcomeOf(() => decodePlaintext(plaintext));
        // Assess
        if ("code" in out) {
          tally(decodeCodes, out.code);
          return;
        }
        tally(decodeCodes, "decoded");
        const m = out.opened;
        expect(plaintext.endsWith(`:${m.digest}`)).toBe(true);
        expect(m.digest).toHaveLength(DIGESTS[m.digestType].b64Length);
        expect(m.randomValue).toMatch(/^[0-9]{16}$/);
        expect(m.username).toMatch(/^[ !#$%&'()\-.0-9@A-Z^_`a-z{}~]{1,48}$/);
        expect(m.natAccess !== null).toBe([2, 4, 5, 6].includes(m.messageType));
        expect(m.clientTimeout).toBeLessThanOrEqual(65536);
        if (m.messageType !== 0)
          expect(m.message).toMatch(/^[0-9.]{7,15}(,(tcp|udp)\/[0-9]{1,5})+$/);
      }),
      { numRuns: 30_000 },
    );
  });

  it("the generator reaches every field validator behind the digest check", () => {
    // Assess
    expect([...decodeCodes.keys()]).toEqual(
      expect.arrayContaining([
        "decoded",
        "SPA_NON_ASCII",
        "SPA_FIELD_COUNT",
        "SPA_DIGEST_TYPE",
        "SPA_DIGEST_MISMATCH",
        "SPA_BAD_RANDOM",
        "SPA_BAD_USERNAME",
        "SPA_BAD_TIMESTAMP",
        "SPA_BAD_VERSION",
        "SPA_BAD_MESSAGE_TYPE",
        "SPA_BAD_MESSAGE",
        "SPA_BAD_NAT",
        "SPA_BAD_TIMEOUT",
        "SPA_BAD_SERVER_AUTH",
      ]),
    );
    expect(decodeCodes.get("decoded") ?? 0).toBeGreaterThan(1000);
    console.log("decodePlaintext outcomes:", Object.fromEntries(decodeCodes));
  });
});

describe("what the encoder builds, the decoder opens", () => {
  it("buildSpaPacket → openSpaPacket returns the same fields for any valid input", () => {
    fc.assert(
      fc.property(validInput, fc.constantFrom(...ENCRYPTION_MODES), (input, mode) => {
        // Prepare
        const keys = mode === "legacy" ? noHmacKeys("legacy") : keysWith({ mode });
        // Act
        let built: ReturnType<typeof buildSpaPacket>;
        try {
          built = buildSpaPacket(input, keys, saltOf(0));
        } catch (err) {
          // Assess: the only valid-looking input the builder may refuse is a username longer
          // than the 48 bytes (64 base64 characters) fwknopd decodes.
          expect(isKnownSpaError(err) && err.code).toBe("SPA_BAD_USERNAME");
          expect(input.username.length).toBeGreaterThan(48);
          return;
        }
        const received = outcomeOf(() => openSpaPacket(built.wire, keys));
        // Assess
        if (built.wire.length >= 400) {
          // Receivers classify 400+ characters as GPG (docs/protocol.md section 5).
          expect(received).toEqual({ code: "SPA_GPG_UNSUPPORTED" });
          return;
        }
        expect(received).toMatchObject({
          opened: { ...input, serverAuth: null, version: "3.0.0" },
        });
      }),
      { numRuns: 3_000 },
    );
  });
});
