// The JOSE profile end to end, once per firewall backend: a real spaknockd in a test net with IPv4
// and IPv6 on the veth pair, one stanza holding both fwknop keys and an AUTHORIZED_KEYS set.
// Packets are built with `jose` directly (test/helpers/jose-packets.ts), plus one knock by the
// spaknock CLI with --signing-key; real TCP connects from the client namespace say whether the
// port is open, for which address, and when it has closed again.
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  authorizedKeysText,
  buildWithJose,
  type TestJwkPair,
  testKeyPair,
} from "../helpers/jose-packets.js";
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
  SPAKNOCK_MAIN,
  type Spaknockd,
  sleep,
  spaknockdSkipReason,
  spaknockKnock,
  startSpaknockd,
  writeJoseKeyFiles,
} from "../helpers/spaknockd.js";

const GUARDED_PORT = 2022;
const SPA_PORT = 62201;
const GRANT_SEC = 3;
/** Expiry: kernel timeouts (nftables) or the daemon's timer (iptables) end within this of it. */
const EXPIRY_SLACK_MS = 2_500;
const CLOSED_CHECK_MS = 700;

for (const backend of ["nftables", "iptables"] as const satisfies readonly FirewallBackend[]) {
  // The fwknop-format knocks come from the spaknock CLI: no fwknop client is needed.
  const skip = netnsSkipReason() ?? ipv6SkipReason() ?? spaknockdSkipReason(backend);
  describe.skipIf(skip !== undefined)(
    `spaknockd with JOSE packets, ${backend}${skip === undefined ? "" : ` (skipped: ${skip})`}`,
    { sequential: true },
    () => scenario(backend),
  );
}

