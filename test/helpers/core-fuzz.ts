/**
 * fast-check generators for the core fuzz tests: junk datagrams, mutations of real packets and
 * near-valid plaintexts whose inner digest is right, so that the field validators behind the
 * digest check are actually reached.
 */
import fc from "fast-check";
import {
  b64Encode,
  computeDigest,
  DIGEST_TYPES,
  type DigestType,
  MESSAGE_TYPES,
  type MessageType,
  messageTypeHasNat,
  messageTypeHasTimeout,
  type SpaMessageInput,
} from "../../core/index.js";

export const B64_CHARS = [..."ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"];
const PRINTABLE = Array.from({ length: 0x7f - 0x20 }, (_, i) => String.fromCharCode(0x20 + i));
const USERNAME_CHARS = PRINTABLE.filter((ch) => !'"/\\[]:;|=,+*?<>'.includes(ch));

export const b64Char = fc.constantFrom(...B64_CHARS);

export function b64Text(minLength: number, maxLength: number): fc.Arbitrary<string> {
  return fc.string({ unit: b64Char, minLength, maxLength, size: "max" });
}

/** Printable ASCII with colons more frequent than chance, so field splitting gets exercised. */
export const printableWithColons = fc.string({
  unit: fc.oneof(
    { arbitrary: fc.constantFrom(...PRINTABLE), weight: 8 },
    { arbitrary: fc.constant(":"), weight: 1 },
  ),
  maxLength: 40,
});

function digits(minLength: number, maxLength: number): fc.Arbitrary<string> {
  return fc.string({ unit: fc.constantFrom(..."0123456789"), minLength, maxLength });
}

function b64Of(arb: fc.Arbitrary<string | Uint8Array>): fc.Arbitrary<string> {
  return arb.map((value) => b64Encode(value));
}

// --- valid values --------------------------------------------------------------------------

export const validUsername = fc.string({
  unit: fc.constantFrom(...USERNAME_CHARS),
  minLength: 1,
  maxLength: 63,
});
const ipv4 = fc.ipV4();
const protoPort = fc
  .tuple(fc.constantFrom("tcp", "udp"), fc.integer({ min: 1, max: 65535 }))
  .map(([proto, port]) => `${proto}/${port}`);
export const validAccessMessage = fc
  .tuple(ipv4, fc.array(protoPort, { minLength: 1, maxLength: 12 }))
  .map(([ip, ports]) => [ip, ...ports].join(","));
const commandText = fc.string({
  unit: fc.constantFrom(...PRINTABLE),
  minLength: 1,
  maxLength: 200,
});
export const validCommandMessage = fc.tuple(ipv4, commandText).map(([ip, c]) => `${ip},${c}`);
const natHost = fc.oneof(ipv4, fc.domain({ size: "small" }));
export const validNat = fc
  .tuple(natHost, fc.integer({ min: 1, max: 65535 }))
  .filter(([host]) => host.length <= 70)
  .map(([host, port]) => `${host},${port}`);

/** Any input the encoder should accept, of any message type and inner digest type. */
export const validInput: fc.Arbitrary<SpaMessageInput> = fc
  .record({
    randomValue: digits(16, 16),
    username: validUsername,
    timestamp: fc.integer({ min: 0, max: 0x7fffffff }),
    messageType: fc.constantFrom(...(Object.keys(MESSAGE_TYPES).map(Number) as MessageType[])),
    access: validAccessMessage,
    command: validCommandMessage,
    nat: validNat,
    timeout: fc.integer({ min: 1, max: 65536 }),
    digestType: fc.constantFrom(...DIGEST_TYPES),
  })
  .map((r) => ({
    randomValue: r.randomValue,
    username: r.username,
    timestamp: r.timestamp,
    messageType: r.messageType,
    message: r.messageType === 0 ? r.command : r.access,
    natAccess: [2, 4, 5, 6].includes(r.messageType) ? r.nat : null,
    clientTimeout: [3, 4, 6].includes(r.messageType) ? r.timeout : 0,
    digestType: r.digestType,
  }));

// --- near-valid plaintexts -----------------------------------------------------------------

/** Mostly valid, sometimes broken: each field is drawn from both. */
function mostly<T>(valid: fc.Arbitrary<T>, ...broken: fc.Arbitrary<T>[]): fc.Arbitrary<T> {
  return fc.oneof(
    { arbitrary: valid, weight: 12 * broken.length },
    ...broken.map((arbitrary) => ({ arbitrary, weight: 1 })),
  );
}

/** `value` with probability 1/`oneIn`, else undefined. */
function sometimes<T>(value: fc.Arbitrary<T>, oneIn: number): fc.Arbitrary<T | undefined> {
  return fc.oneof(
    { arbitrary: fc.constant(undefined), weight: oneIn - 1 },
    { arbitrary: value, weight: 1 },
  );
}

