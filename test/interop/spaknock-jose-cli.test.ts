// The built spaknock CLI against `jose` alone: keys made by `spaknock keygen`, packets printed by
// `spaknock -T`, and each packet decrypted and verified with jose's compactDecrypt and
// compactVerify, not through the project's decoder. Run `npm run build` first.

import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  calculateJwkThumbprint,
  compactDecrypt,
  compactVerify,
  decodeProtectedHeader,
  importJWK,
} from "jose";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { runSpaknock, spaknockCliMissingReason } from "../helpers/interop-spaknock-cli.js";

const skipReason = spaknockCliMissingReason();

describe.skipIf(skipReason !== undefined)("spaknock -T (JOSE profile) read with jose", () => {
  const dir = mkdtempSync(join(tmpdir(), "spk-jose-cli-"));
  const signingFile = join(dir, "alice.jwk");
  const serverPrivateFile = join(dir, "server.jwk");
  const serverPublicFile = join(dir, "server.pub.jwk");
  /** The options of a JOSE-profile knock that prints its packet and sends nothing. */
  const joseTest = ["--signing-key", signingFile, "--server-key", serverPublicFile, "-T"];
  let signerPublic: Record<string, string>;
  let serverPublic: Record<string, string>;
  let serverKey: Awaited<ReturnType<typeof importJWK>>;
  let signerKey: Awaited<ReturnType<typeof importJWK>>;

  beforeAll(async () => {
    const user = await runSpaknock(["keygen", "--ed25519", "-o", signingFile]);
    const host = await runSpaknock(["keygen", "--x25519", "-o", serverPrivateFile]);
    expect([user.code, host.code]).toEqual([0, 0]);
    signerPublic = JSON.parse(user.stdout) as Record<string, string>;
    serverPublic = JSON.parse(host.stdout) as Record<string, string>;
    writeFileSync(serverPublicFile, host.stdout);
    serverKey = await importJWK(JSON.parse(readFileSync(serverPrivateFile, "utf8")), "ECDH-ES");
    signerKey = await importJWK(signerPublic, "EdDSA");
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  /** The datagram `-T` prints as its last line. */
  const printedWire = (stdout: string) => stdout.trimEnd().split("\n").at(-1) as string;

  it("keygen writes 0600 private JWKs and prints one public JSON line each", async () => {
    expect(statSync(signingFile).mode & 0o777).toBe(0o600);
    expect(statSync(serverPrivateFile).mode & 0o777).toBe(0o600);
    expect(Object.keys(signerPublic).sort()).toEqual(["crv", "kid", "kty", "x"]);
    expect(signerPublic.kid).toBe(
      await calculateJwkThumbprint({ kty: "OKP", crv: "Ed25519", x: signerPublic.x as string }),
    );
    const again = await runSpaknock(["keygen", "--ed25519", "-o", signingFile]);
    expect(again.code).toBe(2);
    expect(again.stdout).toBe("");
  });

  it("-k still prints fwknop's shared keys", async () => {
    const result = await runSpaknock(["-k"]);
    expect(result.code).toBe(0);
    expect(result.stdout).toMatch(/^KEY_BASE64: \S+\nHMAC_KEY_BASE64: \S+\n$/);
  });

  it.each([
    ["IPv4, one port", "198.18.0.2", "198.18.0.2", "tcp/22", undefined],
    [
      "IPv6, several ports, a timeout",
      "2001:db8:5a::77",
      "2001:db8:5a::77",
      "tcp/22,udp/53,tcp/8443",
      "300",
    ],
    ["IPv6 in a long form, a timeout", "2001:DB8:0:0:0:0:0:99", "2001:db8::99", "udp/51820", "45"],
  ] as const)("%s", async (_case, allowIp, sentIp, access, timeout) => {
    // Act
    const started = Math.floor(Date.now() / 1000);
    const result = await runSpaknock([
      "--no-rc-file",
      "-D",
      "2001:db8:5a::1",
      "-a",
      allowIp,
      "-A",
      access,
      ...(timeout === undefined ? [] : ["-f", timeout]),
      "-U",
      "alice",
      ...joseTest,
    ]);
    expect(result.code, result.stderr).toBe(0);
    const wire = printedWire(result.stdout);

    // Assess: jose alone opens and verifies it, and the claims are exactly the profile's.
    expect(wire.length).toBeLessThanOrEqual(1232);
    const { plaintext, protectedHeader } = await compactDecrypt(wire, serverKey);
    expect(protectedHeader).toEqual({
      alg: "ECDH-ES",
      enc: "A256GCM",
      kid: serverPublic.kid,
      cty: "JWT",
      typ: "spa+jwe",
      epk: expect.objectContaining({ kty: "OKP", crv: "X25519" }),
    });
    const jws = new TextDecoder().decode(plaintext);
    expect(decodeProtectedHeader(jws)).toEqual({
      alg: "EdDSA",
      kid: signerPublic.kid,
      typ: "spa+jwt",
    });
    const { payload } = await compactVerify(jws, signerKey);
    const claims = JSON.parse(new TextDecoder().decode(payload)) as Record<string, unknown>;
    expect(claims).toEqual({
      v: 1,
      aud: serverPublic.kid,
      sub: "alice",
      iat: expect.any(Number),
      jti: expect.stringMatching(/^[A-Za-z0-9_-]{22}$/),
      ip: sentIp,
      acc: access.split(","),
      ...(timeout === undefined ? {} : { tmo: Number(timeout) }),
    });
    expect(Math.abs((claims.iat as number) - started)).toBeLessThanOrEqual(5);
  });

  it("sends a fresh jti in every packet", async () => {
    const args = ["--no-rc-file", "-D", "198.18.0.1", "-s", "-A", "tcp/22", ...joseTest];
    const jtis = new Set<unknown>();
    for (let i = 0; i < 3; i++) {
      const wire = printedWire((await runSpaknock(args)).stdout);
      const jws = new TextDecoder().decode((await compactDecrypt(wire, serverKey)).plaintext);
      const { payload } = await compactVerify(jws, signerKey);
      const claims = JSON.parse(new TextDecoder().decode(payload)) as Record<string, unknown>;
      expect(claims.ip).toBe("0.0.0.0");
      jtis.add(claims.jti);
    }
    expect(jtis.size).toBe(3);
  });

  it("decode --json reads what -T printed, with the authorized key's name", async () => {
    const keySet = join(dir, "team.jwks");
    writeFileSync(keySet, JSON.stringify({ keys: [{ ...signerPublic, name: "alice" }] }));
    const sent = await runSpaknock([
      "--no-rc-file",
      "-D",
      "::1",
      "-a",
      "2001:db8::5",
      "-A",
      "tcp/22,tcp/443",
      "-f",
      "60",
      "-U",
      "alice",
      ...joseTest,
    ]);
    const wire = printedWire(sent.stdout);
    const decoded = await runSpaknock([
      "decode",
      wire,
      "--server-key",
      serverPrivateFile,
      "--authorized-keys",
      keySet,
      "--json",
    ]);
    expect(decoded.code, decoded.stderr).toBe(0);
    expect(JSON.parse(decoded.stdout)).toMatchObject({
      profile: "jose",
      keyId: signerPublic.kid,
      username: "alice",
      allowIp: "2001:db8::5",
      access: ["tcp/22", "tcp/443"],
      clientTimeout: 60,
    });
    // The same key listed for another user: the receivers' refusal, with its code.
    const bobSet = join(dir, "bob.jwks");
    writeFileSync(bobSet, JSON.stringify({ keys: [{ ...signerPublic, name: "bob" }] }));
    const refused = await runSpaknock([
      "decode",
      wire,
      "--server-key",
      serverPrivateFile,
      "--authorized-keys",
      bobSet,
      "--json",
    ]);
    expect(refused.code).toBe(1);
    expect(refused.stdout).toBe("");
    expect(refused.stderr).toMatch(/^spaknock: JOSE_SUBJECT: /);
  });

  it("refuses ambiguous and meaningless options with exit code 2", async () => {
    const base = ["--no-rc-file", "-D", "198.18.0.1", "-a", "198.18.0.2", "-A", "tcp/22", "-T"];
    const jose = ["--signing-key", signingFile, "--server-key", serverPublicFile];
    for (const extra of [
      ["--signing-key", signingFile],
      [...jose, "--key-base64-rijndael=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="],
      [...jose, "-C", "uptime"],
    ]) {
      const result = await runSpaknock([...base, ...extra]);
      expect(result.code, extra.join(" ")).toBe(2);
      expect(result.stdout).toBe("");
    }
    const v6WithShared = await runSpaknock([
      ...base.map((a) => (a === "198.18.0.2" ? "2001:db8::2" : a)),
      "--key-base64-rijndael=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=",
    ]);
    expect(v6WithShared.code).toBe(2);
    expect(v6WithShared.stderr).toContain("IPv4 addresses only");
  });
});
