/**
 * When to stop reading the SPA socket for a moment, so that a steady stream of datagrams is read
 * in batches instead of one wake-up each.
 *
 * A wake-up of the event loop costs far more than a datagram's own checks: on a 2-core VM an
 * idle Node timer wake-up is about 160 µs of CPU, a datagram's screening 2 to 4 µs. A flood of
 * shaped junk at 1,000/s, which no kernel rule can tell from knocks, would keep the daemon busy
 * on wake-ups alone. fwknopd reads its pcap buffer every 100 ms whatever comes; spaknockd reads
 * at once when the socket has been quiet, so a lone knock still opens in a few ms, and only
 * while datagrams keep coming does it leave them in the socket buffer and read them together.
 *
 * How long: long enough that a batch holds about `batchTarget` datagrams at the rate the last
 * batch came in (none at all once that rate is below one per `busyGapMs`), never longer than
 * `maxPauseMs` (fwknopd's poll interval: a knock that arrives
 * during a flood waits at most that long) and never so long that the socket buffer would fill
 * (at 50,000/s a 1,024-datagram batch is 20 ms: well under the 8 MiB buffer). The first pause of
 * a stream, when there is no rate to go by yet, is `firstPauseMs`.
 *
 * Never while the queue may hold more: a turn that read as many datagrams as the event loop
 * reads in one go (libuv: 32) stopped at that cap, not because the queue was empty.
 */
export interface PacerSettings {
  /** The first pause of a steady stream. */
  readonly firstPauseMs: number;
  /** No pause is longer. */
  readonly maxPauseMs: number;
  /** Datagrams a batch should hold: the pause is this many at the stream's rate. */
  readonly batchTarget: number;
  /** Turns closer together than this mean a steady stream. */
  readonly busyGapMs: number;
  /** Datagrams the event loop reads in one turn at most: a turn this full never pauses. */
  readonly fullTurn: number;
}

/**
 * 25 ms first, then up to 100 ms (fwknopd's poll interval) for 1,024 datagrams; above 5 ms
 * between datagrams (200/s) no pause. bench/run.mjs "CPU per junk packet" measures the effect.
 */
export const PACER_DEFAULTS: PacerSettings = {
  firstPauseMs: 25,
  maxPauseMs: 100,
  batchTarget: 1024,
  busyGapMs: 5,
  fullTurn: 32,
};

export class ReceivePacer {
  private lastTurnEndMs = Number.NEGATIVE_INFINITY;
  /** When the current pause-and-read window began (the last pause's start); null: no stream. */
  private windowStartMs: number | null = null;
  /** Datagrams read since the window began. */
  private readInWindow = 0;

  constructor(private readonly settings: PacerSettings = PACER_DEFAULTS) {}

  /** After an event-loop turn that read `count` datagrams, at `nowMs`: ms to stop reading, or 0. */
  afterTurn(count: number, nowMs: number): number {
    const gap = nowMs - this.lastTurnEndMs;
    this.lastTurnEndMs = nowMs;
    this.readInWindow += count;
    if (count === 0 || count >= this.settings.fullTurn) return 0;
    const pause = this.nextPause(count, gap, nowMs);
    this.windowStartMs = pause === 0 ? null : nowMs;
    this.readInWindow = 0;
    return pause;
  }

  private nextPause(count: number, gap: number, nowMs: number): number {
    const { firstPauseMs, maxPauseMs, batchTarget, busyGapMs } = this.settings;
    if (this.windowStartMs === null) {
      return count >= 2 || gap < busyGapMs ? firstPauseMs : 0;
    }
    // Slower than one datagram per busyGapMs since the last pause (what a per-source limit in the
    // kernel lets through, or the end of a flood): wake-ups cost little at that rate, and a knock
    // among them should not wait. Read at once again.
    const perMs = this.readInWindow / Math.max(1, nowMs - this.windowStartMs);
    if (this.readInWindow < 2 || perMs < 1 / busyGapMs) return 0;
    return Math.max(1, Math.min(maxPauseMs, Math.round(batchTarget / perMs)));
  }
}