const anyB64Field = fc.oneof(b64Text(0, 80), b64Of(fc.uint8Array({ maxLength: 80 })));
const nearAccess = fc
  .tuple(
    mostly(ipv4, fc.constantFrom("256.1.1.1", "1.2.3", "1.2.3.4.5", "", "0.0.0.0 ", "01.2.3.4")),
    fc.array(
      mostly(
        protoPort,
        fc
          .tuple(
            fc.constantFrom("TCP", "icmp", "none", "tcp", "udp", ""),
            fc.oneof(fc.integer({ min: -1, max: 99999 }).map(String), digits(0, 7)),
          )
          .map(([p, n]) => `${p}/${n}`),
      ),
      { maxLength: 4 },
    ),
  )
  .map(([ip, ports]) => [ip, ...ports].join(","));
const nearNat = mostly(
  validNat,
  fc.tuple(printableWithColons, digits(0, 6)).map(([h, p]) => `${h},${p}`),
  fc.constantFrom(
    "1.2.3.4",
    "1.2.3.4,",
    ",22",
    "a,b,c",
    "host name,22",
    "1.2.3.4,0",
    "1.2.3.4,65536",
  ),
);

const plaintextParts = fc.record({
  random: mostly(digits(16, 16), digits(15, 17), printableWithColons),
  user: mostly(
    b64Of(validUsername),
    b64Of(fc.uint8Array({ minLength: 0, maxLength: 60 })),
    b64Text(0, 70),
    printableWithColons,
  ),
  timestamp: mostly(
    fc.integer({ min: 0, max: 0x7fffffff }).map(String),
    digits(0, 14),
    fc.integer({ min: -5, max: 2 ** 40 }).map(String),
    printableWithColons,
  ),
  version: mostly(fc.constant("3.0.0"), printableWithColons),
  type: mostly(
    fc.integer({ min: 0, max: 6 }).map(String),
    fc.constantFrom("7", "-1", "00", "06", "a", "", "10", "123", " 1"),
  ),
  message: fc.oneof(
    { arbitrary: b64Of(nearAccess), weight: 6 },
    { arbitrary: b64Of(validAccessMessage), weight: 6 },
    { arbitrary: b64Of(validCommandMessage), weight: 3 },
    { arbitrary: anyB64Field, weight: 1 },
    { arbitrary: printableWithColons, weight: 1 },
  ),
  nat: mostly(b64Of(nearNat), anyB64Field, printableWithColons),
  serverAuth: sometimes(mostly(b64Of(printableWithColons), anyB64Field, printableWithColons), 4),
  timeout: mostly(
    fc.integer({ min: 0, max: 65536 }).map(String),
    fc.integer({ min: 65537, max: 2 ** 33 }).map(String),
    digits(0, 300),
    printableWithColons,
  ),
  // Most plaintexts carry the NAT and timeout fields their type calls for; some carry any.
  shape: fc.oneof(
    { arbitrary: fc.constant("by-type" as const), weight: 6 },
    { arbitrary: fc.tuple(fc.boolean(), fc.boolean()), weight: 1 },
  ),
  extra: sometimes(
    fc.array(mostly(anyB64Field, printableWithColons), { minLength: 1, maxLength: 2 }),
    10,
  ),
  // One byte of anything, somewhere in E, once in a while.
  splice: sometimes(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), 12),
  digest: fc.oneof(
    { arbitrary: fc.constantFrom(...DIGEST_TYPES), weight: 12 },
    { arbitrary: fc.constant("flipped" as const), weight: 1 },
    { arbitrary: fc.constant("other-length" as const), weight: 1 },
  ),
});

function digestFor(encoded: string, choice: DigestType | "flipped" | "other-length"): string {
  if (choice === "flipped") {
    const digest = computeDigest(encoded, "sha256");
    return `${digest[0] === "A" ? "B" : "A"}${digest.slice(1)}`;
  }
  if (choice === "other-length") return computeDigest(encoded, "sha1").slice(0, 25);
  return computeDigest(encoded, choice);
}

/** Plaintexts `E:D` near the grammar, almost all with a correct inner digest. */
export const nearValidPlaintext: fc.Arbitrary<string> = plaintextParts.map((p) => {
  const type = Number(p.type) as MessageType;
  const [withNat, withTimeout] =
    p.shape === "by-type" ? [messageTypeHasNat(type), messageTypeHasTimeout(type)] : p.shape;
  const fields = [p.random, p.user, p.timestamp, p.version, p.type, p.message];
  if (withNat) fields.push(p.nat);
  if (p.serverAuth !== undefined) fields.push(p.serverAuth);
  if (withTimeout) fields.push(p.timeout);
  if (p.extra) fields.push(...p.extra);
  let encoded = fields.join(":");
  if (p.splice) {
    const [at, byte] = p.splice;
    const pos = at % (encoded.length + 1);
    encoded = encoded.slice(0, pos) + String.fromCharCode(byte) + encoded.slice(pos);
  }
  return `${encoded}:${digestFor(encoded, p.digest)}`;
});

