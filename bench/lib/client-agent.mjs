// The client side of the bench, run inside the client namespace: `node client-agent.mjs`.
// It reads one job (JSON) on stdin, does all the timing itself (no process spawn per knock) and
// writes one JSON result line on stdout.
//
// Jobs:
//   latency: for each knock, send the SPA datagram from its own address, then try a TCP connect
//            to the guarded port from that same address every `attemptEveryMs`, each attempt on
//            a fresh socket given up after `attemptTimeoutMs` (a dropped SYN is only retransmitted
//            after 1 s, so a long-lived attempt would hide the moment the door opens).
//   flood:   send junk datagrams at `rate` per second for `durationMs` (bounded in count and
//            time), round-robin from the `junkSources` addresses (the bench's own /24, or a
//            range of the client namespace's non-local addresses to stand for many senders),
//            send the valid knocks at their `atMs`, and probe each one with TCP connects until it
//            opens or the flood ends plus `graceMs`.
//   connect: TCP connects from `addr` for `forMs`: does the guarded port answer at all?
//
// Only addresses given in the job are used; they all live inside the bench's namespaces.
import { randomBytes, randomInt } from "node:crypto";
import { createSocket } from "node:dgram";
import { connect } from "node:net";
import { performance } from "node:perf_hooks";

const HARD_LIMIT_MS = 120_000;
const BASE64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

// Nothing here may outlive its job, whatever happens.
setTimeout(() => {
  process.stderr.write("client-agent: hard time limit reached\n");
  process.exit(3);
}, HARD_LIMIT_MS).unref();

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

function readJob() {
  return new Promise((resolve, reject) => {
    let text = "";
    process.stdin.setEncoding("utf8");
    process.stdin.on("data", (chunk) => {
      text += chunk;
    });
    process.stdin.on("end", () => {
      try {
        resolve(JSON.parse(text));
      } catch (err) {
        reject(err);
      }
    });
  });
}

function bindUdp(address) {
  return new Promise((resolve, reject) => {
    const socket = createSocket("udp4");
    socket.once("error", reject);
    socket.bind({ address, port: 0 }, () => {
      socket.removeListener("error", reject);
      socket.on("error", () => {});
      resolve(socket);
    });
  });
}

/**
 * One TCP connect attempt from `localAddress`; calls `onOpen(performance.now())` if the handshake
 * completes within `timeoutMs`. The socket is closed either way.
 */
function attemptConnect(job, localAddress, timeoutMs, onOpen) {
  const socket = connect({ host: job.server, port: job.tcpPort, localAddress });
  const timer = setTimeout(() => socket.destroy(), timeoutMs);
  socket.on("error", () => clearTimeout(timer));
  socket.once("connect", () => {
    const at = performance.now();
    clearTimeout(timer);
    socket.destroy();
    onOpen(at);
  });
}

/**
 * Resolves with the ms from `sentAt` to the first successful connect, or null at `deadline`
 * (performance.now() based). `everyMs(elapsed)` gives the pause before the next attempt.
 */
function probeUntilOpen(job, localAddress, sentAt, deadline, everyMs) {
  return new Promise((resolve) => {
    let done = false;
    const finish = (value) => {
      if (done) return;
      done = true;
      resolve(value);
    };
    const tick = () => {
      if (done) return;
      const now = performance.now();
      if (now > deadline) return finish(null);
      attemptConnect(job, localAddress, job.attemptTimeoutMs, (at) => finish(at - sentAt));
      setTimeout(tick, everyMs(now - sentAt));
    };
    tick();
  });
}

