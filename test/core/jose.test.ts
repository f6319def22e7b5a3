import { randomBytes } from "node:crypto";
import { compactDecrypt, compactVerify, decodeProtectedHeader } from "jose";
import { beforeAll, describe, expect, it } from "vitest";
import {
  type AuthorizedKeySet,
  buildJosePacket,
  importAuthorizedKeys,
  importPrivateJwk,
  importPublicJwk,
  type JosePrivateKey,
  type KnockInput,
  knock,
  parseAccessConf,
  parseNetworkList,
  precheckDatagram,
} from "../../core/index.js";
import {
  authorizedKeysText,
  buildWithJose,
  type JoseBuild,
  type TestJwkPair,
  testKeyPair,
} from "../helpers/jose-packets.js";
import { MemoryFirewall, MemoryReplay, packet, stanza } from "../helpers/knock-fakes.js";

const NOW = 1_795_605_803;
const settings = { maxPacketAge: 120 };
const input = (wire: string, sourceIp = "198.18.0.2"): KnockInput => ({
  payload: Buffer.from(wire, "latin1"),
  sourceIp,
  sourcePort: 40000,
  destinationIp: null,
  receivedAt: NOW * 1000,
});

let alice: TestJwkPair;
let bob: TestJwkPair;
let server: TestJwkPair;
let otherServer: TestJwkPair;
let serverKey: JosePrivateKey;
let aliceOnly: AuthorizedKeySet;

beforeAll(async () => {
  [alice, bob, server, otherServer] = await Promise.all([
    testKeyPair("Ed25519"),
    testKeyPair("Ed25519"),
    testKeyPair("X25519"),
    testKeyPair("X25519"),
  ]);
  serverKey = await importPrivateJwk(JSON.stringify(server.privateJwk), "X25519", "server.jwk");
  aliceOnly = await importAuthorizedKeys(
    authorizedKeysText([{ key: alice, name: "alice" }]),
    "team.jwks",
  );
});

function joseStanza(overrides: Parameters<typeof stanza>[0] = {}) {
  return stanza({ keys: null, authorizedKeys: aliceOnly, ...overrides });
}

async function knockWith(
  build: Partial<JoseBuild>,
  opts: { stanzas?: ReturnType<typeof stanza>[]; sourceIp?: string; replay?: MemoryReplay } = {},
) {
  const wire = await buildWithJose({
    signer: alice,
    server,
    username: "alice",
    now: NOW,
    ...build,
  });
  const firewall = new MemoryFirewall();
  const outcome = await knock(
    input(wire, opts.sourceIp),
    {
      stanzas: opts.stanzas ?? [joseStanza()],
      replay: opts.replay ?? new MemoryReplay(),
      firewall,
      serverKey,
    },
    settings,
  );
  return { outcome, firewall, wire };
}

