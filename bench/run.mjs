#!/usr/bin/env node
// spaknockd against the real fwknopd 2.6.x, in the same run and the same kind of network
// namespaces (docs/architecture.md: bench/; issue 3). Needs root, `npm run build`, fwknopd, nft,
// iptables and iproute2. About 1.5 minutes with the defaults.
//
//   node bench/run.mjs [--knocks 20] [--flood-seconds 4] [--fwknopd-floods 1000,2000,1000x4096]
//                      [--spaknockd-floods 1000,2000,50000,10000x4096,20000x4096,50000x4096]
//                      [--burst 4000] [--burst-rate 1000]
//                      [--only fwknopd|spaknockd] [--verbose] [--json]
//
// A flood is RATE (junk datagrams per second, all from the client's own address) or
// RATExSOURCES (round-robin from that many addresses, standing for many senders: spaknockd's
// nftables table rate-limits each source at the SPA port, so one source alone barely reaches it).
//
// For each daemon, in a fresh namespace pair of its own (server: the daemon and a TCP service on
// the guarded port; client: one extra address per knock on its veth), it measures
//   1. knock→open: from sending the SPA datagram to the first TCP connect that succeeds, from the
//      address the packet asked for (-a), tried on a fresh socket every 1 ms; one knock per
//      distinct address; median and p90 (the first knock after start is reported on its own);
//   2. valid knocks honoured during a junk flood: random base64 datagrams of SPA size at a target
//      rate for a few seconds, 10 valid knocks from distinct addresses in the middle; a knock is
//      honoured if a TCP connect from its address succeeds before the flood ends plus 2 s;
//   3. CPU time per junk packet (/proc/<pid>/stat utime+stime over a fixed burst spread over
//      4096 sources, so that every datagram reaches the daemon), the daemon's CPU during each
//      flood, and peak RSS (VmHWM);
// then prints each figure for both daemons and how many times better spaknockd is.
//
// Packets are built before each timed phase by `spaknock -T` (dist/cli) from a 0600 rc file, so
// keys never appear on a command line. The client side of every measurement is one node process
// in the client namespace (bench/lib/client-agent.mjs) that does its own timing.
//
// Traffic only flows between the two namespaces (198.18.0.0/15 addresses); every flood is
// bounded in packets and time and stops by itself; namespaces and processes are removed at the
// end, also on error or Ctrl-C.

import { execFile } from "node:child_process";
import { randomBytes } from "node:crypto";
import { existsSync, writeFileSync } from "node:fs";
import { availableParallelism } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs, promisify } from "node:util";
import { NFT_TABLE, startFwknopd, startSpaknockd } from "./lib/daemons.mjs";
import { formatNumber, loadAverage, machineInfo, percentile, renderTable } from "./lib/report.mjs";

const REPO = fileURLToPath(new URL("..", import.meta.url));
const AGENT = fileURLToPath(new URL("./lib/client-agent.mjs", import.meta.url));
const TCP_SINK = fileURLToPath(new URL("./lib/tcp-sink.mjs", import.meta.url));
const NFT_TIMING = fileURLToPath(new URL("./lib/nft-timing.mjs", import.meta.url));
const CLI = fileURLToPath(new URL("../dist/cli/main.js", import.meta.url));
// The namespace harness the e2e tests use, compiled from test/helpers/netns.ts by `npm run bench`.
const HARNESS = new URL("../build/harness/netns.js", import.meta.url);
if (!existsSync(CLI) || !existsSync(HARNESS)) {
  process.stderr.write("bench: run `npm run bench` (it builds dist/ and build/harness/)\n");
  process.exit(2);
}
const { createTestNet, findExecutable } = await import(HARNESS.href);
const RC_STANZA = "bench";
const BUILD_CONCURRENCY = Math.max(2, availableParallelism() * 2);
const execFileAsync = promisify(execFile);

