/**
 * When to stop reading the SPA socket for a moment, so that a steady stream of datagrams is read
 * in batches instead of one wake-up each.
 *
 * A wake-up of the event loop for one datagram costs far more than the datagram's own checks
 * (on a 2-core VM about 80 µs against 3; bench/run.mjs, "CPU per junk packet"): a flood of junk
 * at 1,000/s, which no kernel rule can tell from knocks, would keep the daemon busy on wake-ups
 * alone. fwknopd reads its pcap buffer every 100 ms whatever comes; spaknockd reads at once
 * when the socket has been quiet, so a lone knock still opens in a few ms, and only while
 * datagrams keep coming does it leave them in the socket buffer for `pauseMs` and read them
 * together. A knock that arrives during a flood waits at most that long.
 *
 * Never while the queue may hold more: a turn that read as many datagrams as the event loop
 * reads in one go (libuv: 32) stopped at that cap, not because the queue was empty.
 */
export interface PacerSettings {
  /** How long reading stops once the stream is steady. */
  readonly pauseMs: number;
  /** Turns closer together than this mean a steady stream. */
  readonly busyGapMs: number;
  /** Datagrams the event loop reads in one turn at most: a turn this full never pauses. */
  readonly fullTurn: number;
}

/** 25 ms: a quarter of fwknopd's 100 ms poll; above 5 ms between datagrams (200/s) no pause. */
export const PACER_DEFAULTS: PacerSettings = { pauseMs: 25, busyGapMs: 5, fullTurn: 32 };

export class ReceivePacer {
  private lastTurnEndMs = Number.NEGATIVE_INFINITY;

  constructor(private readonly settings: PacerSettings = PACER_DEFAULTS) {}

  /** After an event-loop turn that read `count` datagrams, at `nowMs`: ms to stop reading, or 0. */
  afterTurn(count: number, nowMs: number): number {
    const gap = nowMs - this.lastTurnEndMs;
    this.lastTurnEndMs = nowMs;
    if (count === 0 || count >= this.settings.fullTurn) return 0;
    return count >= 2 || gap < this.settings.busyGapMs ? this.settings.pauseMs : 0;
  }
}
