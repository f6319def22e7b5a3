// Batched reads under a steady stream (agent/capture/receive-pacer.ts): the policy on its own,
// then a real loopback socket, where the fear is a paused socket that strands or loses datagrams,
// or a Node that no longer has the read switch (batching would then be silently off).
import { createSocket } from "node:dgram";
import { describe, expect, it } from "vitest";
import type { Datagram } from "../../agent/capture/datagram.js";
import { PACER_DEFAULTS, ReceivePacer } from "../../agent/capture/receive-pacer.js";
import { readSwitchOf, UdpSocketCapture } from "../../agent/capture/udp-socket.js";

const settings = {
  firstPauseMs: 40,
  maxPauseMs: 100,
  batchTarget: 200,
  busyGapMs: 5,
  fullTurn: 32,
};

describe("ReceivePacer", () => {
  it("reads a lone datagram at once, and keeps doing so while they come seldom", () => {
    const pacer = new ReceivePacer(settings);
    expect(pacer.afterTurn(1, 1_000)).toBe(0);
    expect(pacer.afterTurn(1, 1_200)).toBe(0);
    expect(pacer.afterTurn(1, 1_206)).toBe(0);
  });

  it("pauses once datagrams come closer than busyGapMs, or several in one turn", () => {
    expect(new ReceivePacer(settings).afterTurn(3, 1_000)).toBe(40);
    const pacer = new ReceivePacer(settings);
    pacer.afterTurn(1, 1_000);
    expect(pacer.afterTurn(1, 1_002)).toBe(40);
  });

  it("sizes later pauses for batchTarget datagrams at the stream's rate, within maxPauseMs", () => {
    const pacer = new ReceivePacer(settings);
    expect(pacer.afterTurn(3, 0)).toBe(40);
    // 20 in the 40 ms pause: 0.5/ms, 200 of them take 400 ms: held to the 100 ms bound.
    expect(pacer.afterTurn(20, 40)).toBe(100);
    // 400 in the next 100 ms (4,000/s): 200 of them come in 50 ms.
    for (let i = 0; i < 12; i++) expect(pacer.afterTurn(32, 140)).toBe(0);
    expect(pacer.afterTurn(16, 140)).toBe(50);
  });

  it("pauses for less at a higher rate, counting the full turns that drained the queue", () => {
    const pacer = new ReceivePacer(settings);
    expect(pacer.afterTurn(3, 0)).toBe(40);
    // 32 + 32 + 32 + 4 = 100 read after the 40 ms pause: 2.5/ms, so 200 take 80 ms.
    expect(pacer.afterTurn(32, 40)).toBe(0);
    expect(pacer.afterTurn(32, 40)).toBe(0);
    expect(pacer.afterTurn(32, 40)).toBe(0);
    expect(pacer.afterTurn(4, 40)).toBe(80);
    // 3,201 read in the 80 ms since that pause began: 40 per ms (40,000/s), so 5 ms.
    for (let i = 0; i < 100; i++) pacer.afterTurn(32, 120);
    expect(pacer.afterTurn(1, 120)).toBe(5);
  });

  it("stops pausing when a pause gathered one datagram or none: the stream is over", () => {
    const pacer = new ReceivePacer(settings);
    pacer.afterTurn(1, 0);
    expect(pacer.afterTurn(1, 1)).toBe(40);
    expect(pacer.afterTurn(25, 41)).toBeGreaterThan(0);
    expect(pacer.afterTurn(1, 5_000)).toBe(0); // one datagram long after: no longer steady
    expect(pacer.afterTurn(1, 9_000)).toBe(0); // and a lone one after that is read at once too
  });

  it("stops pausing when the stream slows below one datagram per busyGapMs", () => {
    // What a per-source limit in the kernel lets through: a few at a time, tens per second.
    const pacer = new ReceivePacer(settings);
    expect(pacer.afterTurn(5, 0)).toBe(40);
    expect(pacer.afterTurn(5, 40)).toBe(0); // 5 in 40 ms: 125/s, below one per 5 ms
    expect(pacer.afterTurn(1, 300)).toBe(0); // a knock among them is read at once
    expect(pacer.afterTurn(3, 600)).toBe(40); // the next burst starts over
  });

  it("never pauses after a full turn: the event loop stopped at its cap, more is queued", () => {
    const pacer = new ReceivePacer(settings);
    pacer.afterTurn(1, 0);
    expect(pacer.afterTurn(32, 1)).toBe(0);
    expect(pacer.afterTurn(500, 2)).toBe(0);
  });

  it("never pauses longer than fwknopd's 100 ms poll by default", () => {
    expect(PACER_DEFAULTS.firstPauseMs).toBeGreaterThan(0);
    expect(PACER_DEFAULTS.maxPauseMs).toBeLessThanOrEqual(100);
    const pacer = new ReceivePacer();
    pacer.afterTurn(3, 0);
    // 10 in the first pause (400/s): 1,024 of them would take 2.5 s.
    expect(pacer.afterTurn(10, PACER_DEFAULTS.firstPauseMs)).toBe(PACER_DEFAULTS.maxPauseMs);
  });
});

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

