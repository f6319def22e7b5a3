import { chmodSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { loadConfig } from "../../agent/config/load.js";
import { authorizedKeysText, type TestJwkPair, testKeyPair } from "../helpers/jose-packets.js";

let dir: string;
let alice: TestJwkPair;
let server: TestJwkPair;

beforeAll(async () => {
  [alice, server] = await Promise.all([testKeyPair("Ed25519"), testKeyPair("X25519")]);
});
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), "spaknock-keys-"));
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

function write(name: string, text: string, mode: number): string {
  const file = join(dir, name);
  writeFileSync(file, text);
  chmodSync(file, mode);
  return file;
}

function setUp(opts: { serverMode?: number; setMode?: number; setText?: string } = {}) {
  const serverFile = write(
    "server.jwk",
    JSON.stringify(server.privateJwk),
    opts.serverMode ?? 0o600,
  );
  write(
    "team.jwks",
    opts.setText ?? authorizedKeysText([{ key: alice, name: "alice" }]),
    opts.setMode ?? 0o644,
  );
  const conf = write("fwknopd.conf", `SERVER_KEY_FILE ${serverFile}\n`, 0o600);
  // A relative AUTHORIZED_KEYS path is relative to the file that names it.
  const access = write("access.conf", "SOURCE ANY\nAUTHORIZED_KEYS team.jwks\n", 0o600);
  return { confFile: conf, accessFile: access };
}

describe("spaknockd loads the JOSE profile's keys", () => {
  it("reads the server key and a 0644 authorized key set into a JOSE-only stanza", async () => {
    const config = await loadConfig({ ...setUp(), strictPermissions: true });
    expect(config.serverKey?.kid).toBe(server.kid);
    expect(config.stanzas[0]?.keys).toBeNull();
    expect(config.stanzas[0]?.authorizedKeys?.keys.get(alice.kid)?.name).toBe("alice");
    expect(config.notes.filter((n) => /permissions/.test(n))).toEqual([]);
  });

  it("a server key readable by others is refused under --strict-permissions, warned about otherwise", async () => {
    const files = setUp({ serverMode: 0o644 });
    await expect(loadConfig({ ...files, strictPermissions: true })).rejects.toThrow(
      /server.jwk.*permissions 0644 let others read keys/,
    );
    const loose = await loadConfig({ ...files, strictPermissions: false });
    expect(loose.notes.join("\n")).toMatch(/server.jwk.*chmod 600/);
  });

  it("an authorized key set others can write is refused under --strict-permissions", async () => {
    await expect(
      loadConfig({ ...setUp({ setMode: 0o666 }), strictPermissions: true }),
    ).rejects.toThrow(/let others write authorized keys/);
  });

  it("a broken key set names the access.conf line that points at it", async () => {
    const files = setUp({
      setText: JSON.stringify({ keys: [{ ...alice.privateJwk, name: "alice" }] }),
    });
    await expect(loadConfig({ ...files, strictPermissions: false })).rejects.toThrow(
      /access.conf:2: .*holds a private key/,
    );
  });

  it("a stanza with AUTHORIZED_KEYS and no SERVER_KEY_FILE loads, with a note that says why it cannot work", async () => {
    const files = setUp();
    writeFileSync(files.confFile, "");
    const config = await loadConfig({ ...files, strictPermissions: false });
    expect(config.serverKey).toBeNull();
    expect(config.notes.join("\n")).toMatch(/no SERVER_KEY_FILE/);
  });

  it("SERVER_KEY_FILE holding a public key is refused with the line", async () => {
    const files = setUp();
    writeFileSync(join(dir, "server.jwk"), JSON.stringify(server.publicJwk));
    await expect(loadConfig({ ...files, strictPermissions: false })).rejects.toThrow(
      /fwknopd.conf:1: .*holds no private key/,
    );
  });
});