describe("JOSE packets built with jose directly open the door", () => {
  it.each([
    ["IPv4 source, ip 0.0.0.0", {}, "198.18.0.2", "198.18.0.2"],
    ["an explicit IPv4", { ip: "198.18.7.7" }, "198.18.0.2", "198.18.7.7"],
    ["IPv6 source, ip ::", { ip: "::" }, "2001:db8:5a::2", "2001:db8:5a::2"],
    [
      "an explicit IPv6, written long",
      { ip: "2001:DB8:5A:0:0:0:0:9" },
      "198.18.0.2",
      "2001:db8:5a::9",
    ],
    ["an IPv4-mapped source", {}, "::ffff:198.18.0.2", "::ffff:198.18.0.2"],
  ])("%s", async (_name, build, sourceIp, opened) => {
    // Act
    const { outcome, firewall } = await knockWith(build, { sourceIp });
    // Assess
    expect(outcome).toMatchObject({
      granted: true,
      packet: { profile: "jose", username: "alice", keyId: alice.kid, version: "jose/1" },
    });
    expect(firewall.opened).toEqual([
      expect.objectContaining({ sourceIp: opened, username: "alice", timeoutSec: 30 }),
    ]);
  });

  it("several ports and a client timeout, capped by MAX_FW_TIMEOUT", async () => {
    const { firewall } = await knockWith(
      { acc: ["tcp/22", "udp/53", "tcp/443"], tmo: 900 },
      { stanzas: [joseStanza({ maxFwTimeout: 600 })] },
    );
    expect(firewall.opened[0]).toMatchObject({
      ports: [
        { proto: "tcp", port: 22 },
        { proto: "udp", port: 53 },
        { proto: "tcp", port: 443 },
      ],
      timeoutSec: 600,
    });
  });

  it("a replayed packet opens nothing, and 20 concurrent copies open once", async () => {
    const replay = new MemoryReplay();
    const wire = await buildWithJose({ signer: alice, server, username: "alice", now: NOW });
    const firewall = new MemoryFirewall();
    const ports = { stanzas: [joseStanza()], replay, firewall, serverKey };
    const outcomes = await Promise.all(
      Array.from({ length: 20 }, () => knock(input(wire), ports, settings)),
    );
    expect(outcomes.filter((o) => o.granted)).toHaveLength(1);
    expect(outcomes.filter((o) => !o.granted && o.code === "SPA_REPLAY")).toHaveLength(19);
    expect(firewall.opened).toHaveLength(1);
    // The replay key is the signer and jti, not the bytes: a re-encryption of the same signed
    // content (another epk, another ciphertext) is the same packet.
    const jti = randomBytes(16).toString("base64url");
    const first = await knockWith({ claims: { jti } }, { replay });
    const again = await knockWith({ claims: { jti } }, { replay });
    expect(first.outcome.granted).toBe(true);
    expect(first.wire).not.toBe(again.wire);
    expect(again.outcome).toMatchObject({ granted: false, code: "SPA_REPLAY" });
  });

  it("a key authorized in two stanzas under two names opens where sub matches", async () => {
    const asAdmin = await importAuthorizedKeys(
      authorizedKeysText([{ key: alice, name: "alice-admin" }]),
      "admins.jwks",
    );
    const stanzas = [
      joseStanza({ index: 1 }),
      joseStanza({ index: 2, authorizedKeys: asAdmin, openPorts: [{ proto: "tcp", port: 2222 }] }),
    ];
    const { outcome } = await knockWith(
      { username: "alice-admin", acc: ["tcp/2222"] },
      { stanzas },
    );
    expect(outcome).toMatchObject({ granted: true, stanza: { index: 2 } });
  });

  it("an fwknop packet and a JOSE packet open the same stanza that holds both kinds of key", async () => {
    const both = stanza({ authorizedKeys: aliceOnly });
    const firewall = new MemoryFirewall();
    const ports = { stanzas: [both], replay: new MemoryReplay(), firewall, serverKey };
    const fwknop = await knock(
      { ...input(""), payload: packet(), sourceIp: "198.18.0.2" },
      ports,
      settings,
    );
    const jose = await knock(
      input(await buildWithJose({ signer: alice, server, username: "alice", now: NOW })),
      ports,
      settings,
    );
    expect([fwknop.granted, jose.granted]).toEqual([true, true]);
    expect(fwknop).toMatchObject({ packet: { profile: "fwknop", keyId: null } });
  });
});

