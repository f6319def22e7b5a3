/**
 * A silent UDP socket (ENABLE_UDP_SERVER): it receives and never sends a byte, so to a scanner
 * the port looks like any other filtered or closed UDP port.
 *
 * Bound to `::` it is dual-stack: one socket for IPv4 and IPv6 senders, the IPv4 ones reported by
 * the kernel as IPv4-mapped (`::ffff:198.18.0.2`). Those are turned back into plain IPv4 here,
 * before anything else sees them, so access rules, grants and logs never meet the mapped form. On
 * a host whose kernel has IPv6 disabled, `::` falls back to IPv4's `0.0.0.0`.
 *
 * Who reads: spaknock's native batch reader (./batch-receiver.ts: recvmmsg, one JavaScript call
 * for up to 64 datagrams) when it was built, else node:dgram's own 'message' events. Either way,
 * under a steady stream it reads in batches (./receive-pacer.ts says when and why), by stopping
 * and restarting the reads; a lone datagram is read at once.
 */
import { createSocket, type Socket, type SocketOptions } from "node:dgram";
import { canonicalIp, isUnspecifiedIp, parseIpAddress } from "../../core/index.js";
import { type BatchModule, BatchReceiver, loadBatchModule } from "./batch-receiver.js";
import type { Capture, Datagram } from "./datagram.js";
import { PACER_DEFAULTS, type PacerSettings, ReceivePacer } from "./receive-pacer.js";

export type UdpSocketFactory = (options: SocketOptions) => Socket;

/** Stops and restarts a bound socket's reads; queued datagrams wait in the kernel meanwhile. */
export interface ReadSwitch {
  stop(): void;
  /** False when reading could not restart (the socket is closing). */
  start(): boolean;
}

interface UdpHandle {
  recvStart(): number;
  recvStop(): number;
  readonly fd?: number;
}

function udpHandleOf(socket: Socket): Partial<UdpHandle> | null {
  const state = Object.getOwnPropertySymbols(socket).find((k) => k.description === "state symbol");
  const handle =
    state && (socket as unknown as Record<symbol, { handle?: unknown }>)[state]?.handle;
  return (handle as Partial<UdpHandle> | null | undefined) ?? null;
}

/**
 * The read switch of a Node dgram socket: node:dgram has no public pause, but its libuv handle,
 * kept behind the socket's "state symbol", has recvStop/recvStart (what bind and close call).
 * null on a Node that has them no more: the socket then reads one wake-up per datagram, as
 * before (test/agent/udp-socket.test.ts checks that the Node running the tests has them).
 */
export function readSwitchOf(socket: Socket): ReadSwitch | null {
  const h = udpHandleOf(socket);
  if (typeof h?.recvStart !== "function" || typeof h.recvStop !== "function") return null;
  const udp = h as UdpHandle;
  return {
    stop: () => void udp.recvStop(),
    start: () => udp.recvStart() === 0,
  };
}

/** The bound socket's descriptor (the same libuv handle's `fd`), or null where there is none. */
export function descriptorOf(socket: Socket): number | null {
  const fd = udpHandleOf(socket)?.fd;
  return typeof fd === "number" && fd >= 0 ? fd : null;
}

/** The errors a bind to `::` fails with when the kernel has no IPv6. */
const NO_IPV6 = new Set(["EAFNOSUPPORT", "EPROTONOSUPPORT", "EADDRNOTAVAIL"]);

export class UdpSocketCapture implements Capture {
  private socket: Socket | null = null;
  private resumeTimer: NodeJS.Timeout | null = null;
  private batchReceiver: BatchReceiver | null = null;
  /** Why the batch reader could not poll the socket, when it could not. */
  private batchFailure: string | null = null;
  /** Whether reads are batched on this socket (false: no read switch on this Node). */
  paced = false;
  /** Who reads the socket once started: the native batch reader or node:dgram. */
  reader: "batch" | "dgram" | null = null;

  constructor(
    private readonly address: string,
    private readonly port: number,
    private readonly makeSocket: UdpSocketFactory = createSocket,
    /** null: read every datagram as it comes. */
    private readonly pacing: PacerSettings | null = PACER_DEFAULTS,
    /** The native batch reader; null: node:dgram reads. By default, when it was built. */
    private readonly batch: BatchModule | null = defaultBatchModule(),
  ) {}

  /** True while reads are stopped for a batch. */
  get pausedForBatch(): boolean {
    return this.resumeTimer !== null;
  }

  /** Where the socket listens once started (`port` 0 picks one), e.g. for the start-up log. */
  get listening(): { readonly address: string; readonly port: number } | null {
    if (!this.socket) return null;
    const { address, port } = this.socket.address();
    return { address, port };
  }

  /** `[::]:62201` or `0.0.0.0:62201`: what was bound, after a fallback too. */
  describe(): string {
    const at = this.listening ?? { address: this.address, port: this.port };
    return at.address.includes(":") ? `[${at.address}]:${at.port}` : `${at.address}:${at.port}`;
  }

  /** How it reads, for the start-up log: `batched reads (recvmmsg)` or why node:dgram reads. */
  describeReader(): string {
    if (this.reader === "batch") return "batched reads (recvmmsg)";
    const why =
      this.batch === null
        ? batchUnavailableReason()
        : (this.batchFailure ?? "no socket descriptor on this Node");
    return `node:dgram reads (${why})`;
  }