const SPA_PORT = 62201;
const TCP_PORT = 2222;
const GRANT_SECONDS = 120;
const FLOOD_KNOCKS = 10;
const FLOOD_GRACE_MS = 2_000;
const SETTLE_MS = 1_000;
// Junk "from many sources" comes from non-local addresses of one /16 of 198.18.0.0/15 in the
// client namespace: the half the namespace pair's own /24 is not in.
const spoofHalf = (net) => (net.subnetPrefix.startsWith("198.18.") ? "198.19" : "198.18");
const SPOOF_RANGE = "the other /16 of 198.18.0.0/15";
const MAX_JUNK_SOURCES = 16_000;
// The CPU-per-packet burst is spread over this many sources, so per-source limits in front of a
// daemon (spaknockd's SPA_RATE_LIMIT) let every datagram through to it.
const BURST_SOURCES = 4096;

const { values: args } = parseArgs({
  options: {
    knocks: { type: "string", default: "20" },
    "flood-seconds": { type: "string", default: "4" },
    "fwknopd-floods": { type: "string", default: "1000,2000,1000x4096" },
    "spaknockd-floods": {
      type: "string",
      default: "1000,2000,50000,10000x4096,20000x4096,50000x4096",
    },
    burst: { type: "string", default: "4000" },
    "burst-rate": { type: "string", default: "1000" },
    only: { type: "string" },
    verbose: { type: "boolean", default: false },
    json: { type: "boolean", default: false },
  },
});

const settings = {
  knocks: positiveInt(args.knocks, "--knocks"),
  floodMs: positiveInt(args["flood-seconds"], "--flood-seconds") * 1000,
  floods: {
    fwknopd: floodList(args["fwknopd-floods"], "--fwknopd-floods"),
    spaknockd: floodList(args["spaknockd-floods"], "--spaknockd-floods"),
  },
  burst: positiveInt(args.burst, "--burst"),
  burstRate: positiveInt(args["burst-rate"], "--burst-rate"),
};
if (settings.knocks < 15) usage("--knocks: at least 15");

function usage(message) {
  process.stderr.write(`bench: ${message}\n`);
  process.exit(2);
}

function positiveInt(text, option) {
  if (!/^[1-9][0-9]*$/.test(text)) usage(`${option}: expected a positive whole number`);
  return Number(text);
}

/** "1000,50000x4096": junk rates per second, each from 1 source address or from N. */
function floodList(text, option) {
  return text.split(",").map((item) => {
    const [rate, sources = "1"] = item.trim().split("x");
    const spec = { rate: positiveInt(rate ?? "", option), sources: positiveInt(sources, option) };
    if (spec.sources > MAX_JUNK_SOURCES) usage(`${option}: at most ${MAX_JUNK_SOURCES} sources`);
    return spec;
  });
}

const progress = (message) => process.stderr.write(`bench: ${message}\n`);
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

function checkPrerequisites() {
  if (process.platform !== "linux" || process.getuid?.() !== 0) {
    usage("run as root on Linux (it creates network namespaces and firewall rules)");
  }
  for (const tool of ["ip", "nft", "iptables", "fwknopd"]) {
    if (findExecutable(tool) === undefined) usage(`${tool} is not installed`);
  }
}

/**
 * The JOSE profile's keys for one run: the server's X25519 key (0600) and one user's Ed25519 key
 * in a JWK Set, written to a private directory; returns the files for spaknockd and a builder of
 * one JOSE packet per address (built by dist/core, the encoder the client uses).
 */
async function joseSetup(net) {
  const core = await import("../dist/core/index.js");
  const dir = net.makeTempDir("jose");
  const server = await core.generateJwkPair("X25519");
  const user = await core.generateJwkPair("Ed25519");
  const serverKeyFile = join(dir, "server.jwk");
  const authorizedKeysFile = join(dir, "team.jwks");
  writeFileSync(serverKeyFile, JSON.stringify(server.privateJwk), { mode: 0o600, flag: "wx" });
  writeFileSync(
    authorizedKeysFile,
    JSON.stringify({ keys: [{ ...user.publicJwk, name: "bench" }] }),
    {
      mode: 0o644,
      flag: "wx",
    },
  );
  const signingKey = await core.importPrivateJwk(
    JSON.stringify(user.privateJwk),
    "Ed25519",
    "bench",
  );
  const serverPublic = await core.importPublicJwk(
    JSON.stringify(server.publicJwk),
    "X25519",
    "bench",
  );
  const build = async (addrs) =>
    Promise.all(
      addrs.map(async (addr) => ({
        addr,
        wire: await core.buildJosePacket(
          {
            username: "bench",
            timestamp: Math.floor(Date.now() / 1000),
            allowIp: addr,
            ports: [{ proto: "tcp", port: TCP_PORT }],
            clientTimeout: 0,
          },
          randomBytes(16),
          signingKey,
          serverPublic,
        ),
      })),
    );
  return { files: { serverKeyFile, authorizedKeysFile }, build };
}

