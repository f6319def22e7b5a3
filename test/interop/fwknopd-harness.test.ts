// Proves the namespace + fwknopd harness with the real fwknop 2.6.10 client against the real
// fwknopd 2.6.10: a knock produces an `_exp_` ACCEPT rule in FWKNOP_INPUT, a wrong HMAC key none.

import { randomBytes } from "node:crypto";
import { readFile, stat } from "node:fs/promises";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  fwknopClientSkipReason,
  fwknopTestPacket,
  parseFinalSpaData,
  runFwknopClient,
} from "../helpers/fwknop-client.js";
import {
  type Fwknopd,
  fwknopdSkipReason,
  listFwknopRules,
  parseFwknopRule,
  startFwknopd,
} from "../helpers/fwknopd.js";
import {
  closeServerTcp,
  createTestNet,
  netnsSkipReason,
  sendUdp,
  startTcpListener,
  type TestNet,
  tcpConnect,
} from "../helpers/netns.js";

const skipReason = netnsSkipReason() ?? fwknopdSkipReason() ?? fwknopClientSkipReason();
const FW_ACCESS_TIMEOUT = 30;
const SPA_PORT = 62201;
const GUARDED_PORT = 22;

function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}

describe.skipIf(skipReason !== undefined)(
  `fwknopd interop harness${skipReason === undefined ? "" : ` (skipped: ${skipReason})`}`,
  () => {
    const keyBase64 = randomBytes(32).toString("base64");
    const hmacKeyBase64 = randomBytes(64).toString("base64");
    const clientRc = {
      settings: { KEY_BASE64: keyBase64, HMAC_KEY_BASE64: hmacKeyBase64, USE_HMAC: "Y" },
    };
    let net: TestNet;
    let fwknopd: Fwknopd;

    beforeAll(async () => {
      net = await createTestNet();
      fwknopd = await startFwknopd(net, {
        stanzas: [
          {
            keyBase64,
            hmacKeyBase64,
            hmacDigestType: "sha256",
            openPorts: `tcp/${GUARDED_PORT}, tcp/2222`,
            fwAccessTimeout: FW_ACCESS_TIMEOUT,
            maxFwTimeout: 90,
          },
        ],
      });
      // fwknopd put its jump to FWKNOP_INPUT at INPUT position 1; everything else is refused.
      await closeServerTcp(net, "reset");
      await startTcpListener(net, net.server.ns, GUARDED_PORT);
    });

    afterAll(async () => {
      await net?.destroy();
    });

    it("keeps fwknopd's keys in a 0600 access.conf, never on its command line", async () => {
      // Act
      const mode = (await stat(fwknopd.accessPath)).mode & 0o777;
      const cmdline = await readFile(`/proc/${fwknopd.pid}/cmdline`, "utf8");

      // Assess
      expect(mode).toBe(0o600);
      expect(cmdline).toContain("fwknopd");
      expect(cmdline).not.toContain(keyBase64);
      expect(cmdline).not.toContain(hmacKeyBase64);
    });

    it("opens tcp/22 for the client after a knock from the real fwknop client", async () => {
      // Prepare
      const from = fwknopd.mark();
      expect(await tcpConnect(net, net.client.ns, net.server.ip, GUARDED_PORT)).toBe(false);
      const before = Math.floor(Date.now() / 1000);

      // Act
      const client = await runFwknopClient(
        net,
        ["-A", `tcp/${GUARDED_PORT}`, "-a", net.client.ip, "-D", net.server.ip],
        clientRc,
      );

      // Assess
      expect(client.code, client.stderr).toBe(0);
      const ip = escapeRegExp(net.client.ip);
      await fwknopd.waitForLog(
        new RegExp(`\\(stanza #1\\) SPA Packet from IP: ${ip} received with access source match`),
        10_000,
        from,
      );
      await fwknopd.waitForLog(
        new RegExp(
          `Added access rule to FWKNOP_INPUT for ${ip} -> 0\\.0\\.0\\.0/0 tcp/22, expires at \\d+`,
        ),
        10_000,
        from,
      );
      const rules = (await listFwknopRules(net)).map(parseFwknopRule);
      const rule = rules.find(
        (r) => r.source === `${net.client.ip}/32` && r.dport === GUARDED_PORT,
      );
      expect(rule, JSON.stringify(rules)).toMatchObject({ proto: "tcp", target: "ACCEPT" });
      expect(rule?.raw).toMatch(/-m comment --comment "?_exp_\d+/);
      expect(rule?.expiresAt).toBeGreaterThanOrEqual(before + FW_ACCESS_TIMEOUT);
      expect(rule?.expiresAt).toBeLessThanOrEqual(before + FW_ACCESS_TIMEOUT + 5);
      expect(await tcpConnect(net, net.client.ns, net.server.ip, GUARDED_PORT)).toBe(true);
    });

    it("knocks from an additional client address", async () => {
      // Prepare
      const extraIp = await net.addClientAddress();
      await net.setClientSourceAddress(extraIp);
      const from = fwknopd.mark();
      const connectOpts = { sourceIp: extraIp };
      expect(
        await tcpConnect(net, net.client.ns, net.server.ip, GUARDED_PORT, 1_500, connectOpts),
      ).toBe(false);

      // Act
      const client = await runFwknopClient(
        net,
        ["-A", `tcp/${GUARDED_PORT}`, "-a", extraIp, "-D", net.server.ip],
        clientRc,
      );

      // Assess
      expect(client.code, client.stderr).toBe(0);
      const ip = escapeRegExp(extraIp);
      await fwknopd.waitForLog(new RegExp(`SPA Packet from IP: ${ip} received`), 10_000, from);
      await fwknopd.waitForLog(
        new RegExp(`Added access rule to FWKNOP_INPUT for ${ip} `),
        10_000,
        from,
      );
      const sources = (await listFwknopRules(net)).map((r) => parseFwknopRule(r).source);
      expect(sources).toContain(`${extraIp}/32`);
      expect(
        await tcpConnect(net, net.client.ns, net.server.ip, GUARDED_PORT, 1_500, connectOpts),
      ).toBe(true);
      await net.setClientSourceAddress(net.client.ip);
    });

    it("accepts the exact wire string printed by fwknop -T when it is sent as one datagram", async () => {
      // Prepare
      const wire = await fwknopTestPacket(
        ["-A", "tcp/2222", "-a", net.client.ip, "-D", net.server.ip],
        clientRc,
      );
      const from = fwknopd.mark();

      // Act
      await sendUdp(net, net.client.ns, net.server.ip, SPA_PORT, wire);

      // Assess
      expect(wire).toMatch(/^[A-Za-z0-9+/]+$/);
      await fwknopd.waitForLog(
        new RegExp(
          `Added access rule to FWKNOP_INPUT for ${escapeRegExp(net.client.ip)} .* tcp/2222`,
        ),
        10_000,
        from,
      );
      const rules = (await listFwknopRules(net)).map(parseFwknopRule);
      expect(rules.some((r) => r.source === `${net.client.ip}/32` && r.dport === 2222)).toBe(true);
    });

    it("adds no rule for a knock with the wrong HMAC key", async () => {
      // Prepare
      const rulesBefore = await listFwknopRules(net);
      const from = fwknopd.mark();
      const wrongHmacRc = {
        settings: {
          KEY_BASE64: keyBase64,
          HMAC_KEY_BASE64: randomBytes(64).toString("base64"),
          USE_HMAC: "Y",
        },
      };

      // Act
      const client = await runFwknopClient(
        net,
        ["-A", "tcp/2222", "-a", net.client.ip, "-D", net.server.ip],
        wrongHmacRc,
      );

      // Assess
      expect(client.code, client.stderr).toBe(0);
      const ip = escapeRegExp(net.client.ip);
      await fwknopd.waitForLog(
        new RegExp(`\\[${ip}\\] \\(stanza #1\\) Error creating fko context`),
        10_000,
        from,
      );
      expect(fwknopd.lines.slice(from).some((l) => l.includes("Added access rule"))).toBe(false);
      expect(await listFwknopRules(net)).toEqual(rulesBefore);
    });

    it("parses the first Final SPA Data line, not the truncated second dump", () => {
      // Prepare
      const output = [
        " Final SPA Data: AAAAfull+wire/HMACtail",
        "",
        "Dump of the Decoded Data",
        " Final SPA Data: AAAAfull+wire/",
      ].join("\n");

      // Act
      const wire = parseFinalSpaData(output);

      // Assess
      expect(wire).toBe("AAAAfull+wire/HMACtail");
    });
  },
);
