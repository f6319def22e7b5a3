// The real fwknop 2.6.10 client builds packets with -T in every mode it supports; `spaknock decode
// --json` must verify and decode each one to the fields the client put in. Keys are fresh random
// values per test and reach fwknop through its rc file, never its command line.

import { randomBytes } from "node:crypto";
import { beforeAll, describe, type ExpectStatic, it } from "vitest";
import { fwknopClientSkipReason, fwknopTestPacket } from "../helpers/fwknop-client.js";
import {
  type DecodedSpa,
  fwknopModeArgs,
  fwknopRcSettings,
  type InteropKeys,
  randomTextKey,
  runSpaknock,
  spaknockCliMissingReason,
  spaknockDecode,
  spaknockKeyArgs,
} from "../helpers/interop-spaknock-cli.js";

const skipReason = fwknopClientSkipReason();
const SERVER_IP = "198.18.0.1";
const ALLOW_IP = "198.18.0.2";
const USER = "alice";
const HMAC_TYPES = ["md5", "sha1", "sha256", "sha384", "sha512", "sha3_256", "sha3_512"] as const;
const DIGEST_TYPES = HMAC_TYPES;
const STREAM_AND_BLOCK_MODES = ["cbc", "cfb", "ofb", "ctr", "ecb"] as const;
// fwknop and spaknock run on the same clock; allow for a slow machine.
const CLOCK_SLACK_S = 5;

interface KeySpec {
  readonly kind: "base64" | "text";
  /** Rijndael key length in bytes (base64) or characters (text); default 32 / 24. */
  readonly keyLength?: number;
  /** HMAC key length; default 64 / 48. */
  readonly hmacKeyLength?: number;
  /** false: no HMAC. true: HMAC with the default type. A string: that HMAC type. */
  readonly hmac: boolean | string;
  readonly mode?: string;
}

function freshKeys(spec: KeySpec): InteropKeys {
  const key =
    spec.kind === "base64"
      ? randomBytes(spec.keyLength ?? 32).toString("base64")
      : randomTextKey(spec.keyLength ?? 24, randomBytes);
  let hmacKey: string | null = null;
  if (spec.hmac !== false) {
    // fwknop refuses an HMAC key equal to the encryption key; at these lengths that never happens.
    hmacKey =
      spec.kind === "base64"
        ? randomBytes(spec.hmacKeyLength ?? 64).toString("base64")
        : randomTextKey(spec.hmacKeyLength ?? 48, randomBytes);
  }
  return {
    kind: spec.kind,
    key,
    hmacKey,
    ...(typeof spec.hmac === "string" ? { hmacDigestType: spec.hmac } : {}),
    ...(spec.mode === undefined ? {} : { encryptionMode: spec.mode }),
  };
}

/** Build a packet with `fwknop -T` for `keys` and decode it with `spaknock decode --json`. */
async function roundTrip(
  keys: InteropKeys,
  args: readonly string[],
  extraRc: Readonly<Record<string, string>> = {},
): Promise<{ wire: string; decoded: DecodedSpa; sentAt: number }> {
  const sentAt = Math.floor(Date.now() / 1000);
  const wire = await fwknopTestPacket([...args, ...fwknopModeArgs(keys), "-D", SERVER_IP], {
    settings: { ...fwknopRcSettings(keys), ...extraRc },
  });
  return { wire, decoded: await spaknockDecode(wire, keys), sentAt };
}

function expectWellFormed(expect: ExpectStatic, decoded: DecodedSpa, sentAt: number): void {
  expect(decoded.randomValue).toMatch(/^\d{16}$/);
  expect(decoded.version).toBe("3.0.0");
  expect(decoded.serverAuth).toBeNull();
  expect(decoded.timestamp).toBeGreaterThanOrEqual(sentAt - CLOCK_SLACK_S);
  expect(decoded.timestamp).toBeLessThanOrEqual(sentAt + CLOCK_SLACK_S);
}

