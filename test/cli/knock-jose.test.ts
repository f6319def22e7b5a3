import { createSocket, type Socket } from "node:dgram";
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { compactDecrypt, compactVerify, decodeProtectedHeader } from "jose";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { applyRc, loadRcContext, rcValuesFor, saveRcStanza } from "../../cli/client-settings.js";
import { knockWithOptions, planKnock } from "../../cli/commands/knock.js";
import { checkJoseOptions, type JoseKeys, planJoseKnock } from "../../cli/commands/knock-jose.js";
import { UsageError } from "../../cli/exit-codes.js";
import { importPrivateJwk, importPublicJwk } from "../../core/index.js";
import { type TestJwkPair, testKeyPair } from "../helpers/jose-packets.js";

/** The claims of a JOSE packet, read with `jose` alone (decrypt, then verify). */
async function claimsOf(
  wire: string,
  server: TestJwkPair,
  signer: TestJwkPair,
): Promise<Record<string, unknown>> {
  const { plaintext } = await compactDecrypt(wire, server.privateKey);
  const { payload } = await compactVerify(new TextDecoder().decode(plaintext), signer.publicKey);
  return JSON.parse(new TextDecoder().decode(payload)) as Record<string, unknown>;
}

function collect(): { lines: string[]; push: (line: string) => void } {
  const lines: string[] = [];
  return { lines, push: (line) => lines.push(line) };
}

const fixedEnv = {
  now: () => 1_800_000_000_000,
  randomBytes: (n: number) => new Uint8Array(n).fill(7),
  defaultUsername: () => "alice",
};