// --- mutations of wire strings -------------------------------------------------------------

/** A change to a wire string; `other` is a second valid wire, for splices. */
export type Mutation = (wire: string, other: string) => string;

function at(n: number, length: number): number {
  return length === 0 ? 0 : n % length;
}

function replaceChar(wire: string, pos: number, ch: string): string {
  const p = at(pos, wire.length);
  const replacement = ch === wire[p] ? (B64_CHARS[(B64_CHARS.indexOf(ch) + 1) % 64] ?? "A") : ch;
  return wire.slice(0, p) + replacement + wire.slice(p + 1);
}

/** Applies `edit` to the bytes under the base64 text of the ciphertext part. */
function editRaw(wire: string, tagLength: number, edit: (raw: Buffer) => void): string {
  const cut = wire.length - tagLength;
  const raw = Buffer.from(`U2FsdGVkX1${wire.slice(0, cut)}`, "base64");
  edit(raw);
  return b64Encode(raw).slice(10) + wire.slice(cut);
}

export function mutation(tagLength: number): fc.Arbitrary<Mutation> {
  const pos = fc.nat({ max: 4000 });
  return fc.oneof(
    fc.tuple(pos, fc.integer({ min: 0, max: 7 })).map(
      ([p, bit]): Mutation =>
        (w) => {
          const bytes = Buffer.from(w, "latin1");
          const i = at(p, bytes.length);
          bytes[i] = (bytes[i] as number) ^ (1 << bit);
          return bytes.toString("latin1");
        },
    ),
    fc.tuple(pos, b64Char).map(
      ([p, ch]): Mutation =>
        (w) =>
          replaceChar(w, p, ch),
    ),
    fc.array(fc.tuple(pos, b64Char), { minLength: 2, maxLength: 8 }).map(
      (edits): Mutation =>
        (w) =>
          edits.reduce((acc, [p, ch]) => replaceChar(acc, p, ch), w),
    ),
    pos.map(
      (n): Mutation =>
        (w) =>
          w.slice(0, at(n, w.length)),
    ),
    pos.map(
      (n): Mutation =>
        (w) =>
          w.slice(1 + at(n, w.length - 1)),
    ),
    fc.tuple(pos, b64Text(1, 40)).map(
      ([p, text]): Mutation =>
        (w) => {
          const i = at(p, w.length + 1);
          return w.slice(0, i) + text + w.slice(i);
        },
    ),
    fc.tuple(pos, fc.integer({ min: 1, max: 40 })).map(
      ([p, n]): Mutation =>
        (w) => {
          const i = at(p, w.length);
          return w.slice(0, i) + w.slice(i + n);
        },
    ),
    fc.tuple(pos, fc.integer({ min: 1, max: 64 })).map(
      ([p, n]): Mutation =>
        (w) => {
          const i = at(p, w.length);
          return w.slice(0, i) + w.slice(i, i + n) + w.slice(i);
        },
    ),
    fc.tuple(pos, pos).map(
      ([i, j]): Mutation =>
        (w, o) => {
          return w.slice(0, at(i, w.length + 1)) + o.slice(at(j, o.length + 1));
        },
    ),
    fc
      .string({
        unit: fc.constantFrom("=", "\n", " ", "\0", "A", "/", "\xff"),
        minLength: 1,
        maxLength: 4,
      })
      .map(
        (junk): Mutation =>
          (w) =>
            w + junk,
      ),
    // The prefixes a client strips, put back (the replay-digest dodge fwknopd drops).
    fc.constantFrom("U2FsdGVkX1", "hQ").map(
      (prefix): Mutation =>
        (w) =>
          prefix + w,
    ),
    // Bit flip in the ciphertext bytes, re-encoded: in CBC it flips the same bit of the next
    // plaintext block, so no-HMAC packets reach the decoder with one controlled change.
    fc.tuple(pos, fc.integer({ min: 0, max: 7 })).map(
      ([p, bit]): Mutation =>
        (w) =>
          editRaw(w, tagLength, (raw) => {
            const i = 8 + at(p, raw.length - 8);
            raw[i] = (raw[i] as number) ^ (1 << bit);
          }),
    ),
    // Swap two whole 16-byte blocks of ciphertext.
    fc.tuple(pos, pos).map(
      ([a, b]): Mutation =>
        (w) =>
          editRaw(w, tagLength, (raw) => {
            const blocks = Math.floor((raw.length - 16) / 16);
            if (blocks < 2) return;
            const x = 16 + 16 * at(a, blocks);
            const y = 16 + 16 * at(b, blocks);
            const tmp = Buffer.from(raw.subarray(x, x + 16));
            raw.copy(raw, x, y, y + 16);
            tmp.copy(raw, y);
          }),
    ),
  );
}