/**
 * Writes a 0600 fwknop-format rc file holding the keys (so no key is ever on a command line) and
 * returns a builder that makes one SPA packet per address with `spaknock -T`.
 */
function packetBuilder(net, keys) {
  const dir = net.makeTempDir("client");
  const rcFile = join(dir, "fwknoprc");
  const stanza = [
    `[${RC_STANZA}]`,
    `SPA_SERVER ${net.server.ip}`,
    `ACCESS tcp/${TCP_PORT}`,
    `KEY_BASE64 ${keys.key}`,
    `HMAC_KEY_BASE64 ${keys.hmacKey}`,
    "USE_HMAC Y",
    "",
  ].join("\n");
  writeFileSync(rcFile, stanza, { mode: 0o600, flag: "wx" });
  const buildOne = async (addr) => {
    const argv = [CLI, "--rc-file", rcFile, "-n", RC_STANZA, "-a", addr, "-U", "bench", "-T"];
    // HOME points at the private directory, so nothing is read from or saved to the real one.
    const { stdout } = await execFileAsync(process.execPath, argv, {
      env: { ...process.env, HOME: dir },
      timeout: 30_000,
    });
    const wire = stdout.trim().split("\n").at(-1) ?? "";
    if (!/^[A-Za-z0-9+/]{100,}$/.test(wire)) {
      throw new Error(`spaknock -T printed no packet for ${addr}:\n${stdout}`);
    }
    return { addr, wire };
  };
  return async (addrs) => {
    const out = new Array(addrs.length);
    let next = 0;
    const worker = async () => {
      while (next < addrs.length) {
        const i = next++;
        out[i] = await buildOne(addrs[i]);
      }
    };
    await Promise.all(Array.from({ length: BUILD_CONCURRENCY }, worker));
    return out;
  };
}

/** Runs the client agent inside the client namespace with `job`; resolves with its result. */
function runAgent(net, job, timeoutMs) {
  return new Promise((resolve, reject) => {
    const child = net.spawn(net.client.ns, [process.execPath, AGENT], {
      stdio: ["pipe", "pipe", "pipe"],
    });
    let stdout = "";
    let stderr = "";
    child.stdout.setEncoding("utf8").on("data", (chunk) => {
      stdout += chunk;
    });
    child.stderr.setEncoding("utf8").on("data", (chunk) => {
      stderr += chunk;
    });
    const timer = setTimeout(() => child.kill("SIGKILL"), timeoutMs);
    child.once("exit", (code, signal) => {
      clearTimeout(timer);
      if (code !== 0) {
        reject(new Error(`client agent failed (code ${code}, signal ${signal}): ${stderr.trim()}`));
        return;
      }
      try {
        resolve(JSON.parse(stdout));
      } catch {
        reject(new Error(`client agent printed no result: ${stdout.trim()} ${stderr.trim()}`));
      }
    });
    child.stdin.end(JSON.stringify(job));
  });
}

function waitForListening(child) {
  return new Promise((resolve, reject) => {
    let out = "";
    const timer = setTimeout(() => reject(new Error("TCP service did not start")), 10_000);
    child.stdout.setEncoding("utf8").on("data", (chunk) => {
      out += chunk;
      if (out.includes("LISTENING")) {
        clearTimeout(timer);
        resolve();
      }
    });
    child.once("exit", () => reject(new Error("TCP service exited")));
  });
}

/** `count` junk source addresses: the client's own address, or non-local ones (spoofHalf). */
function junkSources(net, count) {
  if (count === 1) return [net.client.ip];
  const out = [];
  for (let i = 1; out.length < count; i++) {
    if ((i & 255) === 0 || (i & 255) === 255) continue;
    out.push(`${spoofHalf(net)}.${i >> 8}.${i & 255}`);
  }
  return out;
}

