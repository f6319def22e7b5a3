// spaknock packets against the real fwknopd 2.6.10: in a private pair of network namespaces, a
// knock built by spaknock (or sent by spaknock itself from the client namespace) must make
// fwknopd add the `_exp_` ACCEPT rule for the client, in each of the common modes. fwknopd is
// restarted per mode with one stanza (or, for legacy, two stanzas it tries in order).

import { randomBytes } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  type Fwknopd,
  type FwknopdStanza,
  type FwknopRule,
  fwknopdSkipReason,
  listFwknopRules,
  parseFwknopRule,
  startFwknopd,
} from "../helpers/fwknopd.js";
import {
  type InteropKeys,
  randomTextKey,
  runSpaknockIn,
  spaknockCliMissingReason,
  spaknockKeyArgs,
  spaknockTestPacket,
} from "../helpers/interop-spaknock-cli.js";
import {
  closeServerTcp,
  createTestNet,
  netnsSkipReason,
  sendUdp,
  startTcpListener,
  type TestNet,
  tcpConnect,
} from "../helpers/netns.js";

const skipReason = netnsSkipReason() ?? fwknopdSkipReason();
const SPA_PORT = 62201;
const FW_ACCESS_TIMEOUT = 30;
const MAX_FW_TIMEOUT = 90;
// Only the TCP-connect test opens this port, so it is closed until then.
const GUARDED_PORT = 2222;
// fwknopd does not add (or log) a rule identical to an existing one, and two knocks within one
// second give identical `_exp_` comments: so each knock against one daemon gets its own port.
const PORTS = {
  wire: 2201,
  clientTimeout: 2202,
  sourceIp: 2203,
  digest: 2204,
  wrongHmac: 2205,
  legacyPadded: 2206,
  legacyTruncated: 2207,
} as const;
const OPEN_PORTS = [
  "tcp/22",
  "udp/53",
  `tcp/${GUARDED_PORT}`,
  ...Object.values(PORTS).map((port) => `tcp/${port}`),
  `udp/${PORTS.sourceIp}`,
].join(", ");
const USER = "alice";
// Rule expiry = fwknopd's clock at processing time + timeout; allow for a slow machine.
const EXPIRY_SLACK_S = 5;

interface PortSpec {
  readonly proto: "tcp" | "udp";
  readonly port: number;
}

function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}

function base64Keys(overrides: Partial<InteropKeys> = {}): InteropKeys {
  return {
    kind: "base64",
    key: randomBytes(32).toString("base64"),
    hmacKey: randomBytes(64).toString("base64"),
    ...overrides,
  };
}

/** The access.conf stanza that accepts packets made with `keys`. */
function stanzaFor(keys: InteropKeys): FwknopdStanza {
  const base64 = keys.kind === "base64";
  return {
    ...(base64 ? { keyBase64: keys.key } : { key: keys.key }),
    ...(keys.hmacKey === null
      ? {}
      : base64
        ? { hmacKeyBase64: keys.hmacKey }
        : { hmacKey: keys.hmacKey }),
    ...(keys.hmacKey === null ? {} : { hmacDigestType: keys.hmacDigestType ?? "sha256" }),
    ...(keys.encryptionMode === undefined ? {} : { encryptionMode: keys.encryptionMode }),
    openPorts: OPEN_PORTS,
    fwAccessTimeout: FW_ACCESS_TIMEOUT,
    maxFwTimeout: MAX_FW_TIMEOUT,
  };
}

