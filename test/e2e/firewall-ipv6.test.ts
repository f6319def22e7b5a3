// IPv6 grants through the real firewall adapters, once per backend, in a test net with IPv6 on the
// veth pair (2001:db8::/32 only). The adapter runs in the test process; its nft, iptables and
// ip6tables calls reach the server namespace through small wrappers (`ip netns exec NS tool`), so
// the production runner and the interactive nft session are what is tested. A real TCP echo
// server listens dual-stack on the guarded port; real TCP connects from the client namespace say
// whether the port is open, for which address, and when it has closed again.
//
// How the port is closed to begin with: with nftables spaknock's own table guards it, for both
// families; with iptables the test rejects it in INPUT and in ip6tables' INPUT, as an admin would,
// after setup() has put the jumps first.

import { chmodSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ExecFileRunner } from "../../agent/firewall/command-runner.js";
import { IptablesFirewall } from "../../agent/firewall/iptables.js";
import type { ManagedFirewall } from "../../agent/firewall/managed-firewall.js";
import { NftablesFirewall } from "../../agent/firewall/nftables.js";
import { type Grant, SpaError } from "../../core/index.js";
import {
  closeServerTcp,
  createTestNet,
  findExecutable,
  ipv6SkipReason,
  netnsSkipReason,
  startTcpListener,
  type TestNet,
  tcpConnect,
} from "../helpers/netns.js";
import { peerSkipReason } from "../helpers/peers.js";
import {
  type FirewallBackend,
  parseIptablesGrants,
  parseNftAllowSets,
  type SpaknockdRule,
  sleep,
} from "../helpers/spaknockd.js";

const GUARDED_PORT = 2222;
const CHAIN = "SPAKNOCK_INPUT";
const TABLE = "spaknock";
/** The IPv6 grant: short, so the test can watch it end. */
const SHORT_GRANT_SEC = 2;
/** The IPv4 grant beside it outlives it. */
const LONG_GRANT_SEC = 60;
/** A SYN-ACK across one veth takes well under a millisecond: no answer in this long is "closed". */
const CLOSED_CHECK_MS = 700;
/** nftables: the kernel's set timeout ends a grant within about a second of its expiry. */
const KERNEL_EXPIRY_SLACK_MS = 1_000;

function backendSkipReason(backend: FirewallBackend): string | undefined {
  const tools =
    backend === "nftables" ? ["nft"] : ["iptables-restore", "ip6tables", "ip6tables-restore"];
  const missing = tools.find((t) => findExecutable(t) === undefined);
  return peerSkipReason(
    missing === undefined
      ? undefined
      : {
          reason: `\`${missing}\` is not installed`,
          aptPackage: backend === "nftables" ? "nftables" : "iptables",
        },
  );
}

/** An executable that runs `tool` in `ns` with its arguments and stdin. */
function netnsWrapper(dir: string, ns: string, tool: string): string {
  const path = join(dir, tool);
  writeFileSync(path, `#!/bin/sh\nexec ip netns exec '${ns}' '${tool}' "$@"\n`);
  chmodSync(path, 0o755);
  return path;
}

function grantFor(sourceIp: string, timeoutSec: number): Grant {
  const now = Math.floor(Date.now() / 1000);
  return {
    sourceIp,
    ports: [{ proto: "tcp", port: GUARDED_PORT }],
    username: "alice",
    openedAt: now,
    expiresAt: now + timeoutSec,
    timeoutSec,
    stanza: 1,
    targets: [],
  };
}

/** What the kernel holds, read with the tools directly (not through the adapter under test). */
async function kernelGrants(net: TestNet, backend: FirewallBackend): Promise<SpaknockdRule[]> {
  const now = Math.floor(Date.now() / 1000);
  if (backend === "nftables") {
    const listed = await net.exec(net.server.ns, ["nft", "-j", "list", "table", "inet", TABLE], {
      check: true,
    });
    return parseNftAllowSets(listed.stdout, now);
  }
  const rules: SpaknockdRule[] = [];
  for (const tool of ["iptables", "ip6tables"]) {
    const listed = await net.exec(net.server.ns, [tool, "-w", "-S", CHAIN], { check: true });
    rules.push(...parseIptablesGrants(listed.stdout, CHAIN));
  }
  return rules;
}

const skipBase = netnsSkipReason() ?? ipv6SkipReason();

