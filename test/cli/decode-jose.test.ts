import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type DecodedJosePacket, runDecode } from "../../cli/commands/decode.js";
import { UsageError } from "../../cli/exit-codes.js";
import {
  authorizedKeysText,
  buildWithJose,
  type TestJwkPair,
  testKeyPair,
} from "../helpers/jose-packets.js";

const NOW = 1_800_000_000;

describe("spaknock decode, JOSE profile (packets built with jose directly)", () => {
  const dir = mkdtempSync(join(tmpdir(), "spk-decode-jose-"));
  let alice: TestJwkPair;
  let stranger: TestJwkPair;
  let server: TestJwkPair;
  let otherServer: TestJwkPair;
  let opts: { serverKey: string; authorizedKeys: string; json: true };

  beforeAll(async () => {
    [alice, stranger, server, otherServer] = await Promise.all([
      testKeyPair("Ed25519"),
      testKeyPair("Ed25519"),
      testKeyPair("X25519"),
      testKeyPair("X25519"),
    ]);
    const serverKey = join(dir, "server.jwk");
    const authorizedKeys = join(dir, "team.jwks");
    writeFileSync(serverKey, JSON.stringify(server.privateJwk), { mode: 0o600 });
    writeFileSync(authorizedKeys, authorizedKeysText([{ key: alice, name: "alice" }]), {
      mode: 0o644,
    });
    opts = { serverKey, authorizedKeys, json: true };
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  async function decodeJson(wire: string): Promise<DecodedJosePacket> {
    const lines: string[] = [];
    await runDecode(wire, opts, (line) => lines.push(line));
    expect(lines).toHaveLength(1);
    return JSON.parse(lines[0] as string) as DecodedJosePacket;
  }

  it.each([
    ["IPv4, one port, no timeout", "198.18.0.2", ["tcp/22"], undefined, 0],
    [
      "IPv6, several ports, a timeout",
      "2001:db8:5a::77",
      ["tcp/22", "udp/53", "tcp/8443"],
      120,
      120,
    ],
    ["the source address over IPv6", "::", ["tcp/22"], 30, 30],
  ] as const)("prints the fields of %s", async (_case, ip, acc, tmo, clientTimeout) => {
    // Prepare
    const jti = Buffer.alloc(16, 3).toString("base64url");
    const wire = await buildWithJose({
      signer: alice,
      server,
      username: "alice",
      now: NOW,
      ip,
      acc,
      ...(tmo === undefined ? {} : { tmo }),
      claims: { jti },
    });

    // Act
    const decoded = await decodeJson(wire);

    // Assess
    expect(decoded).toEqual({
      profile: "jose",
      keyId: alice.kid,
      username: "alice",
      timestamp: NOW,
      allowIp: ip,
      access: [...acc],
      clientTimeout,
      jti,
    });
  });

  it("prints the field dump without --json, naming both keys", async () => {
    const wire = await buildWithJose({ signer: alice, server, username: "alice", now: NOW });
    const lines: string[] = [];
    await runDecode(wire, { ...opts, json: false } as never, (line) => lines.push(line));
    const text = lines.join("\n");
    expect(text).toContain(`Key Id: ${alice.kid}`);
    expect(text).toContain(`Server Key Id: ${server.kid}`);
    expect(text).toContain("Profile: jose");
    expect(text).not.toContain(server.privateJwk.d);
  });

  it.each([
    [
      "JOSE_KEY_UNKNOWN",
      async () => buildWithJose({ signer: stranger, server, username: "alice", now: NOW }),
    ],
    [
      "JOSE_WRONG_SERVER",
      async () =>
        buildWithJose({ signer: alice, server: otherServer, username: "alice", now: NOW }),
    ],
    [
      "JOSE_SUBJECT",
      async () => buildWithJose({ signer: alice, server, username: "bob", now: NOW }),
    ],
    [
      "JOSE_SIGNATURE",
      async () =>
        buildWithJose({
          signer: alice,
          server,
          username: "alice",
          now: NOW,
          signWith: stranger.privateKey,
        }),
    ],
    [
      "JOSE_VERSION",
      async () =>
        buildWithJose({ signer: alice, server, username: "alice", now: NOW, claims: { v: 2 } }),
    ],
    [
      "JOSE_ADDRESS",
      async () =>
        buildWithJose({ signer: alice, server, username: "alice", now: NOW, ip: "2001:db8::/64" }),
    ],
    [
      "JOSE_DECRYPT",
      async () => {
        const wire = await buildWithJose({ signer: alice, server, username: "alice", now: NOW });
        const parts = wire.split(".");
        const tag = parts[4] as string;
        parts[4] = `${tag[0] === "A" ? "B" : "A"}${tag.slice(1)}`;
        return parts.join(".");
      },
    ],
  ] as const)("refuses with %s, as a receiver would", async (code, make) => {
    const out: string[] = [];
    await expect(runDecode(await make(), opts, (l) => out.push(l))).rejects.toMatchObject({ code });
    expect(out).toEqual([]);
  });

  it("needs both key files for a JOSE packet, and neither for fwknop data", async () => {
    const wire = await buildWithJose({ signer: alice, server, username: "alice", now: NOW });
    await expect(runDecode(wire, { json: true }, () => {})).rejects.toBeInstanceOf(UsageError);
    await expect(
      runDecode("8Q7bQzS8jVKvz4vB1F3QZ0m", { serverKey: opts.serverKey }, () => {}),
    ).rejects.toThrow(/for JOSE-profile packets; this is fwknop data/);
  });
});
