// `spaknockd --fw-list --json` and `--fw-revoke` against a real spaknockd, once per firewall
// backend, in a test net with IPv4 and IPv6 on the veth pair. Real TCP connects from the client
// namespace say whether a port is open; a NOTIFY_EXEC hook records every open/close notification.
//
// What must hold: the listing shows each grant with its expiry; a revoke closes exactly the grant
// it names (an admin's own rule for the same address stays); the running daemon logs the revoke
// once, as "revoked by hand", tells the user once, and says nothing more when the grant's own
// expiry passes; with no daemon running the command closes and logs it itself.
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { buildWithJose, type TestJwkPair, testKeyPair } from "../helpers/jose-packets.js";
import {
  closeServerTcp,
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
  type FirewallBackend,
  randomSpaKeys,
  type Spaknockd,
  sleep,
  spaknockdSkipReason,
  spaknockKnock,
  startSpaknockd,
  writeJoseKeyFiles,
} from "../helpers/spaknockd.js";

const SPA_PORT = 62201;
/** Granted and revoked; an echo server listens on it. */
const GUARDED_PORT = 2042;
/** The admin's own rule lets the client's address in here; an echo server listens on it. */
const ADMIN_PORT = 2043;
/** Granted a little longer than GUARDED_PORT and never revoked: its close proves the timers ran. */
const WITNESS_PORT = 2044;
const GRANT_SEC = 10;
const WITNESS_SEC = 12;
const CLOSED_CHECK_MS = 700;
const LOG_WAIT_MS = 10_000;
/** The witness closes WITNESS_SEC after its knock, plus the backend's bound (a sweep: 5 s). */
const WITNESS_WAIT_MS = (WITNESS_SEC + 8) * 1000;

interface GrantJson {
  sourceIp: string;
  proto: string;
  port: number;
  expiresAt: number | null;
  secondsLeft: number | null;
}

for (const backend of ["nftables", "iptables"] as const satisfies readonly FirewallBackend[]) {
  // The fwknop-format knocks come from the spaknock CLI: no fwknop client is needed.
  const skip = netnsSkipReason() ?? ipv6SkipReason() ?? spaknockdSkipReason(backend);
  describe.skipIf(skip !== undefined)(
    `spaknockd --fw-list --json and --fw-revoke, ${backend}${skip === undefined ? "" : ` (skipped: ${skip})`}`,
    { sequential: true },
    () => scenario(backend),
  );
}

