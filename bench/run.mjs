#!/usr/bin/env node
// spaknockd against the real fwknopd 2.6.x, in the same run and the same kind of network
// namespaces (docs/architecture.md: bench/; issues 3 and 14). Needs root, `npm run build`, fwknopd,
// nft, iptables and iproute2. About 6 minutes with the defaults on a 2-core machine.
//
//   node bench/run.mjs [--knocks 20] [--flood-seconds 3] [--fwknopd-floods LIST]
//                      [--spaknockd-floods LIST] [--burst 20000] [--burst-rate 1000]
//                      [--only fwknopd|spaknockd] [--verbose] [--json]
//
// A flood is RATE[xSOURCES][s], and LIST is floods separated by commas; both daemons default to
// the same list, so every row has both columns and a ratio:
//   1000,2000,50000,1000x4096,10000x4096,20000x4096,50000x4096,50000x4096s,maxx4096,maxx4096s
// RATE is junk datagrams per second, or `max`: as fast as the generator (one node process with
// one sendmsg per datagram, bench/lib/client-agent.mjs) can send for the flood's seconds; its row
// shows the rate it reached, and that rate is what the "highest rate with 10/10 honoured" rows
// count for it. SOURCES (default 1, the client's own address) is how many addresses the junk comes
// from round-robin, standing for many senders: spaknockd's nftables table rate-limits each source
// at the SPA port, so one source alone barely reaches it. The kind of junk:
//   (no suffix) random base64: random base64 text of 180..260 characters; it passes a size and
//       charset check, but most of it has a length or first byte no SPA packet has, so a kernel
//       check of the packet's shape drops it;
//   s   shaped like an fwknop packet: what an attacker who knows the format sends: a length a
//       real fwknop packet with the bench's HMAC-SHA256 tag can have (base64 of 16+16k bytes less
//       its first 10 characters, plus 43; 140..399), a first character from `8 9 + /`, random
//       base64 elsewhere; it passes any check of shape and costs the daemon an HMAC.
//
// For each daemon, in a fresh namespace pair of its own (server: the daemon and a TCP service on
// the guarded port; client: one extra address per knock on its veth), it measures
//   1. knock→open: from sending the SPA datagram to the first TCP connect that succeeds, from the
//      address the packet asked for (-a), tried on a fresh socket every 1 ms; one knock per
//      distinct address; median and p90 (the first knock after start is reported on its own);
//      for spaknockd also with JOSE-profile packets (fwknopd's column: its fwknop packet);
//   2. CPU time per junk packet, once with random base64 junk and once with shaped junk
//      (/proc/<pid>/stat utime+stime, and schedstat, over a fixed burst at a fixed rate spread
//      over 4096 sources, so that every datagram reaches the daemon past per-source limits),
//      each after the same burst once unmeasured, so that both are steady-state figures (20,000
//      datagrams by default: over 4,000, the figure moved by a few µs from run to run with when
//      V8 finished compiling the daemon's packet path, and fwknopd's by as much with the VM);
//   3. valid knocks honoured during each junk flood of the list, 10 valid knocks from distinct
//      addresses in the middle half; a knock is honoured if a TCP connect from its address
//      succeeds before the flood ends plus 2 s; with the achieved junk rate, the daemon's CPU and
//      (for spaknockd's UDP socket) the server namespace's UDP counters;
//   4. memory: peak RSS (VmHWM) and the peak of RssAnon, the daemon's private memory, sampled
//      every 200 ms from /proc/<pid>/status over the whole run (VmHWM also counts file-backed
//      pages: for a Node process about 38 MiB of mapped node binary, the floor of any Node process);
// then prints each figure for both daemons and how many times better spaknockd is (>1 better),
// the highest rate with 10/10 honoured from 1 source and from many (random and shaped junk), and
// footnotes. --json prints every measurement instead. No figure ever fails the run.
//
// Packets are built before each timed phase by `spaknock -T` (dist/cli) from a 0600 rc file, so
// keys never appear on a command line. The client side of every measurement is one node process
// in the client namespace (bench/lib/client-agent.mjs) that does its own timing.
//
// Traffic only flows between the two namespaces (198.18.0.0/15 addresses) and junk only goes to
// the server's SPA port; every flood is bounded in packets (a `max` flood: at most 2 million per
// second) and time and stops by itself; namespaces and processes are removed at the end, also on
// error or Ctrl-C.

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
// The wire lengths a fwknop packet can have, from the same code the kernel filter is built from.
const { DIGESTS, fwknopWireLengths } = await import("../dist/core/index.js");
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
const JUNK_KINDS = ["random", "shaped"];
const KIND_LABEL = { random: "random base64", shaped: "shaped like an fwknop packet" };
// A fixed-rate flood counts at its target rate unless the generator fell this far short of it.
const RATE_SHORTFALL = 0.95;
// Shaped junk has the lengths a real fwknop packet with the bench's HMAC (SHA-256, fwknop's
// default: a 43-character base64 tag) can have on the wire, within the 140..399 a kernel check of
// an fwknop packet's shape allows.
const SHAPED_LENGTHS = fwknopWireLengths(DIGESTS.sha256.b64Length);
const DEFAULT_FLOODS =
  "1000,2000,50000,1000x4096,10000x4096,20000x4096,50000x4096,50000x4096s,maxx4096,maxx4096s";

