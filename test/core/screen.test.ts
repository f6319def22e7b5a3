/**
 * screenKnock, knock()'s synchronous first steps, which spaknockd runs alone on every datagram:
 * what it refuses must be what knock() refuses, with the same code, and what it lets through
 * must lose nothing (a valid packet still opens, a replay is still refused). The bug feared most
 * is a screen that passes junk to the crypto or refuses a packet knock() would have granted.
 */
import { describe, expect, it } from "vitest";
import {
  type AccessStanza,
  type KnockInput,
  knock,
  parseNetworkList,
  type ReplayCache,
  screenKnock,
} from "../../core/index.js";
import {
  KNOCK_NOW,
  knockInput,
  MemoryFirewall,
  MemoryReplay,
  packet,
  stanza,
  TEST_KEYS,
} from "../helpers/knock-fakes.js";

const NOW = KNOCK_NOW;
const input = knockInput;
const settings = { maxPacketAge: 120 };
const otherKeys = { ...TEST_KEYS, hmacKey: Buffer.from("another-hmac-key") };
const noHmacKeys = { ...TEST_KEYS, mode: "cbc" as const, hmacKey: null };

/** A replay cache that fails the test if the pipeline ever consults it. */
const untouchableReplay = (): ReplayCache => ({
  seen: () => {
    throw new Error("replay cache consulted for a packet the screen should have refused");
  },
  claim: () => {
    throw new Error("replay cache claimed for a packet the screen should have refused");
  },
});

describe("screenKnock", () => {
  it("passes a valid packet, and knock() given the screening grants it", async () => {
    const ports = {
      stanzas: [stanza()],
      replay: new MemoryReplay(),
      firewall: new MemoryFirewall(),
    };
    const i = input(packet());
    const screening = screenKnock(i, ports);
    expect(screening.passed).toBe(true);
    const outcome = await knock(i, ports, settings, screening);
    expect(outcome.granted).toBe(true);
    expect(ports.firewall.opened).toHaveLength(1);
  });

  const refusedCases: [string, () => { i: KnockInput; stanzas: AccessStanza[] }, string][] = [
    [
      "a short datagram",
      () => ({ i: input(Buffer.from("AAAA")), stanzas: [stanza()] }),
      "SPA_SIZE",
    ],
    [
      "a byte outside base64",
      () => ({ i: input(Buffer.from(`${"A".repeat(150)}!`)), stanzas: [stanza()] }),
      "SPA_CHARSET",
    ],
    [
      "a source no stanza lists",
      () => ({
        i: input(packet(), "198.19.7.7"),
        stanzas: [stanza({ sources: parseNetworkList("198.18.0.0/24") })],
      }),
      "SPA_NO_SOURCE_MATCH",
    ],
    [
      "the wrong HMAC key",
      () => ({ i: input(packet({}, otherKeys)), stanzas: [stanza()] }),
      "SPA_HMAC_MISMATCH",
    ],
    [
      "a flipped character in the tag",
      () => {
        const p = packet();
        p[p.length - 1] = p[p.length - 1] === 0x41 ? 0x42 : 0x41;
        return { i: input(p), stanzas: [stanza()] };
      },
      "SPA_HMAC_MISMATCH",
    ],
    [
      "a stanza past its ACCESS_EXPIRE",
      () => ({ i: input(packet()), stanzas: [stanza({ accessExpire: NOW - 1 })] }),
      "SPA_STANZA_EXPIRED",
    ],
    [
      "an fwknop packet at a JOSE-only stanza",
      () => ({ i: input(packet()), stanzas: [stanza({ keys: null })] }),
      "SPA_NO_STANZA_VERIFIED",
    ],
  ];

  for (const [what, make, code] of refusedCases) {
    it(`refuses ${what} (${code}) exactly as knock() does, without the replay cache`, async () => {
      const { i, stanzas } = make();
      const screening = screenKnock(i, { stanzas });
      expect(screening).toMatchObject({ passed: false, refusal: { granted: false, code } });
      const ports = { stanzas, replay: untouchableReplay(), firewall: new MemoryFirewall() };
      const outcome = await knock(i, ports, settings);
      expect(outcome).toMatchObject({ granted: false, code });
      expect(ports.firewall.opened).toHaveLength(0);
    });
  }

  it("refuses a JOSE-looking packet when no server key is configured", () => {
    const jwe = Buffer.from(
      `eyJhbGciOiJFQ0RILUVTIn0..${"A".repeat(40)}.${"B".repeat(80)}.${"C".repeat(22)}`,
    );
    expect(screenKnock(input(jwe), { stanzas: [stanza()] })).toMatchObject({
      passed: false,
      refusal: { code: "JOSE_NOT_CONFIGURED" },
    });
  });

  it("lets a stanza without HMAC through: only decryption can refuse for it", async () => {
    const i = input(packet({}, noHmacKeys));
    expect(screenKnock(i, { stanzas: [stanza({ keys: noHmacKeys })] }).passed).toBe(true);
    const junk = input(packet({}, { ...noHmacKeys, key: Buffer.from("not-the-key") }));
    expect(screenKnock(junk, { stanzas: [stanza({ keys: noHmacKeys })] }).passed).toBe(true);
    const outcome = await knock(
      junk,
      { stanzas: [stanza({ keys: noHmacKeys })], replay: null, firewall: new MemoryFirewall() },
      settings,
    );
    expect(outcome.granted).toBe(false);
  });

  it("passes when any one stanza's HMAC verifies, and that stanza grants", async () => {
    const stanzas = [stanza({ index: 1, keys: otherKeys }), stanza({ index: 2 })];
    const i = input(packet());
    const screening = screenKnock(i, { stanzas });
    expect(screening.passed).toBe(true);
    const firewall = new MemoryFirewall();
    const outcome = await knock(i, { stanzas, replay: null, firewall }, settings, screening);
    expect(outcome.granted && outcome.stanza.index).toBe(2);
  });

  it("keeps file order for the refusal: the first stanza's reason, screened or not", async () => {
    // Stanza 1 has no HMAC (decryption refuses), stanza 2's HMAC fails in the screen: the
    // reason reported is stanza 1's, as before the screen existed.
    const p = packet({}, { ...noHmacKeys, key: Buffer.from("third-key") });
    const stanzas = [stanza({ index: 1, keys: noHmacKeys }), stanza({ index: 2 })];
    const fw = () => new MemoryFirewall();
    const both = await knock(input(p), { stanzas, replay: null, firewall: fw() }, settings);
    const first = await knock(
      input(p),
      { stanzas: [stanzas[0] as AccessStanza], replay: null, firewall: fw() },
      settings,
    );
    expect(first.granted).toBe(false);
    expect(both).toMatchObject({ granted: false, code: (first as { code: string }).code });
    expect(both).not.toMatchObject({ code: "SPA_HMAC_MISMATCH" });
  });

  it("still refuses a replay of a packet that passed the screen", async () => {
    const replay = new MemoryReplay();
    const ports = { stanzas: [stanza()], replay, firewall: new MemoryFirewall() };
    const p = packet();
    expect((await knock(input(p), ports, settings, screenKnock(input(p), ports))).granted).toBe(
      true,
    );
    const again = await knock(input(p), ports, settings, screenKnock(input(p), ports));
    expect(again).toMatchObject({ granted: false, code: "SPA_REPLAY" });
  });
});
