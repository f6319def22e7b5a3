// spaknock's UDP, TCP and HTTP senders (cli/transport.ts, built into dist/) against the real
// fwknopd 2.6.10 in a test net: each knock is sent from inside the client namespace and must make
// fwknopd add its ACCEPT rule, after which the knocked port accepts a TCP connection.

import { randomBytes } from "node:crypto";
import { existsSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  type Fwknopd,
  fwknopdSkipReason,
  listFwknopRules,
  parseFwknopRule,
  startFwknopd,
} from "../helpers/fwknopd.js";
import {
  type InteropKeys,
  spaknockCliMissingReason,
  spaknockKeyArgs,
  spaknockTestPacket,
} from "../helpers/interop-spaknock-cli.js";
import {
  closeServerTcp,
  createTestNet,
  type ExecResult,
  netnsSkipReason,
  startTcpListener,
  type TestNet,
  tcpConnect,
} from "../helpers/netns.js";

const skipReason = netnsSkipReason() ?? fwknopdSkipReason();
const TRANSPORT_JS = fileURLToPath(new URL("../../dist/cli/transport.js", import.meta.url));
const SPA_PORT = 62201;
const HTTP_PORT = 80;
const USER = "alice";
const FW_ACCESS_TIMEOUT = 30;
// fwknopd adds no rule identical to an existing one, so every knock asks for its own port. All of
// them are refused (TCP reset) until fwknopd's rule for the client is in place.
const KNOCKED = { udp: 2301, tcp: 2302, httpOnSpaPort: 2303, httpOnPort80: 2304 } as const;
const GUARDED_PORTS = "2300:2399";
// Refused (reset) and silently dropped, for the senders' error paths.
const REFUSED_PORT = 2398;
const DROPPED_PORT = 2399;

// Runs in the client namespace as `node --input-type=module -e SCRIPT transport.js proto host port
// wire [timeoutMs]`; exits 0 once sendSpa resolves, else prints the error message and exits 1.
const SEND_SCRIPT = `
const [modulePath, proto, host, port, wire, timeoutMs] = process.argv.slice(1);
const { sendSpa } = await import(modulePath);
try {
  await sendSpa(proto, host, Number(port), wire, timeoutMs ? { timeoutMs: Number(timeoutMs) } : {});
} catch (err) {
  process.stderr.write(err.message + "\\n");
  process.exitCode = 1;
}
`;

function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}