const { values: args } = parseArgs({
  options: {
    knocks: { type: "string", default: "20" },
    "flood-seconds": { type: "string", default: "3" },
    "fwknopd-floods": { type: "string", default: DEFAULT_FLOODS },
    "spaknockd-floods": { type: "string", default: DEFAULT_FLOODS },
    burst: { type: "string", default: "20000" },
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

/**
 * "1000,50000x4096,maxx4096s": junk rates per second (or "max"), each from 1 source address or
 * from N, random base64 junk or (suffix "s") junk shaped like an fwknop packet.
 */
function floodList(text, option) {
  return text.split(",").map((item) => {
    const m = /^(max|[0-9]+)(?:x([0-9]+))?(s?)$/.exec(item.trim());
    if (m === null) usage(`${option}: "${item}" is not RATE[xSOURCES][s] (RATE a number or max)`);
    const spec = {
      rate: m[1] === "max" ? "max" : positiveInt(m[1], option),
      sources: positiveInt(m[2] ?? "1", option),
      kind: m[3] === "s" ? "shaped" : "random",
    };
    if (spec.sources > MAX_JUNK_SOURCES) usage(`${option}: at most ${MAX_JUNK_SOURCES} sources`);
    return spec;
  });
}

const benchStart = Date.now();
const progress = (message) =>
  process.stderr.write(
    `bench: [${formatNumber((Date.now() - benchStart) / 1000, 0).padStart(3)} s] ${message}\n`,
  );
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
let warnedAboutLength = false;

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
    if (!SHAPED_LENGTHS.includes(wire.length) && !warnedAboutLength) {
      warnedAboutLength = true;
      progress(
        `warning: a real packet has ${wire.length} characters, not one of the shaped junk's ` +
          `lengths (${SHAPED_LENGTHS.join(" ")})`,
      );
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
    shapedLengths: SHAPED_LENGTHS,
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

/** Junk only: `count` packets of `kind` at `rate`; returns what was sent and the daemon's CPU. */
async function measureBurst(net, daemon, count, rate, kind) {
  const job = {
    ...baseJob(net),
    mode: "flood",
    junkSources: junkSources(net, BURST_SOURCES),
    junkKind: kind,
    rate,
    durationMs: Math.ceil((count * 1000) / rate),
    knocks: [],
    graceMs: 0,
  };
  // The same burst once unmeasured first: the figure is a steady state's, not a cold start's (a
  // Node daemon's packet path is still being compiled over its first thousands of datagrams,
  // and V8 runs its memory reducer's GCs when the traffic changes; fwknopd has neither).
  await runAgent(net, job, job.durationMs + 30_000);
  const before = { stat: daemon.cpuSeconds(), precise: daemon.cpuSecondsPrecise() };
  const result = await runAgent(net, job, job.durationMs + 30_000);
  await sleep(SETTLE_MS);
  daemon.assertAlive();
  const cpu = daemon.cpuSeconds() - before.stat;
  const precise = daemon.cpuSecondsPrecise() - before.precise;
  return {
    kind,
    sent: result.sent,
    achievedRate: result.achievedRate,
    cpuSeconds: cpu,
    cpuUsPerPacket: (cpu * 1e6) / result.sent,
    preciseUsPerPacket: (precise * 1e6) / result.sent,
  };
}

async function measureFlood(net, daemon, buildPackets, addrs, { rate, sources, kind }) {
  const knocks = (await buildPackets(addrs)).map((k, i) => ({
    ...k,
    // Evenly over the middle half of the flood.
    atMs: Math.round(settings.floodMs * (0.25 + (0.5 * i) / Math.max(1, addrs.length - 1))),
  }));
  const job = {
    ...baseJob(net),
    mode: "flood",
    junkSources: junkSources(net, sources),
    junkKind: kind,
    rate,
    durationMs: settings.floodMs,
    knocks,
    graceMs: FLOOD_GRACE_MS,
  };
  // schedstat (ns): over a 3 s flood a daemon's few % of a core are a handful of 10 ms ticks.
  const cpuBefore = daemon.cpuSecondsPrecise();
  const udpBefore = daemon.udpCounters();
  const result = await runAgent(net, job, settings.floodMs + FLOOD_GRACE_MS + 30_000);
  daemon.assertAlive();
  const cpu = daemon.cpuSecondsPrecise() - cpuBefore;
  const udpAfter = daemon.udpCounters();
  const honoured = result.knocks.filter((k) => k.honoured);
  return {
    rate,
    sources,
    kind,
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

    const bursts = {};
    for (const kind of JUNK_KINDS) {
      progress(
        `${name}: CPU per junk packet, ${KIND_LABEL[kind]}, ${settings.burst} packets at ` +
          `${settings.burstRate}/s from ${BURST_SOURCES} sources`,
      );
      await sleep(SETTLE_MS);
      bursts[kind] = await measureBurst(net, daemon, settings.burst, settings.burstRate, kind);
    }

    const floods = [];
    for (const [i, spec] of floodSpecs.entries()) {
      progress(
        `${name}: flood ${floodKey(spec)}: ${spec.rate === "max" ? "as fast as the generator can" : `${spec.rate}/s`}, ` +
          `${KIND_LABEL[spec.kind]}, from ${spec.sources} source(s) for ` +
          `${settings.floodMs / 1000} s with ${FLOOD_KNOCKS} knocks`,
      );
      floods.push(await measureFlood(net, daemon, buildPackets, floodAddrs[i], spec));
      await sleep(SETTLE_MS);
    }

    if (name === "spaknockd") diagnostics.afterFloods = await nftDiagnostics(net);
    const peakRssMiB = daemon.peakRssMiB();
    const memory = daemon.memoryPeaksMiB();
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
      bursts,
      floods,
      peakRssMiB,
      memory,
      diagnostics,
    };
  } finally {
    await net.destroy();
  }
}

const floodKey = (f) => `${f.rate}x${f.sources}${f.kind === "shaped" ? "s" : ""}`;

function floodFigure(run, key, field) {
  const flood = run?.floods.find((f) => floodKey(f) === key);
  if (flood === undefined) return undefined;
  if (field === "honoured") return `${flood.honoured}/${flood.knocks}`;
  return flood[field];
}

/**
 * The rate a flood counts at: a `max` flood at the rate it reached; a fixed-rate one at its
 * target, unless the generator fell short of it (then at what it reached).
 */
function effectiveRate(flood) {
  if (flood.rate === "max") return flood.achievedRate;
  return flood.achievedRate >= RATE_SHORTFALL * flood.rate ? flood.rate : flood.achievedRate;
}

/** The highest junk rate of one kind, from one source or many, at which every knock was honoured. */
function bestHonouredRate(run, many, kind) {
  const tried = run.floods.filter((f) => f.sources > 1 === many && f.kind === kind);
  if (tried.length === 0) return undefined;
  const ok = tried.filter((f) => f.honoured === f.knocks).map(effectiveRate);
  return ok.length === 0 ? "none" : Math.max(...ok);
}

const specOrder = (f) => (f.rate === "max" ? Number.POSITIVE_INFINITY : f.rate);

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
    .sort(
      (a, b) =>
        a.sources - b.sources ||
        JUNK_KINDS.indexOf(a.kind) - JUNK_KINDS.indexOf(b.kind) ||
        specOrder(a) - specOrder(b),
    );
  for (const spec of specs) {
    const key = floodKey(spec);
    const from =
      spec.sources === 1 ? "1 source" : `${spec.sources.toLocaleString("en-US")} sources`;
    const rate =
      spec.rate === "max"
        ? "as fast as the generator sends (max)"
        : `${spec.rate.toLocaleString("en-US")}/s`;
    const kind = spec.kind === "shaped" ? ", shaped junk" : "";
    const label = `flood ${rate}, ${from}${kind}:`;
    const socketOnly = (field) => (r) =>
      r.name === "spaknockd" ? floodFigure(r, key, field) : undefined;
    rows.push(
      both(`${label} knocks honoured`, (r) => floodFigure(r, key, "honoured")),
      both(
        spec.rate === "max"
          ? "  achieved junk rate, the generator's highest (/s)"
          : "  achieved junk rate (/s)",
        (r) => floodFigure(r, key, "achievedRate"),
        undefined,
        0,
      ),
      both(`  median knock→open (ms)`, (r) => floodFigure(r, key, "medianOpenMs"), "lower"),
      both(
        `  daemon CPU (% of a core, schedstat)`,
        (r) => floodFigure(r, key, "cpuPercent"),
        "lower",
      ),
      both(`  datagrams reaching the daemon's socket`, socketOnly("delivered"), undefined, 0),
      both(`  dropped, socket buffer full`, socketOnly("bufferFull"), undefined, 0),
    );
  }
  const all = [...settings.floods.fwknopd, ...settings.floods.spaknockd];
  for (const many of [false, true]) {
    for (const kind of JUNK_KINDS) {
      if (!all.some((f) => f.sources > 1 === many && f.kind === kind)) continue;
      const base = `highest rate with 10/10 honoured, ${many ? "many sources" : "1 source"}`;
      rows.push(
        both(
          kind === "random" ? `${base} (/s)` : `${base}, shaped junk (/s)`,
          (r) => bestHonouredRate(r, many, kind),
          "higher",
          0,
        ),
      );
    }
  }
  for (const kind of JUNK_KINDS) {
    rows.push(
      both(
        `CPU per junk packet, ${KIND_LABEL[kind]} (µs; ${settings.burst} @ ${settings.burstRate}/s, ` +
          `${BURST_SOURCES} sources)`,
        (r) => r.bursts[kind].cpuUsPerPacket,
        "lower",
        2,
      ),
      both(
        "  same, from schedstat (ns resolution)",
        (r) => r.bursts[kind].preciseUsPerPacket,
        "lower",
        2,
      ),
    );
  }
  rows.push(
    both("peak RSS, VmHWM (MiB)", (r) => r.peakRssMiB, "lower"),
    both("peak private memory (RssAnon, MiB)", (r) => r.memory.rssAnon, "lower"),
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
      "about it); spaknockd's nftables table drops junk before its socket (size, shape, " +
      "per-source rate)",
  );
  out.push(
    "junk: random base64 is random base64 text of 180..260 characters; shaped junk has the " +
      "length of a real fwknop packet with an HMAC-SHA256 tag (one of " +
      `${SHAPED_LENGTHS.join(" ")}), a first character from "89+/" and random base64 elsewhere, ` +
      "so no check of shape drops it and each one costs the daemon an HMAC. A max flood sends " +
      "as fast as one node process with one sendmsg per datagram can (at most 2 million/s), on " +
      `the same ${machine.cores} cores as the daemon; the highest-rate rows count it at the ` +
      "rate it reached, " +
      `and a fixed-rate flood at its target unless it reached less than ${RATE_SHORTFALL * 100}% of it`,
  );
  out.push(
    "CPU per junk packet: each daemon gets the same burst once, unmeasured, just before the " +
      "measured one (a steady state's figure: a fresh Node process compiles its packet path " +
      "over its first thousands of datagrams). spaknockd reads its socket in batches while " +
      "datagrams keep coming (agent/capture/receive-pacer.ts), fwknopd its pcap buffer every " +
      "100 ms; both figures count every thread of the daemon",
  );
  const bare = machine.bareNode;
  const memoryLine = (run) => {
    const m = run.memory;
    return (
      `${run.name} VmHWM ${formatNumber(run.peakRssMiB)}, peak RssAnon ${formatNumber(m.rssAnon)}, ` +
      `RssFile ${formatNumber(m.rssFile)}, RssShmem ${formatNumber(m.rssShmem)} MiB`
    );
  };
  const ran = [fwk, spk].filter((run) => run !== undefined);
  out.push(
    "memory: VmHWM is the kernel's peak of all resident pages, file-backed ones included: for a " +
      "Node process the pages of the node binary and libraries it has mapped (RssFile, shared " +
      "with every process that maps the same files and reclaimable), the floor of any Node " +
      `process whatever it does: a bare \`node -e\` of this ${machine.node} has VmHWM ` +
      `${formatNumber(bare.vmHwm)} MiB, of which RssFile ${formatNumber(bare.rssFile)} and ` +
      `RssAnon ${formatNumber(bare.rssAnon)}. RssAnon is a process's private memory (heap, ` +
      `stacks, anonymous maps), the honest figure to compare; sampled every ` +
      `${ran[0]?.memory.everyMs ?? 200} ms over the whole run, highest value kept (a shorter ` +
      `peak can be missed): ${ran.map(memoryLine).join("; ")}`,
  );
  for (const run of ran) {
    const perFlood = run.floods
      .map((f) => `${floodKey(f)} ${formatNumber(f.cpuUsPerPacket, 2)}`)
      .join(", ");
    out.push(
      `${run.name} CPU per junk packet sent (µs), by flood rate x sources (s: shaped): ${perFlood}`,
    );
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