describe("every refusal of the profile has its code", () => {
  it.each<[string, () => Partial<JoseBuild>, string]>([
    ["a key in no authorized set", () => ({ signer: bob, username: "alice" }), "JOSE_KEY_UNKNOWN"],
    [
      "the right kid, signed by another key",
      () => ({ signWith: bob.privateKey }),
      "JOSE_SIGNATURE",
    ],
    ["sub not the key's name", () => ({ username: "mallory" }), "JOSE_SUBJECT"],
    ["aud of another server", () => ({ claims: { aud: otherServer.kid } }), "JOSE_AUDIENCE"],
    ["version 2", () => ({ claims: { v: 2 } }), "JOSE_VERSION"],
    ["version as a string", () => ({ claims: { v: "1" } }), "JOSE_VERSION"],
    ["a bad address", () => ({ ip: "198.018.0.1" }), "JOSE_ADDRESS"],
    ["an address with a zone", () => ({ ip: "fe80::1%eth0" }), "JOSE_ADDRESS"],
    ["a packet for another server key", () => ({ server: otherServer }), "JOSE_WRONG_SERVER"],
    [
      "our kid on a packet encrypted to another key",
      () => ({ encryptTo: otherServer.publicKey }),
      "JOSE_DECRYPT",
    ],
    ["an unknown claim", () => ({ claims: { exp: NOW + 60 } }), "JOSE_CLAIMS"],
    ["a missing jti", () => ({ claims: { jti: undefined } }), "JOSE_CLAIMS"],
    ["a short jti", () => ({ claims: { jti: "abc" } }), "JOSE_CLAIMS"],
    ["iat as text", () => ({ claims: { iat: String(NOW) } }), "JOSE_CLAIMS"],
    ["a port that is none", () => ({ acc: ["tcp/0"] }), "JOSE_CLAIMS"],
    ["no ports", () => ({ acc: [] }), "JOSE_CLAIMS"],
    ["tmo 0", () => ({ tmo: 0 }), "JOSE_CLAIMS"],
    ["an extra JWE header member", () => ({ jweHeader: { zip: "DEF" } }), "JOSE_HEADER"],
    ["another JWE typ", () => ({ jweHeader: { typ: "JWT" } }), "JOSE_HEADER"],
    ["another JWS typ", () => ({ jwsHeader: { typ: "JWT" } }), "JOSE_HEADER"],
    [
      "an extra JWS header member",
      () => ({ jwsHeader: { crit: ["b64"], b64: true } }),
      "JOSE_HEADER",
    ],
    ["stale by 121 s", () => ({ now: NOW - 121 }), "SPA_STALE"],
    ["from the future by 121 s", () => ({ now: NOW + 121 }), "SPA_STALE"],
  ])("%s → %s", async (_name, build, code) => {
    const { outcome, firewall } = await knockWith(build());
    expect(outcome).toMatchObject({ granted: false, code });
    expect(firewall.opened).toEqual([]);
  });

  it("policy: SOURCE, REQUIRE_SOURCE_ADDRESS, OPEN_PORTS, REQUIRE_USERNAME", async () => {
    const cases: [Parameters<typeof stanza>[0], Partial<JoseBuild>, string, string][] = [
      [{ sources: parseNetworkList("2001:db8:5a::/64") }, {}, "198.18.0.2", "SPA_NO_SOURCE_MATCH"],
      [{ requireSourceAddress: true }, { ip: "::" }, "2001:db8:5a::2", "SPA_SOURCE_REQUIRED"],
      [
        { openPorts: [{ proto: "tcp", port: 22 }] },
        { acc: ["tcp/23"] },
        "198.18.0.2",
        "SPA_PORT_DENIED",
      ],
      [{ requireUsername: "bob" }, {}, "198.18.0.2", "SPA_USERNAME_MISMATCH"],
    ];
    for (const [overrides, build, sourceIp, code] of cases) {
      const { outcome } = await knockWith(build, { stanzas: [joseStanza(overrides)], sourceIp });
      expect(outcome, code).toMatchObject({ granted: false, code });
    }
    // The stanza's SOURCE holds IPv6 prefixes: the same knock from inside it opens.
    const inside = await knockWith(
      { ip: "::" },
      {
        stanzas: [joseStanza({ sources: parseNetworkList("2001:db8:5a::/64") })],
        sourceIp: "2001:db8:5a::2",
      },
    );
    expect(inside.outcome.granted).toBe(true);
  });

  it("a receiver without a server key refuses JOSE packets and still takes fwknop ones", async () => {
    const wire = await buildWithJose({ signer: alice, server, username: "alice", now: NOW });
    const ports = {
      stanzas: [stanza({ authorizedKeys: aliceOnly })],
      replay: null,
      firewall: new MemoryFirewall(),
    };
    expect(await knock(input(wire), ports, settings)).toMatchObject({
      granted: false,
      code: "JOSE_NOT_CONFIGURED",
    });
    expect((await knock({ ...input(""), payload: packet() }, ports, settings)).granted).toBe(true);
  });

  it("a stanza with fwknop keys only refuses JOSE packets: the signer is in no set", async () => {
    const { outcome } = await knockWith({}, { stanzas: [stanza()] });
    expect(outcome).toMatchObject({ granted: false, code: "JOSE_KEY_UNKNOWN" });
  });

  it("one flipped character anywhere never opens, and each refusal is typed", async () => {
    const wire = await buildWithJose({ signer: alice, server, username: "alice", now: NOW });
    const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    const codes = new Set<string>();
    const firewall = new MemoryFirewall();
    const ports = { stanzas: [joseStanza()], replay: new MemoryReplay(), firewall, serverKey };
    for (let i = 0; i < wire.length; i++) {
      const c = wire[i] as string;
      if (c === ".") continue;
      const swapped = alphabet[(alphabet.indexOf(c) + 1) % alphabet.length] as string;
      const flipped = wire.slice(0, i) + swapped + wire.slice(i + 1);
      const outcome = await knock(input(flipped), ports, settings);
      if (outcome.granted) {
        // base64url's last character carries spare bits: a flip there can decode to the same
        // bytes, which is the same packet and must then be the one grant.
        expect(i, "only a spare-bits character may decode to the same packet").toBeGreaterThan(0);
        continue;
      }
      codes.add(outcome.code);
    }
    expect(firewall.opened.length).toBeLessThanOrEqual(1);
    // A flip of the leading "e" takes the packet off the JOSE shape: fwknop's charset refuses it.
    expect([...codes].filter((c) => !/^(JOSE_|SPA_REPLAY$|SPA_CHARSET$)/.test(c))).toEqual([]);
    expect(codes).toContain("JOSE_DECRYPT");
    expect(codes).toContain("JOSE_HEADER");
  });
});