function scenario(backend: FirewallBackend): void {
  const fwknopKeys = randomSpaKeys();
  let net: TestNet;
  let daemon: Spaknockd;
  let alice: TestJwkPair;
  let bob: TestJwkPair;
  let server: TestJwkPair;
  let serverIp6: string;
  let clientIp6: string;
  let authorizedKeysFile: string;

  const open = (to: string, sourceIp?: string, timeoutMs = 1_500) =>
    tcpConnect(net, net.client.ns, to, GUARDED_PORT, timeoutMs, sourceIp ? { sourceIp } : {});
  const closed = async (to: string, sourceIp?: string) =>
    !(await open(to, sourceIp, CLOSED_CHECK_MS));
  const packet = (ip: string, signer = alice) =>
    buildWithJose({
      signer,
      server,
      username: "alice",
      now: Math.floor(Date.now() / 1000),
      ip,
      acc: [`tcp/${GUARDED_PORT}`],
    });
  const addLine = (ip: string) =>
    new RegExp(
      `add \\S+( \\S+)? ${escapeRegExp(ip)} -> \\S+\\(tcp/${GUARDED_PORT}\\) ACCEPT rule ${GRANT_SEC} sec`,
    );
  const refused = (code: string) => new RegExp(`refused SPA packet from .*: ${code} \\(`);
  const waitClosed = async (to: string, sourceIp?: string) => {
    const deadline = Date.now() + GRANT_SEC * 1000 + EXPIRY_SLACK_MS;
    while (Date.now() < deadline) {
      if (await closed(to, sourceIp)) return true;
      await sleep(200);
    }
    return false;
  };

  beforeAll(async () => {
    [alice, bob, server] = await Promise.all([
      testKeyPair("Ed25519"),
      testKeyPair("Ed25519"),
      testKeyPair("X25519"),
    ]);
    net = await createTestNet();
    serverIp6 = net.server.ip6 as string;
    clientIp6 = net.client.ip6 as string;
    const keyFiles = await writeJoseKeyFiles(net.makeTempDir("jose-keys"), server, [
      { key: alice, name: "alice" },
    ]);
    authorizedKeysFile = keyFiles.authorizedKeysFile;
    await startTcpListener(net, net.server.ns, GUARDED_PORT, "::");
    if (backend === "iptables") await closeServerTcp(net, "reset", String(GUARDED_PORT), [4, 6]);
    daemon = await startSpaknockd(net, {
      backend,
      capture: "udp",
      stanzas: [
        {
          keyBase64: fwknopKeys.keyBase64,
          hmacKeyBase64: fwknopKeys.hmacKeyBase64,
          openPorts: `tcp/${GUARDED_PORT}`,
          fwAccessTimeout: GRANT_SEC,
          extraLines: [`AUTHORIZED_KEYS ${authorizedKeysFile}`],
        },
      ],
      extraConfLines: [`SERVER_KEY_FILE ${keyFiles.serverKeyFile}`],
    });
  }, 60_000);

  afterAll(async () => {
    await net?.destroy();
  });

  it("the port is closed to both families before any knock", async () => {
    expect(await closed(net.server.ip)).toBe(true);
    expect(await closed(serverIp6)).toBe(true);
  });

  it("a JOSE knock over IPv4 opens for that address only, for the timeout", async () => {
    const other = await net.addClientAddress();
    const from = daemon.mark();
    await sendUdp(net, net.client.ns, net.server.ip, SPA_PORT, await packet("0.0.0.0"));
    await daemon.waitForLog(addLine(net.client.ip), 10_000, from);
    expect(await open(net.server.ip)).toBe(true);
    expect(await closed(net.server.ip, other)).toBe(true);
    expect(await closed(serverIp6)).toBe(true);
    expect(daemon.linesMatching(/remote user: alice, key: /, from)).toHaveLength(1);
    expect(await waitClosed(net.server.ip)).toBe(true);
  }, 30_000);

  it("a JOSE knock over IPv6 opens for that IPv6 address only, for the timeout", async () => {
    const otherIp6 = await net.addClientIpv6Address();
    const from = daemon.mark();
    // Sent from the first IPv6 address: the kernel might pick the one just added.
    await sendUdp(net, net.client.ns, serverIp6, SPA_PORT, await packet("::"), {
      sourceIp: clientIp6,
    });
    await daemon.waitForLog(addLine(clientIp6), 10_000, from);
    expect(await open(serverIp6, clientIp6)).toBe(true);
    expect(await closed(serverIp6, otherIp6)).toBe(true);
    expect(await closed(net.server.ip)).toBe(true);
    const rules = await daemon.listRules();
    expect(rules.map((r) => r.sourceIp)).toEqual([clientIp6]);
    const list = await daemon.fwList();
    expect(list.stdout).toContain(clientIp6);
    expect(await waitClosed(serverIp6, clientIp6)).toBe(true);
  }, 30_000);

  it("an IPv4 packet may ask for an IPv6 address, and gets exactly that one", async () => {
    const from = daemon.mark();
    await sendUdp(net, net.client.ns, net.server.ip, SPA_PORT, await packet(clientIp6));
    await daemon.waitForLog(addLine(clientIp6), 10_000, from);
    expect(await open(serverIp6, clientIp6)).toBe(true);
    expect(await closed(net.server.ip)).toBe(true);
    expect(await waitClosed(serverIp6, clientIp6)).toBe(true);
  }, 30_000);

  it("a replayed JOSE packet opens nothing, also after a restart", async () => {
    const wire = await packet("0.0.0.0");
    let from = daemon.mark();
    await sendUdp(net, net.client.ns, net.server.ip, SPA_PORT, wire);
    await daemon.waitForLog(addLine(net.client.ip), 10_000, from);
    expect(await waitClosed(net.server.ip)).toBe(true);

    from = daemon.mark();
    await sendUdp(net, net.client.ns, serverIp6, SPA_PORT, wire);
    await daemon.waitForLog(refused("SPA_REPLAY"), 10_000, from);

    await daemon.restart();
    from = daemon.mark();
    await sendUdp(net, net.client.ns, net.server.ip, SPA_PORT, wire);
    await daemon.waitForLog(refused("SPA_REPLAY"), 10_000, from);
    expect(daemon.linesMatching(/ ACCEPT rule /, from)).toEqual([]);
    expect(await closed(net.server.ip)).toBe(true);
  }, 40_000);

  it("a key not in the set opens nothing; a key deleted from the set stops opening after SIGHUP", async () => {
    let from = daemon.mark();
    await sendUdp(net, net.client.ns, net.server.ip, SPA_PORT, await packet("0.0.0.0", bob));
    await daemon.waitForLog(refused("JOSE_KEY_UNKNOWN"), 10_000, from);
    expect(await closed(net.server.ip)).toBe(true);

    writeFileSync(authorizedKeysFile, authorizedKeysText([{ key: bob, name: "bob" }]));
    from = daemon.mark();
    daemon.sighup();
    await daemon.waitForLog(/reloaded: 1 access stanza/, 10_000, from);
    await sendUdp(net, net.client.ns, net.server.ip, SPA_PORT, await packet("0.0.0.0"));
    await daemon.waitForLog(refused("JOSE_KEY_UNKNOWN"), 10_000, from);
    expect(await closed(net.server.ip)).toBe(true);

    writeFileSync(authorizedKeysFile, authorizedKeysText([{ key: alice, name: "alice" }]));
    from = daemon.mark();
    daemon.sighup();
    await daemon.waitForLog(/reloaded: 1 access stanza/, 10_000, from);
  }, 30_000);

  it("the spaknock CLI with --signing-key knocks over IPv6 (-D an IPv6 address, -s)", async () => {
    const cliKeys = net.makeTempDir("cli-keys");
    const signingKey = join(cliKeys, "alice.jwk");
    const serverKey = join(cliKeys, "server.pub.jwk");
    writeFileSync(signingKey, JSON.stringify(alice.privateJwk), { mode: 0o600 });
    writeFileSync(serverKey, JSON.stringify(server.publicJwk), { mode: 0o644 });
    const from = daemon.mark();
    const result = await net.exec(net.client.ns, [
      process.execPath,
      SPAKNOCK_MAIN,
      "--no-rc-file",
      "--signing-key",
      signingKey,
      "--server-key",
      serverKey,
      "-D",
      serverIp6,
      "-A",
      `tcp/${GUARDED_PORT}`,
      "-s",
      "-U",
      "alice",
    ]);
    expect(result.code, result.stderr).toBe(0);
    // -s: the grant is for the IPv6 source the kernel chose (the client holds several by now).
    const received = await daemon.waitForLog(
      /received valid SPA packet from: (\S+),/,
      10_000,
      from,
    );
    const source = /from: (\S+),/.exec(received)?.[1] as string;
    expect(source).toMatch(/^2001:db8:5a:/);
    await daemon.waitForLog(addLine(source), 10_000, from);
    expect(await open(serverIp6, source)).toBe(true);
    expect(await waitClosed(serverIp6, source)).toBe(true);
  }, 30_000);

  it("an fwknop-format knock still opens beside them on the same daemon", async () => {
    const from = daemon.mark();
    await spaknockKnock(net, {
      keys: fwknopKeys,
      access: `tcp/${GUARDED_PORT}`,
      allowIp: net.client.ip,
      server: net.server.ip,
    });
    await daemon.waitForLog(addLine(net.client.ip), 10_000, from);
    expect(daemon.linesMatching(/client version: 3\.0\.0/, from)).toHaveLength(1);
    expect(await open(net.server.ip)).toBe(true);
    expect(await waitClosed(net.server.ip)).toBe(true);
  }, 30_000);
}
