/**
 * The Expiry port on a host: one timer per open source+port. With nftables the kernel removes
 * the element itself and the timer only reports the close; with iptables the timer removes the
 * expired rules (and a sweep every few seconds backs it up). Either way the close is logged and
 * notified once the firewall has answered, never before, and a refresh by a later knock moves the
 * close instead of stacking a second one.
 */
import type { Expiry, Grant, Notifier, OpenedRule } from "../core/index.js";
import type { ManagedFirewall } from "./firewall/managed-firewall.js";
import { anyAddressLike, type Log } from "./log.js";

const portKey = (ip: string, p: { proto: string; port: number }) => `${ip} ${p.proto}/${p.port}`;

/** setTimeout's ceiling (2^31 - 1 ms, about 24.8 days): a longer delay would fire after 1 ms. */
const MAX_TIMER_MS = 2 ** 31 - 1;

export class TimerExpiry implements Expiry {
  /** For each open source+port, the grant that currently owns it and its timer. */
  private readonly open = new Map<string, { readonly grant: Grant; timer: NodeJS.Timeout }>();

  constructor(
    private readonly firewall: ManagedFirewall,
    private readonly log: Log,
    private readonly notifiers: readonly Notifier[],
    private readonly nowMs: () => number,
  ) {}

  get size(): number {
    return this.open.size;
  }

  /** The kernel counts an element's timeout from now, not from the whole second in expiresAt. */
  async scheduleClose(grant: Grant, _rules: readonly OpenedRule[]): Promise<null> {
    this.arm(grant, grant.timeoutSec * 1000);
    return null;
  }

  /** A grant found in the firewall after a restart: close it at its recorded expiry. */
  adopt(grant: Grant): void {
    this.arm(grant, Math.max(0, grant.expiresAt * 1000 - this.nowMs()));
  }

  stop(): void {
    for (const { timer } of this.open.values()) clearTimeout(timer);
    this.open.clear();
  }

  private arm(grant: Grant, delayMs: number): void {
    for (const p of grant.ports) {
      const key = portKey(grant.sourceIp, p);
      const previous = this.open.get(key);
      if (previous) clearTimeout(previous.timer);
      this.open.set(key, { grant, timer: this.timerFor(key, grant, delayMs) });
    }
  }

  /** A timer `delayMs` from now, re-armed in steps when that lies past setTimeout's range. */
  private timerFor(key: string, grant: Grant, delayMs: number): NodeJS.Timeout {
    if (delayMs <= MAX_TIMER_MS) return setTimeout(() => void this.expire(key, grant), delayMs);
    return setTimeout(() => {
      const entry = this.open.get(key);
      if (entry?.grant === grant) entry.timer = this.timerFor(key, grant, delayMs - MAX_TIMER_MS);
    }, MAX_TIMER_MS);
  }

  private async expire(key: string, grant: Grant): Promise<void> {
    if (this.open.get(key)?.grant !== grant) return; // refreshed by a later knock
    this.open.delete(key);
    const { firewall, log } = this;
    try {
      if (!firewall.kernelExpires) await firewall.removeExpired(Math.floor(this.nowMs() / 1000));
    } catch (err) {
      log.error(`could not remove expired rule ${key}: ${String(err)} (the next sweep retries)`);
      return;
    }
    const port = key.split(" ")[1];
    log.info(
      `removed ${firewall.label} ${grant.sourceIp} -> ${anyAddressLike(grant.sourceIp)}(${port}) ACCEPT rule ${grant.timeoutSec} sec timeout exceeded`,
    );
    const stillOpen = grant.ports.some(
      (p) => this.open.get(portKey(grant.sourceIp, p))?.grant === grant,
    );
    if (stillOpen || grant.stanza === 0) return; // adopted grants have no user to tell
    for (const n of this.notifiers) {
      n.closed(grant).catch((err) => {
        // A notification failure never blocks a close.
        log.warning(`notification (closed) for ${grant.sourceIp} failed: ${String(err)}`);
      });
    }
  }
}
