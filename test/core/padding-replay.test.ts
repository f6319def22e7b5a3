// A packet without an HMAC must have exactly one wire form. When the plaintext fills whole AES
// blocks, PKCS#7 adds a block of sixteen 0x10 bytes; a receiver that tolerated a missing pad (as
// libfko does) would accept the packet with that last block cut off, under a new replay digest,
// so a captured knock could be replayed for another address. These tests cut blocks off in every
// mode and check that nothing but the packet as the client built it is accepted.
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  buildSpaPacket,
  ENCRYPTION_MODES,
  encodePlaintext,
  knock,
  openSpaPacket,
  RIJNDAEL_B64_PREFIX,
  type SpaMessageInput,
} from "../../core/index.js";
import { ACCESS_INPUT, noHmacKeys, saltOf, spaCodeOf } from "../helpers/core-packets.js";
import { MemoryFirewall, MemoryReplay, stanza } from "../helpers/knock-fakes.js";

const NOW = ACCESS_INPUT.timestamp;

/** The plaintext (`E:D`) length of an input. */
const plaintextLength = (input: SpaMessageInput) => encodePlaintext(input).plaintext.length;

/** An access input whose plaintext is a whole number of AES blocks (the username is varied). */
function wholeBlockInput(message = ACCESS_INPUT.message): SpaMessageInput {
  for (let n = 1; n < 40; n++) {
    const input = { ...ACCESS_INPUT, message, username: "u".repeat(n) };
    if (plaintextLength(input) % 16 === 0) return input;
  }
  throw new Error("no username length gives a whole-block plaintext");
}

/** The wire string with its last `blocks` cipher blocks removed, re-encoded canonically. */
function withoutLastBlocks(wire: string, blocks: number): string {
  const raw = Buffer.from(RIJNDAEL_B64_PREFIX + wire, "base64");
  const cut = raw.subarray(0, raw.length - 16 * blocks);
  return cut.toString("base64").replace(/=+$/, "").slice(RIJNDAEL_B64_PREFIX.length);
}

describe("PKCS#7 padding is required (one wire form per HMAC-less packet)", () => {
  it.each(ENCRYPTION_MODES)(
    "%s: a whole-block plaintext truncated by its pad block is refused",
    (mode) => {
      // Prepare
      const keys = noHmacKeys(mode);
      const input = wholeBlockInput();
      const built = buildSpaPacket(input, keys, saltOf(7));
      const truncated = withoutLastBlocks(built.wire, 1);
      // Act / Assess: the packet as built opens; the truncated form is refused outright
      expect(openSpaPacket(built.wire, keys).username).toBe(input.username);
      expect(truncated.length).toBeLessThan(built.wire.length);
      expect(spaCodeOf(() => openSpaPacket(truncated, keys))).toBe("SPA_DECRYPT_FAILED");
    },
  );

  it.each(ENCRYPTION_MODES)(
    "%s: the truncated copy of a granted packet opens nothing",
    async (mode) => {
      // Prepare: the engineer's packet is granted; an attacker replays it shortened from elsewhere
      const keys = noHmacKeys(mode);
      const replay = new MemoryReplay();
      const firewall = new MemoryFirewall();
      const ports = { stanzas: [stanza({ keys })], replay, firewall };
      const built = buildSpaPacket(wholeBlockInput("0.0.0.0,tcp/22"), keys, saltOf(8));
      const at = (wire: string, sourceIp: string) => ({
        payload: Buffer.from(wire, "latin1"),
        sourceIp,
        sourcePort: 40000,
        destinationIp: null,
        receivedAt: NOW * 1000,
      });
      // Act
      const first = await knock(at(built.wire, "198.18.0.2"), ports, { maxPacketAge: 120 });
      const replayed = await knock(at(withoutLastBlocks(built.wire, 1), "198.18.0.66"), ports, {
        maxPacketAge: 120,
      });
      // Assess
      expect(first.granted).toBe(true);
      expect(replayed).toMatchObject({ granted: false, code: "SPA_DECRYPT_FAILED" });
      expect(firewall.opened.map((g) => g.sourceIp)).toEqual(["198.18.0.2"]);
    },
  );

  it("over plaintext lengths and modes: only the untruncated packet decodes", () => {
    fc.assert(
      fc.property(
        fc.constantFrom(...ENCRYPTION_MODES),
        fc.integer({ min: 1, max: 48 }),
        fc.integer({ min: 1, max: 3 }),
        fc.integer({ min: 0, max: 0xffff }),
        (mode, userLength, blocks, saltNumber) => {
          const keys = noHmacKeys(mode);
          const input = { ...ACCESS_INPUT, username: "v".repeat(userLength) };
          const built = buildSpaPacket(input, keys, saltOf(saltNumber));
          expect(openSpaPacket(built.wire, keys).username).toBe(input.username);
          const raw = Buffer.from(RIJNDAEL_B64_PREFIX + built.wire, "base64");
          // Keep the Salted__ header and at least one block; shorter forms fail on length anyway.
          if (raw.length - 16 * blocks < 32) return;
          const truncated = withoutLastBlocks(built.wire, blocks);
          expect(() => openSpaPacket(truncated, keys)).toThrow();
        },
      ),
      { numRuns: 400 },
    );
  });
});
