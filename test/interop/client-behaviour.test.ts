// spaknock behaves as the real fwknop 2.6.10 client does, judged by the real fwknopd: in a private
// test net each scenario knocks once with `fwknop` and once with `spaknock`, given the same options
// and the same rc stanza (keys only there), and the rules fwknopd adds must be the same: source,
// protocol, ports, NAT target and expiry (within a few seconds).
//
// fwknopd adds no rule identical to an existing one, so each client asks for its own ports; the
// rules are compared with every requested port replaced by its position in the request.

import { randomBytes } from "node:crypto";
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { fwknopClientSkipReason } from "../helpers/fwknop-client.js";
import {
  type Fwknopd,
  type FwknopdOptions,
  fwknopdSkipReason,
  startFwknopd,
} from "../helpers/fwknopd.js";
import { SPAKNOCK_CLI, spaknockCliMissingReason } from "../helpers/interop-spaknock-cli.js";
import {
  createTestNet,
  type ExecResult,
  findExecutable,
  netnsSkipReason,
  type TestNet,
} from "../helpers/netns.js";

const skipReason = netnsSkipReason() ?? fwknopdSkipReason() ?? fwknopClientSkipReason();
const STANZA = "behaviour";
const USER = "alice";
const FW_ACCESS_TIMEOUT = 30;
const MAX_FW_TIMEOUT = 90;
// Rule expiry = fwknopd's clock at processing time + timeout; allow for a slow machine.
const EXPIRY_SLACK_S = 5;
const RULE_WAIT_MS = 10_000;
// After the expected rules appear, how long to keep looking for unexpected extra ones.
const SETTLE_MS = 400;
// Where fwknopd puts access, forwarding and DNAT rules (fwknopd.conf defaults).
const CHAINS = [
  { table: "filter", chain: "FWKNOP_INPUT" },
  { table: "filter", chain: "FWKNOP_FORWARD" },
  { table: "nat", chain: "FWKNOP_PREROUTING" },
] as const;

type Client = "fwknop" | "spaknock";

/** One rule fwknopd added, from `iptables -t <table> -S <chain>`. */
interface AddedRule {
  readonly table: string;
  readonly raw: string;
  /** `raw` with each requested port as `<portN>` and the expiry as `_exp_<t>`. */
  readonly shape: string;
  /** Seconds from just before the knock to the `_exp_` time. */
  readonly expiresIn: number;
}

interface Scenario {
  /** Options for both clients, given the ports this client asks for. */
  readonly args: (ports: readonly number[]) => string[];
  /** Ports per client, position for position; no port may appear twice in the daemon's life. */
  readonly ports: Readonly<Record<Client, readonly number[]>>;
  /** How many rules one knock adds (0: fwknopd must refuse it). */
  readonly ruleCount: number;
  /** A line fwknopd logs once it has dealt with the knock (needed when it adds no rule). */
  readonly processedLog?: RegExp;
}

function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}

