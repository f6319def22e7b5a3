import { execFileSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import {
  b64Encode,
  buildSpaPacket,
  computeDigest,
  DIGEST_TYPES,
  DIGESTS,
  decodePlaintext,
  ENCRYPTION_MODES,
  type EncryptionMode,
  encodePlaintext,
  MESSAGE_TYPES,
  type MessageType,
  openSpaPacket,
  precheckDatagram,
  replayDigest,
  rijndaelEncrypt,
  type SpaMessageInput,
} from "../../core/index.js";
import {
  ACCESS_INPUT,
  accessFields,
  INPUT_BY_TYPE,
  keysWith,
  noHmacKeys,
  plaintextOf,
  RIJNDAEL_KEY_TEXT,
  saltOf,
  spaCodeOf,
} from "../helpers/core-packets.js";
import { vectors } from "../helpers/vectors.js";

const TYPES = Object.keys(MESSAGE_TYPES).map(Number) as MessageType[];

function roundTrip(input: SpaMessageInput) {
  return decodePlaintext(encodePlaintext(input).plaintext);
}

/** The decoded fields that correspond to an input, for comparison. */
function inputFields(input: SpaMessageInput) {
  return {
    randomValue: input.randomValue,
    username: input.username,
    timestamp: input.timestamp,
    messageType: input.messageType,
    message: input.message,
    natAccess: input.natAccess,
    clientTimeout: input.clientTimeout,
    digestType: input.digestType,
  };
}

/** `E:D` for a type with hand-made fields after the type field. */
function plaintextWith(type: number | string, afterType: readonly string[]): string {
  const head = accessFields().slice(0, 4);
  return plaintextOf([...head, String(type), ...afterType]);
}

const MSG = b64Encode("198.18.0.2,tcp/22");
const NAT = b64Encode("192.168.10.5,22");
const AUTH = b64Encode("server-auth-text");

describe("message types (docs/protocol.md 1.2)", () => {
  it.each(TYPES)("type %i round-trips through encodePlaintext and decodePlaintext", (type) => {
    // Prepare
    const input = INPUT_BY_TYPE[type];
    // Act
    const decoded = roundTrip(input);
    // Assess
    expect(decoded).toMatchObject(inputFields(input));
    expect(decoded.version).toBe("3.0.0");
    expect(decoded.serverAuth).toBeNull();
    expect(decoded.digest).toBe(encodePlaintext(input).digest);
  });

  it.each(TYPES)("type %i puts its fields in the documented order", (type) => {
    // Act
    const fields = encodePlaintext(INPUT_BY_TYPE[type]).encoded.split(":");
    // Assess
    const input = INPUT_BY_TYPE[type];
    const expected = [
      input.randomValue,
      b64Encode(input.username),
      String(input.timestamp),
      "3.0.0",
      String(type),
      b64Encode(input.message),
      ...(input.natAccess === null ? [] : [b64Encode(input.natAccess)]),
      ...(input.clientTimeout === 0 ? [] : [String(input.clientTimeout)]),
    ];
    expect(fields).toEqual(expected);
  });
});

describe("field counts", () => {
  it.each([
    ["no message field (5 fields)", plaintextOf(accessFields().slice(0, 5))],
    ["type 1 with 3 fields after the type", plaintextWith(1, [MSG, AUTH, AUTH])],
    [
      "type 0 with 3 fields after the type",
      plaintextWith(0, [b64Encode("1.2.3.4,ls"), AUTH, AUTH]),
    ],
    ["type 2 with 4 fields after the type", plaintextWith(2, [MSG, NAT, AUTH, AUTH])],
    ["type 3 with 4 fields after the type", plaintextWith(3, [MSG, AUTH, AUTH, "60"])],
    ["type 4 with 5 fields after the type", plaintextWith(4, [MSG, NAT, AUTH, AUTH, "60"])],
    ["10 fields", plaintextWith(6, [MSG, NAT, AUTH, AUTH, "60"])],
  ])("%s → SPA_FIELD_COUNT", (_name, plaintext) => {
    expect(spaCodeOf(() => decodePlaintext(plaintext))).toBe("SPA_FIELD_COUNT");
  });

  it("no colon at all → SPA_FIELD_COUNT", () => {
    // Act + Assess
    expect(spaCodeOf(() => decodePlaintext("1".repeat(60)))).toBe("SPA_FIELD_COUNT");
  });

  it.each([
    [0, [b64Encode("1.2.3.4,ls"), AUTH]],
    [1, [MSG, AUTH]],
    [2, [MSG, NAT, AUTH]],
    [3, [MSG, AUTH, "60"]],
    [4, [MSG, NAT, AUTH, "60"]],
    [5, [MSG, NAT, AUTH]],
    [6, [MSG, NAT, AUTH, "60"]],
  ])("type %i accepts its maximum (with server_auth)", (type, rest) => {
    // Act
    const decoded = decodePlaintext(plaintextWith(type, rest));
    // Assess
    expect(decoded.messageType).toBe(type);
    expect(decoded.serverAuth).toBe("server-auth-text");
  });
});

describe("required NAT and timeout fields", () => {
  it.each([
    [2, [MSG]],
    [4, [MSG, "60"]],
    [5, [MSG]],
    [6, [MSG, "45"]],
  ])("type %i without NAT → SPA_BAD_NAT", (type, rest) => {
    // Act + Assess
    expect(spaCodeOf(() => decodePlaintext(plaintextWith(type, rest)))).toBe("SPA_BAD_NAT");
  });

  it.each([2, 4, 5, 6] as const)("type %i encoded without NAT → SPA_BAD_NAT", (type) => {
    // Act + Assess
    const input = { ...INPUT_BY_TYPE[type], natAccess: null };
    expect(spaCodeOf(() => encodePlaintext(input))).toBe("SPA_BAD_NAT");
  });

  it.each([
    [3, [MSG]],
    [4, [MSG, NAT]],
    [6, [MSG, NAT]],
  ])("type %i without timeout → SPA_BAD_TIMEOUT", (type, rest) => {
    // Act + Assess
    expect(spaCodeOf(() => decodePlaintext(plaintextWith(type, rest)))).toBe("SPA_BAD_TIMEOUT");
  });

  it.each([3, 4, 6] as const)("type %i encoded with timeout 0 → SPA_BAD_TIMEOUT", (type) => {
    // Act + Assess
    const input = { ...INPUT_BY_TYPE[type], clientTimeout: 0 };
    expect(spaCodeOf(() => encodePlaintext(input))).toBe("SPA_BAD_TIMEOUT");
  });

  it("a NAT field or timeout on a type without one is refused on encode", () => {
    // Act + Assess
    expect(spaCodeOf(() => encodePlaintext({ ...ACCESS_INPUT, natAccess: "1.2.3.4,22" }))).toBe(
      "SPA_BAD_NAT",
    );
    expect(spaCodeOf(() => encodePlaintext({ ...ACCESS_INPUT, clientTimeout: 30 }))).toBe(
      "SPA_BAD_TIMEOUT",
    );
  });

  it("timeout 65536 is the largest accepted, 65537 is refused both ways", () => {
    // Act
    const max = decodePlaintext(plaintextWith(3, [MSG, "65536"]));
    // Assess
    expect(max.clientTimeout).toBe(65536);
    expect(roundTrip({ ...INPUT_BY_TYPE[3], clientTimeout: 65536 }).clientTimeout).toBe(65536);
    expect(spaCodeOf(() => decodePlaintext(plaintextWith(3, [MSG, "65537"])))).toBe(
      "SPA_BAD_TIMEOUT",
    );
    expect(spaCodeOf(() => encodePlaintext({ ...INPUT_BY_TYPE[3], clientTimeout: 65537 }))).toBe(
      "SPA_BAD_TIMEOUT",
    );
  });

  it.each(["6a", "-5", " 60", "1e3"])("timeout %j → SPA_BAD_TIMEOUT", (timeout) => {
    // Act + Assess
    expect(spaCodeOf(() => decodePlaintext(plaintextWith(3, [MSG, timeout])))).toBe(
      "SPA_BAD_TIMEOUT",
    );
  });
});

describe("server_auth (docs/protocol.md 1.6)", () => {
  it.each([1, 2, 3, 4] as const)("type %i: accepted and ignored on decode", (type) => {
    // Prepare
    const plain = encodePlaintext(INPUT_BY_TYPE[type]).encoded.split(":");
    const timeout = type === 3 || type === 4 ? plain.splice(-1) : [];
    const withAuth = plaintextOf([...plain, AUTH, ...timeout]);
    // Act
    const decoded = decodePlaintext(withAuth);
    // Assess
    expect(decoded).toMatchObject(inputFields(INPUT_BY_TYPE[type]));
    expect(decoded.serverAuth).toBe("server-auth-text");
  });

  it("a packet carrying server_auth opens end to end", () => {
    // Prepare
    const keys = keysWith({ hmacKey: null });
    const plaintext = plaintextOf([...accessFields(), AUTH]);
    const wire = rijndaelEncrypt(plaintext, keys.key, "cbc", saltOf(9)).slice(10);
    // Act
    const message = openSpaPacket(wire, keys);
    // Assess
    expect(message.message).toBe(ACCESS_INPUT.message);
    expect(message.serverAuth).toBe("server-auth-text");
  });

  it("the encoder never emits server_auth", () => {
    // Act + Assess
    const input = { ...ACCESS_INPUT, serverAuth: "x" } as SpaMessageInput;
    expect(encodePlaintext(input).encoded.split(":")).toHaveLength(6);
  });

  it("a server_auth field that is not base64 → SPA_BAD_SERVER_AUTH", () => {
    // Act + Assess
    expect(spaCodeOf(() => decodePlaintext(plaintextWith(1, [MSG, "not base64!"])))).toBe(
      "SPA_BAD_SERVER_AUTH",
    );
  });
});

describe("username rules", () => {
  function decodeUsernameBytes(bytes: Buffer | string) {
    const fields = accessFields();
    fields[1] = b64Encode(bytes);
    return decodePlaintext(plaintextOf(fields));
  }

  it.each([...'"/\\[]:;|=,+*?<>'])("forbidden character %j is refused both ways", (ch) => {
    // Act + Assess
    const username = `al${ch}ice`;
    expect(spaCodeOf(() => encodePlaintext({ ...ACCESS_INPUT, username }))).toBe(
      "SPA_BAD_USERNAME",
    );
    expect(spaCodeOf(() => decodeUsernameBytes(username))).toBe("SPA_BAD_USERNAME");
  });

  it("a space is allowed", () => {
    // Act + Assess
    expect(roundTrip({ ...ACCESS_INPUT, username: "alice smith" }).username).toBe("alice smith");
    expect(decodeUsernameBytes("bob jones").username).toBe("bob jones");
  });

  it("every other printable ASCII character is allowed", () => {
    // Act + Assess
    const allowed = Array.from({ length: 0x7f - 0x20 }, (_, i) => String.fromCharCode(0x20 + i))
      .filter((ch) => !'"/\\[]:;|=,+*?<>'.includes(ch))
      .join("");
    for (let i = 0; i < allowed.length; i += 40) {
      const username = allowed.slice(i, i + 40);
      expect(roundTrip({ ...ACCESS_INPUT, username }).username).toBe(username);
    }
  });

  it("64 characters are refused", () => {
    // Act + Assess
    const username = "a".repeat(64);
    expect(spaCodeOf(() => encodePlaintext({ ...ACCESS_INPUT, username }))).toBe(
      "SPA_BAD_USERNAME",
    );
    expect(spaCodeOf(() => decodeUsernameBytes(username))).toBe("SPA_BAD_USERNAME");
  });

  it("the decoder's limit is 64 base64 characters (48 bytes), and the encoder keeps to it", () => {
    // 48 bytes are 64 base64 characters: the longest username fwknopd decodes.
    expect(roundTrip({ ...ACCESS_INPUT, username: "u".repeat(48) }).username).toBe("u".repeat(48));
    expect(spaCodeOf(() => decodeUsernameBytes("u".repeat(49)))).toBe("SPA_BAD_USERNAME");
    // A client must not build what every server refuses.
    expect(spaCodeOf(() => encodePlaintext({ ...ACCESS_INPUT, username: "u".repeat(49) }))).toBe(
      "SPA_BAD_USERNAME",
    );
  });

  it("an empty username is refused", () => {
    // Act + Assess
    expect(spaCodeOf(() => encodePlaintext({ ...ACCESS_INPUT, username: "" }))).toBe(
      "SPA_BAD_USERNAME",
    );
    expect(spaCodeOf(() => decodeUsernameBytes(Buffer.from([0, 0x61])))).toBe("SPA_BAD_USERNAME");
  });

  it.each([0x80, 0xc3, 0xff, 0x1f, 0x7f])("byte 0x%s is refused", (byte) => {
    // Act + Assess
    expect(spaCodeOf(() => decodeUsernameBytes(Buffer.from([0x61, byte, 0x62])))).toBe(
      "SPA_BAD_USERNAME",
    );
    const username = `a${String.fromCharCode(byte)}b`;
    expect(spaCodeOf(() => encodePlaintext({ ...ACCESS_INPUT, username }))).toBe(
      "SPA_BAD_USERNAME",
    );
  });

  it("a NUL ends the username, as in libfko's C strings", () => {
    // Act + Assess
    expect(decodeUsernameBytes(Buffer.from("bob\0junk")).username).toBe("bob");
  });
});

describe("access message grammar (docs/protocol.md 1.3)", () => {
  function decodeMessage(message: string) {
    const fields = accessFields();
    fields[5] = b64Encode(message);
    return decodePlaintext(plaintextOf(fields));
  }

  it.each([
    "198.18.0.2,TCP/22",
    "198.18.0.2,Udp/53",
    "198.18.0.2,tcp/0",
    "198.18.0.2,tcp/65536",
    "198.18.0.2,udp/0",
    "198.18.0.2,icmp/8",
    "198.18.0.2,none/0",
    "198.18.0.2,tcp/",
    "198.18.0.2,tcp/123456",
    "198.18.0.2,tcp/22,",
    "198.18.0.2",
    "198.18.0.2,",
    "198.18.0.256,tcp/22",
    "198.18.0,tcp/22",
    "host.example,tcp/22",
    "198.18.0.2 ,tcp/22",
  ])("%j → SPA_BAD_MESSAGE on encode and decode", (message) => {
    expect(spaCodeOf(() => encodePlaintext({ ...ACCESS_INPUT, message }))).toBe("SPA_BAD_MESSAGE");
    expect(spaCodeOf(() => decodeMessage(message))).toBe("SPA_BAD_MESSAGE");
  });

  it.each([
    "198.18.0.2,tcp/22",
    "198.18.0.2,tcp/1",
    "198.18.0.2,udp/65535",
    "0.0.0.0,tcp/22",
    "198.18.0.2,tcp/22,udp/53",
    "10.1.2.3,tcp/22,udp/53,tcp/443,udp/1194",
  ])("%j is accepted both ways", (message) => {
    // Act + Assess
    expect(roundTrip({ ...ACCESS_INPUT, message }).message).toBe(message);
    expect(decodeMessage(message).message).toBe(message);
  });

  it("a command message is an allow-IP and non-empty text", () => {
    // Act + Assess
    const input = INPUT_BY_TYPE[0];
    expect(roundTrip({ ...input, message: "1.2.3.4,ls -l /tmp" }).message).toBe(
      "1.2.3.4,ls -l /tmp",
    );
    expect(spaCodeOf(() => encodePlaintext({ ...input, message: "1.2.3.4," }))).toBe(
      "SPA_BAD_MESSAGE",
    );
    expect(spaCodeOf(() => encodePlaintext({ ...input, message: "ls -l" }))).toBe(
      "SPA_BAD_MESSAGE",
    );
  });
});

describe("inner digest (docs/protocol.md 1.8)", () => {
  it.each(DIGEST_TYPES)("%s round-trips and is inferred from its length", (digestType) => {
    // Prepare
    const input = { ...ACCESS_INPUT, digestType };
    // Act
    const { digest } = encodePlaintext(input);
    const decoded = roundTrip(input);
    // Assess
    expect(digest).toHaveLength(DIGESTS[digestType].b64Length);
    expect(decoded.digestType).toBe(digestType);
    expect(decoded.digest).toBe(digest);
  });

  it("sha256 and sha3_256 share a length (43) and are still told apart", () => {
    // Act + Assess
    const sha2 = encodePlaintext({ ...ACCESS_INPUT, digestType: "sha256" });
    const sha3 = encodePlaintext({ ...ACCESS_INPUT, digestType: "sha3_256" });
    expect(sha2.digest).toHaveLength(43);
    expect(sha3.digest).toHaveLength(43);
    expect(sha2.digest).not.toBe(sha3.digest);
    expect(decodePlaintext(sha2.plaintext).digestType).toBe("sha256");
    expect(decodePlaintext(sha3.plaintext).digestType).toBe("sha3_256");
  });

  it("sha512 and sha3_512 share a length (86) and are still told apart", () => {
    // Act + Assess
    const sha2 = encodePlaintext({ ...ACCESS_INPUT, digestType: "sha512" });
    const sha3 = encodePlaintext({ ...ACCESS_INPUT, digestType: "sha3_512" });
    expect(decodePlaintext(sha2.plaintext).digestType).toBe("sha512");
    expect(decodePlaintext(sha3.plaintext).digestType).toBe("sha3_512");
  });

  it.each(DIGEST_TYPES)("%s: one changed digest character → SPA_DIGEST_MISMATCH", (digestType) => {
    // Prepare
    const { encoded, digest } = encodePlaintext({ ...ACCESS_INPUT, digestType });
    const changed = `${digest[0] === "A" ? "B" : "A"}${digest.slice(1)}`;
    // Act + Assess
    expect(spaCodeOf(() => decodePlaintext(`${encoded}:${changed}`))).toBe("SPA_DIGEST_MISMATCH");
  });

  it("a changed message under an unchanged digest → SPA_DIGEST_MISMATCH", () => {
    // Act + Assess
    const { plaintext } = encodePlaintext(ACCESS_INPUT);
    const forged = plaintext.replace(":1795605803:", ":1795605804:");
    expect(spaCodeOf(() => decodePlaintext(forged))).toBe("SPA_DIGEST_MISMATCH");
  });

  it.each([0, 21, 23, 42, 44, 63, 65, 85, 87])("digest length %i → SPA_DIGEST_TYPE", (length) => {
    // Act + Assess
    const { encoded } = encodePlaintext(ACCESS_INPUT);
    const digest = `${computeDigest(encoded, "sha512")}A`.slice(0, length);
    expect(spaCodeOf(() => decodePlaintext(`${encoded}:${digest}`))).toBe("SPA_DIGEST_TYPE");
  });
});

describe("other field checks", () => {
  it.each([
    [0, "123456789012345", "SPA_BAD_RANDOM"],
    [0, "12345678901234567", "SPA_BAD_RANDOM"],
    [0, "12345678901234a6", "SPA_BAD_RANDOM"],
    [2, "", "SPA_BAD_TIMESTAMP"],
    [2, "-1", "SPA_BAD_TIMESTAMP"],
    [2, "2147483648", "SPA_BAD_TIMESTAMP"],
    [2, "1234567890123", "SPA_BAD_TIMESTAMP"],
    [3, "", "SPA_BAD_VERSION"],
    [3, "3.0.0.0.0", "SPA_BAD_VERSION"],
    [4, "7", "SPA_BAD_MESSAGE_TYPE"],
    [4, "-1", "SPA_BAD_MESSAGE_TYPE"],
    [4, "", "SPA_BAD_MESSAGE_TYPE"],
    [4, "123", "SPA_BAD_MESSAGE_TYPE"],
  ] as const)("field %i = %j → %s", (index, value, code) => {
    const fields = accessFields();
    fields[index] = value;
    expect(spaCodeOf(() => decodePlaintext(plaintextOf(fields)))).toBe(code);
  });

  it("a non-printable byte → SPA_NON_ASCII, checked before the digest", () => {
    // Act + Assess
    const { plaintext } = encodePlaintext(ACCESS_INPUT);
    expect(spaCodeOf(() => decodePlaintext(plaintext.replace("3.0.0", "3.0\t0")))).toBe(
      "SPA_NON_ASCII",
    );
    expect(spaCodeOf(() => decodePlaintext(plaintext.replace("3.0.0", "3.0\xe90")))).toBe(
      "SPA_NON_ASCII",
    );
  });

  it("plaintext shorter than 36 or 1500+ characters is refused", () => {
    // Act + Assess
    expect(spaCodeOf(() => decodePlaintext("1234567890123456:a:1:3:1:b:c"))).toBe(
      "SPA_DECRYPT_FAILED",
    );
    expect(spaCodeOf(() => decodePlaintext(`${"1".repeat(16)}:${"A".repeat(1483)}`))).toBe(
      "SPA_DECRYPT_FAILED",
    );
  });
});

describe("precheckDatagram (docs/protocol.md section 7, step 1)", () => {
  const wire = vectors[0]?.wire ?? "";

  it.each([
    [0, "SPA_SIZE"],
    [139, "SPA_SIZE"],
    [1501, "SPA_SIZE"],
    [4000, "SPA_SIZE"],
  ] as const)("%i bytes → %s", (length, code) => {
    // Act + Assess
    expect(spaCodeOf(() => precheckDatagram(Buffer.alloc(length, 0x41)))).toBe(code);
  });

  it.each([140, 1500])("%i bytes pass", (length) => {
    // Act + Assess
    expect(precheckDatagram(Buffer.alloc(length, 0x41))).toEqual({
      profile: "fwknop",
      data: "A".repeat(length),
    });
  });

  it("a real packet passes unchanged", () => {
    // Act + Assess
    expect(precheckDatagram(Buffer.from(wire))).toEqual({ profile: "fwknop", data: wire });
  });

  it.each([
    ["trailing newline", `${wire}\n`],
    ["space inside", `${wire.slice(0, 50)} ${wire.slice(51)}`],
    ["URL-safe alphabet", wire.replaceAll("+", "-")],
    ["NUL byte", `${wire}\0`],
  ])("%s → SPA_CHARSET", (_name, text) => {
    // Act + Assess
    expect(spaCodeOf(() => precheckDatagram(Buffer.from(text, "latin1")))).toBe("SPA_CHARSET");
  });

  it("the U2FsdGVkX1 prefix restored → SPA_PREFIXED", () => {
    // Act + Assess
    expect(spaCodeOf(() => precheckDatagram(Buffer.from(`U2FsdGVkX1${wire}`)))).toBe(
      "SPA_PREFIXED",
    );
  });

  it('"hQ" and more than 400 characters → SPA_PREFIXED, 400 exactly passes', () => {
    // Act + Assess
    expect(spaCodeOf(() => precheckDatagram(Buffer.from(`hQ${"A".repeat(399)}`)))).toBe(
      "SPA_PREFIXED",
    );
    expect(spaCodeOf(() => precheckDatagram(Buffer.from(`hQ${"A".repeat(600)}`)))).toBe(
      "SPA_PREFIXED",
    );
    expect(precheckDatagram(Buffer.from(`hQ${"A".repeat(398)}`)).data).toHaveLength(400);
    expect(precheckDatagram(Buffer.from(`hQ${"A".repeat(200)}`)).data).toHaveLength(202);
  });

  it("accepts a view into a larger buffer", () => {
    // Act + Assess
    const big = Buffer.from(`xx${wire}yy`);
    expect(precheckDatagram(big.subarray(2, 2 + wire.length)).data).toBe(wire);
  });
});

describe("replayDigest (docs/protocol.md section 7, step 2)", () => {
  it.each(vectors.map((v) => [v.id, v.wire] as const))(
    "%s: equals base64(SHA-256(wire)) from the openssl command line",
    (_id, wire) => {
      // Prepare
      const script = `printf '%s' "$WIRE" | openssl dgst -sha256 -binary | base64 | tr -d '='`;
      // Act
      const fromOpenssl = execFileSync("sh", ["-c", script], {
        env: { ...process.env, WIRE: wire },
        encoding: "utf8",
      }).trim();
      // Assess
      expect(fromOpenssl).toMatch(/^[A-Za-z0-9+/]{43}$/);
      expect(replayDigest(wire)).toBe(fromOpenssl);
    },
  );

  it("covers the HMAC: the same ciphertext with another tag has another digest", () => {
    // Act + Assess
    const wire = vectors[0]?.wire ?? "";
    expect(replayDigest(wire)).not.toBe(replayDigest(`${wire.slice(0, -1)}A`));
  });
});

describe("encryption modes (docs/protocol.md 2.4, 2.5)", () => {
  const nonLegacy = ENCRYPTION_MODES.filter((m) => m !== "legacy");

  it.each(nonLegacy)("%s with HMAC round-trips for every plaintext length mod 16", (mode) => {
    // Act + Assess
    const keys = keysWith({ mode });
    for (let extra = 0; extra < 16; extra++) {
      // Prepare: one more username character per step walks the padding through 1..16 bytes.
      const input = { ...ACCESS_INPUT, username: `u${"x".repeat(extra)}` };
      // Act
      const packet = buildSpaPacket(input, keys, saltOf(extra));
      const opened = openSpaPacket(packet.wire, keys);
      // Assess
      expect(opened).toMatchObject(inputFields(input));
    }
  });

  it.each(ENCRYPTION_MODES)("%s without HMAC round-trips", (mode) => {
    // Act + Assess
    const keys = noHmacKeys(mode);
    const packet = buildSpaPacket(INPUT_BY_TYPE[4], keys, saltOf(4));
    expect(packet.hmac).toBeNull();
    expect(openSpaPacket(packet.wire, keys)).toMatchObject(inputFields(INPUT_BY_TYPE[4]));
  });

  it("modes do not interoperate: a CTR packet does not open in a CBC stanza", () => {
    // Act + Assess
    const packet = buildSpaPacket(ACCESS_INPUT, keysWith({ mode: "ctr" }), saltOf(5));
    expect(spaCodeOf(() => openSpaPacket(packet.wire, keysWith({ mode: "cbc" })))).toBe(
      "SPA_DECRYPT_FAILED",
    );
  });

  it("legacy mode pads a short key with '0' and truncates a long one to 16 bytes", () => {
    // Act + Assess
    const short = buildSpaPacket(
      ACCESS_INPUT,
      noHmacKeys("legacy", Buffer.from("short")),
      saltOf(6),
    );
    const padded = noHmacKeys("legacy", Buffer.from("short00000000000"));
    expect(openSpaPacket(short.wire, padded).username).toBe("alice");
    const long = buildSpaPacket(
      ACCESS_INPUT,
      noHmacKeys("legacy", Buffer.from("0123456789abcdefXYZ")),
      saltOf(7),
    );
    const truncated = noHmacKeys("legacy", Buffer.from("0123456789abcdef"));
    expect(openSpaPacket(long.wire, truncated).username).toBe("alice");
  });
});

describe("byte compatibility with `openssl enc -d -md md5`", () => {
  const dir = mkdtempSync(join(tmpdir(), "spaknock-core-"));
  const passFile = join(dir, "pass");
  // -pass file: keeps the key off argv.
  writeFileSync(passFile, RIJNDAEL_KEY_TEXT, { mode: 0o600 });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it.each(["ctr", "cfb", "ofb", "cbc", "ecb"] as EncryptionMode[])(
    "%s: openssl decrypts our packet to the plaintext (stream modes keep the PKCS#7 bytes)",
    (mode) => {
      // Prepare
      const packet = buildSpaPacket(INPUT_BY_TYPE[3], keysWith({ mode }), saltOf(11));
      const ciphertextFile = join(dir, `${mode}.bin`);
      writeFileSync(ciphertextFile, Buffer.from(packet.ciphertext, "base64"));
      const plaintext = Buffer.from(`${packet.encoded}:${packet.digest}`, "latin1");
      const pad = 16 - (plaintext.length % 16);
      // Act
      const decrypted = execFileSync(
        "openssl",
        [
          "enc",
          "-d",
          `-aes-256-${mode}`,
          "-md",
          "md5",
          "-pass",
          `file:${passFile}`,
          "-in",
          ciphertextFile,
        ],
        { stdio: ["ignore", "pipe", "ignore"] },
      );
      // Assess
      const expected =
        mode === "cbc" || mode === "ecb"
          ? plaintext
          : Buffer.concat([plaintext, Buffer.alloc(pad, pad)]);
      expect(decrypted.toString("latin1")).toBe(expected.toString("latin1"));
    },
  );
});