describe.skipIf(skipReason !== undefined)(
  `spaknock transports -> fwknopd${skipReason === undefined ? "" : ` (skipped: ${skipReason})`}`,
  () => {
    const keys: InteropKeys = {
      kind: "base64",
      key: randomBytes(32).toString("base64"),
      hmacKey: randomBytes(64).toString("base64"),
    };
    let net: TestNet;
    let fwknopd: Fwknopd;

    beforeAll(async () => {
      // A missing build is a broken setup, not a reason to skip.
      const missing =
        spaknockCliMissingReason() ??
        (existsSync(TRANSPORT_JS) ? undefined : `${TRANSPORT_JS} is missing: run npm run build`);
      if (missing !== undefined) throw new Error(missing);
      net = await createTestNet();
      await closeServerTcp(net, "drop", String(DROPPED_PORT));
      await closeServerTcp(net, "reset", GUARDED_PORTS);
      for (const port of Object.values(KNOCKED)) {
        await startTcpListener(net, net.server.ns, port);
      }
      // Something must accept on port 80 for the HTTP request (sent after the handshake) to
      // leave the client at all; fwknopd's own ENABLE_TCP_SERVER covers port 62201.
      await startTcpListener(net, net.server.ns, HTTP_PORT);
      fwknopd = await startFwknopd(net, {
        stanzas: [
          {
            keyBase64: keys.key,
            hmacKeyBase64: keys.hmacKey ?? undefined,
            hmacDigestType: "sha256",
            openPorts: Object.values(KNOCKED)
              .map((port) => `tcp/${port}`)
              .join(", "),
            fwAccessTimeout: FW_ACCESS_TIMEOUT,
          },
        ],
        pcapFilter: `udp port ${SPA_PORT} or tcp port ${SPA_PORT} or tcp port ${HTTP_PORT}`,
        extraConfLines: [
          "ENABLE_TCP_SERVER Y",
          `TCPSERV_PORT ${SPA_PORT}`,
          "ENABLE_SPA_OVER_HTTP Y",
        ],
      });
    });

    afterAll(async () => {
      await net?.destroy();
    });

    /** `spaknock -T` wire for a knock that opens tcp/`port` for the client. */
    function spaknockWire(port: number): Promise<string> {
      return spaknockTestPacket([
        "-A",
        `tcp/${port}`,
        "-a",
        net.client.ip,
        "-U",
        USER,
        ...spaknockKeyArgs(keys),
        "-D",
        net.server.ip,
      ]);
    }

    /** sendSpa(proto, server, port, wire) run inside the client namespace. */
    function sendFromClient(
      proto: "udp" | "tcp" | "http",
      port: number,
      wire: string,
      timeoutMs?: number,
    ): Promise<ExecResult> {
      const argv = [
        process.execPath,
        "--input-type=module",
        "-e",
        SEND_SCRIPT,
        TRANSPORT_JS,
        proto,
        net.server.ip,
        String(port),
        wire,
      ];
      if (timeoutMs !== undefined) argv.push(String(timeoutMs));
      return net.exec(net.client.ns, argv);
    }

    /** Waits for fwknopd to log the rule for tcp/`port`, then finds it in FWKNOP_INPUT. */
    async function expectAcceptRule(port: number, from: number): Promise<void> {
      await fwknopd.waitForLog(
        new RegExp(
          `Added access rule to FWKNOP_INPUT for ${escapeRegExp(net.client.ip)} -> \\S+ tcp/${port}, expires at \\d+`,
        ),
        10_000,
        from,
      );
      const rules = (await listFwknopRules(net)).map(parseFwknopRule);
      const rule = rules.find(
        (r) => r.source === `${net.client.ip}/32` && r.proto === "tcp" && r.dport === port,
      );
      expect(rule, JSON.stringify(rules, null, 2)).toMatchObject({ target: "ACCEPT" });
    }

    it.each([
      { label: "UDP to 62201", proto: "udp", sendPort: SPA_PORT, knocked: KNOCKED.udp },
      { label: "TCP to 62201", proto: "tcp", sendPort: SPA_PORT, knocked: KNOCKED.tcp },
      {
        label: "HTTP to 62201 (fwknopd's TCP server)",
        proto: "http",
        sendPort: SPA_PORT,
        knocked: KNOCKED.httpOnSpaPort,
      },
      {
        label: "HTTP to port 80 (a web server)",
        proto: "http",
        sendPort: HTTP_PORT,
        knocked: KNOCKED.httpOnPort80,
      },
    ] as const)("a knock over $label opens the port", async ({ proto, sendPort, knocked }) => {
      // Prepare
      expect(await tcpConnect(net, net.client.ns, net.server.ip, knocked)).toBe(false);
      const wire = await spaknockWire(knocked);
      const from = fwknopd.mark();

      // Act
      const sent = await sendFromClient(proto, sendPort, wire);

      // Assess
      expect(sent.code, sent.stderr).toBe(0);
      await expectAcceptRule(knocked, from);
      expect(await tcpConnect(net, net.client.ns, net.server.ip, knocked)).toBe(true);
    });

    it("TCP: a refused connection fails with a message that says what to do", async () => {
      const sent = await sendFromClient("tcp", REFUSED_PORT, await spaknockWire(KNOCKED.tcp));

      expect(sent.code).toBe(1);
      expect(sent.stderr).toMatch(
        new RegExp(
          `over TCP ${escapeRegExp(net.server.ip)}:${REFUSED_PORT}: connection refused.*ENABLE_TCP_SERVER`,
        ),
      );
    });

    it("TCP: a dropped connection fails after the timeout, not never", async () => {
      const started = Date.now();

      const sent = await sendFromClient("tcp", DROPPED_PORT, await spaknockWire(KNOCKED.tcp), 800);

      expect(sent.code).toBe(1);
      expect(sent.stderr).toMatch(/no answer within 800 ms; a firewall may be dropping it/);
      expect(Date.now() - started).toBeLessThan(5_000);
    });
  },
);