function nowSeconds(): number {
  return Math.floor(Date.now() / 1000);
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** `raw` with the requested ports and the expiry abstracted away (tokens, so IPs stay intact). */
function ruleShape(raw: string, ports: readonly number[]): string {
  const portName = (text: string): string => {
    const i = ports.indexOf(Number(text));
    return /^\d+$/.test(text) && i >= 0 ? `<port${i}>` : text;
  };
  return raw
    .split(" ")
    .map((token) => {
      if (/^"?_exp_\d+"?$/.test(token)) return "_exp_<t>";
      const hostPort = /^(.*):(\d+)$/.exec(token);
      if (hostPort?.[1] !== undefined && hostPort[2] !== undefined) {
        return `${hostPort[1]}:${portName(hostPort[2])}`;
      }
      return portName(token);
    })
    .join(" ");
}

describe.skipIf(skipReason !== undefined)(
  `spaknock and fwknop knocks make the same fwknopd rules${skipReason === undefined ? "" : ` (skipped: ${skipReason})`}`,
  () => {
    let net: TestNet;
    let home: string;
    let rcFile: string;
    const keys = {
      key: randomBytes(32).toString("base64"),
      hmacKey: randomBytes(64).toString("base64"),
    };

    beforeAll(async () => {
      // A missing build is a broken setup, not a reason to skip.
      const missing = spaknockCliMissingReason();
      if (missing !== undefined) throw new Error(missing);
      net = await createTestNet();
      home = net.makeTempDir("home");
      rcFile = join(home, "fwknoprc");
      const rc = [
        `[${STANZA}]`,
        `KEY_BASE64 ${keys.key}`,
        `HMAC_KEY_BASE64 ${keys.hmacKey}`,
        "USE_HMAC Y",
      ];
      await writeFile(rcFile, `${rc.join("\n")}\n`, { mode: 0o600, flag: "wx" });
    });

    afterAll(async () => {
      await net?.destroy();
    });

    /** Start fwknopd (one stanza with the test keys) for the enclosing describe block. */
    function useFwknopd(
      stanza: { readonly requireSourceAddress?: boolean },
      options: Omit<FwknopdOptions, "stanzas"> = {},
    ): () => Fwknopd {
      let daemon: Fwknopd | undefined;
      beforeAll(async () => {
        daemon = await startFwknopd(net, {
          ...options,
          stanzas: [
            {
              keyBase64: keys.key,
              hmacKeyBase64: keys.hmacKey,
              fwAccessTimeout: FW_ACCESS_TIMEOUT,
              maxFwTimeout: MAX_FW_TIMEOUT,
              ...stanza,
            },
          ],
        });
      });
      afterAll(async () => {
        await daemon?.stop();
      });
      return () => {
        if (daemon === undefined) throw new Error("fwknopd is not running");
        return daemon;
      };
    }

    /** The same knock with either client, from the client namespace, keys from the rc stanza. */
    function knock(client: Client, args: readonly string[]): Promise<ExecResult> {
      const common = ["--rc-file", rcFile, "-n", STANZA, "-D", net.server.ip, "-U", USER, ...args];
      const argv =
        client === "fwknop"
          ? [findExecutable("fwknop") ?? "fwknop", "--no-save-args", ...common]
          : [process.execPath, SPAKNOCK_CLI, ...common];
      // HOME keeps both clients away from the real ~/.fwknoprc and ~/.fwknop.run.
      return net.exec(net.client.ns, argv, {
        env: { ...process.env, HOME: home },
        cwd: home,
        timeoutMs: 15_000,
      });
    }

    async function listRules(): Promise<{ table: string; raw: string }[]> {
      const listings = await Promise.all(
        CHAINS.map(async ({ table, chain }) => {
          const result = await net.exec(net.server.ns, [
            "iptables",
            "-w",
            "-t",
            table,
            "-S",
            chain,
          ]);
          const lines = result.code === 0 ? result.stdout.split("\n") : [];
          return lines.filter((raw) => raw.startsWith("-A ")).map((raw) => ({ table, raw }));
        }),
      );
      return listings.flat();
    }

    /** Knock with `client` and return the rules fwknopd added for it (after they settle). */
    async function knockAndCollect(
      fwknopd: Fwknopd,
      client: Client,
      scenario: Scenario,
    ): Promise<{ rules: AddedRule[]; from: number }> {
      const ports = scenario.ports[client];
      const before = new Set((await listRules()).map((r) => `${r.table} ${r.raw}`));
      const from = fwknopd.mark();
      const sentAt = nowSeconds();

      const result = await knock(client, scenario.args(ports));
      expect(result.code, `${client}: ${result.stderr}${result.stdout}`).toBe(0);

      const added = async () =>
        (await listRules()).filter((r) => !before.has(`${r.table} ${r.raw}`));
      const deadline = Date.now() + RULE_WAIT_MS;
      while ((await added()).length < scenario.ruleCount && Date.now() < deadline) {
        await sleep(100);
      }
      if (scenario.processedLog !== undefined) {
        await fwknopd.waitForLog(scenario.processedLog, RULE_WAIT_MS, from);
      }
      await sleep(SETTLE_MS);
      const rules = (await added()).map(({ table, raw }) => ({
        table,
        raw,
        shape: `${table} ${ruleShape(raw, ports)}`,
        expiresIn: Number(/_exp_(\d+)/.exec(raw)?.[1]) - sentAt,
      }));
      return { rules, from };
    }

    /** Knock with both clients; assert the same rule shapes and expiry ≈ `timeout`. */
    async function expectSameRules(
      fwknopd: Fwknopd,
      scenario: Scenario,
      timeout: number,
    ): Promise<string[]> {
      const fromFwknop = await knockAndCollect(fwknopd, "fwknop", scenario);
      const fromSpaknock = await knockAndCollect(fwknopd, "spaknock", scenario);
      const shapes = (rules: readonly AddedRule[]) => rules.map((r) => r.shape).sort();

      expect(fromFwknop.rules, "rules added for the real fwknop").toHaveLength(scenario.ruleCount);
      expect(shapes(fromSpaknock.rules)).toEqual(shapes(fromFwknop.rules));
      for (const rule of [...fromFwknop.rules, ...fromSpaknock.rules]) {
        expect(rule.expiresIn, rule.raw).toBeGreaterThanOrEqual(timeout);
        expect(rule.expiresIn, rule.raw).toBeLessThanOrEqual(timeout + EXPIRY_SLACK_S);
      }
      return shapes(fromSpaknock.rules);
    }

    describe("NAT access (-N) with ENABLE_IPT_FORWARDING", () => {
      // The internal host is a second address of the server itself; only the rules matter here.
      let internalIp: string;

      // Registered before useFwknopd's hook, so this runs before fwknopd starts.
      beforeAll(async () => {
        internalIp = `${net.subnetPrefix}.200`;
        await net.exec(
          net.server.ns,
          ["ip", "addr", "add", `${internalIp}/32`, "dev", net.server.iface],
          { check: true },
        );
        // Only in the server namespace: the host's own forwarding setting is never touched.
        await net.exec(net.server.ns, ["sysctl", "-q", "-w", "net.ipv4.ip_forward=1"], {
          check: true,
        });
      });
      const fwknopd = useFwknopd({}, { extraConfLines: ["ENABLE_IPT_FORWARDING Y"] });

      it("adds the same FORWARD and DNAT rules for -N <internal>:<port> -A tcp/<port>", async () => {
        // Prepare
        const scenario: Scenario = {
          args: ([external, internal]) => [
            "-A",
            `tcp/${external}`,
            "-N",
            `${internalIp}:${internal}`,
            "-a",
            net.client.ip,
          ],
          ports: { fwknop: [2222, 22], spaknock: [2232, 2022] },
          ruleCount: 2,
        };

        // Act
        const shapes = await expectSameRules(fwknopd(), scenario, FW_ACCESS_TIMEOUT);

        // Assess
        const client = escapeRegExp(`${net.client.ip}/32`);
        const internal = escapeRegExp(internalIp);
        expect(shapes).toEqual([
          expect.stringMatching(
            new RegExp(
              `^filter -A FWKNOP_FORWARD -s ${client} -p tcp -m tcp --dport <port1> -m comment --comment _exp_<t> -j ACCEPT$`,
            ),
          ),
          expect.stringMatching(
            new RegExp(
              `^nat -A FWKNOP_PREROUTING -s ${client} -p tcp -m tcp --dport <port0> -m comment --comment _exp_<t> -j DNAT --to-destination ${internal}:<port1>$`,
            ),
          ),
        ]);
      });
    });

    describe("client timeouts, -s and multiple ports (MAX_FW_TIMEOUT 90)", () => {
      const fwknopd = useFwknopd({});

      it.each([
        { fwTimeout: 600, expected: MAX_FW_TIMEOUT, ports: { fwknop: [2301], spaknock: [2311] } },
        { fwTimeout: 10, expected: 10, ports: { fwknop: [2302], spaknock: [2312] } },
      ])(
        "-f $fwTimeout gives a rule that expires after $expected s",
        async ({ fwTimeout, expected, ports }) => {
          // Prepare
          const scenario: Scenario = {
            args: ([port]) => ["-A", `tcp/${port}`, "-a", net.client.ip, "-f", String(fwTimeout)],
            ports,
            ruleCount: 1,
          };

          // Act
          const shapes = await expectSameRules(fwknopd(), scenario, expected);

          // Assess
          expect(shapes).toEqual([
            `filter -A FWKNOP_INPUT -s ${net.client.ip}/32 -p tcp -m tcp --dport <port0> -m comment --comment _exp_<t> -j ACCEPT`,
          ]);
        },
      );

      it("-s without REQUIRE_SOURCE_ADDRESS opens for the packet's source address", async () => {
        // Prepare
        const scenario: Scenario = {
          args: ([port]) => ["-A", `udp/${port}`, "-s"],
          ports: { fwknop: [2303], spaknock: [2313] },
          ruleCount: 1,
        };

        // Act
        const shapes = await expectSameRules(fwknopd(), scenario, FW_ACCESS_TIMEOUT);

        // Assess
        expect(shapes).toEqual([
          `filter -A FWKNOP_INPUT -s ${net.client.ip}/32 -p udp -m udp --dport <port0> -m comment --comment _exp_<t> -j ACCEPT`,
        ]);
      });

      it("-A tcp/22,udp/53,tcp/2223 opens all three ports", async () => {
        // Prepare: fwknop asks for the ports of the brief, spaknock for three others
        const scenario: Scenario = {
          args: ([a, b, c]) => ["-A", `tcp/${a},udp/${b},tcp/${c}`, "-a", net.client.ip],
          ports: { fwknop: [22, 53, 2223], spaknock: [2322, 2353, 2333] },
          ruleCount: 3,
        };

        // Act
        const shapes = await expectSameRules(fwknopd(), scenario, FW_ACCESS_TIMEOUT);

        // Assess
        const rule = (proto: string, port: number) =>
          `filter -A FWKNOP_INPUT -s ${net.client.ip}/32 -p ${proto} -m ${proto} --dport <port${port}> -m comment --comment _exp_<t> -j ACCEPT`;
        expect(shapes).toEqual([rule("tcp", 0), rule("udp", 1), rule("tcp", 2)].sort());
      });
    });

    describe("-s with REQUIRE_SOURCE_ADDRESS Y", () => {
      const fwknopd = useFwknopd({ requireSourceAddress: true });

      it("is refused for both clients: 0.0.0.0 when a source address is required", async () => {
        // Prepare
        const scenario: Scenario = {
          args: ([port]) => ["-A", `tcp/${port}`, "-s"],
          ports: { fwknop: [2401], spaknock: [2411] },
          ruleCount: 0,
          processedLog: /Got 0\.0\.0\.0 when valid source IP was required/,
        };

        for (const client of ["fwknop", "spaknock"] as const) {
          // Act
          const { rules, from } = await knockAndCollect(fwknopd(), client, scenario);

          // Assess (knockAndCollect has waited for the refusal in fwknopd's log)
          expect(rules, client).toEqual([]);
          expect(
            fwknopd()
              .lines.slice(from)
              .some((l) => l.includes("Added access rule")),
          ).toBe(false);
        }
      });
    });
  },
);