describe("JOSE-profile knocks", () => {
  const dir = mkdtempSync(join(tmpdir(), "spk-jose-knock-"));
  let signer: TestJwkPair;
  let server: TestJwkPair;
  let signingFile: string;
  let serverFile: string;
  let serverPrivateFile: string;
  /** The two keys as the client imports them, for planJoseKnock. */
  let keys: JoseKeys;

  beforeAll(async () => {
    signer = await testKeyPair("Ed25519");
    server = await testKeyPair("X25519");
    keys = {
      signingKey: await importPrivateJwk(JSON.stringify(signer.privateJwk), "Ed25519", "t"),
      serverKey: await importPublicJwk(JSON.stringify(server.publicJwk), "X25519", "t"),
    };
    signingFile = join(dir, "me.jwk");
    serverFile = join(dir, "server.pub.jwk");
    serverPrivateFile = join(dir, "server.jwk");
    writeFileSync(signingFile, JSON.stringify(signer.privateJwk), { mode: 0o600 });
    writeFileSync(serverFile, JSON.stringify(server.publicJwk), { mode: 0o644 });
    writeFileSync(serverPrivateFile, JSON.stringify(server.privateJwk), { mode: 0o600 });
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  const base = () => ({
    rcFile: false as const,
    destination: "127.0.0.1",
    access: "tcp/22",
    signingKey: signingFile,
    serverKey: serverFile,
  });

  it("saves SIGNING_KEY_FILE and SERVER_KEY_FILE with --save-rc-stanza and reads them back", () => {
    // Prepare
    const rcFile = join(dir, "fwknoprc");
    const values = rcValuesFor({ ...base(), allowIp: "2001:db8::5" });

    // Act
    saveRcStanza(rcFile, "jose", values, false);
    const rc = loadRcContext({ rcFile, namedConfig: "jose" });
    const opts = applyRc({}, rc.values);

    // Assess: the keywords are known (no warning), the paths absolute, nothing else invented.
    expect(rc.warnings).toEqual([]);
    expect(readFileSync(rcFile, "utf8")).toMatch(/\nSIGNING_KEY_FILE +\/.*me\.jwk\n/);
    expect(opts).toMatchObject({
      signingKey: signingFile,
      serverKey: serverFile,
      allowIp: "2001:db8::5",
      destination: "127.0.0.1",
    });
    expect(opts.keyBase64Rijndael).toBeUndefined();
    expect(values.has("USE_HMAC")).toBe(false);
  });

  it("a command-line key file wins over the stanza's", () => {
    const rc = new Map([["SIGNING_KEY_FILE", "/etc/other.jwk"]]);
    expect(applyRc({ signingKey: "mine.jwk" }, rc).signingKey).toBe("mine.jwk");
    expect(applyRc({}, rc).signingKey).toBe("/etc/other.jwk");
  });

  it.each([
    [{ serverKey: undefined }, /--signing-key needs --server-key/],
    [{ signingKey: undefined }, /--server-key \(SERVER_KEY_FILE\) is for JOSE/],
    [{ keyBase64Rijndael: "AAAA" }, /ambiguous: .*--key-base64-rijndael/],
    [{ getHmacKey: "hmac.key" }, /ambiguous: .*--get-hmac-key/],
    [{ useHmac: true }, /ambiguous: .*--use-hmac/],
    [{ serverCmd: "echo" }, /^-C: /],
    [{ natAccess: "10.0.0.2:22" }, /^-N\/--nat-local/],
    [{ natLocal: true }, /^-N\/--nat-local/],
    [{ randPort: true }, /^-r: /],
  ])("refuses %o beside a signing key", (extra, message) => {
    const opts = { ...base(), ...extra };
    expect(() => checkJoseOptions(opts, opts)).toThrow(message);
  });

  it("ignores an rc [default]'s DIGEST_TYPE but not an rc key beside a signing key", () => {
    const cli = base();
    expect(() => checkJoseOptions(cli, { ...cli, digestType: "sha512" })).not.toThrow();
    expect(() => checkJoseOptions(cli, { ...cli, keyRijndael: "from-rc" })).toThrow(
      /ambiguous: .*KEY\)/,
    );
  });

  it("-s sends 0.0.0.0 to an IPv4 server and :: to an IPv6 one", () => {
    const opts = { ...base(), sourceIp: true };
    expect(planJoseKnock(opts, keys, 4, fixedEnv).request.allowIp).toBe("0.0.0.0");
    const v6 = planJoseKnock({ ...opts, destination: "2001:db8:5a::1" }, keys, 6, fixedEnv);
    expect(v6.request.allowIp).toBe("::");
    expect(v6.server).toBe("2001:db8:5a::1");
  });

  it("plans -a (canonical IPv6), -A, -f, -U, -p and the time offset", () => {
    const plan = planJoseKnock(
      {
        ...base(),
        allowIp: "2001:DB8:0:0::7",
        access: "tcp/22, udp/53",
        fwTimeout: "90",
        spoofUser: "bob",
        serverPort: "40001",
        timeOffsetMinus: "5m",
      },
      keys,
      4,
      fixedEnv,
    );
    expect(plan.request).toEqual({
      username: "bob",
      timestamp: 1_800_000_000 - 300,
      allowIp: "2001:db8::7",
      ports: [
        { proto: "tcp", port: 22 },
        { proto: "udp", port: 53 },
      ],
      clientTimeout: 90,
    });
    expect(plan.port).toBe(40001);
    expect(Buffer.from(plan.jtiBytes)).toEqual(Buffer.alloc(16, 7));
    expect(() => planJoseKnock({ ...base(), allowIp: "2001:db8::/64" }, keys, 4, fixedEnv)).toThrow(
      /not an IPv4 or IPv6 address/,
    );
    expect(() =>
      planJoseKnock({ ...base(), allowIp: "::", serverProto: "http" }, keys, 4, fixedEnv),
    ).toThrow(/-P http/);
  });

  it("fwknop-format packets refuse an IPv6 -a and say what would carry it", () => {
    const fwknopKeys = {
      key: Buffer.from("k"),
      mode: "cbc",
      hmacKey: null,
      hmacType: "sha256",
    } as const;
    expect(() =>
      planKnock(
        { destination: "127.0.0.1", access: "tcp/22", allowIp: "2001:db8::7" },
        fwknopKeys,
        fixedEnv,
      ),
    ).toThrow(/IPv4 addresses only.*--signing-key/);
    const plan = planKnock(
      { destination: "2001:db8:5a::1", access: "tcp/22", allowIp: "198.18.0.2" },
      fwknopKeys,
      fixedEnv,
    );
    expect(plan.server).toBe("2001:db8:5a::1");
    expect(plan.input.message).toBe("198.18.0.2,tcp/22");
  });

  it("-T -v prints the fields (never a key) and the datagram as the last line", async () => {
    // Prepare
    const stdout = collect();
    const saved = join(dir, "saved.spa");

    // Act
    const result = await knockWithOptions(
      {
        ...base(),
        allowIp: "198.18.0.2",
        fwTimeout: "30",
        test: true,
        verbose: true,
        savePacket: saved,
      },
      stdout.push,
      () => {},
    );

    // Assess
    const text = stdout.lines.join("\n");
    const wire = stdout.lines.at(-1) as string;
    expect(result).toMatchObject({ profile: "jose", wire });
    expect(readFileSync(saved, "utf8")).toBe(`${wire}\n`);
    expect(text).toContain("Profile: jose");
    expect(text).toContain(`Key Id: ${signer.kid}`);
    expect(text).toContain("Allow IP: 198.18.0.2");
    expect(text).toContain("Client Timeout: 30");
    expect(text).toMatch(/JTI: [A-Za-z0-9_-]{22}\n/);
    expect(text).toContain(`Size: ${wire.length} bytes`);
    expect(text).not.toContain(signer.privateJwk.d);
    expect(decodeProtectedHeader(wire)).toMatchObject({ kid: server.kid, typ: "spa+jwe" });
    const claims = await claimsOf(wire, server, signer);
    expect(claims).toMatchObject({ ip: "198.18.0.2", acc: ["tcp/22"], tmo: 30, aud: server.kid });
    expect(text).toContain(`JTI: ${claims.jti}`);
  });

  it("warns when the signing key file is readable by others, never printing the key", async () => {
    // Prepare
    const loose = join(dir, "loose.jwk");
    writeFileSync(loose, JSON.stringify(signer.privateJwk));
    chmodSync(loose, 0o644);
    const warnings = collect();

    // Act
    await knockWithOptions(
      { ...base(), signingKey: loose, allowIp: "198.18.0.2", test: true },
      () => {},
      warnings.push,
    );

    // Assess
    expect(warnings.lines).toEqual([
      `${loose} is readable by others (mode 644); run chmod 600 ${loose}`,
    ]);
  });

  it("refuses a private JWK as the server key, and a public one as the signing key", async () => {
    const run = (extra: object) =>
      knockWithOptions(
        { ...base(), allowIp: "198.18.0.2", test: true, ...extra },
        () => {},
        () => {},
      );
    await expect(run({ serverKey: serverPrivateFile })).rejects.toThrow(/holds a private key/);
    await expect(run({ signingKey: serverFile })).rejects.toThrow(/not an Ed25519 key/);
    await expect(run({ signingKey: join(dir, "missing.jwk") })).rejects.toThrow(
      /--signing-key: cannot read .*ENOENT/,
    );
  });

  it("refuses a username the profile cannot carry as a usage error", async () => {
    const run = knockWithOptions(
      { ...base(), allowIp: "198.18.0.2", spoofUser: "a,b", test: true },
      () => {},
      () => {},
    );
    await expect(run).rejects.toBeInstanceOf(UsageError);
  });

  describe("over UDP to an IPv6 server", () => {
    let listener: Socket;
    let port: number;
    beforeAll(async () => {
      listener = createSocket("udp6");
      await new Promise<void>((resolve) => listener.bind(0, "::1", resolve));
      port = listener.address().port;
    });
    afterAll(() => listener.close());

    it("sends one datagram from ::1 asking, with -s, for its source address (::)", async () => {
      // Prepare
      const received = new Promise<{ data: Buffer; from: string }>((resolve) => {
        listener.once("message", (data, rinfo) => resolve({ data, from: rinfo.address }));
      });

      // Act
      const result = await knockWithOptions(
        { ...base(), destination: "::1", serverPort: String(port), sourceIp: true },
        () => {},
        () => {},
      );

      // Assess
      const { data, from } = await received;
      expect(from).toBe("::1");
      expect(data.toString("latin1")).toBe(result.wire);
      const claims = await claimsOf(result.wire, server, signer);
      expect(claims.ip).toBe("::");
    });

    it("sends an fwknop-format packet (IPv4 allow-IP) to ::1 as well", async () => {
      const received = new Promise<Buffer>((resolve) => {
        listener.once("message", (data) => resolve(data));
      });
      const result = await knockWithOptions(
        {
          rcFile: false,
          destination: "::1",
          serverPort: String(port),
          access: "tcp/22",
          allowIp: "198.18.0.2",
          keyBase64Rijndael: Buffer.alloc(32, 1).toString("base64"),
          keyBase64Hmac: Buffer.alloc(64, 2).toString("base64"),
        },
        () => {},
        () => {},
      );
      expect(result.profile).toBe("fwknop");
      expect((await received).toString("latin1")).toBe(result.wire);
    });
  });
});
