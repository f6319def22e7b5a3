// Batched reads under a steady stream (agent/capture/receive-pacer.ts): the policy on its own,
// then a real loopback socket, where the fear is a paused socket that strands or loses datagrams,
// or a Node that no longer has the read switch (batching would then be silently off).
import { createSocket } from "node:dgram";
import { describe, expect, it } from "vitest";
import type { Datagram } from "../../agent/capture/datagram.js";
import { PACER_DEFAULTS, ReceivePacer } from "../../agent/capture/receive-pacer.js";
import { readSwitchOf, UdpSocketCapture } from "../../agent/capture/udp-socket.js";

const settings = { pauseMs: 40, busyGapMs: 5, fullTurn: 32 };

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

  it("keeps pausing while each batch holds several, and stops when the stream does", () => {
    const pacer = new ReceivePacer(settings);
    pacer.afterTurn(1, 0);
    expect(pacer.afterTurn(1, 1)).toBe(40);
    expect(pacer.afterTurn(25, 41)).toBe(40);
    expect(pacer.afterTurn(1, 81)).toBe(0); // one datagram in 40 ms: no longer steady
  });

  it("never pauses after a full turn: the event loop stopped at its cap, more is queued", () => {
    const pacer = new ReceivePacer(settings);
    pacer.afterTurn(1, 0);
    expect(pacer.afterTurn(32, 1)).toBe(0);
    expect(pacer.afterTurn(500, 2)).toBe(0);
  });

  it("pauses for less than fwknopd's 100 ms poll by default", () => {
    expect(PACER_DEFAULTS.pauseMs).toBeGreaterThan(0);
    expect(PACER_DEFAULTS.pauseMs).toBeLessThan(100);
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
    const capture = new UdpSocketCapture("::", 0, undefined, { ...settings, pauseMs: 20 });
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
    const capture = new UdpSocketCapture("::", 0, undefined, { ...settings, pauseMs: 2_000 });
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
    const capture = new UdpSocketCapture("::", 0, undefined, { ...settings, pauseMs: 60_000 });
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
