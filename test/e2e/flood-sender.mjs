// A junk flood with valid knocks in the middle, for flood.test.ts. Run inside the client
// namespace of a test net (so every datagram stays on its veth):
//
//   node flood-sender.mjs <base64 of a JSON FloodPlan>
//
// FloodPlan: { host, port, junkSource, durationMs, rate (datagrams/s, 0 = as fast as possible),
//              sampleWires: [valid wire strings to mutate],
//              knocks: [{ source, wire, atMs }] }
//
// The junk is a pool built up front and sent round-robin: a third random bytes of random size
// 0..1500, a third base64 characters of a length the precheck accepts (so each costs a digest and
// an HMAC), a third valid packets with one to three characters changed. Each knock is sent exactly
// once, at its time, from a socket bound to its own source address. Prints one JSON line.

import { randomBytes, randomInt } from "node:crypto";
import { createSocket } from "node:dgram";
import { performance } from "node:perf_hooks";

const B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
const POOL_SIZE = 8192;
const BATCH = 256;

const plan = JSON.parse(Buffer.from(process.argv[2] ?? "", "base64").toString("utf8"));

function base64ish(length) {
  const random = randomBytes(length);
  const out = Buffer.alloc(length);
  for (let i = 0; i < length; i++) out[i] = B64.charCodeAt(random[i] & 63);
  return out;
}

function mutate(wire) {
  const out = Buffer.from(wire, "latin1");
  const changes = 1 + randomInt(3);
  for (let k = 0; k < changes; k++) {
    const at = randomInt(out.length);
    let c = out[at];
    while (c === out[at]) c = B64.charCodeAt(randomInt(64));
    out[at] = c;
  }
  return out;
}

const pool = [];
for (let i = 0; i < POOL_SIZE; i++) {
  if (i % 3 === 0) pool.push(randomBytes(randomInt(0, 1501)));
  else if (i % 3 === 1)
    pool.push(base64ish(i % 2 === 0 ? randomInt(140, 400) : randomInt(400, 1501)));
  else pool.push(mutate(plan.sampleWires[i % plan.sampleWires.length]));
}

function bound(address) {
  return new Promise((resolve, reject) => {
    const socket = createSocket("udp4");
    socket.once("error", reject);
    socket.bind({ address, port: 0 }, () => resolve(socket));
  });
}

const junk = await bound(plan.junkSource);
let sendErrors = 0;
junk.on("error", () => sendErrors++);
const knockSockets = await Promise.all(plan.knocks.map((k) => bound(k.source)));
const knockSent = [];
const pending = plan.knocks.map((k, i) => ({ ...k, socket: knockSockets[i], done: false }));

let sent = 0;
const start = performance.now();

function sendDueKnocks(elapsed) {
  for (const k of pending) {
    if (k.done || elapsed < k.atMs) continue;
    k.done = true;
    knockSent.push(
      new Promise((resolve) =>
        k.socket.send(Buffer.from(k.wire, "latin1"), plan.port, plan.host, (err) =>
          resolve(err ? `${k.source}: ${err.message}` : null),
        ),
      ),
    );
  }
}

async function finish(elapsed) {
  sendDueKnocks(Number.POSITIVE_INFINITY);
  const errors = (await Promise.all(knockSent)).filter((e) => e !== null);
  await new Promise((resolve) => setTimeout(resolve, 50));
  junk.close();
  for (const s of knockSockets) s.close();
  process.stdout.write(
    `${JSON.stringify({
      sent,
      elapsedMs: Math.round(elapsed),
      packetsPerSecond: Math.round(sent / (elapsed / 1000)),
      knocksSent: knockSent.length - errors.length,
      knockErrors: errors,
      sendErrors,
    })}\n`,
  );
}

function tick() {
  const elapsed = performance.now() - start;
  sendDueKnocks(elapsed);
  if (elapsed >= plan.durationMs) {
    void finish(elapsed);
    return;
  }
  const allowed =
    plan.rate > 0 ? Math.min(BATCH, Math.floor((elapsed / 1000) * plan.rate) - sent) : BATCH;
  for (let i = 0; i < allowed; i++) {
    junk.send(pool[sent % POOL_SIZE], plan.port, plan.host);
    sent++;
  }
  setImmediate(tick);
}

tick();
