// The native batch reader (native/udp-batch.c, agent/capture/batch-receiver.ts) against
// node:dgram's own reads, on the real loopback. The fears: a build that silently falls back to
// dgram; a datagram handed on as a view of a slot the next batch overwrites; a wrong source
// address or port (the address a grant opens for); a descriptor still polled after the socket
// closed.
import { execFile } from "node:child_process";
import { createSocket, type Socket } from "node:dgram";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { afterEach, describe, expect, it } from "vitest";
import { loadBatchModule } from "../../agent/capture/batch-receiver.js";
import type { Datagram } from "../../agent/capture/datagram.js";
import { descriptorOf, readSwitchOf, UdpSocketCapture } from "../../agent/capture/udp-socket.js";
import { MAX_SPA_DATA_SIZE, precheckDatagram, SpaError } from "../../core/index.js";

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

async function until(check: () => boolean, ms: number): Promise<boolean> {
  const end = Date.now() + ms;
  while (!check() && Date.now() < end) await sleep(5);
  return check();
}

const open: { captures: UdpSocketCapture[]; sockets: Socket[] } = { captures: [], sockets: [] };
afterEach(async () => {
  for (const c of open.captures.splice(0)) await c.stop();
  for (const s of open.sockets.splice(0)) s.close();
});

async function capture(
  address: string,
  reader: "batch" | "dgram",
  got: Datagram[],
  port = 0,
): Promise<UdpSocketCapture> {
  const batch = loadBatchModule();
  const c = new UdpSocketCapture(
    address,
    port,
    undefined,
    undefined,
    reader === "batch" && typeof batch !== "string" ? batch : null,
  );
  await c.start((d) => got.push(d));
  open.captures.push(c);
  return c;
}

async function sender(type: "udp4" | "udp6", address: string): Promise<Socket> {
  const s = createSocket(type);
  open.sockets.push(s);
  await new Promise<void>((resolve) => s.bind(0, address, resolve));
  return s;
}

const send = (s: Socket, payload: string | Buffer, port: number, to: string) =>
  new Promise<void>((resolve, reject) =>
    s.send(payload, port, to, (err) => (err ? reject(err) : resolve())),
  );