async function sendAll(port: number, count: number, gapMs: number): Promise<void> {
  const sender = createSocket("udp4");
  try {
    for (let i = 0; i < count; i++) {
      await new Promise<void>((resolve, reject) =>
        sender.send(`datagram-${i}`, port, "127.0.0.1", (err) => (err ? reject(err) : resolve())),
      );
      if (gapMs > 0) await sleep(gapMs);
    }
  } finally {
    sender.close();
  }
}

async function until(check: () => boolean, ms: number): Promise<boolean> {
  const end = Date.now() + ms;
  while (!check() && Date.now() < end) await sleep(5);
  return check();
}

describe("UdpSocketCapture reading in batches (loopback)", () => {
  it("finds the read switch on this Node's dgram sockets", async () => {
    const socket = createSocket("udp4");
    await new Promise<void>((resolve) => socket.bind(0, "127.0.0.1", resolve));
    try {
      const sw = readSwitchOf(socket);
      expect(sw).not.toBeNull();
      sw?.stop();
      expect(sw?.start()).toBe(true);
    } finally {
      socket.close();
    }
  });

  it("is paced by default, and not when told not to be", async () => {
    const paced = new UdpSocketCapture("::", 0);
    const plain = new UdpSocketCapture("::", 0, undefined, null);
    await paced.start(() => {});
    await plain.start(() => {});
    try {
      expect(paced.paced).toBe(true);
      expect(plain.paced).toBe(false);
    } finally {
      await paced.stop();
      await plain.stop();
    }
  });

  it("delivers every datagram of a steady stream, in order, across its pauses", async () => {
    const capture = new UdpSocketCapture("::", 0, undefined, {
      ...settings,
      firstPauseMs: 20,
      maxPauseMs: 20,
    });
    const got: Datagram[] = [];
    let pausedSeen = false;
    await capture.start((d) => {
      got.push(d);
    });
    const watch = setInterval(() => {
      pausedSeen ||= capture.pausedForBatch;
    }, 1);
    try {
      await sendAll(capture.listening?.port as number, 300, 1);
      expect(await until(() => got.length === 300, 10_000)).toBe(true);
    } finally {
      clearInterval(watch);
      await capture.stop();
    }
    expect(got.map((d) => d.payload.toString())).toEqual(
      Array.from({ length: 300 }, (_, i) => `datagram-${i}`),
    );
    expect(pausedSeen).toBe(true);
  });

  it("holds datagrams in the kernel while paused and reads them all when the pause ends", async () => {
    // What arrives during a pause is not read before it ends, and not lost when it does.
    const capture = new UdpSocketCapture("::", 0, undefined, { ...settings, firstPauseMs: 2_000 });
    const got: string[] = [];
    await capture.start((d) => got.push(d.payload.toString()));
    const port = capture.listening?.port as number;
    try {
      await sendAll(port, 3, 0); // several in a burst: a steady stream, reading stops
      expect(await until(() => capture.pausedForBatch, 1_000)).toBe(true);
      const before = got.length;
      await sendAll(port, 2, 0);
      await sleep(300);
      expect(got.length).toBe(before);
      expect(await until(() => got.length === 5, 10_000)).toBe(true);
    } finally {
      await capture.stop();
    }
    expect(got.slice(-2)).toEqual(["datagram-0", "datagram-1"]);
    expect(capture.pausedForBatch).toBe(false); // stop() clears the pause timer
  });

  it("reads a lone datagram after quiet without pausing first", async () => {
    const capture = new UdpSocketCapture("::", 0, undefined, { ...settings, firstPauseMs: 60_000 });
    const got: string[] = [];
    await capture.start((d) => got.push(d.payload.toString()));
    try {
      await sendAll(capture.listening?.port as number, 1, 0);
      expect(await until(() => got.length === 1, 5_000)).toBe(true);
      await sleep(20);
      expect(capture.pausedForBatch).toBe(false);
    } finally {
      await capture.stop();
    }
  });
});