describe("the project's encoder, read back by jose directly", () => {
  it("has exactly the profile's headers and claims", async () => {
    const signingKey = await importPrivateJwk(
      JSON.stringify(alice.privateJwk),
      "Ed25519",
      "alice.jwk",
    );
    const serverPublic = await importPublicJwk(
      JSON.stringify(server.publicJwk),
      "X25519",
      "server.pub",
    );
    const jti = randomBytes(16);
    const wire = await buildJosePacket(
      {
        username: "alice",
        timestamp: NOW,
        allowIp: "2001:DB8::7",
        ports: [
          { proto: "tcp", port: 22 },
          { proto: "udp", port: 53 },
        ],
        clientTimeout: 45,
      },
      jti,
      signingKey,
      serverPublic,
    );
    expect(precheckDatagram(Buffer.from(wire)).profile).toBe("jose");
    expect(wire.length).toBeLessThanOrEqual(1232);
    const header = decodeProtectedHeader(wire);
    expect(Object.keys(header).sort()).toEqual(["alg", "cty", "enc", "epk", "kid", "typ"]);
    expect(header).toMatchObject({
      alg: "ECDH-ES",
      enc: "A256GCM",
      kid: server.kid,
      cty: "JWT",
      typ: "spa+jwe",
    });
    const { plaintext } = await compactDecrypt(wire, server.privateKey);
    const jws = new TextDecoder().decode(plaintext);
    expect(decodeProtectedHeader(jws)).toEqual({ alg: "EdDSA", kid: alice.kid, typ: "spa+jwt" });
    const { payload } = await compactVerify(jws, alice.publicKey);
    expect(JSON.parse(new TextDecoder().decode(payload))).toEqual({
      v: 1,
      aud: server.kid,
      sub: "alice",
      iat: NOW,
      jti: jti.toString("base64url"),
      ip: "2001:db8::7",
      acc: ["tcp/22", "udp/53"],
      tmo: 45,
    });
  });

  it("refuses to build a packet over 1,232 bytes", async () => {
    const signingKey = await importPrivateJwk(
      JSON.stringify(alice.privateJwk),
      "Ed25519",
      "alice.jwk",
    );
    const serverPublic = await importPublicJwk(
      JSON.stringify(server.publicJwk),
      "X25519",
      "server.pub",
    );
    const ports = Array.from({ length: 16 }, (_, i) => ({
      proto: "tcp" as const,
      port: 60000 + i,
    }));
    await expect(
      buildJosePacket(
        {
          username: "a".repeat(63),
          timestamp: NOW,
          allowIp: "2001:db8:1:2:3:4:5:6",
          ports,
          clientTimeout: 65536,
        },
        randomBytes(16),
        signingKey,
        serverPublic,
      ),
    ).rejects.toThrow(/over 1232/);
  });
});