function baseJob(net) {
  return {
    server: net.server.ip,
    spaPort: SPA_PORT,
    tcpPort: TCP_PORT,
    attemptEveryMs: 1,
    attemptTimeoutMs: 5,
  };
}

async function measureLatency(net, buildPackets, addrs) {
  const knocks = await buildPackets(addrs);
  const job = {
    ...baseJob(net),
    mode: "latency",
    knocks,
    gapMs: [100, 250],
    knockTimeoutMs: 3_000,
  };
  const { results } = await runAgent(net, job, 60_000 + addrs.length * 4_000);
  return results;
}

/** Junk only: `count` packets at `rate`; returns what was sent and the daemon's CPU time. */
async function measureBurst(net, daemon, count, rate) {
  const job = {
    ...baseJob(net),
    mode: "flood",
    junkSources: junkSources(net, BURST_SOURCES),
    rate,
    durationMs: Math.ceil((count * 1000) / rate),
    knocks: [],
    graceMs: 0,
  };
  const before = { stat: daemon.cpuSeconds(), precise: daemon.cpuSecondsPrecise() };
  const result = await runAgent(net, job, job.durationMs + 30_000);
  await sleep(SETTLE_MS);
  daemon.assertAlive();
  const cpu = daemon.cpuSeconds() - before.stat;
  const precise = daemon.cpuSecondsPrecise() - before.precise;
  return {
    sent: result.sent,
    achievedRate: result.achievedRate,
    cpuSeconds: cpu,
    cpuUsPerPacket: (cpu * 1e6) / result.sent,
    preciseUsPerPacket: (precise * 1e6) / result.sent,
  };
}

async function measureFlood(net, daemon, buildPackets, addrs, { rate, sources }) {
  const knocks = (await buildPackets(addrs)).map((k, i) => ({
    ...k,
    // Evenly over the middle half of the flood.
    atMs: Math.round(settings.floodMs * (0.25 + (0.5 * i) / Math.max(1, addrs.length - 1))),
  }));
  const job = {
    ...baseJob(net),
    mode: "flood",
    junkSources: junkSources(net, sources),
    rate,
    durationMs: settings.floodMs,
    knocks,
    graceMs: FLOOD_GRACE_MS,
  };
  const cpuBefore = daemon.cpuSeconds();
  const udpBefore = daemon.udpCounters();
  const result = await runAgent(net, job, settings.floodMs + FLOOD_GRACE_MS + 30_000);
  daemon.assertAlive();
  const cpu = daemon.cpuSeconds() - cpuBefore;
  const udpAfter = daemon.udpCounters();
  const honoured = result.knocks.filter((k) => k.honoured);
  return {
    rate,
    sources,
    sent: result.sent,
    achievedRate: result.achievedRate,
    cpuUsPerPacket: (cpu * 1e6) / result.sent,
    cpuPercent: (cpu * 100_000) / result.elapsedMs,
    // Only meaningful for a daemon reading a UDP socket (spaknockd); fwknopd sniffs with pcap.
    delivered: udpAfter.delivered - udpBefore.delivered,
    bufferFull: udpAfter.bufferFull - udpBefore.bufferFull,
    honoured: honoured.length,
    knocks: result.knocks.length,
    medianOpenMs: percentile(
      honoured.map((k) => k.ms),
      50,
    ),
    cpuSeconds: cpu,
  };
}

/** TCP connects from the client's primary address for a while: is the guarded port closed? */
async function assertPortClosed(net) {
  const job = { ...baseJob(net), mode: "connect", addr: net.client.ip, forMs: 300 };
  const { open } = await runAgent(net, job, 10_000);
  if (open) throw new Error("the guarded port is open before any knock");
}

async function timeNft(net, runs) {
  const child = net.spawn(net.server.ns, [
    process.execPath,
    NFT_TIMING,
    NFT_TABLE,
    `${net.subnetPrefix}.250`,
    String(TCP_PORT),
    String(runs),
  ]);
  let out = "";
  child.stdout.setEncoding("utf8").on("data", (chunk) => {
    out += chunk;
  });
  await new Promise((resolve) => child.once("exit", resolve));
  try {
    return JSON.parse(out);
  } catch {
    return {};
  }
}

