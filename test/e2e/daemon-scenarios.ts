// The spaknockd end-to-end scenario, run once per firewall backend (daemon-nftables.test.ts,
// daemon-iptables.test.ts) and, inside each, once per capture mode (UDP socket, pcap on the
// server veth). A real TCP echo server listens on the guarded port in the server namespace; the
// real fwknop 2.6.10 client and spaknock knock from the client namespace.
//
// How the port is closed to begin with: with nftables spaknock's own table guards OPEN_PORTS; with
// iptables the test drops the ports in INPUT itself, as an admin would, after spaknockd has put its
// jump at INPUT position 1.

import { readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { fwknopClientSkipReason, runFwknopClient } from "../helpers/fwknop-client.js";
import {
  closeServerTcp,
  createTestNet,
  netnsSkipReason,
  sendUdp,
  startTcpListener,
  type TestNet,
  tcpConnect,
} from "../helpers/netns.js";
import {
  type CaptureMode,
  escapeRegExp,
  type FirewallBackend,
  holdConnection,
  pcapSkipReason,
  randomSpaKeys,
  runSpaknockd,
  type Spaknockd,
  type SpaknockdRule,
  sleep,
  spaknockdSkipReason,
  spaknockKnock,
  spaknockWire,
  startSpaknockd,
} from "../helpers/spaknockd.js";

const SPA_PORT = 62201;
/** The echo server listens here; every TCP-connect check targets it. */
const GUARDED_PORT = 2222;
/** Opened by the refresh test only (no listener needed: it checks the firewall). */
const REFRESH_PORT = 2223;
/** A long grant that must survive a kill -9 and a restart (iptables). */
const LONG_PORT = 2224;
/** Not in OPEN_PORTS. */
const DENIED_PORT = 2299;
const OPEN_PORTS = `tcp/${GUARDED_PORT}, tcp/${REFRESH_PORT}, tcp/${LONG_PORT}`;
const FW_ACCESS_TIMEOUT = 3;
/** The kill -9 grant (nftables): long enough to check it still works once the daemon is dead. */
const KILL_GRANT_SEC = 5;
const MAX_FW_TIMEOUT = 60;
/** A SYN-ACK across one veth takes well under a millisecond: no answer in this long is "closed". */
const CLOSED_CHECK_MS = 700;
const LOG_WAIT_MS = 5_000;

/**
 * How long after its expiry a grant may still let a new connection in. nftables: the kernel's set
 * timeout (docs/architecture.md states 1 s). iptables: the daemon's timer fires on the whole second
 * written in `_exp_`, then runs iptables-restore.
 */
const EXPIRY_BOUND_MS: Record<FirewallBackend, number> = { nftables: 1_000, iptables: 1_500 };

export function describeSpaknockdE2e(backend: FirewallBackend): void {
  const skipReason = netnsSkipReason() ?? spaknockdSkipReason(backend) ?? fwknopClientSkipReason();
  describe.skipIf(skipReason !== undefined)(
    `spaknockd e2e, ${backend}${skipReason === undefined ? "" : ` (skipped: ${skipReason})`}`,
    () => {
      // The two capture modes use separate test nets and daemons, so they run side by side (the
      // suites are concurrent); the steps of one scenario build on each other and run in order.
      for (const capture of ["udp", "pcap"] as const) {
        const captureSkip = capture === "pcap" ? pcapSkipReason() : undefined;
        describe(`capture ${capture}${captureSkip === undefined ? "" : ` (skipped: ${captureSkip})`}`, {
          concurrent: true,
        }, () => {
          describe(
            "in order",
            { concurrent: false, sequential: true, skip: captureSkip !== undefined },
            () => scenario(backend, capture),
          );
        });
      }
    },
  );
}

function scenario(backend: FirewallBackend, capture: CaptureMode): void {
  const keys = randomSpaKeys();
  const fwknopRc = {
    settings: {
      KEY_BASE64: keys.keyBase64,
      HMAC_KEY_BASE64: keys.hmacKeyBase64,
      HMAC_DIGEST_TYPE: "sha256",
      USE_HMAC: "Y",
    },
  };
  const bound = EXPIRY_BOUND_MS[backend];
  let net: TestNet;
  let daemon: Spaknockd;
  let ip: string;

  const label = (): string => (backend === "nftables" ? `inet ${daemon.table}` : daemon.chain);
  const addLine = (sourceIp: string, port: number, seconds?: number): RegExp =>
    new RegExp(
      `add ${escapeRegExp(label())} ${escapeRegExp(sourceIp)} -> 0\\.0\\.0\\.0/0\\(tcp/${port}\\) ` +
        `ACCEPT rule ${seconds ?? "\\d+"} sec`,
    );
  const refusedLine = (sourceIp: string, code: string): RegExp =>
    new RegExp(`refused SPA packet from ${escapeRegExp(sourceIp)}:\\d+.*: ${code} \\(`);
  const anyAddSince = (from: number): string[] =>
    daemon.linesMatching(/ ACCEPT rule \d+ sec$/, from);
  const rulesFor = async (sourceIp: string, port: number): Promise<SpaknockdRule[]> =>
    (await daemon.listRules()).filter((r) => r.sourceIp === sourceIp && r.port === port);
  const canConnect = (timeoutMs = 1_500, sourceIp?: string): Promise<boolean> =>
    tcpConnect(
      net,
      net.client.ns,
      net.server.ip,
      GUARDED_PORT,
      timeoutMs,
      sourceIp === undefined ? {} : { sourceIp },
    );
  const isClosed = async (sourceIp?: string): Promise<boolean> =>
    !(await canConnect(CLOSED_CHECK_MS, sourceIp));
  const knock = (port: number, fwTimeout?: number): Promise<void> =>
    spaknockKnock(net, {
      keys,
      access: `tcp/${port}`,
      allowIp: ip,
      server: net.server.ip,
      ...(fwTimeout === undefined ? {} : { fwTimeout }),
    });

  beforeAll(async () => {
    net = await createTestNet();
    ip = net.client.ip;
    await startTcpListener(net, net.server.ns, GUARDED_PORT);
    daemon = await startSpaknockd(net, {
      backend,
      capture,
      stanzas: [
        {
          source: `${net.client.ip}/32`,
          keyBase64: keys.keyBase64,
          hmacKeyBase64: keys.hmacKeyBase64,
          hmacDigestType: "sha256",
          openPorts: OPEN_PORTS,
          fwAccessTimeout: FW_ACCESS_TIMEOUT,
          maxFwTimeout: MAX_FW_TIMEOUT,
        },
      ],
      // Keep what a crashed daemon left, so a restart has to reconcile it (the default, Y,
      // would flush every grant at startup and prove nothing about expiry).
      extraConfLines: backend === "iptables" ? ["FLUSH_IPT_AT_INIT N"] : [],
    });
    if (backend === "iptables") {
      await closeServerTcp(net, "drop", `${GUARDED_PORT}:${LONG_PORT}`);
    }
  });

  afterAll(async () => {
    await net?.destroy();
  });

  it("keeps the guarded port closed before any knock", async () => {
    // Act
    const rules = await daemon.listRules();
    const closed = await isClosed();

    // Assess
    expect(rules).toEqual([]);
    expect(closed).toBe(true);
  });

  if (capture === "udp") {
    it("exits with code 3 and `file:line: unknown keyword X` on an unknown fwknopd.conf keyword", async () => {
      // Prepare
      const dir = net.makeTempDir("badconf");
      const confPath = join(dir, "fwknopd.conf");
      const badTable = `spk_bad_${process.pid}`;
      await writeFile(
        confPath,
        `FIREWALL_BACKEND ${backend}\nNFT_TABLE ${badTable}\nNO_SUCH_KEYWORD 1\n`,
        { mode: 0o600 },
      );

      // Act
      const result = await runSpaknockd(net, ["-f", "-c", confPath, "-a", daemon.accessPath]);

      // Assess
      expect(result.code, result.stderr).toBe(3);
      expect(result.stderr).toContain(`${confPath}:3: unknown keyword NO_SUCH_KEYWORD`);
      const tables = await net.exec(net.server.ns, ["nft", "list", "tables"]);
      expect(tables.stdout).not.toContain(badTable);
    });
  }

  it("opens for FW_ACCESS_TIMEOUT after a knock from the real fwknop client, then closes", async () => {
    // Prepare
    const from = daemon.mark();

    // Act
    const client = await runFwknopClient(
      net,
      ["-A", `tcp/${GUARDED_PORT}`, "-a", ip, "-D", net.server.ip],
      fwknopRc,
    );
    await daemon.waitForLog(addLine(ip, GUARDED_PORT, FW_ACCESS_TIMEOUT), LOG_WAIT_MS, from);
    const openedAt = Date.now();
    const openNow = await canConnect();
    const rules = await rulesFor(ip, GUARDED_PORT);
    await sleep(openedAt + FW_ACCESS_TIMEOUT * 1000 + bound - Date.now());
    const closedAfter = await isClosed();

    // Assess
    expect(client.code, client.stderr).toBe(0);
    expect(
      daemon.linesMatching(
        new RegExp(
          `received valid SPA packet from: ${escapeRegExp(ip)}, remote user: \\S+, ` +
            "client version: 3\\.0\\.0 \\(SOURCE line num: 1\\)",
        ),
        from,
      ),
    ).toHaveLength(1);
    expect(openNow).toBe(true);
    expect(rules).toHaveLength(1);
    const nowSec = openedAt / 1000;
    expect(rules[0]?.expiresAt).toBeGreaterThanOrEqual(Math.floor(nowSec) + FW_ACCESS_TIMEOUT - 2);
    expect(rules[0]?.expiresAt).toBeLessThanOrEqual(Math.ceil(nowSec) + FW_ACCESS_TIMEOUT);
    expect(closedAfter).toBe(true);
    expect(await rulesFor(ip, GUARDED_PORT)).toEqual([]);
    await daemon.waitForLog(
      new RegExp(
        `removed ${escapeRegExp(label())} ${escapeRegExp(ip)} -> 0\\.0\\.0\\.0/0\\(tcp/${GUARDED_PORT}\\) ` +
          `ACCEPT rule ${FW_ACCESS_TIMEOUT} sec timeout exceeded`,
      ),
      LOG_WAIT_MS,
      from,
    );
  });

  it("opens after a spaknock knock; a connection made while open outlives the rule", async () => {
    // Prepare
    const from = daemon.mark();
    await knock(GUARDED_PORT);
    await daemon.waitForLog(addLine(ip, GUARDED_PORT, FW_ACCESS_TIMEOUT), LOG_WAIT_MS, from);
    const openedAt = Date.now();
    const held = await holdConnection(net, net.client.ns, net.server.ip, GUARDED_PORT);
    const echoWhileOpen = await held.echo("while the rule exists");

    // Act
    await sleep(openedAt + FW_ACCESS_TIMEOUT * 1000 + bound - Date.now());
    const newConnectionRefused = await isClosed();
    const rulesAfter = await rulesFor(ip, GUARDED_PORT);
    const echoAfter = await held.echo("after the rule expired");
    await held.close();

    // Assess
    expect(
      daemon.linesMatching(
        new RegExp(`received valid SPA packet from: ${escapeRegExp(ip)}, remote user: alice, `),
        from,
      ),
    ).toHaveLength(1);
    expect(echoWhileOpen).toBe("while the rule exists");
    expect(newConnectionRefused).toBe(true);
    expect(rulesAfter).toEqual([]);
    expect(echoAfter).toBe("after the rule expired");
  });

  it("opens nothing for a replayed packet, also after a daemon restart", async () => {
    // Prepare: the original opens for 1 s and closes again.
    const wire = await spaknockWire(net, {
      keys,
      access: `tcp/${GUARDED_PORT}`,
      allowIp: ip,
      server: net.server.ip,
      fwTimeout: 1,
    });
    let from = daemon.mark();
    await sendUdp(net, net.client.ns, net.server.ip, SPA_PORT, wire);
    await daemon.waitForLog(addLine(ip, GUARDED_PORT, 1), LOG_WAIT_MS, from);
    const openedAt = Date.now();
    await sleep(openedAt + 1_000 + bound - Date.now());
    expect(await isClosed()).toBe(true);

    // Act: the same bytes again
    from = daemon.mark();
    await sendUdp(net, net.client.ns, net.server.ip, SPA_PORT, wire);
    await daemon.waitForLog(refusedLine(ip, "SPA_REPLAY"), LOG_WAIT_MS, from);
    const closedAfterReplay = await isClosed();
    const addsAfterReplay = anyAddSince(from);

    // Act: and once more, to a freshly started daemon reading the same digest file
    await daemon.restart();
    const afterRestart = daemon.mark();
    await sendUdp(net, net.client.ns, net.server.ip, SPA_PORT, wire);
    await daemon.waitForLog(refusedLine(ip, "SPA_REPLAY"), LOG_WAIT_MS, afterRestart);
    const closedAfterRestart = await isClosed();

    // Assess
    expect(addsAfterReplay).toEqual([]);
    expect(closedAfterReplay).toBe(true);
    expect(anyAddSince(afterRestart)).toEqual([]);
    expect(closedAfterRestart).toBe(true);
    expect(await rulesFor(ip, GUARDED_PORT)).toEqual([]);
  });

  it("opens nothing for a knock with the wrong keys (SPA_HMAC_MISMATCH)", async () => {
    // Prepare
    const from = daemon.mark();

    // Act
    await spaknockKnock(net, {
      keys: randomSpaKeys(),
      access: `tcp/${GUARDED_PORT}`,
      allowIp: ip,
      server: net.server.ip,
    });
    await daemon.waitForLog(refusedLine(ip, "SPA_HMAC_MISMATCH"), LOG_WAIT_MS, from);

    // Assess
    expect(anyAddSince(from)).toEqual([]);
    expect(await rulesFor(ip, GUARDED_PORT)).toEqual([]);
    expect(await isClosed()).toBe(true);
  });

  it("opens nothing for a packet stamped 5 minutes ago by the real fwknop client (SPA_STALE)", async () => {
    // Prepare
    const from = daemon.mark();

    // Act
    const client = await runFwknopClient(
      net,
      ["-A", `tcp/${GUARDED_PORT}`, "-a", ip, "-D", net.server.ip, "--time-offset-minus", "5min"],
      fwknopRc,
    );
    await daemon.waitForLog(refusedLine(ip, "SPA_STALE"), LOG_WAIT_MS, from);

    // Assess
    expect(client.code, client.stderr).toBe(0);
    expect(anyAddSince(from)).toEqual([]);
    expect(await rulesFor(ip, GUARDED_PORT)).toEqual([]);
    expect(await isClosed()).toBe(true);
  });

  it("opens nothing for a port outside OPEN_PORTS (SPA_PORT_DENIED)", async () => {
    // Prepare
    const from = daemon.mark();

    // Act
    await knock(DENIED_PORT);
    await daemon.waitForLog(refusedLine(ip, "SPA_PORT_DENIED"), LOG_WAIT_MS, from);

    // Assess
    expect(anyAddSince(from)).toEqual([]);
    expect((await daemon.listRules()).filter((r) => r.sourceIp === ip)).toEqual([]);
  });

  it("opens nothing for a source outside the stanza's SOURCE (SPA_NO_SOURCE_MATCH)", async () => {
    // Prepare: a second client address, not in SOURCE (which is the first address's /32)
    const outsider = await net.addClientAddress();
    const wire = await spaknockWire(net, {
      keys,
      access: `tcp/${GUARDED_PORT}`,
      allowIp: outsider,
      server: net.server.ip,
    });
    const from = daemon.mark();

    // Act
    await sendUdp(net, net.client.ns, net.server.ip, SPA_PORT, wire, { sourceIp: outsider });
    await daemon.waitForLog(refusedLine(outsider, "SPA_NO_SOURCE_MATCH"), LOG_WAIT_MS, from);

    // Assess
    expect(anyAddSince(from)).toEqual([]);
    expect((await daemon.listRules()).filter((r) => r.sourceIp === outsider)).toEqual([]);
    expect(await isClosed(outsider)).toBe(true);
  });

  it("refreshes on a second knock: one rule, with the later expiry", async () => {
    // Prepare
    let from = daemon.mark();
    await knock(REFRESH_PORT, 10);
    await daemon.waitForLog(addLine(ip, REFRESH_PORT, 10), LOG_WAIT_MS, from);
    const first = await rulesFor(ip, REFRESH_PORT);

    // Act
    from = daemon.mark();
    await knock(REFRESH_PORT, 30);
    await daemon.waitForLog(addLine(ip, REFRESH_PORT, 30), LOG_WAIT_MS, from);
    const second = await rulesFor(ip, REFRESH_PORT);
    const listed = await daemon.fwList();

    // Assess
    expect(first).toHaveLength(1);
    expect(second).toHaveLength(1);
    expect(second[0]?.expiresAt).toBeGreaterThanOrEqual((first[0]?.expiresAt ?? 0) + 15);
    expect(listed.code, listed.stderr).toBe(0);
    const lines = listed.stdout.split("\n").filter((l) => l.includes(`tcp/${REFRESH_PORT}`));
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(
      new RegExp(`${escapeRegExp(ip)} -> tcp/${REFRESH_PORT}\\s+(2\\d|30) s left`),
    );
  });

  it("keeps the old configuration on SIGHUP with a broken access.conf, and says why", async () => {
    // Prepare
    const original = await readFile(daemon.accessPath, "utf8");
    await writeFile(daemon.accessPath, `${original}NO_SUCH_ACCESS_KEYWORD 1\n`);
    let from = daemon.mark();

    // Act
    daemon.sighup();
    await daemon.waitForLog(
      /reload failed, keeping the running configuration: /,
      LOG_WAIT_MS,
      from,
    );
    from = daemon.mark();
    await knock(GUARDED_PORT);
    await daemon.waitForLog(addLine(ip, GUARDED_PORT), LOG_WAIT_MS, from);
    const openAfterBadReload = await canConnect();

    // Assess
    expect(daemon.isRunning()).toBe(true);
    expect(daemon.linesMatching(/reload failed/).at(-1)).toMatch(
      new RegExp(`${escapeRegExp(daemon.accessPath)}:\\d+: unknown keyword NO_SUCH_ACCESS_KEYWORD`),
    );
    expect(openAfterBadReload).toBe(true);

    // a good file reloads again
    await writeFile(daemon.accessPath, original);
    from = daemon.mark();
    daemon.sighup();
    await daemon.waitForLog(/reloaded: 1 access stanza\(s\)/, LOG_WAIT_MS, from);
  });

  if (backend === "nftables") {
    it("ends a grant on time after kill -9 of the daemon (the kernel expires it)", async () => {
      // Prepare: a 5 s grant, so that there is time to see it still working with the daemon dead
      const from = daemon.mark();
      await knock(GUARDED_PORT, KILL_GRANT_SEC);
      await daemon.waitForLog(addLine(ip, GUARDED_PORT, KILL_GRANT_SEC), LOG_WAIT_MS, from);
      const openedAt = Date.now();

      // Act
      await daemon.kill9();
      const openWhileDead = await canConnect();
      const rulesWhileDead = await rulesFor(ip, GUARDED_PORT);
      await sleep(openedAt + KILL_GRANT_SEC * 1000 + bound - Date.now());
      const closedAfter = await isClosed();
      const rulesAfter = await rulesFor(ip, GUARDED_PORT);

      // Assess
      expect(daemon.isRunning()).toBe(false);
      expect(rulesWhileDead).toHaveLength(1);
      expect(openWhileDead).toBe(true);
      expect(closedAfter).toBe(true);
      expect(rulesAfter).toEqual([]);
      await daemon.restart();
    });
  } else {
    it("removes a grant that expired while the daemon was dead (kill -9) when it restarts", async () => {
      // Prepare: a short grant that will expire while the daemon is dead, and a long one
      let from = daemon.mark();
      await knock(GUARDED_PORT);
      await daemon.waitForLog(addLine(ip, GUARDED_PORT, FW_ACCESS_TIMEOUT), LOG_WAIT_MS, from);
      const openedAt = Date.now();
      await knock(LONG_PORT, MAX_FW_TIMEOUT);
      await daemon.waitForLog(addLine(ip, LONG_PORT, MAX_FW_TIMEOUT), LOG_WAIT_MS, from);

      // Act
      await daemon.kill9();
      await sleep(openedAt + FW_ACCESS_TIMEOUT * 1000 + bound - Date.now());
      const staleWhileDead = await rulesFor(ip, GUARDED_PORT);
      from = daemon.mark();
      await daemon.restart();
      const rulesAfterRestart = await daemon.listRules();
      const closedAfterRestart = await isClosed();

      // Assess
      expect(staleWhileDead).toHaveLength(1); // nobody else removes it
      expect(staleWhileDead[0]?.expiresAt).toBeLessThanOrEqual(Math.floor(Date.now() / 1000));
      expect(
        daemon.linesMatching(
          new RegExp(
            `removed ${escapeRegExp(daemon.chain)} ${escapeRegExp(ip)} -> 0\\.0\\.0\\.0/0\\(tcp/${GUARDED_PORT}\\): ` +
              "expired while spaknockd was down",
          ),
          from,
        ),
      ).toHaveLength(1);
      expect(
        daemon.linesMatching(
          new RegExp(
            `kept ${escapeRegExp(daemon.chain)} ${escapeRegExp(ip)} -> 0\\.0\\.0\\.0/0\\(tcp/${LONG_PORT}\\), \\d+ sec left`,
          ),
          from,
        ),
      ).toHaveLength(1);
      expect(rulesAfterRestart.filter((r) => r.port === GUARDED_PORT)).toEqual([]);
      expect(rulesAfterRestart.filter((r) => r.port === LONG_PORT)).toHaveLength(1);
      expect(closedAfterRestart).toBe(true);
    });
  }

  it("leaves nothing of spaknock's after --fw-flush", async () => {
    // Prepare
    await daemon.stop();
    const before = await net.exec(net.server.ns, ["nft", "list", "ruleset"]);

    // Act
    const flushed = await daemon.fwFlush();
    const listed = await daemon.fwList();

    // Assess
    expect(flushed.code, flushed.stderr).toBe(0);
    expect(listed.stdout).toMatch(/: 0 open/);
    const tables = await net.exec(net.server.ns, ["nft", "list", "tables"], { check: true });
    const ruleset = await net.exec(net.server.ns, ["nft", "list", "ruleset"], { check: true });
    if (backend === "nftables") {
      expect(before.stdout).toContain(`table inet ${daemon.table}`);
      expect(tables.stdout).not.toContain(daemon.table);
      expect(ruleset.stdout).not.toContain(daemon.table);
      // With spaknock's guard gone nothing closes the port any more: proof nothing is left.
      expect(await canConnect()).toBe(true);
    } else {
      expect(before.stdout).toContain(daemon.chain);
      const rules = await net.exec(net.server.ns, ["iptables", "-w", "-S"], { check: true });
      expect(rules.stdout).not.toContain(daemon.chain);
      expect(ruleset.stdout).not.toContain(daemon.chain);
      // The admin's own DROP is not spaknock's to remove.
      expect(rules.stdout).toContain(`--dport ${GUARDED_PORT}:${LONG_PORT} -j DROP`);
      expect(await isClosed()).toBe(true);
    }
  });
}
