/**
 * "HMAC is checked before any decryption" (docs/protocol.md section 3), proved by watching
 * node:crypto: when the HMAC is wrong, no decipher is created and no key is derived.
 */
import * as crypto from "node:crypto";
import { beforeEach, describe, expect, it, vi } from "vitest";
import { openSpaPacket } from "../../core/index.js";
import {
  buildWith,
  keysWith,
  noHmacKeys,
  OTHER_HMAC_KEY_TEXT,
  OTHER_RIJNDAEL_KEY_TEXT,
  spaCodeOf,
  textKey,
} from "../helpers/core-packets.js";

// Spying on an ESM namespace of a builtin is not possible, so the module is replaced by one whose
// functions call through to the real ones while recording their calls.
vi.mock("node:crypto", async (importOriginal) => {
  const real = await importOriginal<typeof import("node:crypto")>();
  return {
    ...real,
    createDecipheriv: vi.fn(real.createDecipheriv),
    createHmac: vi.fn(real.createHmac),
    createHash: vi.fn(real.createHash),
  };
});

const createDecipheriv = vi.mocked(crypto.createDecipheriv);
const createHmac = vi.mocked(crypto.createHmac);
const createHash = vi.mocked(crypto.createHash);

const KEYS = keysWith();
const PACKET = buildWith(KEYS);

/** Calls of createHash("md5"): EVP_BytesToKey's key derivation, the first step of decryption. */
function md5Calls(): number {
  return createHash.mock.calls.filter(([name]) => name === "md5").length;
}

beforeEach(() => {
  vi.clearAllMocks();
});

describe("HMAC failure happens without decrypting", () => {
  it("the mock is the module core/ uses (a correct packet creates one decipher)", () => {
    // Act
    const message = openSpaPacket(PACKET.wire, KEYS);
    // Assess
    expect(message.username).toBe("alice");
    expect(createHmac).toHaveBeenCalledTimes(1);
    expect(createDecipheriv).toHaveBeenCalledTimes(1);
    expect(md5Calls()).toBe(3);
    // The tag was computed before the decipher existed.
    const hmacOrder = createHmac.mock.invocationCallOrder[0] as number;
    const decipherOrder = createDecipheriv.mock.invocationCallOrder[0] as number;
    expect(hmacOrder).toBeLessThan(decipherOrder);
  });

  it.each([
    ["wrong HMAC key", PACKET.wire, keysWith({ hmacKey: textKey(OTHER_HMAC_KEY_TEXT) })],
    ["wrong HMAC type", PACKET.wire, keysWith({ hmacType: "sha512" })],
    ["tampered ciphertext", `${PACKET.wire.slice(0, 50)}A${PACKET.wire.slice(51)}`, KEYS],
    ["tampered tag", `${PACKET.wire.slice(0, -1)}${PACKET.wire.endsWith("A") ? "B" : "A"}`, KEYS],
    ["HMAC-less packet", buildWith(noHmacKeys()).wire, KEYS],
  ])("%s: SPA_HMAC_MISMATCH, and createDecipheriv is never called", (_name, wire, keys) => {
    // Act
    const code = spaCodeOf(() => openSpaPacket(wire, keys));
    // Assess
    expect(code).toBe("SPA_HMAC_MISMATCH");
    expect(createHmac).toHaveBeenCalledTimes(1);
    expect(createDecipheriv).not.toHaveBeenCalled();
    expect(md5Calls()).toBe(0);
  });

  it("too short for the tag: refused before even the HMAC is computed", () => {
    // Act
    const code = spaCodeOf(() => openSpaPacket(PACKET.wire.slice(0, 60), KEYS));
    // Assess
    expect(code).toBe("SPA_HMAC_TOO_SHORT");
    expect(createHmac).not.toHaveBeenCalled();
    expect(createDecipheriv).not.toHaveBeenCalled();
  });

  it("right HMAC but wrong Rijndael key: decryption is attempted, then fails", () => {
    // Act
    const code = spaCodeOf(() =>
      openSpaPacket(PACKET.wire, keysWith({ key: textKey(OTHER_RIJNDAEL_KEY_TEXT) })),
    );
    // Assess
    expect(code).toBe("SPA_DECRYPT_FAILED");
    expect(createDecipheriv).toHaveBeenCalledTimes(1);
  });
});