/** Element count of each set in spaknockd's table, e.g. { allow_tcp: 21, spa_rate: 4096 }. */
async function nftSetSizes(net) {
  try {
    const { stdout: json } = await net.exec(
      net.server.ns,
      ["nft", "-j", "list", "table", "inet", NFT_TABLE],
      { check: true },
    );
    const sizes = {};
    for (const item of JSON.parse(json).nftables ?? []) {
      if (item.set !== undefined) sizes[item.set.name] = item.set.elem?.length ?? 0;
    }
    return sizes;
  } catch {
    return {};
  }
}

async function nftDiagnostics(net) {
  return { ...(await timeNft(net, 10)), setSizes: await nftSetSizes(net) };
}

async function benchDaemon(name) {
  const floodSpecs = settings.floods[name];
  progress(`${name}: creating namespaces`);
  const net = await createTestNet();
  try {
    const sink = net.spawn(net.server.ns, [process.execPath, TCP_SINK, String(TCP_PORT)]);
    await waitForListening(sink);
    // One more than measured: the first knock after start is reported on its own.
    const latencyAddrs = await net.addClientAddresses(settings.knocks + 1);
    const floodAddrs = [];
    for (const _ of floodSpecs) floodAddrs.push(await net.addClientAddresses(FLOOD_KNOCKS));
    const jose = name === "spaknockd" ? await joseSetup(net) : null;
    const joseAddrs = jose ? await net.addClientAddresses(settings.knocks) : [];
    await net.allowClientSourcesFrom(`${spoofHalf(net)}.0.0/16`);
    const keys = {
      key: randomBytes(32).toString("base64"),
      hmacKey: randomBytes(64).toString("base64"),
    };
    const options = {
      keys,
      tcpPort: TCP_PORT,
      spaPort: SPA_PORT,
      timeoutSec: GRANT_SECONDS,
      verbose: args.verbose,
      ...(jose ? { jose: jose.files } : {}),
    };
    const buildPackets = packetBuilder(net, keys);
    progress(`${name}: starting`);
    const daemon = await (name === "fwknopd" ? startFwknopd : startSpaknockd)(net, options);
    await assertPortClosed(net);

    progress(`${name}: knock→open latency, ${settings.knocks} knocks from distinct addresses`);
    const [first, ...latency] = await measureLatency(net, buildPackets, latencyAddrs);
    daemon.assertAlive();
    const opened = latency.map((r) => r.ms).filter((ms) => ms !== null);
    const diagnostics = {};
    if (name === "spaknockd") diagnostics.afterLatency = await nftDiagnostics(net);
    let joseLatency = null;
    if (jose) {
      progress(`${name}: knock→open latency of JOSE packets, ${settings.knocks} knocks`);
      const results = await measureLatency(net, jose.build, joseAddrs);
      daemon.assertAlive();
      const ms = results.map((r) => r.ms).filter((v) => v !== null);
      joseLatency = {
        knocks: results.length,
        opened: ms.length,
        medianMs: percentile(ms, 50),
        p90Ms: percentile(ms, 90),
        samples: results.map((r) => r.ms),
      };
    }

    progress(
      `${name}: CPU per junk packet, ${settings.burst} packets at ${settings.burstRate}/s ` +
        `from ${BURST_SOURCES} sources`,
    );
    await sleep(SETTLE_MS);
    const burst = await measureBurst(net, daemon, settings.burst, settings.burstRate);

    const floods = [];
    for (const [i, spec] of floodSpecs.entries()) {
      progress(
        `${name}: flood at ${spec.rate}/s from ${spec.sources} source(s) for ` +
          `${settings.floodMs / 1000} s with ${FLOOD_KNOCKS} knocks`,
      );
      floods.push(await measureFlood(net, daemon, buildPackets, floodAddrs[i], spec));
      await sleep(SETTLE_MS);
    }

    if (name === "spaknockd") diagnostics.afterFloods = await nftDiagnostics(net);
    const peakRssMiB = daemon.peakRssMiB();
    await daemon.stop();
    return {
      name,
      latency: {
        knocks: latency.length,
        opened: opened.length,
        medianMs: percentile(opened, 50),
        p90Ms: percentile(opened, 90),
        minMs: percentile(opened, 0),
        maxMs: percentile(opened, 100),
        firstMs: first?.ms ?? null,
        samples: latency.map((r) => r.ms),
      },
      joseLatency,
      burst,
      floods,
      peakRssMiB,
      diagnostics,
    };
  } finally {
    await net.destroy();
  }
}

