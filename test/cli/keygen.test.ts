import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { calculateJwkThumbprint, importJWK } from "jose";
import { afterAll, describe, expect, it } from "vitest";
import { runJoseKeyGen } from "../../cli/commands/keygen.js";
import { UsageError } from "../../cli/exit-codes.js";

function collect(): { lines: string[]; push: (line: string) => void } {
  const lines: string[] = [];
  return { lines, push: (line) => lines.push(line) };
}

describe("spaknock keygen --ed25519 / --x25519", () => {
  const dir = mkdtempSync(join(tmpdir(), "spk-keygen-"));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it.each([
    ["ed25519", "Ed25519"],
    ["x25519", "X25519"],
  ] as const)(
    "--%s writes the private JWK 0600 and prints its public JWK with kid",
    async (flag, crv) => {
      // Prepare
      const file = join(dir, `${flag}.jwk`);
      const stdout = collect();
      const stderr = collect();

      // Act
      await runJoseKeyGen({ [flag]: true, output: file }, stdout.push, stderr.push);

      // Assess: the file holds the private key, only its owner may read it.
      expect(statSync(file).mode & 0o777).toBe(0o600);
      const privateJwk = JSON.parse(readFileSync(file, "utf8")) as Record<string, string>;
      expect(Object.keys(privateJwk).sort()).toEqual(["crv", "d", "kid", "kty", "x"]);
      expect(privateJwk.crv).toBe(crv);
      // stdout is exactly one JSON line: the public half, named by its RFC 7638 thumbprint.
      expect(stdout.lines).toHaveLength(1);
      const publicJwk = JSON.parse(stdout.lines[0] as string) as Record<string, string>;
      expect(publicJwk).toEqual({ kty: "OKP", crv, x: privateJwk.x, kid: privateJwk.kid });
      expect(publicJwk.kid).toBe(await calculateJwkThumbprint({ kty: "OKP", crv, x: publicJwk.x }));
      await expect(
        importJWK(publicJwk, crv === "Ed25519" ? "EdDSA" : "ECDH-ES"),
      ).resolves.toBeTruthy();
      // The private value never reaches stdout or stderr.
      expect([...stdout.lines, ...stderr.lines].join("\n")).not.toContain(privateJwk.d);
    },
  );

  it("tells the owner of an Ed25519 key how to hand it to the operator", async () => {
    const stderr = collect();
    await runJoseKeyGen({ ed25519: true, output: join(dir, "advice.jwk") }, () => {}, stderr.push);
    const advice = stderr.lines.join(" ");
    expect(advice).toContain("operator");
    expect(advice).toContain('"name"');
    expect(advice).toContain("AUTHORIZED_KEYS");
  });

  it("refuses to overwrite an existing file and leaves it as it was", async () => {
    // Prepare
    const file = join(dir, "existing.jwk");
    writeFileSync(file, "someone's key\n", { mode: 0o600 });
    const stdout = collect();

    // Act
    const run = runJoseKeyGen({ ed25519: true, output: file }, stdout.push, () => {});

    // Assess
    await expect(run).rejects.toThrow(/exists; refusing to overwrite/);
    expect(readFileSync(file, "utf8")).toBe("someone's key\n");
    expect(stdout.lines).toEqual([]);
  });

  it.each([
    [{ output: "x.jwk" }, /one of --ed25519/],
    [{ ed25519: true, x25519: true, output: "x.jwk" }, /one of --ed25519/],
    [{ ed25519: true }, /-o FILE/],
  ])("refuses %o as a usage error", async (opts, message) => {
    const run = runJoseKeyGen(
      opts,
      () => {},
      () => {},
    );
    await expect(run).rejects.toThrow(message);
    await expect(run).rejects.toBeInstanceOf(UsageError);
  });
});