const ACCESS_ARGS = ["-A", "tcp/22", "-a", ALLOW_IP, "-U", USER] as const;
const PLAIN_ACCESS = {
  username: USER,
  messageType: 1,
  message: `${ALLOW_IP},tcp/22`,
  natAccess: null,
  // 0 is how decode reports "no client timeout field".
  clientTimeout: 0,
  digestType: "sha256",
};

describe.skipIf(skipReason !== undefined)(
  `fwknop client -> spaknock decode${skipReason === undefined ? "" : ` (skipped: ${skipReason})`}`,
  // Each test is two short-lived processes and shares nothing with the others.
  { concurrent: true },
  () => {
    beforeAll(() => {
      // A missing build is a broken setup, not a reason to skip.
      const missing = spaknockCliMissingReason();
      if (missing !== undefined) throw new Error(missing);
    });

    describe("every HMAC digest type", () => {
      const cases = HMAC_TYPES.flatMap((hmac) =>
        (["base64", "text"] as const).map((kind) => ({ hmac, kind })),
      );

      it.for(cases)("HMAC $hmac with $kind keys", async ({ hmac, kind }, { expect }) => {
        // Prepare
        // 128 bytes is what `fwknop -k --hmac-digest-type sha512` generates.
        const hmacKeyLength = kind === "base64" && hmac.endsWith("512") ? 128 : undefined;
        const keys = freshKeys({ kind, hmac, ...(hmacKeyLength ? { hmacKeyLength } : {}) });

        // Act
        const { decoded, sentAt } = await roundTrip(keys, ACCESS_ARGS);

        // Assess
        expect(decoded).toMatchObject(PLAIN_ACCESS);
        expectWellFormed(expect, decoded, sentAt);
      });
    });

    describe("every inner digest type (-m)", () => {
      it.for(DIGEST_TYPES)("-m %s", async (digest, { expect }) => {
        // Prepare
        const keys = freshKeys({ kind: "base64", hmac: true });

        // Act
        const { decoded, sentAt } = await roundTrip(keys, [...ACCESS_ARGS, "-m", digest]);

        // Assess
        expect(decoded).toMatchObject({ ...PLAIN_ACCESS, digestType: digest });
        expectWellFormed(expect, decoded, sentAt);
      });

      it.for(DIGEST_TYPES)(
        "--digest-type %s without HMAC, text key",
        async (digest, { expect }) => {
          // Prepare
          const keys = freshKeys({ kind: "text", hmac: false });

          // Act
          const { decoded } = await roundTrip(keys, [...ACCESS_ARGS, "--digest-type", digest]);

          // Assess
          expect(decoded).toMatchObject({ ...PLAIN_ACCESS, digestType: digest });
        },
      );
    });

    describe("every encryption mode (-M)", () => {
      const cases = STREAM_AND_BLOCK_MODES.flatMap((mode) => [
        { mode, kind: "base64" as const, hmac: true as const, label: "HMAC" },
        { mode, kind: "text" as const, hmac: false as const, label: "no HMAC" },
      ]);

      it.for(cases)("-M $mode, $kind keys, $label", async ({ mode, kind, hmac }, { expect }) => {
        // Prepare
        const keys = freshKeys({ kind, hmac, mode });

        // Act
        const { decoded, sentAt } = await roundTrip(keys, ACCESS_ARGS);

        // Assess
        expect(decoded).toMatchObject(PLAIN_ACCESS);
        expectWellFormed(expect, decoded, sentAt);
      });

      it("accepts fwknop's upper-case mode names (-M CTR)", async ({ expect }) => {
        // Prepare
        const keys = freshKeys({ kind: "base64", hmac: "sha512", mode: "CTR" });

        // Act
        const { decoded } = await roundTrip(keys, ACCESS_ARGS);

        // Assess
        expect(decoded).toMatchObject(PLAIN_ACCESS);
      });
    });

    describe("legacy IV mode (-M legacy, never with HMAC)", () => {
      const cases = [
        { kind: "text" as const, keyLength: 5, label: "5-char text key, '0'-padded" },
        { kind: "text" as const, keyLength: 16, label: "16-char text key, used as is" },
        { kind: "text" as const, keyLength: 30, label: "30-char text key, truncated" },
        { kind: "base64" as const, keyLength: 8, label: "8-byte binary key, '0'-padded" },
        { kind: "base64" as const, keyLength: 32, label: "32-byte binary key, truncated" },
      ];

      it.for(cases)("$label", async ({ kind, keyLength }, { expect }) => {
        // Prepare
        const keys = freshKeys({ kind, keyLength, hmac: false, mode: "legacy" });

        // Act
        const { decoded, sentAt } = await roundTrip(keys, ACCESS_ARGS);

        // Assess
        expect(decoded).toMatchObject(PLAIN_ACCESS);
        expectWellFormed(expect, decoded, sentAt);
      });
    });

    describe("key forms", () => {
      it.for([
        { kind: "base64" as const, keyLength: 1, label: "1-byte binary key" },
        { kind: "base64" as const, keyLength: 13, label: "13-byte binary key" },
        { kind: "text" as const, keyLength: 1, label: "1-char text key" },
        { kind: "text" as const, keyLength: 32, label: "32-char text key" },
      ])("$label with HMAC", async ({ kind, keyLength }, { expect }) => {
        // Prepare
        const keys = freshKeys({ kind, keyLength, hmac: true });

        // Act
        const { decoded } = await roundTrip(keys, ACCESS_ARGS);

        // Assess
        expect(decoded).toMatchObject(PLAIN_ACCESS);
      });

      it.for(["md5", "sha256", "sha3_512"])(
        "HMAC %s with a 128-byte binary key (longer than its block)",
        async (hmac, { expect }) => {
          // Prepare
          const keys = freshKeys({ kind: "base64", hmac, hmacKeyLength: 128 });

          // Act
          const { decoded } = await roundTrip(keys, ACCESS_ARGS);

          // Assess
          expect(decoded).toMatchObject(PLAIN_ACCESS);
        },
      );

      it("128-char text HMAC key (the client's maximum) with HMAC sha384", async ({ expect }) => {
        // Prepare
        const keys = freshKeys({ kind: "text", hmac: "sha384", hmacKeyLength: 128 });

        // Act
        const { decoded } = await roundTrip(keys, ACCESS_ARGS);

        // Assess
        expect(decoded).toMatchObject(PLAIN_ACCESS);
      });
    });

    describe("message contents", () => {
      const cases: readonly {
        readonly label: string;
        readonly args: readonly string[];
        readonly expected: Partial<DecodedSpa>;
      }[] = [
        {
          label: "multiple ports",
          args: ["-A", "tcp/22,udp/53,tcp/2222", "-a", ALLOW_IP, "-U", USER],
          expected: { messageType: 1, message: `${ALLOW_IP},tcp/22,udp/53,tcp/2222` },
        },
        {
          label: "-s (server uses the packet source: 0.0.0.0)",
          args: ["-A", "tcp/22", "-s", "-U", USER],
          expected: { messageType: 1, message: "0.0.0.0,tcp/22" },
        },
        {
          label: "client timeout --fw-timeout 45",
          args: [...ACCESS_ARGS, "--fw-timeout", "45"],
          expected: { messageType: 3, message: `${ALLOW_IP},tcp/22`, clientTimeout: 45 },
        },
        {
          label: "client timeout -f 65536 (fwknopd's maximum)",
          args: [...ACCESS_ARGS, "-f", "65536"],
          expected: { messageType: 3, clientTimeout: 65536 },
        },
        {
          label: "--fw-timeout 0 falls back to a plain access message",
          args: [...ACCESS_ARGS, "--fw-timeout", "0"],
          expected: { messageType: 1, clientTimeout: 0 },
        },
        {
          label: "NAT -N host:port",
          args: ["-A", "tcp/2222", "-a", ALLOW_IP, "-U", USER, "-N", "198.18.0.9:22"],
          expected: {
            messageType: 2,
            message: `${ALLOW_IP},tcp/2222`,
            natAccess: "198.18.0.9,22",
            clientTimeout: 0,
          },
        },
        {
          label: "NAT with client timeout",
          args: ["-A", "tcp/2222", "-a", ALLOW_IP, "-U", USER, "-N", "198.18.0.9:22", "-f", "120"],
          expected: { messageType: 4, natAccess: "198.18.0.9,22", clientTimeout: 120 },
        },
        {
          label: "--nat-local",
          args: [...ACCESS_ARGS, "--nat-local"],
          expected: { messageType: 5, natAccess: `${SERVER_IP},22`, clientTimeout: 0 },
        },
        {
          label: "--nat-local with client timeout",
          args: [...ACCESS_ARGS, "--nat-local", "-f", "45"],
          expected: { messageType: 6, natAccess: `${SERVER_IP},22`, clientTimeout: 45 },
        },
        {
          label: "command message -C",
          args: ["-C", "echo hello world", "-a", ALLOW_IP, "-U", USER],
          expected: {
            messageType: 0,
            message: `${ALLOW_IP},echo hello world`,
            natAccess: null,
            clientTimeout: 0,
          },
        },
        {
          label: "command message ignores --fw-timeout",
          args: ["-C", "uptime", "-a", ALLOW_IP, "-U", USER, "-f", "30"],
          expected: { messageType: 0, message: `${ALLOW_IP},uptime`, clientTimeout: 0 },
        },
        {
          label: "username with a space and punctuation",
          args: ["-A", "tcp/22", "-a", ALLOW_IP, "-U", "svc deploy.01@ops"],
          expected: { username: "svc deploy.01@ops" },
        },
        {
          label: "29-char username (the client's -U maximum)",
          args: ["-A", "tcp/22", "-a", ALLOW_IP, "-U", "u".repeat(29)],
          expected: { username: "u".repeat(29) },
        },
      ];

      it.for(cases)("$label", async ({ args, expected }, { expect }) => {
        // Prepare
        const keys = freshKeys({ kind: "base64", hmac: true });

        // Act
        const { decoded, sentAt } = await roundTrip(keys, args);

        // Assess
        expect(decoded).toMatchObject({ username: USER, digestType: "sha256", ...expected });
        expectWellFormed(expect, decoded, sentAt);
      });

      it("takes the username from the rc file's SPOOF_USER", async ({ expect }) => {
        // Prepare
        const keys = freshKeys({ kind: "text", hmac: "sha1" });

        // Act
        const { decoded } = await roundTrip(keys, ["-A", "tcp/22", "-a", ALLOW_IP], {
          SPOOF_USER: "carol",
        });

        // Assess
        expect(decoded).toMatchObject({ ...PLAIN_ACCESS, username: "carol" });
      });

      it("combines NAT, client timeout, sha3_512 digest, HMAC sha3_256 and CTR", async ({
        expect,
      }) => {
        // Prepare
        const keys = freshKeys({ kind: "base64", hmac: "sha3_256", mode: "ctr" });

        // Act
        const { decoded } = await roundTrip(keys, [
          "-A",
          "tcp/22,udp/53",
          "-a",
          ALLOW_IP,
          "-U",
          USER,
          "-m",
          "sha3_512",
          "-N",
          "198.18.0.9:2222",
          "-f",
          "45",
        ]);

        // Assess
        expect(decoded).toMatchObject({
          username: USER,
          messageType: 4,
          message: `${ALLOW_IP},tcp/22,udp/53`,
          natAccess: "198.18.0.9,2222",
          clientTimeout: 45,
          digestType: "sha3_512",
        });
      });
    });

    describe("rejections", () => {
      async function fwknopPacket(keys: InteropKeys): Promise<string> {
        return fwknopTestPacket([...ACCESS_ARGS, ...fwknopModeArgs(keys), "-D", SERVER_IP], {
          settings: fwknopRcSettings(keys),
        });
      }

      async function decodeFailure(wire: string, keys: InteropKeys) {
        const result = await runSpaknock(["decode", wire, ...spaknockKeyArgs(keys), "--json"]);
        return { ...result, errorCode: /^spaknock: ([A-Z_]+): /.exec(result.stderr)?.[1] };
      }

      it("decodes a 100-char command message (wire still under 400 chars)", async ({ expect }) => {
        // Prepare
        const keys = freshKeys({ kind: "base64", hmac: true });
        const command = "x".repeat(100);

        // Act
        const { wire, decoded } = await roundTrip(keys, ["-C", command, "-a", ALLOW_IP]);

        // Assess
        expect(wire.length).toBeLessThan(400);
        expect(decoded).toMatchObject({ messageType: 0, message: `${ALLOW_IP},${command}` });
      });

      it("treats a 400+ char fwknop packet as GPG and refuses it, as fwknopd does", async ({
        expect,
      }) => {
        // Prepare
        const keys = freshKeys({ kind: "base64", hmac: true });
        const wire = await fwknopTestPacket(
          ["-C", "y".repeat(120), "-a", ALLOW_IP, "-U", USER, "-D", SERVER_IP],
          { settings: fwknopRcSettings(keys) },
        );

        // Act
        const result = await decodeFailure(wire, keys);

        // Assess
        expect(wire.length).toBeGreaterThanOrEqual(400);
        expect(result.code).toBe(1);
        expect(result.errorCode, result.stderr).toBe("SPA_GPG_UNSUPPORTED");
      });

      it("refuses a packet whose HMAC was made with another key", async ({ expect }) => {
        // Prepare
        const keys = freshKeys({ kind: "base64", hmac: true });
        const wire = await fwknopPacket(keys);
        const wrong = { ...keys, hmacKey: randomBytes(64).toString("base64") };

        // Act
        const result = await decodeFailure(wire, wrong);

        // Assess
        expect(result.code).toBe(1);
        expect(result.stdout).toBe("");
        expect(result.errorCode, result.stderr).toBe("SPA_HMAC_MISMATCH");
        expect(result.stderr).not.toContain(wrong.hmacKey);
      });

      it("refuses a packet whose HMAC type differs from the one given", async ({ expect }) => {
        // Prepare
        const keys = freshKeys({ kind: "base64", hmac: "sha256" });
        const wire = await fwknopPacket(keys);

        // Act
        const result = await decodeFailure(wire, { ...keys, hmacDigestType: "sha3_256" });

        // Assess
        expect(result.code).toBe(1);
        expect(result.errorCode, result.stderr).toBe("SPA_HMAC_MISMATCH");
      });

      it("refuses a packet encrypted with another Rijndael key", async ({ expect }) => {
        // Prepare
        const keys = freshKeys({ kind: "text", hmac: false });
        const wire = await fwknopPacket(keys);

        // Act
        const result = await decodeFailure(wire, { ...keys, key: `${keys.key}x` });

        // Assess
        expect(result.code).toBe(1);
        expect(result.errorCode, result.stderr).toBe("SPA_DECRYPT_FAILED");
      });

      it("refuses a CFB packet decoded as CBC", async ({ expect }) => {
        // Prepare
        const keys = freshKeys({ kind: "base64", hmac: true, mode: "cfb" });
        const wire = await fwknopPacket(keys);
        const { encryptionMode: _cfb, ...cbcKeys } = keys;

        // Act
        const result = await decodeFailure(wire, cbcKeys);

        // Assess
        expect(result.code).toBe(1);
        expect(result.errorCode, result.stderr).toMatch(/^SPA_/);
      });

      it("refuses an HMAC-authenticated packet decoded without an HMAC key", async ({ expect }) => {
        // Prepare
        const keys = freshKeys({ kind: "base64", hmac: true });
        const wire = await fwknopPacket(keys);

        // Act
        const result = await decodeFailure(wire, { ...keys, hmacKey: null });

        // Assess
        expect(result.code).toBe(1);
        expect(result.errorCode, result.stderr).toMatch(/^SPA_/);
      });
    });
  },
);
