/**
 * Relay mode (`spaknockd relay`): Lambda cannot receive UDP, so a small host listens on
 * udp/62201 and hands each datagram that passes the core precheck to the knock function as an
 * asynchronous invocation. Silent like the daemon; junk never costs an invocation; a per-source
 * rate limit keeps one sender from running up the bill.
 */
import { InvokeCommand, type LambdaClient } from "@aws-sdk/client-lambda";
import { parseIpAddress, precheckDatagram, SpaError } from "../core/index.js";
import type { Capture, Datagram } from "./capture/datagram.js";
import { describeCounts, type Log, SecondSums } from "./log.js";

export interface RelayOptions {
  readonly functionName: string;
  /** Invocations allowed per source address per window. */
  readonly perSourceLimit: number;
  readonly windowMs: number;
  readonly maxInFlight: number;
  /** Sources whose windows are remembered at once (bounded memory under a spoofed flood). */
  readonly maxTrackedSources: number;
}

export { RELAY_DEFAULTS } from "./relay-defaults.js";

/**
 * Per-source windows in bounded memory that a spoofed flood cannot reset. The map is kept in
 * window-start order (a restarted window moves to the end), so expired windows are at its front.
 * When full, it drops expired windows first, then the oldest windows still under the limit; a
 * source over its limit is never forgotten while its window lasts, so spoofing many addresses
 * does not lift the limit of one that floods from its own. When every tracked source is over
 * its limit, a new source passes untracked: the limit saves invocations, it is not a defence
 * (the knock function checks every packet).
 */
export class SourceWindows {
  private readonly windows = new Map<string, { start: number; count: number }>();

  constructor(
    private readonly limit: number,
    private readonly windowMs: number,
    private readonly maxTracked: number,
  ) {}

  get size(): number {
    return this.windows.size;
  }

  /** Counts one datagram from `key`; returns its count in the current window. */
  count(key: string, now: number): number {
    const w = this.windows.get(key);
    if (w && now - w.start < this.windowMs) return ++w.count;
    if (w) this.windows.delete(key);
    if (this.windows.size >= this.maxTracked) this.makeRoom(now);
    if (this.windows.size < this.maxTracked) this.windows.set(key, { start: now, count: 1 });
    return 1;
  }

  isOver(count: number): boolean {
    return count > this.limit;
  }

  private makeRoom(now: number): void {
    for (const [key, w] of this.windows) {
      if (now - w.start < this.windowMs) break;
      this.windows.delete(key);
    }
    // Free a batch at a time, so a flood of new sources does not rescan the map per datagram.
    const target = Math.max(0, this.maxTracked - Math.ceil(this.maxTracked / 100));
    if (this.windows.size <= target) return;
    for (const [key, w] of this.windows) {
      if (this.windows.size <= target) break;
      if (w.count <= this.limit) this.windows.delete(key);
    }
  }
}

/**
 * What the per-source limit counts by: the IPv4 address, or the IPv6 /64. One IPv6 sender
 * usually holds a whole /64 and could rotate through it to escape a per-address limit.
 */
export function rateLimitKey(sourceIp: string): string {
  if (!sourceIp.includes(":")) return sourceIp; // IPv4: no parse per datagram
  const ip = parseIpAddress(sourceIp);
  if (ip?.family !== 6) return sourceIp;
  return `${(ip.value >> 64n).toString(16)}/64`;
}

/** Fails with a clear message when the function is missing or not invocable with these credentials. */
export async function checkFunction(lambda: LambdaClient, functionName: string): Promise<void> {
  try {
    await lambda.send(new InvokeCommand({ FunctionName: functionName, InvocationType: "DryRun" }));
  } catch (err) {
    const name = (err as { name?: string }).name ?? "Error";
    const hint =
      name === "ResourceNotFoundException"
        ? `function ${functionName} does not exist in this region`
        : name === "CredentialsProviderError" || name === "ExpiredTokenException"
          ? "no AWS credentials (instance role, environment or ~/.aws)"
          : name === "AccessDeniedException"
            ? `these credentials may not invoke ${functionName}`
            : `${name}: ${err instanceof Error ? err.message : String(err)}`;
    throw new Error(`relay cannot invoke the knock function: ${hint}`);
  }
}

export class Relay {
  private readonly windows: SourceWindows;
  private inFlight = 0;
  readonly stats = { received: 0, forwarded: 0, dropped: 0, failed: 0 };
  /** Forwarded packets by source, logged as one line per second. */
  private readonly forwarded = new SecondSums((bySource, total) => {
    this.log.info(
      `forwarded ${total} SPA packet${total === 1 ? "" : "s"} to ${this.options.functionName} in the last second, by source: ${describeCounts(bySource)}`,
    );
  });
  /** Datagrams dropped because too many invocations were in flight, one line per second. */
  private readonly overloaded = new SecondSums((bySource, total) => {
    this.log.warning(
      `dropped ${total} datagram${total === 1 ? "" : "s"} in the last second: OVERLOAD (${this.options.maxInFlight} invocations in flight), by source: ${describeCounts(bySource)}`,
    );
  });

  constructor(
    private readonly lambda: LambdaClient,
    private readonly capture: Capture,
    private readonly options: RelayOptions,
    private readonly log: Log,
    private readonly nowMs: () => number = () => Date.now(),
  ) {
    this.windows = new SourceWindows(
      options.perSourceLimit,
      options.windowMs,
      options.maxTrackedSources,
    );
  }

  start(): Promise<void> {
    return this.capture.start((d) => this.onDatagram(d));
  }

  async stop(): Promise<void> {
    await this.capture.stop();
    this.forwarded.flush();
    this.overloaded.flush();
  }

  onDatagram(d: Datagram): void {
    this.stats.received++;
    let spa: string;
    try {
      spa = precheckDatagram(d.payload).data;
    } catch (err) {
      this.stats.dropped++;
      this.log.debug(
        `dropped datagram from ${d.sourceIp}: ${err instanceof SpaError ? err.code : String(err)}`,
      );
      return;
    }
    const count = this.windows.count(rateLimitKey(d.sourceIp), this.nowMs());
    if (this.windows.isOver(count)) {
      this.stats.dropped++;
      // Once per source and window, not once per datagram: a flood must not become a log flood.
      if (count === this.options.perSourceLimit + 1) {
        this.log.warning(`dropping datagrams from ${d.sourceIp}: RATE_LIMITED`);
      }
      return;
    }
    if (this.inFlight >= this.options.maxInFlight) {
      this.stats.dropped++;
      this.overloaded.add(d.sourceIp);
      return;
    }
    this.inFlight++;
    const payload = JSON.stringify({
      spa,
      sourceIp: d.sourceIp,
      sourcePort: d.sourcePort,
      receivedAt: d.receivedAt,
    });
    this.lambda
      .send(
        new InvokeCommand({
          FunctionName: this.options.functionName,
          InvocationType: "Event",
          Payload: payload,
        }),
      )
      .then(() => {
        this.stats.forwarded++;
        this.forwarded.add(d.sourceIp);
      })
      .catch((err) => {
        this.stats.failed++;
        this.log.error(`could not forward the packet from ${d.sourceIp}: ${String(err)}`);
      })
      .finally(() => {
        this.inFlight--;
      });
  }
}
