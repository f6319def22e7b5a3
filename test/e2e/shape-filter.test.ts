// spaknockd's nftables table drops, in the kernel, every datagram to the SPA port whose shape no
// SPA packet has (core/precheck.ts SPA_SHAPE: fwknop lengths and first byte, JOSE's `eyJ`). The
// fear: a valid packet dropped there, the door never opening, nothing logged. So the smallest and
// largest valid packets of each profile are sent through the real table to a real daemon, with no
// flood, and each must open the port for its address; then junk shows the filter really drops
// (counted in the kernel, never seen by the daemon) and lets shaped junk through to the HMAC.
import { randomBytes } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { SHAPE_DROP_COUNTER } from "../../agent/firewall/nftables.js";
import {
  buildSpaPacket,
  DIGEST_TYPES,
  type DigestType,
  MIN_GNUPG_MSG_SIZE,
  parseIpAddress,
  SPA_SHAPE,
  type SpaKeys,
} from "../../core/index.js";
import { buildWithJose, type TestJwkPair, testKeyPair } from "../helpers/jose-packets.js";
import {
  createTestNet,
  ipv6SkipReason,
  netnsSkipReason,
  sendUdp,
  startTcpListener,
  type TestNet,
  tcpConnect,
} from "../helpers/netns.js";
import {
  escapeRegExp,
  randomSpaKeys,
  type Spaknockd,
  spaknockdSkipReason,
  startSpaknockd,
  writeJoseKeyFiles,
} from "../helpers/spaknockd.js";

const GUARDED_PORT = 2033;
const SPA_PORT = 62201;
const GRANT_SEC = 60;
const LONG_NAME = "u".repeat(48);
/** The extra ports the largest packets ask for; the stanza that verifies them allows them all. */
const FWKNOP_EXTRA_PORTS = Array.from({ length: 9 }, (_, i) => `tcp/${60000 + i}`);
const JOSE_EXTRA_PORTS = ["tcp/65535", "udp/65534", "tcp/65533", "udp/65532", "tcp/65531"];

const skip = netnsSkipReason() ?? ipv6SkipReason() ?? spaknockdSkipReason("nftables");

/** All eight groups of an IPv6 address, none shortened: the longest text of it we accept. */
function longIpv6(text: string): string {
  const ip = parseIpAddress(text);
  if (ip === null || ip.family !== 6) throw new TypeError(`${text} is not IPv6`);
  const groups: string[] = [];
  for (let i = 7; i >= 0; i--) groups.push(((ip.value >> BigInt(16 * i)) & 0xffffn).toString(16));
  return groups.join(":");
}

/** The shortest and longest fwknop wire, over usernames, port lists and inner digests. */
function extremeFwknopWires(keys: SpaKeys, allowIp: string, pick: "min" | "max"): string {
  let best: string | null = null;
  for (let userLength = 1; userLength <= 48; userLength++) {
    for (let ports = 1; ports <= 10; ports++) {
      for (const digestType of DIGEST_TYPES as readonly DigestType[]) {
        const list = [`tcp/${GUARDED_PORT}`, ...FWKNOP_EXTRA_PORTS.slice(0, ports - 1)];
        const { wire } = buildSpaPacket(
          {
            randomValue: "1234567890123456",
            username: "u".repeat(userLength),
            timestamp: Math.floor(Date.now() / 1000),
            messageType: 1,
            message: `${allowIp},${list.join(",")}`,
            natAccess: null,
            clientTimeout: 0,
            digestType,
          },
          keys,
          randomBytes(8),
        );
        if (wire.length >= MIN_GNUPG_MSG_SIZE) continue;
        if (
          best === null ||
          (pick === "min" ? wire.length < best.length : wire.length > best.length)
        )
          best = wire;
      }
    }
  }
  if (best === null) throw new Error("no packet built");
  return best;
}