describe.skipIf(skipReason !== undefined)(
  `spaknock -> fwknopd${skipReason === undefined ? "" : ` (skipped: ${skipReason})`}`,
  () => {
    let net: TestNet;

    beforeAll(async () => {
      // A missing build is a broken setup, not a reason to skip.
      const missing = spaknockCliMissingReason();
      if (missing !== undefined) throw new Error(missing);
      net = await createTestNet();
      // Each fwknopd puts its jump to FWKNOP_INPUT at INPUT position 1; other TCP is refused.
      await closeServerTcp(net, "reset");
      await startTcpListener(net, net.server.ns, GUARDED_PORT);
    });

    afterAll(async () => {
      await net?.destroy();
    });

    /** Start fwknopd with `stanzas` for the enclosing describe block; stopped after it. */
    function useFwknopd(stanzas: () => FwknopdStanza[]): () => Fwknopd {
      let daemon: Fwknopd | undefined;
      beforeAll(async () => {
        daemon = await startFwknopd(net, { stanzas: stanzas() });
      });
      afterAll(async () => {
        await daemon?.stop();
      });
      return () => {
        if (daemon === undefined) throw new Error("fwknopd is not running");
        return daemon;
      };
    }

    /** `spaknock -T` with `args` and `keys`, aimed at the server. */
    function spaknockPacket(keys: InteropKeys, args: readonly string[]): Promise<string> {
      return spaknockTestPacket([...args, ...spaknockKeyArgs(keys), "-D", net.server.ip]);
    }

    /**
     * Wait until fwknopd logs one added rule per entry of `ports` (after log line `from`), then
     * check that FWKNOP_INPUT holds a matching ACCEPT rule for each, with the logged expiry.
     */
    async function expectRules(
      fwknopd: Fwknopd,
      from: number,
      ports: readonly PortSpec[],
      expected: { readonly sentAt: number; readonly timeout: number; readonly source?: string },
    ): Promise<FwknopRule[]> {
      const source = expected.source ?? net.client.ip;
      const expiries: number[] = [];
      let cursor = from;
      for (const { proto, port } of ports) {
        // fwknopd logs the packet's whole port list on the line of each rule it adds, so the lines
        // of a multi-port knock are identical: each port must consume a line of its own.
        const line = await fwknopd.waitForLog(
          new RegExp(
            `Added access rule to FWKNOP_INPUT for ${escapeRegExp(source)} -> \\S+ (?:\\S+,)?${proto}/${port}(?:,\\S+)?, expires at \\d+`,
          ),
          10_000,
          cursor,
        );
        cursor = fwknopd.lines.indexOf(line, cursor) + 1;
        expiries.push(Number(/expires at (\d+)/.exec(line)?.[1]));
      }
      const rules = (await listFwknopRules(net)).map(parseFwknopRule);
      return ports.map(({ proto, port }, i) => {
        const loggedExpiry = expiries[i] ?? Number.NaN;
        expect(loggedExpiry).toBeGreaterThanOrEqual(expected.sentAt + expected.timeout);
        expect(loggedExpiry).toBeLessThanOrEqual(
          expected.sentAt + expected.timeout + EXPIRY_SLACK_S,
        );
        const rule = rules.find(
          (r) =>
            r.source === `${source}/32` &&
            r.proto === proto &&
            r.dport === port &&
            r.expiresAt === loggedExpiry,
        );
        expect(rule, JSON.stringify(rules, null, 2)).toMatchObject({ target: "ACCEPT" });
        return rule as FwknopRule;
      });
    }

    function nowSeconds(): number {
      return Math.floor(Date.now() / 1000);
    }

    describe("HMAC sha256 (default), base64 keys", () => {
      const keys = base64Keys();
      const fwknopd = useFwknopd(() => [stanzaFor(keys)]);

      it("opens a port when spaknock itself sends the knock from the client namespace", async () => {
        // Prepare
        expect(await tcpConnect(net, net.client.ns, net.server.ip, GUARDED_PORT)).toBe(false);
        const from = fwknopd().mark();
        const sentAt = nowSeconds();

        // Act
        const result = await runSpaknockIn(net, net.client.ns, [
          "-A",
          `tcp/${GUARDED_PORT}`,
          "-a",
          net.client.ip,
          "-D",
          net.server.ip,
          "-U",
          USER,
          ...spaknockKeyArgs(keys),
        ]);

        // Assess
        expect(result.code, result.stderr).toBe(0);
        await fwknopd().waitForLog(
          new RegExp(
            `\\(stanza #1\\) SPA Packet from IP: ${escapeRegExp(net.client.ip)} received with access source match`,
          ),
          10_000,
          from,
        );
        await expectRules(fwknopd(), from, [{ proto: "tcp", port: GUARDED_PORT }], {
          sentAt,
          timeout: FW_ACCESS_TIMEOUT,
        });
        expect(await tcpConnect(net, net.client.ns, net.server.ip, GUARDED_PORT)).toBe(true);
      });

      // Each case: the `spaknock -T` wire string sent as one datagram, and the rules fwknopd adds.
      const WIRE_CASES: readonly {
        readonly name: string;
        readonly args: () => string[];
        readonly ports: readonly PortSpec[];
        readonly timeout: number;
        readonly fromSource?: boolean;
        readonly alsoCheck?: (rules: FwknopRule[], from: number, sentAt: number) => Promise<void>;
      }[] = [
        {
          name: "accepts the exact `spaknock -T` wire string sent as one datagram",
          args: () => ["-A", `tcp/${PORTS.wire}`, "-a", net.client.ip, "-U", USER],
          ports: [{ proto: "tcp", port: PORTS.wire }],
          timeout: FW_ACCESS_TIMEOUT,
        },
        {
          name: "honours a client timeout (-f 10)",
          args: () => [
            "-A",
            `tcp/${PORTS.clientTimeout}`,
            "-a",
            net.client.ip,
            "-U",
            USER,
            "-f",
            "10",
          ],
          ports: [{ proto: "tcp", port: PORTS.clientTimeout }],
          timeout: 10,
          alsoCheck: async ([rule], _from, sentAt) => {
            expect(rule?.expiresAt).toBeLessThanOrEqual(sentAt + 10 + EXPIRY_SLACK_S);
          },
        },
        {
          name: "opens every port of -A tcp/22,udp/53 (two rules)",
          args: () => ["-A", "tcp/22,udp/53", "-a", net.client.ip, "-U", USER],
          ports: [
            { proto: "tcp", port: 22 },
            { proto: "udp", port: 53 },
          ],
          timeout: FW_ACCESS_TIMEOUT,
          alsoCheck: async (rules) => {
            expect(rules).toHaveLength(2);
          },
        },
        {
          name: "opens for the packet's source address with -s (0.0.0.0)",
          args: () => ["-A", `udp/${PORTS.sourceIp}`, "-s", "-U", USER],
          ports: [{ proto: "udp", port: PORTS.sourceIp }],
          timeout: FW_ACCESS_TIMEOUT,
          fromSource: true,
          alsoCheck: async (_rules, from) => {
            await fwknopd().waitForLog(
              new RegExp(`Message String: 0\\.0\\.0\\.0,udp/${PORTS.sourceIp}$`),
              10_000,
              from,
            );
          },
        },
        {
          name: "accepts an inner sha3_512 digest (-m sha3_512)",
          args: () => [
            "-A",
            `tcp/${PORTS.digest}`,
            "-a",
            net.client.ip,
            "-U",
            USER,
            "-m",
            "sha3_512",
          ],
          ports: [{ proto: "tcp", port: PORTS.digest }],
          timeout: FW_ACCESS_TIMEOUT,
        },
      ];

      for (const { name, args, ports, timeout, fromSource, alsoCheck } of WIRE_CASES)
        it(name, async () => {
          // Prepare
          const wire = await spaknockPacket(keys, args());
          const from = fwknopd().mark();
          const sentAt = nowSeconds();

          // Act
          await sendUdp(net, net.client.ns, net.server.ip, SPA_PORT, wire);

          // Assess
          const rules = await expectRules(fwknopd(), from, ports, {
            sentAt,
            timeout,
            ...(fromSource ? { source: net.client.ip } : {}),
          });
          await alsoCheck?.(rules, from, sentAt);
        });

      it("adds no rule for a knock with the wrong HMAC key", async () => {
        // Prepare
        const wrong = { ...keys, hmacKey: randomBytes(64).toString("base64") };
        const wire = await spaknockPacket(wrong, [
          "-A",
          `tcp/${PORTS.wrongHmac}`,
          "-a",
          net.client.ip,
          "-U",
          USER,
        ]);
        const rulesBefore = await listFwknopRules(net);
        const from = fwknopd().mark();

        // Act
        await sendUdp(net, net.client.ns, net.server.ip, SPA_PORT, wire);

        // Assess
        await fwknopd().waitForLog(
          new RegExp(
            `\\[${escapeRegExp(net.client.ip)}\\] \\(stanza #1\\) Error creating fko context: .*HMAC_COMPAREFAIL`,
          ),
          10_000,
          from,
        );
        expect(
          fwknopd()
            .lines.slice(from)
            .some((l) => l.includes("Added access rule")),
        ).toBe(false);
        expect(await listFwknopRules(net)).toEqual(rulesBefore);
      });
    });

    describe.each([
      {
        label: "HMAC sha512, 128-byte HMAC key",
        keys: () =>
          base64Keys({ hmacKey: randomBytes(128).toString("base64"), hmacDigestType: "sha512" }),
        args: [] as string[],
      },
      {
        label: "HMAC sha1, inner digest md5",
        keys: () => base64Keys({ hmacDigestType: "sha1" }),
        args: ["-m", "md5"],
      },
      {
        label: "text keys (KEY / HMAC_KEY)",
        keys: (): InteropKeys => ({
          kind: "text",
          key: randomTextKey(24, randomBytes),
          hmacKey: randomTextKey(48, randomBytes),
        }),
        args: [] as string[],
      },
      {
        label: "CTR mode",
        keys: () => base64Keys({ encryptionMode: "ctr" }),
        args: [] as string[],
      },
    ])("$label", ({ keys: makeKeys, args }) => {
      const keys = makeKeys();
      const fwknopd = useFwknopd(() => [stanzaFor(keys)]);

      it("adds the ACCEPT rule for the client", async () => {
        // Prepare
        const wire = await spaknockPacket(keys, [
          "-A",
          "tcp/22",
          "-a",
          net.client.ip,
          "-U",
          USER,
          ...args,
        ]);
        const from = fwknopd().mark();
        const sentAt = nowSeconds();

        // Act
        await sendUdp(net, net.client.ns, net.server.ip, SPA_PORT, wire);

        // Assess
        await expectRules(fwknopd(), from, [{ proto: "tcp", port: 22 }], {
          sentAt,
          timeout: FW_ACCESS_TIMEOUT,
        });
      });
    });

    describe("legacy IV mode without HMAC", () => {
      // fwknopd tries the stanzas in order, so one daemon covers a padded and a truncated key.
      const shortTextKeys: InteropKeys = {
        kind: "text",
        key: randomTextKey(7, randomBytes),
        hmacKey: null,
        encryptionMode: "legacy",
      };
      const longBinaryKeys: InteropKeys = {
        kind: "base64",
        key: randomBytes(32).toString("base64"),
        hmacKey: null,
        encryptionMode: "legacy",
      };
      const fwknopd = useFwknopd(() => [stanzaFor(shortTextKeys), stanzaFor(longBinaryKeys)]);

      it.each([
        {
          label: "7-char text key ('0'-padded to 16)",
          keys: shortTextKeys,
          stanza: 1,
          port: PORTS.legacyPadded,
        },
        {
          label: "32-byte binary key (truncated to 16)",
          keys: longBinaryKeys,
          stanza: 2,
          port: PORTS.legacyTruncated,
        },
      ])("adds the ACCEPT rule for a $label", async ({ keys, stanza, port }) => {
        // Prepare
        const wire = await spaknockPacket(keys, [
          "-A",
          `tcp/${port}`,
          "-a",
          net.client.ip,
          "-U",
          USER,
        ]);
        const from = fwknopd().mark();
        const sentAt = nowSeconds();

        // Act
        await sendUdp(net, net.client.ns, net.server.ip, SPA_PORT, wire);

        // Assess
        await fwknopd().waitForLog(
          new RegExp(`\\(stanza #${stanza}\\) SPA Packet from IP: .* received`),
          10_000,
          from,
        );
        await expectRules(fwknopd(), from, [{ proto: "tcp", port }], {
          sentAt,
          timeout: FW_ACCESS_TIMEOUT,
        });
      });
    });
  },
);
