import { describe, expect, it } from "vitest";
import { knock, parseNetworkList } from "../../core/index.js";
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

describe("knock pipeline", () => {
  it("grants a valid packet for the stanza's timeout and records its digest", async () => {
    // Prepare
    const replay = new MemoryReplay();
    const firewall = new MemoryFirewall();
    // Act
    const outcome = await knock(
      input(packet()),
      { stanzas: [stanza()], replay, firewall },
      settings,
    );
    // Assess
    expect(outcome.granted).toBe(true);
    expect(firewall.opened).toEqual([
      {
        sourceIp: "198.18.0.2",
        ports: [{ proto: "tcp", port: 22 }],
        username: "alice",
        openedAt: NOW,
        expiresAt: NOW + 30,
        timeoutSec: 30,
        stanza: 1,
        targets: [],
      },
    ]);
    expect(replay.digests.size).toBe(1);
  });

  it("refuses the same packet twice, and two concurrent copies open exactly once", async () => {
    const replay = new MemoryReplay();
    const firewall = new MemoryFirewall();
    const ports = { stanzas: [stanza()], replay, firewall };
    const p = packet();
    const outcomes = await Promise.all(
      Array.from({ length: 20 }, () => knock(input(p), ports, settings)),
    );
    expect(outcomes.filter((o) => o.granted)).toHaveLength(1);
    expect(firewall.opened).toHaveLength(1);
    const again = await knock(input(p), ports, settings);
    expect(again).toMatchObject({ granted: false, code: "SPA_REPLAY" });
  });

  it.each([
    ["junk", Buffer.from("x".repeat(50)), "SPA_SIZE"],
    ["stale by 121 s", packet({ timestamp: NOW - 121 }), "SPA_STALE"],
    ["from the future by 121 s", packet({ timestamp: NOW + 121 }), "SPA_STALE"],
    ["a port outside OPEN_PORTS", packet({ message: "198.18.0.2,tcp/23" }), "SPA_PORT_DENIED"],
    ["a NAT request", packet({ messageType: 2, natAccess: "10.0.0.5,22" }), "SPA_NAT_DISABLED"],
    ["a command", packet({ messageType: 0, message: "198.18.0.2,reboot" }), "SPA_COMMAND_DISABLED"],
    ["another user", packet({ username: "mallory" }), "SPA_USERNAME_MISMATCH"],
    [
      "wrong keys",
      packet({}, { ...TEST_KEYS, hmacKey: Buffer.from("some-other-hmac-key") }),
      "SPA_HMAC_MISMATCH",
    ],
  ])("refuses %s with its own code and opens nothing", async (_name, payload, code) => {
    const firewall = new MemoryFirewall();
    const replay = new MemoryReplay();
    const s = stanza({ openPorts: [{ proto: "tcp", port: 22 }], requireUsername: "alice" });
    const outcome = await knock(input(payload), { stanzas: [s], replay, firewall }, settings);
    expect(outcome).toMatchObject({ granted: false, code });
    expect(firewall.opened).toEqual([]);
    expect(replay.digests.size).toBe(0);
  });

  it("accepts an old packet when aging is off", async () => {
    const firewall = new MemoryFirewall();
    const outcome = await knock(
      input(packet({ timestamp: NOW - 100_000 })),
      { stanzas: [stanza()], replay: null, firewall },
      { maxPacketAge: null },
    );
    expect(outcome.granted).toBe(true);
  });

  it("refuses a source outside every SOURCE before any crypto", async () => {
    const s = stanza({ sources: parseNetworkList("198.18.5.0/24") });
    const outcome = await knock(
      input(packet()),
      { stanzas: [s], replay: null, firewall: new MemoryFirewall() },
      settings,
    );
    expect(outcome).toMatchObject({ granted: false, code: "SPA_NO_SOURCE_MATCH" });
  });

  it("tries stanzas in file order: the first whose keys verify and whose policy passes wins", async () => {
    const otherKeys = {
      ...TEST_KEYS,
      key: Buffer.from("different-rijndael-key"),
      hmacKey: Buffer.from("x-hmac"),
    };
    const first = stanza({ index: 1, keys: otherKeys });
    const second = stanza({ index: 2, openPorts: [{ proto: "tcp", port: 443 }] });
    const third = stanza({ index: 3, fwAccessTimeout: 60 });
    const firewall = new MemoryFirewall();
    const outcome = await knock(
      input(packet()),
      { stanzas: [first, second, third], replay: null, firewall },
      settings,
    );
    expect(outcome.granted && outcome.stanza.index).toBe(3);
    expect(firewall.opened[0]?.timeoutSec).toBe(60);
  });

  it("uses the packet's source for 0.0.0.0 unless REQUIRE_SOURCE_ADDRESS", async () => {
    const firewall = new MemoryFirewall();
    const p = packet({ message: "0.0.0.0,tcp/22" });
    const ok = await knock(
      input(p, "198.18.9.9"),
      { stanzas: [stanza()], replay: null, firewall },
      settings,
    );
    expect(ok.granted && ok.grant.sourceIp).toBe("198.18.9.9");
    const strict = stanza({ requireSourceAddress: true });
    const refused = await knock(input(p), { stanzas: [strict], replay: null, firewall }, settings);
    expect(refused).toMatchObject({ granted: false, code: "SPA_SOURCE_REQUIRED" });
  });

  it("caps a client timeout at MAX_FW_TIMEOUT", async () => {
    const firewall = new MemoryFirewall();
    const s = stanza({ maxFwTimeout: 90 });
    await knock(
      input(packet({ messageType: 3, clientTimeout: 600 })),
      { stanzas: [s], replay: null, firewall },
      settings,
    );
    await knock(
      input(packet({ messageType: 3, clientTimeout: 10 })),
      { stanzas: [s], replay: null, firewall },
      settings,
    );
    expect(firewall.opened.map((g) => g.timeoutSec)).toEqual([90, 10]);
  });

  it("refuses an expired stanza", async () => {
    const s = stanza({ accessExpire: NOW - 1 });
    const outcome = await knock(
      input(packet()),
      { stanzas: [s], replay: null, firewall: new MemoryFirewall() },
      settings,
    );
    expect(outcome).toMatchObject({ granted: false, code: "SPA_STANZA_EXPIRED" });
  });

  it("reports a firewall failure as FIREWALL_FAILED, never as a grant", async () => {
    const firewall = new MemoryFirewall();
    firewall.failWith = new Error("nft: table missing");
    const outcome = await knock(
      input(packet()),
      { stanzas: [stanza()], replay: new MemoryReplay(), firewall },
      settings,
    );
    expect(outcome).toMatchObject({ granted: false, code: "FIREWALL_FAILED" });
  });

  it("refuses when the replay cache cannot record the packet", async () => {
    const replay = new MemoryReplay();
    replay.claim = async () => {
      throw new Error("disk full");
    };
    const firewall = new MemoryFirewall();
    const outcome = await knock(
      input(packet()),
      { stanzas: [stanza()], replay, firewall },
      settings,
    );
    expect(outcome).toMatchObject({ granted: false, code: "REPLAY_STORE_FAILED" });
    expect(firewall.opened).toEqual([]);
  });

  it("refuses other encodings of a packet without an HMAC, so none gets its own replay digest", async () => {
    // Prepare: libfko ignores `=` padding, unused low bits and the Salted__ magic.
    const keys = { ...TEST_KEYS, hmacKey: null };
    const s = stanza({ keys });
    const wire = packet({}, keys).toString("latin1");
    const last = wire.at(-1) as string;
    const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    const sameBits = alphabet[(alphabet.indexOf(last) ^ 1) % 64] as string;
    const variants = [`${wire}=`, `${wire.slice(0, -1)}${sameBits}`];
    // Act
    const outcomes = await Promise.all(
      variants.map((v) =>
        knock(
          input(Buffer.from(v, "latin1")),
          { stanzas: [s], replay: new MemoryReplay(), firewall: new MemoryFirewall() },
          settings,
        ),
      ),
    );
    // Assess
    for (const o of outcomes) expect(o.granted).toBe(false);
  });

  it("refuses an allow-IP with leading zeros (iptables and nft would read it as octal)", () => {
    expect(() => packet({ message: "010.0.0.1,tcp/22" })).toThrow(/allow-IP is not IPv4/);
    expect(() => parseNetworkList("198.018.0.1")).toThrow(/not an IP address/);
  });
});