describe.skipIf(skip !== undefined)(
  `the kernel shape filter lets every valid packet through${skip === undefined ? "" : ` (skipped: ${skip})`}`,
  { sequential: true },
  () => {
    const noHmac = randomSpaKeys();
    const sha512 = randomSpaKeys();
    let net: TestNet;
    let daemon: Spaknockd;
    let server: TestJwkPair;
    let shortUser: TestJwkPair;
    let longUser: TestJwkPair;

    const keysOf = (k: typeof noHmac, hmacType: DigestType | null): SpaKeys => ({
      key: Buffer.from(k.keyBase64, "base64"),
      mode: "cbc",
      hmacKey: hmacType === null ? null : Buffer.from(k.hmacKeyBase64, "base64"),
      hmacType: hmacType ?? "sha256",
    });
    /** Sends `payload` from `allowed` to the server's address of that family; opens for it? */
    const opensFor = async (payload: string, allowed: string) => {
      const target = allowed.includes(":") ? (net.server.ip6 as string) : net.server.ip;
      const from = daemon.mark();
      await sendUdp(net, net.client.ns, target, SPA_PORT, payload, { sourceIp: allowed });
      await daemon.waitForLog(
        new RegExp(`add \\S+( \\S+)? ${escapeRegExp(allowed)} -> \\S+\\(tcp/${GUARDED_PORT}\\)`),
        10_000,
        from,
      );
      return tcpConnect(net, net.client.ns, target, GUARDED_PORT, 1_500, { sourceIp: allowed });
    };
    const shapeDrops = async () => {
      const { stdout } = await net.exec(
        net.server.ns,
        ["nft", "-j", "list", "counter", "inet", daemon.table, SHAPE_DROP_COUNTER],
        { check: true },
      );
      const item = JSON.parse(stdout).nftables.find((i: { counter?: unknown }) => i.counter);
      return Number(item.counter.packets);
    };

    beforeAll(async () => {
      [server, shortUser, longUser] = await Promise.all([
        testKeyPair("X25519"),
        testKeyPair("Ed25519"),
        testKeyPair("Ed25519"),
      ]);
      net = await createTestNet();
      const keyFiles = await writeJoseKeyFiles(net.makeTempDir("jose-keys"), server, [
        { key: shortUser, name: "a" },
        { key: longUser, name: LONG_NAME },
      ]);
      await startTcpListener(net, net.server.ns, GUARDED_PORT, "::");
      daemon = await startSpaknockd(net, {
        backend: "nftables",
        capture: "udp",
        stanzas: [
          // The smallest fwknop packets carry no HMAC; the largest a SHA-512 one.
          {
            keyBase64: noHmac.keyBase64,
            openPorts: `tcp/${GUARDED_PORT}`,
            fwAccessTimeout: GRANT_SEC,
          },
          {
            keyBase64: sha512.keyBase64,
            hmacKeyBase64: sha512.hmacKeyBase64,
            hmacDigestType: "sha512",
            openPorts: [`tcp/${GUARDED_PORT}`, ...FWKNOP_EXTRA_PORTS, ...JOSE_EXTRA_PORTS].join(
              ", ",
            ),
            fwAccessTimeout: GRANT_SEC,
            extraLines: [`AUTHORIZED_KEYS ${keyFiles.authorizedKeysFile}`],
          },
        ],
        extraConfLines: [`SERVER_KEY_FILE ${keyFiles.serverKeyFile}`],
      });
      const script = await net.exec(
        net.server.ns,
        ["nft", "list", "chain", "inet", daemon.table, "spa_shape"],
        { check: true },
      );
      expect(script.stdout).toContain("@th,64,24 0x65794a return");
    }, 60_000);

    afterAll(async () => {
      await net?.destroy();
    });

    it("the smallest fwknop packet (no HMAC) opens the port", async () => {
      const addr = await net.addClientAddress();
      const wire = extremeFwknopWires(keysOf(noHmac, null), addr, "min");
      expect(wire.length).toBeLessThan(170);
      expect(SPA_SHAPE.fwknopLengths).toContain(wire.length);
      expect(await opensFor(wire, addr)).toBe(true);
    }, 30_000);

    it("the largest fwknop packet (SHA-512 HMAC) opens the port", async () => {
      const addr = await net.addClientAddress();
      const wire = extremeFwknopWires(keysOf(sha512, "sha512"), addr, "max");
      expect(wire.length).toBeGreaterThan(370);
      expect(SPA_SHAPE.fwknopLengths).toContain(wire.length);
      expect(await opensFor(wire, addr)).toBe(true);
    }, 30_000);

    it("the smallest JOSE packet opens the port", async () => {
      const addr = await net.addClientAddress();
      const packet = await buildWithJose({
        signer: shortUser,
        server,
        username: "a",
        now: Math.floor(Date.now() / 1000),
        acc: [`tcp/${GUARDED_PORT}`],
        ip: addr,
      });
      expect(packet.length).toBeLessThan(900);
      expect(await opensFor(packet, addr)).toBe(true);
    }, 30_000);

    it("the largest JOSE packet (long name, IPv6 written out, six ports, a timeout) opens the port", async () => {
      const clientIp6 = net.client.ip6 as string;
      const packet = await buildWithJose({
        signer: longUser,
        server,
        username: LONG_NAME,
        now: Math.floor(Date.now() / 1000),
        ip: longIpv6(clientIp6),
        acc: [`tcp/${GUARDED_PORT}`, ...JOSE_EXTRA_PORTS],
        tmo: GRANT_SEC,
      });
      expect(packet.length).toBeGreaterThan(1_000);
      expect(await opensFor(packet, clientIp6)).toBe(true);
    }, 30_000);

    it("drops junk of the wrong shape in the kernel and passes shaped junk to the daemon", async () => {
      const before = await shapeDrops();
      const from = daemon.mark();
      const body = randomBytes(300)
        .toString("base64")
        .replace(/[^A-Za-z0-9]/g, "A");
      // Right length, wrong first byte; wrong length, right first byte.
      await sendUdp(net, net.client.ns, net.server.ip, SPA_PORT, `A${body.slice(0, 203)}`);
      await sendUdp(net, net.client.ns, net.server.ip, SPA_PORT, `8${body.slice(0, 202)}`);
      // Shaped like a packet: only the HMAC can tell.
      await sendUdp(net, net.client.ns, net.server.ip, SPA_PORT, `8${body.slice(0, 203)}`);
      await daemon.waitForLog(/refused SPA packet from /, 10_000, from);
      expect(await shapeDrops()).toBe(before + 2);
      expect(daemon.linesMatching(/refused SPA packet/, from)).toHaveLength(1);
    }, 30_000);
  },
);