for (const backend of ["nftables", "iptables"] as const) {
  const skipReason = skipBase ?? backendSkipReason(backend);
  describe.skipIf(skipReason !== undefined)(
    `IPv6 grants, ${backend}${skipReason === undefined ? "" : ` (skipped: ${skipReason})`}`,
    { sequential: true },
    () => {
      let net: TestNet;
      let firewall: ManagedFirewall;
      let wrappers: string;
      let client6: string;
      let client4: string;
      /** A second IPv6 address of the client, never granted. */
      let other6: string;
      let server6: string;
      /** The IPv6 grant whose end the expiry test watches. */
      let shortGrant: Grant;
      const open = (fromIp: string, toIp: string, timeoutMs = 1_500) =>
        tcpConnect(net, net.client.ns, toIp, GUARDED_PORT, timeoutMs, { sourceIp: fromIp });

      function makeFirewall(options: { ip6tablesPath?: string; chain?: string } = {}) {
        const runner = new ExecFileRunner();
        const tool = (name: string) => netnsWrapper(wrappers, net.server.ns, name);
        if (backend === "nftables") {
          return new NftablesFirewall(runner, {
            table: TABLE,
            guardPorts: [{ proto: "tcp", port: GUARDED_PORT }],
            nftPath: tool("nft"),
          });
        }
        return new IptablesFirewall(runner, {
          chain: options.chain ?? CHAIN,
          iptablesPath: tool("iptables"),
          restorePath: tool("iptables-restore"),
          ip6tablesPath: options.ip6tablesPath ?? tool("ip6tables"),
          ip6RestorePath: tool("ip6tables-restore"),
        });
      }

      beforeAll(async () => {
        net = await createTestNet();
        wrappers = net.makeTempDir("fw-tools");
        client4 = net.client.ip;
        client6 = net.client.ip6 as string;
        server6 = net.server.ip6 as string;
        other6 = await net.addClientIpv6Address();
        await startTcpListener(net, net.server.ns, GUARDED_PORT, "::");
        firewall = makeFirewall();
        net.addCleanup(() => firewall.shutdown?.());
      });
      afterAll(async () => {
        await net?.destroy();
      });

      it("reaches the listener over IPv4 and IPv6 before the firewall is set up", async () => {
        // Without this, "closed" below could mean a broken test net rather than a closed port.
        expect(await open(client6, server6)).toBe(true);
        expect(await open(other6, server6)).toBe(true);
        expect(await open(client4, net.server.ip)).toBe(true);
      });

      it("closes the guarded port to both families once set up", async () => {
        await firewall.setup();
        if (backend === "iptables")
          await closeServerTcp(net, "reset", String(GUARDED_PORT), [4, 6]);
        expect(await open(client6, server6, CLOSED_CHECK_MS)).toBe(false);
        expect(await open(client4, net.server.ip, CLOSED_CHECK_MS)).toBe(false);
      });

      it("opens the port over IPv6 for the granted address only", async () => {
        // Act
        const grant = grantFor(client6, SHORT_GRANT_SEC);
        shortGrant = grant;
        await firewall.open(grant);

        // Assess
        expect(await open(client6, server6)).toBe(true);
        expect(await open(other6, server6, CLOSED_CHECK_MS)).toBe(false);
        expect(await open(client4, net.server.ip, CLOSED_CHECK_MS)).toBe(false);
        expect(await kernelGrants(net, backend)).toEqual([
          {
            sourceIp: client6,
            proto: "tcp",
            port: GUARDED_PORT,
            expiresAt: backend === "iptables" ? grant.expiresAt : expect.any(Number),
          },
        ]);
      });

      it("opens an IPv4 grant beside it, and lists both (--fw-list, adopting after a restart)", async () => {
        await firewall.open(grantFor(client4, LONG_GRANT_SEC));
        expect(await open(client4, net.server.ip)).toBe(true);
        expect(await open(client6, server6)).toBe(true);
        const listed = await makeFirewall().list();
        expect(listed.map((r) => [r.sourceIp, r.port.proto, r.port.port]).sort()).toEqual(
          [
            [client4, "tcp", GUARDED_PORT],
            [client6, "tcp", GUARDED_PORT],
          ].sort(),
        );
        // nft reports whole seconds left, so a grant in its last second lists as expiring now.
        const now = Math.floor(Date.now() / 1000);
        for (const r of listed) expect(r.expiresAt).toBeGreaterThanOrEqual(now);
      });

      it("closes the IPv6 grant after its expiry, and the IPv4 one stays open", async () => {
        // `expiresAt` is a whole second; the grant has ended once that second is over.
        await sleep(Math.max(0, (shortGrant.expiresAt + 1) * 1000 - Date.now()));
        if (backend === "iptables") {
          // The daemon's timers and sweep do this for iptables; the kernel does it for nftables.
          const removed = await firewall.removeExpired(Math.floor(Date.now() / 1000));
          expect(removed.map((r) => r.sourceIp)).toEqual([client6]);
        } else {
          await sleep(KERNEL_EXPIRY_SLACK_MS);
        }
        expect((await kernelGrants(net, backend)).map((r) => r.sourceIp)).toEqual([client4]);
        expect(await open(client6, server6, CLOSED_CHECK_MS)).toBe(false);
        expect(await open(client4, net.server.ip)).toBe(true);
      });

      it("removes every grant of both families, and then everything (--fw-flush)", async () => {
        await firewall.open(grantFor(client6, LONG_GRANT_SEC));
        await firewall.removeAllGrants();
        expect(await kernelGrants(net, backend)).toEqual([]);
        expect(await open(client6, server6, CLOSED_CHECK_MS)).toBe(false);
        await firewall.removeAll();
        const gone =
          backend === "nftables"
            ? [["nft", "list", "table", "inet", TABLE]]
            : [
                ["iptables", "-w", "-S", CHAIN],
                ["ip6tables", "-w", "-S", CHAIN],
              ];
        for (const argv of gone) expect((await net.exec(net.server.ns, argv)).code).not.toBe(0);
      });

      it.runIf(backend === "iptables")(
        "without a working ip6tables: IPv4 still opens, an IPv6 grant fails with FIREWALL_FAILED",
        async () => {
          // Prepare: a chain of its own, and an ip6tables that does not exist
          const noV6 = makeFirewall({ chain: "SPK_NO_V6", ip6tablesPath: join(wrappers, "none") });
          await noV6.setup();

          // Act
          await noV6.open(grantFor(client4, LONG_GRANT_SEC));
          const failure = await noV6.open(grantFor(client6, LONG_GRANT_SEC)).catch((e) => e);

          // Assess
          expect(await open(client4, net.server.ip)).toBe(true);
          expect(failure).toBeInstanceOf(SpaError);
          expect((failure as SpaError).code).toBe("FIREWALL_FAILED");
          expect(await open(client6, server6, CLOSED_CHECK_MS)).toBe(false);
          await noV6.removeAll();
        },
      );
    },
  );
}