async function runLatency(job) {
  const sockets = await Promise.all(job.knocks.map((k) => bindUdp(k.addr)));
  const results = [];
  for (const [i, k] of job.knocks.entries()) {
    // A random pause, so knocks land at random points of a daemon's polling cycle.
    await sleep(randomInt(job.gapMs[0], job.gapMs[1] + 1));
    const payload = Buffer.from(k.wire, "ascii");
    const socket = sockets[i];
    const sentAt = performance.now();
    socket.send(payload, job.spaPort, job.server);
    const ms = await probeUntilOpen(
      job,
      k.addr,
      sentAt,
      sentAt + job.knockTimeoutMs,
      () => job.attemptEveryMs,
    );
    results.push({ addr: k.addr, ms });
  }
  for (const s of sockets) s.close();
  return { results };
}

/** Random base64 text of SPA-like lengths: passes a size/charset precheck, fails the HMAC. */
function junkPool(size) {
  const pool = [];
  for (let i = 0; i < size; i++) {
    const length = randomInt(180, 261);
    const bytes = randomBytes(length);
    let text = "";
    for (const b of bytes) text += BASE64[b & 63];
    pool.push(Buffer.from(text, "ascii"));
  }
  return pool;
}

/** One UDP socket per junk source address, connected to the SPA port. */
async function junkSockets(job) {
  const sockets = await Promise.all(job.junkSources.map((addr) => bindUdp(addr)));
  await Promise.all(
    sockets.map(
      (socket) =>
        new Promise((resolve, reject) => {
          socket.connect(job.spaPort, job.server, (err) => (err ? reject(err) : resolve()));
        }),
    ),
  );
  return sockets;
}

async function runFlood(job) {
  const pool = junkPool(job.poolSize ?? 4096);
  const junk = await junkSockets(job);
  const knockSockets = await Promise.all(job.knocks.map((k) => bindUdp(k.addr)));

  const total = Math.round((job.rate * job.durationMs) / 1000);
  const maxBurst = Math.max(1, Math.ceil(job.rate / 100));
  const knockResults = job.knocks.map((k) => ({ addr: k.addr, honoured: false, ms: null }));
  const probes = [];
  let sent = 0;
  let nextKnock = 0;
  const start = performance.now();
  const floodDeadline = start + job.durationMs;

  await new Promise((resolve) => {
    const tick = () => {
      const now = performance.now();
      const elapsed = now - start;
      while (nextKnock < job.knocks.length && job.knocks[nextKnock].atMs <= elapsed) {
        const i = nextKnock++;
        const k = job.knocks[i];
        const sentAt = performance.now();
        knockSockets[i].send(Buffer.from(k.wire, "ascii"), job.spaPort, job.server);
        // Fine-grained at first, then coarser, so probing does not slow the flood down.
        const everyMs = (t) => (t < 200 ? 2 : 20);
        const probe = probeUntilOpen(
          job,
          k.addr,
          sentAt,
          floodDeadline + job.graceMs,
          everyMs,
        ).then((ms) => {
          knockResults[i].ms = ms;
          knockResults[i].honoured = ms !== null;
        });
        probes.push(probe);
      }
      const due = Math.min(total, Math.floor((elapsed * job.rate) / 1000));
      let burst = Math.min(due - sent, maxBurst);
      while (burst-- > 0) {
        junk[sent % junk.length].send(pool[sent % pool.length]);
        sent++;
      }
      if (sent >= total || now >= floodDeadline + 1_000) {
        resolve();
        return;
      }
      setTimeout(tick, 1);
    };
    tick();
  });
  const elapsedMs = performance.now() - start;
  await Promise.all(probes);
  for (const s of [...junk, ...knockSockets]) s.close();
  return {
    sent,
    elapsedMs,
    achievedRate: (sent * 1000) / elapsedMs,
    knocks: knockResults,
  };
}

async function runConnect(job) {
  const start = performance.now();
  const ms = await probeUntilOpen(job, job.addr, start, start + job.forMs, () => 5);
  return { open: ms !== null };
}

const modes = { latency: runLatency, flood: runFlood, connect: runConnect };
const job = await readJob();
const result = await modes[job.mode](job);
process.stdout.write(`${JSON.stringify(result)}\n`);
process.exit(0);