describe("key files", () => {
  it.each<[string, () => string, RegExp]>([
    [
      "a private key in an authorized set",
      () => JSON.stringify({ keys: [{ ...alice.privateJwk, name: "alice" }] }),
      /holds a private key/,
    ],
    [
      "a kid that is not the thumbprint",
      () => JSON.stringify({ keys: [{ ...alice.publicJwk, kid: bob.kid, name: "alice" }] }),
      /not the key's thumbprint/,
    ],
    [
      "no kid",
      () => JSON.stringify({ keys: [{ ...alice.publicJwk, kid: undefined, name: "alice" }] }),
      /has no kid/,
    ],
    ["no name", () => JSON.stringify({ keys: [alice.publicJwk] }), /has no name/],
    [
      "a name fwknop refuses",
      () => authorizedKeysText([{ key: alice, name: "a:b" }]),
      /name "a:b"/,
    ],
    [
      "an X25519 key",
      () => authorizedKeysText([{ key: server, name: "srv" }]),
      /not an Ed25519 key/,
    ],
    [
      "the same key twice",
      () =>
        authorizedKeysText([
          { key: alice, name: "a" },
          { key: alice, name: "b" },
        ]),
      /listed twice/,
    ],
    ["an empty set", () => JSON.stringify({ keys: [] }), /empty/],
    ["a bare JWK", () => JSON.stringify(alice.publicJwk), /not a JWK Set/],
    ["not JSON", () => "keys: []", /not JSON/],
  ])("an authorized key set with %s is refused", async (_name, text, message) => {
    await expect(importAuthorizedKeys(text(), "team.jwks")).rejects.toThrow(message);
  });

  it("a server key handed to a client must be public, and a private key must be whole", async () => {
    await expect(importPublicJwk(JSON.stringify(server.privateJwk), "X25519", "s")).rejects.toThrow(
      /holds a private key/,
    );
    await expect(importPrivateJwk(JSON.stringify(server.publicJwk), "X25519", "s")).rejects.toThrow(
      /holds no private key/,
    );
    await expect(
      importPrivateJwk(
        JSON.stringify({ ...alice.privateJwk, x: bob.publicJwk.x, kid: bob.kid }),
        "Ed25519",
        "a",
      ),
    ).rejects.toThrow(/not the public half/);
    await expect(importPrivateJwk(JSON.stringify(alice.privateJwk), "X25519", "a")).rejects.toThrow(
      /not an X25519 key/,
    );
  });

  it("access.conf: AUTHORIZED_KEYS alone makes a JOSE-only stanza; a set not loaded is an error", () => {
    const lines = [
      { keyword: "SOURCE", value: "ANY", file: "access.conf", line: 1 },
      {
        keyword: "AUTHORIZED_KEYS",
        value: "/etc/spaknock/team.jwks",
        file: "access.conf",
        line: 2,
      },
    ];
    const [s] = parseAccessConf(lines, {
      allowSecurityGroups: false,
      ignored: () => {},
      authorizedKeys: new Map([["/etc/spaknock/team.jwks", aliceOnly]]),
    });
    expect(s).toMatchObject({ keys: null, authorizedKeys: aliceOnly });
    expect(() => parseAccessConf(lines, { allowSecurityGroups: false, ignored: () => {} })).toThrow(
      /access.conf:2.*was not loaded/,
    );
    expect(() =>
      parseAccessConf([lines[0] as (typeof lines)[0]], {
        allowSecurityGroups: false,
        ignored: () => {},
      }),
    ).toThrow(/no KEY or KEY_BASE64, and no AUTHORIZED_KEYS/);
  });
});
