import { describe, expect, it } from "vitest";
import {
  buildSpaPacket,
  decodePlaintext,
  deriveKeyAndIv,
  openSpaPacket,
  parseDigestType,
  type SpaMessageInput,
} from "../../core/index.js";
import { keysOf, vectors } from "../helpers/vectors.js";

describe("fwknop 2.6.10 test vectors", () => {
  it("has all sixteen vectors", () => {
    expect(vectors).toHaveLength(16);
  });

  describe.each(vectors)("$id", (v) => {
    it("decodes to the fields fwknop printed", () => {
      // Act
      const message = openSpaPacket(v.wire, keysOf(v));
      // Assess
      expect(
        `${[
          message.randomValue,
          Buffer.from(message.username).toString("base64").replace(/=+$/, ""),
        ].join(":")}`,
      ).toBe(v.encoded.split(":").slice(0, 2).join(":"));
      expect(message.timestamp).toBe(v.timestamp);
      expect(message.version).toBe("3.0.0");
      expect(message.digest).toBe(v.digest);
      expect(message.digestType).toBe(parseDigestType(v.digest_type));
      const user = v.cmd.match(/-U (\S+)/)?.[1];
      expect(message.username).toBe(user);
      const access = v.cmd.match(/-A (\S+)/)?.[1];
      if (access) expect(message.message.split(",").slice(1).join(",")).toBe(access);
      const timeout = v.cmd.match(/--fw-timeout (\d+)/)?.[1];
      expect(message.clientTimeout).toBe(timeout ? Number(timeout) : 0);
    });

    it("derives the salt's key and IV as openssl did", () => {
      const raw = Buffer.from(
        `U2FsdGVkX1${v.wire.slice(0, v.hmac ? -v.hmac.length : undefined)}`,
        "base64",
      );
      const salt = raw.subarray(8, 16);
      expect(salt.toString("hex")).toBe(v.salt);
      const keys = keysOf(v);
      const material =
        keys.mode === "legacy"
          ? Buffer.concat([Buffer.from(keys.key), Buffer.alloc(16 - keys.key.length, "0")])
          : Buffer.from(keys.key);
      const derived = deriveKeyAndIv(material, salt);
      expect(derived.key.toString("hex")).toBe(v.aes_key);
      expect(derived.iv.toString("hex")).toBe(v.iv);
    });

    it("re-encrypts its plaintext with its salt to the identical wire string", () => {
      // Prepare
      const decoded = decodePlaintext(`${v.encoded}:${v.digest}`);
      const input: SpaMessageInput = {
        randomValue: decoded.randomValue,
        username: decoded.username,
        timestamp: decoded.timestamp,
        messageType: decoded.messageType,
        message: decoded.message,
        natAccess: decoded.natAccess,
        clientTimeout: decoded.clientTimeout,
        digestType: decoded.digestType,
      };
      // Act
      const built = buildSpaPacket(input, keysOf(v), Buffer.from(v.salt, "hex"));
      // Assess
      expect(built.encoded).toBe(v.encoded);
      expect(built.digest).toBe(v.digest);
      expect(built.hmac).toBe(v.hmac);
      expect(built.wire).toBe(v.wire);
    });
  });
});