function scenario(backend: FirewallBackend): void {
  const keys = randomSpaKeys();
  let net: TestNet;
  let daemon: Spaknockd;
  let alice: TestJwkPair;
  let server: TestJwkPair;
  let ip: string;
  let serverIp6: string;
  let clientIp6: string;
  let eventsPath: string;
  let adminTable: string;

  const label = () => (backend === "nftables" ? `inet ${daemon.table}` : daemon.chain);
  const connects = (to: string, port: number, timeoutMs = 1_500) =>
    tcpConnect(net, net.client.ns, to, port, timeoutMs);
  const closed = async (to: string, port = GUARDED_PORT) =>
    !(await connects(to, port, CLOSED_CHECK_MS));
  const knock = (port: number, fwTimeout: number) =>
    spaknockKnock(net, {
      keys,
      access: `tcp/${port}`,
      allowIp: ip,
      server: net.server.ip,
      fwTimeout,
    });
  const addLine = (sourceIp: string, port: number) =>
    new RegExp(
      `add ${escapeRegExp(label())} ${escapeRegExp(sourceIp)} -> \\S+\\(tcp/${port}\\) ACCEPT rule \\d+ sec$`,
    );
  const closeLine = (sourceIp: string, port: number, why: string) =>
    new RegExp(
      `removed ${escapeRegExp(label())} ${escapeRegExp(sourceIp)} -> \\S+\\(tcp/${port}\\) ACCEPT rule (\\d+ sec )?${why}$`,
    );
  const listJson = async (): Promise<{ backend: string; target: string; grants: GrantJson[] }> => {
    const listed = await daemon.fwList(["--json"]);
    expect(listed.code, listed.stderr).toBe(0);
    return JSON.parse(listed.stdout);
  };
  /** The NOTIFY_EXEC hook's record: one `open|close <json>` line per notification. */
  const notifications = (event: "open" | "close", port: number, sourceIp = ip) =>
    readFileSync(eventsPath, "utf8")
      .split("\n")
      .filter((l) => l.startsWith(`${event} `))
      .map((l) => JSON.parse(l.slice(event.length + 1)).grant)
      .filter(
        (g: { sourceIp: string; ports: { port: number }[] }) =>
          g.sourceIp === sourceIp && g.ports.some((p) => p.port === port),
      );
  const adminRules = async (): Promise<string> => {
    const argv =
      backend === "nftables"
        ? ["nft", "list", "table", "inet", adminTable]
        : ["iptables", "-w", "-S", daemon.chain];
    return (await net.exec(net.server.ns, argv, { check: true })).stdout;
  };

  beforeAll(async () => {
    [alice, server] = await Promise.all([testKeyPair("Ed25519"), testKeyPair("X25519")]);
    net = await createTestNet();
    ip = net.client.ip;
    serverIp6 = net.server.ip6 as string;
    clientIp6 = net.client.ip6 as string;
    const dir = net.makeTempDir("revoke");
    const { serverKeyFile, authorizedKeysFile } = await writeJoseKeyFiles(dir, server, [
      { key: alice, name: "alice" },
    ]);
    const hook = join(dir, "notify.sh");
    eventsPath = join(dir, "events.log");
    writeFileSync(eventsPath, "");
    // One write per notification (hooks may run side by side): read stdin first, then append.
    writeFileSync(
      hook,
      `#!/bin/sh\nevent=$(cat)\nprintf '%s %s\\n' "$1" "$event" >> '${eventsPath}'\n`,
      { mode: 0o755 },
    );
    for (const port of [GUARDED_PORT, ADMIN_PORT])
      await startTcpListener(net, net.server.ns, port, "::");
    if (backend === "iptables") {
      await closeServerTcp(net, "reset", `${GUARDED_PORT}:${WITNESS_PORT}`, [4, 6]);
    }
    daemon = await startSpaknockd(net, {
      backend,
      capture: "udp",
      stanzas: [
        {
          source: "ANY",
          keyBase64: keys.keyBase64,
          hmacKeyBase64: keys.hmacKeyBase64,
          hmacDigestType: "sha256",
          openPorts: `tcp/${GUARDED_PORT}, tcp/${WITNESS_PORT}`,
          fwAccessTimeout: GRANT_SEC,
          maxFwTimeout: 30,
          extraLines: [`AUTHORIZED_KEYS ${authorizedKeysFile}`],
        },
      ],
      extraConfLines: [`SERVER_KEY_FILE ${serverKeyFile}`, `NOTIFY_EXEC ${hook}`],
    });
    // The admin's own rule for the client's address: with nftables in a table of its own (the
    // port is closed to everyone else there); with iptables an ACCEPT without `_exp_` placed in
    // spaknock's own chain, where --fw-revoke looks.
    adminTable = `spk_admin_${process.pid}`;
    if (backend === "nftables") {
      const script =
        `add table inet ${adminTable}\n` +
        `add chain inet ${adminTable} input { type filter hook input priority 0; policy accept; }\n` +
        `add rule inet ${adminTable} input ip saddr ${ip} tcp dport ${ADMIN_PORT} accept\n` +
        `add rule inet ${adminTable} input tcp dport ${ADMIN_PORT} drop\n`;
      const file = join(dir, "admin.nft");
      writeFileSync(file, script);
      await net.exec(net.server.ns, ["nft", "-f", file], { check: true });
    } else {
      await net.exec(
        net.server.ns,
        ["iptables", "-w", "-A", daemon.chain, "-s", `${ip}/32`, "-p", "tcp"].concat([
          "--dport",
          String(ADMIN_PORT),
          "-j",
          "ACCEPT",
        ]),
        { check: true },
      );
    }
  }, 60_000);

  afterAll(async () => {
    await net?.destroy();
  });

  it("the guarded port is closed and the admin's port open to the client before any knock", async () => {
    expect(await closed(net.server.ip)).toBe(true);
    expect(await connects(net.server.ip, ADMIN_PORT)).toBe(true);
    expect((await listJson()).grants).toEqual([]);
  });

  it("--fw-list --json shows an IPv4 grant with its expiry and time left", async () => {
    // Prepare
    const from = daemon.mark();
    await knock(GUARDED_PORT, GRANT_SEC);
    await daemon.waitForLog(addLine(ip, GUARDED_PORT), LOG_WAIT_MS, from);
    const knockedAt = Math.floor(Date.now() / 1000);

    // Act
    const doc = await listJson();

    // Assess
    expect(doc.backend).toBe(backend);
    expect(doc.target).toBe(label());
    expect(doc.grants).toHaveLength(1);
    const [grant] = doc.grants;
    expect(grant).toMatchObject({ sourceIp: ip, proto: "tcp", port: GUARDED_PORT });
    expect(grant?.expiresAt).toBeGreaterThanOrEqual(knockedAt + GRANT_SEC - 2);
    expect(grant?.expiresAt).toBeLessThanOrEqual(knockedAt + GRANT_SEC);
    expect(grant?.secondsLeft).toBeGreaterThan(0);
    expect(grant?.secondsLeft).toBeLessThanOrEqual(GRANT_SEC);
    expect(await connects(net.server.ip, GUARDED_PORT)).toBe(true);
  });

  it("--fw-revoke ADDR:tcp/PORT closes that grant now and leaves the admin's rule", async () => {
    // Prepare: a second grant, knocked after the first and longer, that nobody revokes
    const from = daemon.mark();
    await knock(WITNESS_PORT, WITNESS_SEC);
    await daemon.waitForLog(addLine(ip, WITNESS_PORT), LOG_WAIT_MS, from);

    // Act
    const revoked = await daemon.fwRevoke(`${ip}:tcp/${GUARDED_PORT}`);

    // Assess
    expect(revoked.code, revoked.stderr).toBe(0);
    expect(revoked.stdout).toContain(`${label()}: closed 1`);
    expect(revoked.stdout).toMatch(
      new RegExp(`${escapeRegExp(ip)} -> tcp/${GUARDED_PORT}  \\(\\d+ s before its expiry\\)`),
    );
    expect(revoked.stdout).not.toContain(`tcp/${WITNESS_PORT}`);
    expect(await closed(net.server.ip)).toBe(true);
    const left = (await listJson()).grants.map((g) => g.port);
    expect(left).toEqual([WITNESS_PORT]);
    expect(await connects(net.server.ip, ADMIN_PORT)).toBe(true);
    expect(await adminRules()).toMatch(
      backend === "nftables"
        ? new RegExp(`ip saddr ${escapeRegExp(ip)} tcp dport ${ADMIN_PORT} accept`)
        : new RegExp(`-s ${escapeRegExp(ip)}/32 -p tcp -m tcp --dport ${ADMIN_PORT} -j ACCEPT`),
    );
    await daemon.waitForLog(closeLine(ip, GUARDED_PORT, "revoked by hand"), LOG_WAIT_MS, from);
    expect(daemon.linesMatching(closeLine(ip, GUARDED_PORT, "revoked by hand"), from)).toEqual([
      expect.stringMatching(new RegExp(`ACCEPT rule ${GRANT_SEC} sec revoked by hand$`)),
    ]);
  });

  it(
    "the running daemon reports the revoked grant's close once: nothing more at its expiry",
    async () => {
      // Act: the witness was knocked after the revoked grant, for longer; once its own close is
      // logged, the revoked grant's expiry has passed too.
      const from = 0;
      await daemon.waitForLog(
        closeLine(ip, WITNESS_PORT, "timeout exceeded"),
        WITNESS_WAIT_MS,
        from,
      );
      const deadline = Date.now() + LOG_WAIT_MS;
      while (notifications("close", WITNESS_PORT).length === 0 && Date.now() < deadline)
        await sleep(100);

      // Assess
      expect(
        daemon.linesMatching(closeLine(ip, GUARDED_PORT, "revoked by hand"), from),
      ).toHaveLength(1);
      expect(daemon.linesMatching(closeLine(ip, GUARDED_PORT, "timeout exceeded"), from)).toEqual(
        [],
      );
      expect(daemon.linesMatching(/already gone/, from)).toEqual([]);
      expect(notifications("open", GUARDED_PORT)).toHaveLength(1);
      expect(notifications("close", GUARDED_PORT)).toHaveLength(1);
      expect(notifications("close", WITNESS_PORT)).toHaveLength(1);
      expect(daemon.isRunning()).toBe(true);
    },
    WITNESS_WAIT_MS + 2 * LOG_WAIT_MS,
  );

  it("says so and exits 1 when nothing matches; an IPv6 address with a port needs brackets (2)", async () => {
    // Act
    const nothing = await daemon.fwRevoke(ip);
    const nothingJson = await daemon.fwRevoke(`${ip}:tcp/${GUARDED_PORT}`, ["--json"]);
    const ambiguous = await daemon.fwRevoke(`${clientIp6}:tcp/${GUARDED_PORT}`);

    // Assess
    expect(nothing.code).toBe(1);
    expect(nothing.stderr).toContain(
      `no grant of spaknock's in ${label()} matches ${ip}: nothing closed`,
    );
    expect(nothing.stdout).toBe("");
    expect(nothingJson.code).toBe(1);
    expect(JSON.parse(nothingJson.stdout)).toEqual({ backend, target: label(), revoked: [] });
    expect(ambiguous.code).toBe(2);
    expect(ambiguous.stderr).toContain("write an IPv6 address with a port as [ADDR]:proto/port");
  });

  it("an IPv6 grant is listed and revoked with [ADDR]:tcp/PORT", async () => {
    // Prepare: a JOSE knock over IPv6 for the client's own IPv6 address
    const from = daemon.mark();
    const packet = await buildWithJose({
      signer: alice,
      server,
      username: "alice",
      now: Math.floor(Date.now() / 1000),
      ip: clientIp6,
      acc: [`tcp/${GUARDED_PORT}`],
    });
    await sendUdp(net, net.client.ns, serverIp6, SPA_PORT, packet);
    await daemon.waitForLog(addLine(clientIp6, GUARDED_PORT), LOG_WAIT_MS, from);
    const listed = (await listJson()).grants;
    const openBefore = await connects(serverIp6, GUARDED_PORT);

    // Act
    const revoked = await daemon.fwRevoke(`[${clientIp6}]:tcp/${GUARDED_PORT}`, ["--json"]);

    // Assess
    expect(listed).toEqual([
      expect.objectContaining({ sourceIp: clientIp6, proto: "tcp", port: GUARDED_PORT }),
    ]);
    expect(openBefore).toBe(true);
    expect(revoked.code, revoked.stderr).toBe(0);
    const doc = JSON.parse(revoked.stdout);
    expect(doc).toMatchObject({ backend, target: label() });
    expect(doc.revoked).toEqual([
      expect.objectContaining({ sourceIp: clientIp6, proto: "tcp", port: GUARDED_PORT }),
    ]);
    expect(await closed(serverIp6)).toBe(true);
    expect((await listJson()).grants).toEqual([]);
    await daemon.waitForLog(
      closeLine(clientIp6, GUARDED_PORT, "revoked by hand"),
      LOG_WAIT_MS,
      from,
    );
    expect(daemon.linesMatching(/revoked by hand$/, from)).toEqual([
      expect.stringContaining(`${clientIp6} -> ::/0(tcp/${GUARDED_PORT})`),
    ]);
  });

  it("with no daemon running, --fw-revoke ADDR closes every grant of the address and logs it", async () => {
    // Prepare: a grant, then the daemon killed with -9 (its control socket file stays behind)
    const from = daemon.mark();
    await knock(GUARDED_PORT, GRANT_SEC);
    await daemon.waitForLog(addLine(ip, GUARDED_PORT), LOG_WAIT_MS, from);
    await daemon.kill9();
    const openWhileDead = await connects(net.server.ip, GUARDED_PORT);

    // Act
    const revoked = await daemon.fwRevoke(ip, ["-f"]);

    // Assess
    expect(openWhileDead).toBe(true);
    expect(revoked.code, revoked.stderr).toBe(0);
    expect(revoked.stdout).toContain(`${ip} -> tcp/${GUARDED_PORT}`);
    expect(revoked.stderr).toMatch(
      new RegExp(
        `removed ${escapeRegExp(label())} ${escapeRegExp(ip)} -> 0\\.0\\.0\\.0/0\\(tcp/${GUARDED_PORT}\\) ACCEPT rule revoked by hand`,
      ),
    );
    expect(await closed(net.server.ip)).toBe(true);
    expect(await connects(net.server.ip, ADMIN_PORT)).toBe(true);
  });
}