  async start(onDatagram: (d: Datagram) => void): Promise<void> {
    const ip = parseIpAddress(this.address);
    if (ip === null) throw new TypeError(`"${this.address}" is not an IP address`);
    // A bind to the IPv4-mapped form is a bind to the IPv4 address it maps.
    const address = ip.text;
    if (ip.family === 4) return this.listen("udp4", address, onDatagram);
    try {
      await this.listen("udp6", address, onDatagram);
    } catch (err) {
      const code = (err as { cause?: NodeJS.ErrnoException }).cause?.code ?? "";
      if (ip.value !== 0n || !NO_IPV6.has(code)) throw err;
      await this.listen("udp4", "0.0.0.0", onDatagram);
    }
  }

  private listen(
    type: "udp4" | "udp6",
    address: string,
    onDatagram: (d: Datagram) => void,
  ): Promise<void> {
    // An unspecified bind does not tell which local address a datagram came to (fwknopd records
    // 0.0.0.0 then); a specific one does.
    const destinationIp = isUnspecifiedIp(address) ? null : address;
    // Only an IPv6 socket reports mapped or non-RFC 5952 text; an IPv4 one's is canonical already.
    // An IPv4 sender on a dual-stack socket is `::ffff:` and the kernel's dotted quad: cut.
    const sourceOf =
      type === "udp6"
        ? (a: string) =>
            a.startsWith("::ffff:") && !a.includes(":", 7) && a.includes(".", 7)
              ? a.slice(7)
              : (canonicalIp(a) ?? a)
        : (a: string) => a;
    return new Promise((resolve, reject) => {
      const socket = this.makeSocket({
        type,
        recvBufferSize: 8 * 1024 * 1024,
        ...(type === "udp6" ? { ipv6Only: false } : {}),
      });
      socket.once("error", (err) => {
        try {
          socket.close();
        } catch {
          // never bound: nothing to release
        }
        reject(new Error(`cannot listen on udp/${this.port}: ${err.message}`, { cause: err }));
      });
      // node:dgram's own reads: until the batch reader takes over, and for good without it.
      let onTurn: ((n: number) => void) | null = null;
      socket.on("message", (payload, rinfo) => {
        onDatagram({
          payload,
          sourceIp: sourceOf(rinfo.address),
          sourcePort: rinfo.port,
          destinationIp,
          receivedAt: Date.now(),
        });
        onTurn?.(1);
      });
      socket.bind(this.port, address, () => {
        socket.removeAllListeners("error");
        socket.on("error", () => {}); // receive errors on UDP are transient; never crash on them
        this.socket = socket;
        const dgramSwitch = readSwitchOf(socket);
        if (
          dgramSwitch === null ||
          !this.readInBatches(socket, dgramSwitch, destinationIp, onDatagram)
        ) {
          this.reader = "dgram";
          onTurn = this.pacing && dgramSwitch ? this.batcher(dgramSwitch, this.pacing) : null;
          this.paced = onTurn !== null;
        }
        resolve();
      });
    });
  }

  /**
   * Hands the bound socket's reads to the native batch reader; false (node:dgram reads on) when
   * there is none or it cannot poll this descriptor.
   */
  private readInBatches(
    socket: Socket,
    dgramSwitch: ReadSwitch,
    destinationIp: string | null,
    onDatagram: (d: Datagram) => void,
  ): boolean {
    const batch = this.batch;
    const fd = descriptorOf(socket);
    if (batch === null || fd === null) return false;
    // Node started reading at bind; it stops before any poll phase, and the batch reader polls.
    dgramSwitch.stop();
    let turn: ((n: number) => void) | null = null;
    let receiver: BatchReceiver;
    try {
      receiver = new BatchReceiver(batch, fd, destinationIp, onDatagram, (n) => turn?.(n));
    } catch (err) {
      this.batchFailure = err instanceof Error ? err.message : String(err);
      dgramSwitch.start();
      return false;
    }
    this.batchReceiver = receiver;
    this.reader = "batch";
    if (this.pacing !== null) {
      const batchSwitch: ReadSwitch = {
        stop: () => receiver.pause(),
        start: () => receiver.resume(),
      };
      // A wake-up reads up to SLOTS * BATCHES: one that full may have left more queued.
      turn = this.batcher(batchSwitch, { ...this.pacing, fullTurn: batch.SLOTS * batch.BATCHES });
    }
    this.paced = turn !== null;
    return true;
  }

  /**
   * Counts the datagrams of one event-loop turn (its end: setImmediate, after the poll phase
   * that read them) and asks the pacer whether to stop reading for a while.
   */
  private batcher(readSwitch: ReadSwitch, settings: PacerSettings): (n: number) => void {
    const pacer = new ReceivePacer(settings);
    let count = 0;
    const endTurn = () => {
      const pauseMs = pacer.afterTurn(count, Date.now());
      count = 0;
      if (pauseMs === 0 || this.socket === null) return;
      readSwitch.stop();
      this.resumeTimer = setTimeout(() => {
        this.resumeTimer = null;
        if (this.socket !== null) readSwitch.start();
      }, pauseMs);
    };
    return (n) => {
      if (count === 0) setImmediate(endTurn);
      count += n;
    };
  }

  stop(): Promise<void> {
    if (this.resumeTimer) clearTimeout(this.resumeTimer);
    this.resumeTimer = null;
    // The batch reader stops polling the descriptor before the socket closes it.
    this.batchReceiver?.close();
    this.batchReceiver = null;
    return new Promise((resolve) => {
      if (!this.socket) return resolve();
      this.socket.close(() => resolve());
      this.socket = null;
    });
  }
}

function defaultBatchModule(): BatchModule | null {
  const m = loadBatchModule();
  return typeof m === "string" ? null : m;
}

function batchUnavailableReason(): string {
  const m = loadBatchModule();
  return typeof m === "string" ? m : "turned off for this socket";
}