const floodKey = (f) => `${f.rate}x${f.sources}`;

function floodFigure(run, key, field) {
  const flood = run?.floods.find((f) => floodKey(f) === key);
  if (flood === undefined) return undefined;
  if (field === "honoured") return `${flood.honoured}/${flood.knocks}`;
  return flood[field];
}

/** The highest junk rate, from one source or from many, at which every knock was honoured. */
function bestHonouredRate(run, many) {
  const tried = run.floods.filter((f) => f.sources > 1 === many);
  if (tried.length === 0) return undefined;
  const ok = tried.filter((f) => f.honoured === f.knocks).map((f) => f.rate);
  return ok.length === 0 ? "none" : Math.max(...ok);
}

function buildRows(fwk, spk) {
  const both = (metric, pick, better, digits) => ({
    metric,
    fwknopd: fwk === undefined ? undefined : pick(fwk),
    spaknockd: spk === undefined ? undefined : pick(spk),
    better,
    digits,
  });
  const rows = [
    both("knock→open median (ms)", (r) => r.latency.medianMs, "lower"),
    both("knock→open p90 (ms)", (r) => r.latency.p90Ms, "lower"),
    both("knocks opened", (r) => `${r.latency.opened}/${r.latency.knocks}`),
    both("  first knock after start (ms)", (r) => r.latency.firstMs ?? "none", "lower"),
    // fwknopd has no JOSE profile: its column is its fwknop packet, the thing a JOSE knock replaces.
    both(
      "knock→open median, JOSE packet (ms; fwknopd: fwknop packet)",
      (r) => (r.name === "fwknopd" ? r.latency.medianMs : r.joseLatency?.medianMs),
      "lower",
    ),
    both("  JOSE knocks opened", (r) =>
      r.joseLatency ? `${r.joseLatency.opened}/${r.joseLatency.knocks}` : undefined,
    ),
  ];
  const specs = [...settings.floods.fwknopd, ...settings.floods.spaknockd]
    .filter((f, i, all) => all.findIndex((g) => floodKey(g) === floodKey(f)) === i)
    .sort((a, b) => a.sources - b.sources || a.rate - b.rate);
  for (const spec of specs) {
    const key = floodKey(spec);
    const from =
      spec.sources === 1 ? "1 source" : `${spec.sources.toLocaleString("en-US")} sources`;
    const label = `flood ${spec.rate.toLocaleString("en-US")}/s, ${from}:`;
    const socketOnly = (field) => (r) =>
      r.name === "spaknockd" ? floodFigure(r, key, field) : undefined;
    rows.push(
      both(`${label} knocks honoured`, (r) => floodFigure(r, key, "honoured")),
      both(`  achieved junk rate (/s)`, (r) => floodFigure(r, key, "achievedRate"), 0, 0),
      both(`  median knock→open (ms)`, (r) => floodFigure(r, key, "medianOpenMs"), "lower"),
      both(`  daemon CPU (% of a core)`, (r) => floodFigure(r, key, "cpuPercent"), "lower"),
      both(`  datagrams reaching the daemon's socket`, socketOnly("delivered"), undefined, 0),
      both(`  dropped, socket buffer full`, socketOnly("bufferFull"), undefined, 0),
    );
  }
  rows.push(
    both(
      "highest rate with 10/10 honoured, 1 source (/s)",
      (r) => bestHonouredRate(r, false),
      "higher",
      0,
    ),
    both(
      "highest rate with 10/10 honoured, many sources (/s)",
      (r) => bestHonouredRate(r, true),
      "higher",
      0,
    ),
    both(
      `CPU per junk packet (µs; ${settings.burst} @ ${settings.burstRate}/s, ${BURST_SOURCES} sources)`,
      (r) => r.burst.cpuUsPerPacket,
      "lower",
      2,
    ),
    both("  same, from schedstat (ns resolution)", (r) => r.burst.preciseUsPerPacket, "lower", 2),
    both("peak RSS, VmHWM (MiB)", (r) => r.peakRssMiB, "lower"),
  );
  return rows;
}