describe("the native batch reader", () => {
  it("is built on this machine and reads the daemon's socket by default", async () => {
    const batch = loadBatchModule();
    expect(batch, typeof batch === "string" ? batch : "").not.toBeTypeOf("string");
    const c = new UdpSocketCapture("::", 0);
    await c.start(() => {});
    open.captures.push(c);
    expect(c.reader).toBe("batch");
    expect(c.paced).toBe(true);
    expect(c.describeReader()).toBe("batched reads (recvmmsg)");
  });

  for (const reader of ["batch", "dgram"] as const) {
    it(`${reader}: reports IPv4 and IPv6 senders, their ports and the bound address`, async () => {
      const dual: Datagram[] = [];
      const d = await capture("::", reader, dual);
      const v4 = await sender("udp4", "127.0.0.1");
      const v6 = await sender("udp6", "::1");
      await send(v4, "from-v4", d.listening?.port as number, "127.0.0.1");
      await send(v6, "from-v6", d.listening?.port as number, "::1");
      const bound: Datagram[] = [];
      const b = await capture("127.0.0.1", reader, bound);
      await send(v4, "to-bound", b.listening?.port as number, "127.0.0.1");
      expect(await until(() => dual.length === 2 && bound.length === 1, 5_000)).toBe(true);

      const byText = new Map(dual.map((x) => [x.payload.toString(), x]));
      expect(byText.get("from-v4")).toMatchObject({
        sourceIp: "127.0.0.1",
        sourcePort: v4.address().port,
        destinationIp: null,
      });
      expect(byText.get("from-v6")).toMatchObject({
        sourceIp: "::1",
        sourcePort: v6.address().port,
        destinationIp: null,
      });
      expect(bound[0]).toMatchObject({ sourceIp: "127.0.0.1", destinationIp: "127.0.0.1" });
      expect(bound[0]?.payload.toString()).toBe("to-bound");
      for (const x of [...dual, ...bound])
        expect(Math.abs(x.receivedAt - Date.now())).toBeLessThan(5_000);
    });

    it(`${reader}: hands on copies that later batches do not overwrite, in order`, async () => {
      const got: Datagram[] = [];
      const c = await capture("::", reader, got);
      const s = await sender("udp4", "127.0.0.1");
      const port = c.listening?.port as number;
      // More than one batch of 64, sent at once so that batches follow each other closely.
      const texts = Array.from({ length: 300 }, (_, i) => `datagram-${i}-${"x".repeat(i % 50)}`);
      await Promise.all(texts.map((t) => send(s, t, port, "127.0.0.1")));
      expect(await until(() => got.length === texts.length, 10_000)).toBe(true);
      await sleep(50); // and nothing arrives that was not sent
      expect(got.map((d) => d.payload.toString())).toEqual(texts);
    });

    it(`${reader}: a datagram longer than any SPA packet is still refused for its size`, async () => {
      const got: Datagram[] = [];
      const c = await capture("::", reader, got);
      const s = await sender("udp4", "127.0.0.1");
      await send(s, Buffer.alloc(3_000, 0x41), c.listening?.port as number, "127.0.0.1");
      expect(await until(() => got.length === 1, 5_000)).toBe(true);
      const payload = got[0]?.payload as Buffer;
      expect(payload.length).toBeGreaterThan(MAX_SPA_DATA_SIZE);
      expect(() => precheckDatagram(payload)).toThrow(SpaError);
      expect(() => precheckDatagram(payload)).toThrow(/SPA_SIZE|bytes/);
    });
  }

  it("stops polling on stop(): nothing after it, and the port can be bound again", async () => {
    const got: Datagram[] = [];
    const c = await capture("127.0.0.1", "batch", got);
    const port = c.listening?.port as number;
    const s = await sender("udp4", "127.0.0.1");
    await send(s, "before", port, "127.0.0.1");
    expect(await until(() => got.length === 1, 5_000)).toBe(true);
    await c.stop();
    await send(s, "after", port, "127.0.0.1").catch(() => {}); // nobody listens: may be refused
    await sleep(100);
    expect(got.map((d) => d.payload.toString())).toEqual(["before"]);
    const again: Datagram[] = [];
    const c2 = await capture("127.0.0.1", "batch", again, port);
    expect(c2.reader).toBe("batch");
    await send(s, "again", port, "127.0.0.1");
    expect(await until(() => again.length === 1, 5_000)).toBe(true);
    expect(got).toHaveLength(1);
  });

  it("stops handing on datagrams the moment stop() is called, mid-batch", async () => {
    const got: Datagram[] = [];
    const c = new UdpSocketCapture("127.0.0.1", 0);
    await c.start((d) => {
      got.push(d);
      if (got.length === 10) void c.stop();
    });
    open.captures.push(c);
    expect(c.reader).toBe("batch");
    const s = await sender("udp4", "127.0.0.1");
    const port = c.listening?.port as number;
    await Promise.all(Array.from({ length: 100 }, (_, i) => send(s, `d${i}`, port, "127.0.0.1")));
    await sleep(200);
    expect(got).toHaveLength(10);
  });

  it("takes a closed handle calmly and refuses anything that is not a handle", async () => {
    const batch = loadBatchModule();
    if (typeof batch === "string") throw new Error(batch);
    const socket = createSocket("udp4");
    open.sockets.push(socket);
    await new Promise<void>((resolve) => socket.bind(0, "127.0.0.1", resolve));
    readSwitchOf(socket)?.stop();
    const fd = descriptorOf(socket) as number;
    const payloads = Buffer.alloc(batch.SLOTS * batch.SLOT_BYTES);
    const meta = Buffer.alloc(batch.SLOTS * batch.META_INTS * 4);
    const handle = batch.start(fd, payloads, meta, () => {});
    expect(batch.resume(handle)).toBe(true);
    batch.close(handle);
    await sleep(20); // libuv's close callback has freed the receiver
    batch.close(handle);
    batch.pause(handle);
    expect(batch.resume(handle)).toBe(false);
    expect(() => batch.pause({})).toThrow(TypeError);
    expect(() => batch.close(payloads)).toThrow(TypeError);
    expect(() => batch.start(fd, Buffer.alloc(10), meta, () => {})).toThrow(/payloads/);
  });

  it("lets a worker thread that still reads end without aborting the process", async () => {
    // An open libuv handle at an environment's teardown aborts Node (uv_loop_close): the module
    // closes its poll handle in a cleanup hook.
    const capture = new URL("../../dist/agent/capture/udp-socket.js", import.meta.url).href;
    const dir = mkdtempSync(join(tmpdir(), "spaknock-batch-"));
    try {
      const worker = [
        'import { parentPort } from "node:worker_threads";',
        `const { UdpSocketCapture } = await import(${JSON.stringify(capture)});`,
        'const c = new UdpSocketCapture("127.0.0.1", 0);',
        "await c.start(() => {});",
        "parentPort.postMessage(c.reader);",
      ];
      const main = [
        'import { Worker } from "node:worker_threads";',
        'const w = new Worker(new URL("./worker.mjs", import.meta.url));',
        'w.on("message", async (r) => { console.log(r); await w.terminate(); console.log("ended"); });',
        'w.on("error", (e) => { console.error(e); process.exit(3); });',
      ];
      writeFileSync(join(dir, "worker.mjs"), `${worker.join("\n")}\n`);
      writeFileSync(join(dir, "main.mjs"), `${main.join("\n")}\n`);
      const { stdout } = await promisify(execFile)(process.execPath, [join(dir, "main.mjs")], {
        timeout: 20_000,
      });
      expect(stdout.trim().split("\n")).toEqual(["batch", "ended"]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
