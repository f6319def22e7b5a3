// SPA_SHAPE is what spaknockd's nftables table lets through to the daemon (the `spa_shape`
// chain). A packet it does not describe is dropped in the kernel, so the fear here is a valid
// packet of some size, digest, mode or profile falling outside it: every packet the real fwknop
// client made, every packet our encoder makes across all digests, modes, message types and
// lengths, and JOSE packets from the smallest to the largest, must have the shape.
import { describe, expect, it } from "vitest";
import {
  DIGEST_TYPES,
  ENCRYPTION_MODES,
  hasSpaShape,
  MIN_GNUPG_MSG_SIZE,
  openSpaPacket,
  precheckDatagram,
  SPA_SHAPE,
  type SpaKeys,
  type SpaMessageInput,
} from "../../core/index.js";
import { ACCESS_INPUT, buildWith, INPUT_BY_TYPE, keysWith } from "../helpers/core-packets.js";
import { buildWithJose, testKeyPair } from "../helpers/jose-packets.js";
import { vectors } from "../helpers/vectors.js";

const bytes = (text: string) => Buffer.from(text, "latin1");

/** Every key setting a stanza can have: each digest for the HMAC in each mode, and no HMAC. */
const KEY_SETTINGS: SpaKeys[] = [
  ...ENCRYPTION_MODES.filter((m) => m !== "legacy").flatMap((mode) =>
    DIGEST_TYPES.map((hmacType) => keysWith({ mode, hmacType })),
  ),
  ...ENCRYPTION_MODES.map((mode) => keysWith({ mode, hmacKey: null })),
];

/** Inputs from the shortest message to ones too long for a Rijndael packet. */
function inputsOfEveryLength(): SpaMessageInput[] {
  const out: SpaMessageInput[] = [];
  for (const base of Object.values(INPUT_BY_TYPE)) {
    for (let userLength = 1; userLength <= 48; userLength += 1) {
      for (const digestType of DIGEST_TYPES) {
        out.push({ ...base, username: "u".repeat(userLength), digestType });
      }
    }
  }
  for (let ports = 1; ports <= 12; ports++) {
    const list = Array.from({ length: ports }, (_, i) => `tcp/${60000 + i}`).join(",");
    out.push({ ...ACCESS_INPUT, message: `198.18.0.2,${list}` });
  }
  return out;
}

describe("SPA_SHAPE, the kernel's first look", () => {
  it("lists a few dozen fwknop lengths, all within the precheck's bounds", () => {
    expect(SPA_SHAPE.fwknopLengths.length).toBeGreaterThan(20);
    expect(SPA_SHAPE.fwknopLengths.length).toBeLessThan(40);
    expect(Math.min(...SPA_SHAPE.fwknopLengths)).toBe(140);
    expect(Math.max(...SPA_SHAPE.fwknopLengths)).toBeLessThan(MIN_GNUPG_MSG_SIZE);
    expect(String.fromCharCode(...SPA_SHAPE.fwknopFirstBytes)).toBe("+/89");
  });

  it.each(vectors)("has the shape of the real fwknop client's packet $id", (v) => {
    expect(hasSpaShape(bytes(v.wire))).toBe(true);
  });

  it("has the shape of every packet the encoder makes, every digest, mode, type and length", () => {
    let checked = 0;
    const lengths = new Set<number>();
    for (const keys of KEY_SETTINGS) {
      for (const [i, input] of inputsOfEveryLength().entries()) {
        const { wire } = buildWith(keys, input, i);
        // Only packets a receiver accepts (GPG-sized Rijndael data is refused anyway).
        if (wire.length >= MIN_GNUPG_MSG_SIZE) continue;
        expect(openSpaPacket(wire, keys).username).toBe(input.username);
        if (!hasSpaShape(bytes(wire))) {
          throw new Error(`${wire.length}-character packet (${keys.mode}) lacks the shape`);
        }
        lengths.add(wire.length);
        checked++;
      }
    }
    expect(checked).toBeGreaterThan(10_000);
    // The packets reach most of the listed lengths: the list is not loose.
    expect(lengths.size).toBeGreaterThan(SPA_SHAPE.fwknopLengths.length * 0.75);
  });

  it("has the shape of JOSE packets from the smallest to the largest", async () => {
    const signer = await testKeyPair("Ed25519");
    const server = await testKeyPair("X25519");
    const now = Math.floor(Date.now() / 1000);
    const smallest = await buildWithJose({ signer, server, username: "a", now });
    const largest = await buildWithJose({
      signer,
      server,
      username: "u".repeat(48),
      now,
      ip: "2001:db8:ffff:ffff:ffff:ffff:ffff:ffff",
      acc: ["tcp/65535", "udp/65534", "tcp/65533", "udp/65532", "tcp/65531", "tcp/65530"],
      tmo: 86_400,
    });
    for (const packet of [smallest, largest]) {
      expect(precheckDatagram(bytes(packet)).profile).toBe("jose");
      expect(hasSpaShape(bytes(packet))).toBe(true);
    }
  });

  it("does not have the shape of junk: wrong first byte, wrong length, out of bounds", () => {
    const base64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let shaped = 0;
    for (let length = 140; length <= 1500; length++) {
      const junk = Array.from({ length }, (_, i) => base64[(i * 7) % 64]).join("");
      expect(hasSpaShape(bytes(`A${junk.slice(1)}`))).toBe(false);
      if (hasSpaShape(bytes(`8${junk.slice(1)}`))) shaped++;
      expect(hasSpaShape(bytes(`eyJ${junk.slice(3)}`))).toBe(true);
    }
    expect(shaped).toBe(SPA_SHAPE.fwknopLengths.length);
    expect(hasSpaShape(bytes(`eyJ${"A".repeat(136)}`))).toBe(false); // 139 bytes
    expect(hasSpaShape(bytes(`eyJ${"A".repeat(1498)}`))).toBe(false); // 1501 bytes
  });
});