async function main() {
  checkPrerequisites();
  const started = Date.now();
  const machine = machineInfo();
  const loadAtStart = loadAverage();
  if (loadAtStart > machine.cores / 2) {
    progress(
      `warning: load average ${formatNumber(loadAtStart, 2)} on ${machine.cores} cores: ` +
        "other work on this machine will skew the figures",
    );
  }
  const names = args.only === undefined ? ["fwknopd", "spaknockd"] : [args.only];
  if (!names.every((n) => n === "fwknopd" || n === "spaknockd")) {
    usage("--only: fwknopd or spaknockd");
  }
  const runs = {};
  for (const name of names) runs[name] = await benchDaemon(name);
  const fwk = runs.fwknopd;
  const spk = runs.spaknockd;
  const loadAtEnd = loadAverage();

  if (args.json) {
    const load = { start: loadAtStart, end: loadAtEnd };
    process.stdout.write(`${JSON.stringify({ machine, load, settings, runs }, null, 2)}\n`);
    return;
  }
  const out = [];
  out.push("");
  out.push(
    `machine: ${machine.cpu}, ${machine.cores} cores, Linux ${machine.kernel}, node ${machine.node}`,
  );
  out.push(`         ${machine.fwknopd}; ${machine.nft}; repo ${REPO}`);
  out.push(
    `run:     ${settings.knocks} latency knocks per daemon, floods of ${settings.floodMs / 1000} s ` +
      `with ${FLOOD_KNOCKS} knocks each, took ${formatNumber((Date.now() - started) / 1000, 0)} s; ` +
      `load average ${formatNumber(loadAtStart, 2)} at start, ${formatNumber(loadAtEnd, 2)} at end`,
  );
  out.push("");
  out.push(renderTable(buildRows(fwk, spk)));
  out.push("");
  out.push("ratio: how many times better spaknockd is (>1 better, <1 worse)");
  out.push(
    "floods: junk from 1 source is the client's own address; from N sources, N addresses in " +
      `${SPOOF_RANGE} sent round-robin. "reaching the daemon's socket" and "socket buffer full" ` +
      "are the server namespace's UDP counters (fwknopd sniffs with pcap, so they say nothing " +
      "about it); spaknockd's nftables table drops junk before its socket (size, per-source rate)",
  );
  for (const run of [fwk, spk]) {
    if (run === undefined) continue;
    const perFlood = run.floods
      .map((f) => `${floodKey(f)} ${formatNumber(f.cpuUsPerPacket, 2)}`)
      .join(", ");
    out.push(`${run.name} CPU per junk packet sent (µs), by flood rate x sources: ${perFlood}`);
  }
  for (const [when, d] of Object.entries(spk?.diagnostics ?? {})) {
    const sets = Object.entries(d.setSizes)
      .map(([set, n]) => `${set} ${n}`)
      .join(", ");
    out.push(
      `spaknockd grant transaction timed alone, ${when === "afterLatency" ? "after the latency knocks" : "after the floods"} ` +
        `(elements: ${sets}): \`nft -f -\` child median ${formatNumber(percentile(d.spawnTimes ?? [], 50))} ms, ` +
        `line to a running \`nft -e -i\` median ${formatNumber(percentile(d.sessionTimes ?? [], 50))} ms`,
    );
  }
  for (const run of [fwk, spk]) {
    if (run === undefined) continue;
    const samples = run.latency.samples.map((ms) => (ms === null ? "x" : ms.toFixed(1)));
    out.push(`${run.name} knock→open samples (ms): ${samples.join(" ")}`);
    if (run.joseLatency) {
      const jose = run.joseLatency.samples.map((ms) => (ms === null ? "x" : ms.toFixed(1)));
      out.push(`${run.name} knock→open samples, JOSE packets (ms): ${jose.join(" ")}`);
    }
  }
  process.stdout.write(`${out.join("\n")}\n`);
}

main().catch((err) => {
  process.stderr.write(`bench failed: ${err instanceof Error ? err.stack : String(err)}\n`);
  process.exitCode = 1;
});
