import { chmodSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type Check, runChecks } from "../../cli/commands/doctor.js";
import { type TestJwkPair, testKeyPair } from "../helpers/jose-packets.js";

describe("spaknock doctor, JOSE stanza", () => {
  const dir = mkdtempSync(join(tmpdir(), "spk-doctor-jose-"));
  let signer: TestJwkPair;
  let server: TestJwkPair;
  const file = (name: string) => join(dir, name);

  beforeAll(async () => {
    signer = await testKeyPair("Ed25519");
    server = await testKeyPair("X25519");
    writeFileSync(file("me.jwk"), JSON.stringify(signer.privateJwk), { mode: 0o600 });
    writeFileSync(file("loose.jwk"), JSON.stringify(signer.privateJwk));
    chmodSync(file("loose.jwk"), 0o640);
    writeFileSync(file("server.pub"), JSON.stringify(server.publicJwk), { mode: 0o644 });
    writeFileSync(file("server.jwk"), JSON.stringify(server.privateJwk), { mode: 0o600 });
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  /** Runs doctor on a stanza with these rc lines and returns the checks by name. */
  async function doctor(lines: Record<string, string>): Promise<Map<string, Check>> {
    const rcFile = file(`rc-${Object.keys(lines).length}-${Math.random()}`);
    const body = Object.entries(lines)
      .map(([k, v]) => `${k} ${v}`)
      .join("\n");
    writeFileSync(rcFile, `[default]\n\n[jose]\n${body}\n`, { mode: 0o600 });
    const checks = await runChecks({ rcFile, namedConfig: "jose" });
    return new Map(checks.map((c) => [c.name, c]));
  }

  const good = () => ({
    SPA_SERVER: "2001:db8:5a::1",
    ACCESS: "tcp/22,udp/53",
    ALLOW_IP: "source",
    SIGNING_KEY_FILE: file("me.jwk"),
    SERVER_KEY_FILE: file("server.pub"),
  });

  it("passes a good stanza and reports the size of the packet it would send", async () => {
    const checks = await doctor(good());
    expect([...checks.values()].filter((c) => !c.ok)).toEqual([]);
    expect(checks.get("signing key")?.detail).toContain(signer.kid);
    expect(checks.get("server key")?.detail).toContain(server.kid);
    expect(checks.get("packet size")?.detail).toMatch(/^[0-9]{3,4} bytes \(at most 1232\)$/);
    // A JOSE stanza needs no shared keys: no complaint about a missing HMAC key.
    expect(checks.has("HMAC key")).toBe(false);
  });

  it("flags a signing key file others can read", async () => {
    const checks = await doctor({ ...good(), SIGNING_KEY_FILE: file("loose.jwk") });
    expect(checks.get("signing key mode")).toMatchObject({ ok: false });
    expect(checks.get("signing key mode")?.detail).toContain("chmod 600");
    expect(checks.get("signing key")?.ok).toBe(true);
  });

  it("flags a missing signing key file and a public JWK given as the signing key", async () => {
    const missing = await doctor({ ...good(), SIGNING_KEY_FILE: file("nope.jwk") });
    expect(missing.get("signing key")).toMatchObject({ ok: false });
    expect(missing.get("signing key")?.detail).toContain("ENOENT");
    expect(missing.has("packet size")).toBe(false);
    const publicOnly = await doctor({ ...good(), SIGNING_KEY_FILE: file("server.pub") });
    expect(publicOnly.get("signing key")?.ok).toBe(false);
  });

  it("flags a private JWK as the server key", async () => {
    const checks = await doctor({ ...good(), SERVER_KEY_FILE: file("server.jwk") });
    expect(checks.get("server key")).toMatchObject({ ok: false });
    expect(checks.get("server key")?.detail).toContain("holds a private key");
  });

  it("flags a signing key without a server key, and shared keys beside it", async () => {
    const { SERVER_KEY_FILE: _, ...noServerKey } = good();
    const lonely = await doctor(noServerKey);
    expect(lonely.get("profile")).toMatchObject({ ok: false });
    expect(lonely.get("profile")?.detail).toContain("--server-key");
    const both = await doctor({
      ...good(),
      KEY_BASE64: "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=",
    });
    expect(both.get("profile")?.detail).toContain("ambiguous");
  });

  it("reports a packet over the limit as a problem", async () => {
    // 16 ports and the longest username the profile allows make the largest packet.
    const ports = Array.from({ length: 16 }, (_, i) => `tcp/${60000 + i}`).join(",");
    const checks = await doctor({ ...good(), ACCESS: ports, SPOOF_USER: "u".repeat(63) });
    const size = checks.get("packet size");
    expect(size?.ok).toBe(false);
    expect(size?.detail).toMatch(/the packet is 1[0-9]{3} bytes, over 1232/);
  });
});
