// The client side of the bench, run inside the client namespace: `node client-agent.mjs`.
// It reads one job (JSON) on stdin, does all the timing itself (no process spawn per knock) and
// writes one JSON result line on stdout.
//
// Jobs:
//   latency: for each knock, send the SPA datagram from its own address, then try a TCP connect
//            to the guarded port from that same address every `attemptEveryMs`, each attempt on
//            a fresh socket given up after `attemptTimeoutMs` (a dropped SYN is only retransmitted
//            after 1 s, so a long-lived attempt would hide the moment the door opens).
//   flood:   send junk datagrams at `rate` per second, or as fast as this process can when
//            `rate` is "max", for `durationMs` (at most rate x duration datagrams, or
//            MAX_RATE x duration for "max", and never past `durationMs`), round-robin from the
//            `junkSources` addresses (the bench's own /24, or a range of the client namespace's
//            non-local addresses to stand for many senders), send the valid knocks at their
//            `atMs`, and probe each one with TCP connects until it opens or the flood ends plus
//            `graceMs`. `junkKind` is "random" (random base64 of 180..260 characters) or
//            "shaped" (what an attacker who knows the fwknop format sends: see junkPool).
//   connect: TCP connects from `addr` for `forMs`: does the guarded port answer at all?
//
// Only addresses given in the job are used; they all live inside the bench's namespaces.
import { randomBytes, randomInt } from "node:crypto";
import { createSocket } from "node:dgram";
import { connect } from "node:net";
import { performance } from "node:perf_hooks";

const HARD_LIMIT_MS = 120_000;
// A "max" flood sends as fast as this one process can, and never more than this per second: far
// above what one Node process reaches with one sendmsg per datagram (about 0.5-0.7 million/s on a
// 2-core VM with nothing else running), so it only bounds the count.
const MAX_RATE = 2_000_000;
// Datagrams sent per turn of the event loop at most (about 1-2 ms of sending).
const BATCH = 1000;
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

/** Random base64 text, `length` characters, the first one from `first` if given. */
function randomBase64(length, first) {
  const bytes = randomBytes(length);
  let text = first === undefined ? "" : first[bytes[0] % first.length];
  for (let i = text.length; i < length; i++) text += BASE64[bytes[i] & 63];
  return Buffer.from(text, "ascii");
}

/**
 * `size` junk datagrams of one kind:
 *   random: random base64 text of 180..260 characters: passes a size/charset precheck, fails
 *           the HMAC; most of it has a length or first byte no fwknop packet has;
 *   shaped: one of `lengths` (the wire lengths a real packet with the daemon's HMAC can have,
 *           computed by bench/run.mjs) in turn, a first character from "89+/" (the 11th base64
 *           character of "Salted__" + salt, the first one sent), random base64 elsewhere: it
 *           passes any check of shape in the kernel or the daemon and costs the daemon an HMAC.
 */
function junkPool(size, kind, lengths) {
  if (kind === "shaped" && !(lengths?.length > 0)) throw new Error("shaped junk needs lengths");
  const pool = [];
  for (let i = 0; i < size; i++) {
    pool.push(
      kind === "shaped"
        ? randomBase64(lengths[i % lengths.length], "89+/")
        : randomBase64(randomInt(180, 261)),
    );
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
  const kind = job.junkKind ?? "random";
  if (kind !== "random" && kind !== "shaped") throw new Error(`unknown junk kind ${kind}`);
  const pool = junkPool(job.poolSize ?? 4096, kind, job.shapedLengths);
  const junk = await junkSockets(job);
  const knockSockets = await Promise.all(job.knocks.map((k) => bindUdp(k.addr)));

  const asFastAsPossible = job.rate === "max";
  const rate = asFastAsPossible ? MAX_RATE : job.rate;
  const total = Math.round((rate * job.durationMs) / 1000);
  const knockResults = job.knocks.map((k) => ({ addr: k.addr, honoured: false, ms: null }));
  const probes = [];
  let sent = 0;
  let nextKnock = 0;
  let source = 0;
  let packet = 0;
  const start = performance.now();
  const floodDeadline = start + job.durationMs;
  let floodEnd = start;

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
      if (sent >= total || now >= floodDeadline) {
        floodEnd = now;
        resolve();
        return;
      }
      const due = asFastAsPossible ? total : Math.min(total, Math.floor((elapsed * rate) / 1000));
      // At most BATCH datagrams per turn of the event loop, so knocks and their probes keep
      // their timing; the socket is connected, so a send is one sendmsg.
      let burst = Math.min(due - sent, BATCH);
      sent += burst;
      while (burst-- > 0) {
        junk[source].send(pool[packet]);
        if (++source === junk.length) source = 0;
        if (++packet === pool.length) packet = 0;
      }
      // Behind (or "max"): straight on after the other callbacks; on schedule: wait for a timer.
      if (sent < due || asFastAsPossible) setImmediate(tick);
      else setTimeout(tick, 1);
    };
    tick();
  });
  const elapsedMs = floodEnd - start;
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
