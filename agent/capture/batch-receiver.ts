/**
 * Batched reads of a bound UDP socket through spaknock's own native module (native/udp-batch.c,
 * built by scripts/build-native.mjs): one recvmmsg call fills up to 64 fixed slots, one call
 * into JavaScript reads them, nothing is allocated per datagram but the Datagram handed on.
 * Under a flood of junk that is most of what a datagram costs: node:dgram allocates 64 KiB, a
 * Buffer, an address object and makes a JavaScript call for every datagram.
 *
 * The module only polls a descriptor that a node:dgram socket bound (after that socket's own
 * reads were stopped) and stops polling before the socket is closed; it never sends. It is
 * optional: `loadBatchModule()` returns why not when it cannot be loaded, and the capture then
 * reads with node:dgram as before.
 */
import { existsSync } from "node:fs";
import { createRequire } from "node:module";
import { fileURLToPath } from "node:url";
import { ipv4TextOf, ipv6TextOf } from "../../core/index.js";
import type { Datagram } from "./datagram.js";

/** What native/udp-batch.c exports. */
export interface BatchModule {
  start(fd: number, payloads: Buffer, meta: Buffer, onBatch: (count: number) => void): unknown;
  pause(handle: unknown): void;
  resume(handle: unknown): boolean;
  close(handle: unknown): void;
  readonly SLOTS: number;
  readonly SLOT_BYTES: number;
  readonly META_INTS: number;
  /** recvmmsg calls per wake-up at most: SLOTS * BATCHES datagrams may mean more are queued. */
  readonly BATCHES: number;
}

/**
 * Where the module is, from this file in dist/agent/capture, the bundle or its chunks (all of
 * them beside dist/native), or the source tree (agent/capture, as the tests run it).
 */
const MODULE_PATHS = ["../native/", "../../native/", "../../../native/", "../../dist/native/"].map(
  (dir) => new URL(`${dir}udp-batch.node`, import.meta.url),
);

let loaded: BatchModule | string | undefined;

/** After a socket error stopped polling, when to poll again. */
const POLL_ERROR_RETRY_MS = 10;

/** The native module, or why it is not there (loaded once). SPAKNOCK_NO_BATCH_MODULE=1: never. */
export function loadBatchModule(): BatchModule | string {
  if (loaded !== undefined) return loaded;
  if (process.env.SPAKNOCK_NO_BATCH_MODULE === "1") {
    loaded = "turned off by SPAKNOCK_NO_BATCH_MODULE=1";
    return loaded;
  }
  const path = MODULE_PATHS.map((u) => fileURLToPath(u)).find((p) => existsSync(p));
  if (path === undefined) {
    loaded = "native/udp-batch.node was not built (scripts/build-native.mjs)";
    return loaded;
  }
  try {
    const m = createRequire(import.meta.url)(path) as BatchModule;
    if (
      typeof m.start !== "function" ||
      !(m.SLOTS > 0 && m.SLOT_BYTES > 0 && m.META_INTS >= 7 && m.BATCHES > 0)
    )
      throw new Error("not the module this version expects");
    loaded = m;
  } catch (err) {
    loaded = `${path} did not load: ${err instanceof Error ? err.message.split("\n")[0] : String(err)}`;
  }
  return loaded;
}

/** Polls one descriptor and hands each datagram on as a Datagram, in the order received. */
export class BatchReceiver {
  private readonly handle: unknown;
  private closed = false;

  /**
   * @param onTurn called after each batch with the number of datagrams it held, for the
   *   capture's pacing (node:dgram's 'message' listener calls the same hook with 1).
   */
  constructor(
    private readonly batch: BatchModule,
    fd: number,
    destinationIp: string | null,
    onDatagram: (d: Datagram) => void,
    onTurn: ((count: number) => void) | null,
  ) {
    const { SLOTS, SLOT_BYTES, META_INTS } = batch;
    const payloads = Buffer.alloc(SLOTS * SLOT_BYTES);
    const metaBytes = Buffer.alloc(SLOTS * META_INTS * 4);
    const meta = new Int32Array(metaBytes.buffer, metaBytes.byteOffset, SLOTS * META_INTS);
    const bytes = new Uint8Array(metaBytes.buffer, metaBytes.byteOffset, metaBytes.length);
    this.handle = batch.start(fd, payloads, metaBytes, (count) => {
      if (count < 0) {
        // libuv stopped polling on a socket error (POLLERR): poll again shortly.
        setTimeout(() => this.resume(), POLL_ERROR_RETRY_MS).unref();
        return;
      }
      const receivedAt = Date.now(); // one read, one time
      for (let i = 0; i < count && !this.closed; i++) {
        const m = i * META_INTS;
        const family = meta[m + 1];
        if (family !== 4 && family !== 6) continue; // no source address: nothing to answer to
        const at = (m + 3) * 4;
        const sourceIp = family === 4 ? ipv4TextOf(bytes, at) : ipv6TextOf(bytes, at);
        const start = i * SLOT_BYTES;
        // A copy: the slots are overwritten by the next batch, and a knock outlives its batch.
        // A datagram longer than a slot is cut to it, and refused for its size like any datagram
        // over MAX_SPA_DATA_SIZE (its refusal then says 2048 bytes, not the length sent).
        const length = Math.min(meta[m] as number, SLOT_BYTES);
        onDatagram({
          payload: Buffer.from(payloads.subarray(start, start + length)),
          sourceIp,
          sourcePort: meta[m + 2] as number,
          destinationIp,
          receivedAt,
        });
      }
      onTurn?.(count);
    });
  }

  pause(): void {
    if (!this.closed) this.batch.pause(this.handle);
  }

  /** False once closed. */
  resume(): boolean {
    return !this.closed && this.batch.resume(this.handle);
  }

  /** Stops polling for good; call before the socket is closed. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.batch.close(this.handle);
  }
}
