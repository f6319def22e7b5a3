/**
 * The Expiry port on a host: one timer per open source+port. With nftables the kernel removes
 * the element itself and the timer only reports the close; with iptables the timer removes the
 * expired rules (and a sweep every few seconds backs it up). Either way a close is logged and
 * notified from the firewall's answer, never from the timer alone: the rule was removed by this
 * process, or the firewall no longer lists it. A refresh by a later knock moves the close instead
 * of stacking a second one, and a grant closed early (`--fw-revoke`, through the daemon's control
 * socket) is closed here too, so its timer has nothing left to report.
 */
import type { Expiry, Grant, Notifier, OpenedRule, ProtoPort } from "../core/index.js";
import type { GrantMatch, ManagedFirewall, OpenRule } from "./firewall/managed-firewall.js";
import { type Log, ruleText } from "./log.js";

const portKey = (ip: string, p: ProtoPort) => `${ip} ${p.proto}/${p.port}`;

/** setTimeout's ceiling (2^31 - 1 ms, about 24.8 days): a longer delay would fire after 1 ms. */
const MAX_TIMER_MS = 2 ** 31 - 1;
/** When the firewall still holds a rule at its timer (clock skew, a failed command): look again. */
const RECHECK_MS = 1_000;

/**
 * The close line, one format for every way a grant ends: `removed <table/chain> <ip> ->
 * <any>(<proto>/<port>) ACCEPT rule <timeout> sec <why>`. The timeout is left out when it is not
 * known (a rule no timer of this process tracks).
 */
export function closeLine(
  label: string,
  sourceIp: string,
  port: ProtoPort,
  timeoutSec: number | null,
  why: string,
): string {
  const sec = timeoutSec === null ? "" : `${timeoutSec} sec `;
  return `removed ${label} ${ruleText(sourceIp, port)} ACCEPT rule ${sec}${why}`;
}

export const EXPIRED = "timeout exceeded";
export const REVOKED = "revoked by hand";

export class TimerExpiry implements Expiry {
  /** For each open source+port, the grant that currently owns it and its timer. */
  private readonly open = new Map<
    string,
    { readonly grant: Grant; readonly port: ProtoPort; timer: NodeJS.Timeout }
  >();
  /** One `list` shared by the timers that fire together (nftables: one `nft` run, not one each). */
  private listing: Promise<OpenRule[]> | null = null;

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

  /**
   * Closes spaknock's grants that match, now (`--fw-revoke`). Each removed rule is logged once,
   * as "revoked by hand", and its timer is cancelled, so its expiry later logs nothing.
   */
  async revoke(match: GrantMatch): Promise<OpenRule[]> {
    const removed = await this.firewall.revoke(match);
    for (const r of removed) this.closed(r, REVOKED, { logUntracked: true });
    return removed;
  }

  /**
   * Rules the firewall removed outside the timers (the iptables sweep): the ones a timer tracks
   * are closes of their grants, logged and notified as such. Returns the others.
   */
  closedElsewhere(removed: readonly OpenRule[]): OpenRule[] {
    return removed.filter((r) => !this.closed(r, EXPIRED, { logUntracked: false }));
  }

  private owns(key: string, grant: Grant): boolean {
    return this.open.get(key)?.grant === grant;
  }

  private arm(grant: Grant, delayMs: number): void {
    for (const p of grant.ports) {
      const key = portKey(grant.sourceIp, p);
      const previous = this.open.get(key);
      if (previous) clearTimeout(previous.timer);
      this.open.set(key, { grant, port: p, timer: this.timerFor(key, grant, delayMs) });
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

  private rearm(key: string, grant: Grant, delayMs: number): void {
    const entry = this.open.get(key);
    if (entry?.grant === grant) entry.timer = this.timerFor(key, grant, delayMs);
  }

  private list(): Promise<OpenRule[]> {
    if (this.listing) return this.listing;
    const listing = this.firewall.list().finally(() => {
      this.listing = null;
    });
    this.listing = listing;
    return listing;
  }

  private async expire(key: string, grant: Grant): Promise<void> {
    if (!this.owns(key, grant)) return; // refreshed by a later knock, or revoked
    const { firewall, log } = this;
    try {
      if (!firewall.kernelExpires) {
        const removed = await firewall.removeExpired(Math.floor(this.nowMs() / 1000));
        // Everything it removed is closed, also other grants' rules that expired in the same second.
        for (const r of removed) this.closed(r, EXPIRED, { logUntracked: true });
        if (!this.owns(key, grant)) return; // closed just now, or by a revoke meanwhile
      }
      const held = (await this.list()).find((r) => portKey(r.sourceIp, r.port) === key);
      if (!this.owns(key, grant)) return;
      if (held) {
        // Not closed yet: say nothing, look again when the firewall says it ends.
        const leftMs = held.expiresAt === null ? 0 : held.expiresAt * 1000 - this.nowMs();
        this.rearm(key, grant, Math.max(RECHECK_MS, leftMs));
        return;
      }
    } catch (err) {
      log.error(`could not remove expired rule ${key}: ${String(err)} (retrying)`);
      this.rearm(key, grant, RECHECK_MS);
      return;
    }
    // The firewall no longer lists it: the kernel's timeout ended it (nftables), or someone else
    // removed it (iptables: then it is no removal of ours to claim).
    const port = this.open.get(key)?.port;
    if (firewall.kernelExpires && port) {
      this.closed({ sourceIp: grant.sourceIp, port, expiresAt: null }, EXPIRED, {
        logUntracked: false,
      });
    } else {
      log.warning(
        `${key} was already gone from ${firewall.label} at its expiry (removed outside spaknockd)`,
      );
      this.forget(key, grant);
    }
  }

  /**
   * One rule of spaknock's is gone (the firewall said so): log it, stop its timer and, when it
   * was its grant's last open port, tell the notifiers. Returns false if no timer tracked it.
   */
  private closed(rule: OpenRule, why: string, opts: { logUntracked: boolean }): boolean {
    const key = portKey(rule.sourceIp, rule.port);
    const entry = this.open.get(key);
    if (!entry) {
      if (opts.logUntracked)
        this.log.info(closeLine(this.firewall.label, rule.sourceIp, rule.port, null, why));
      return false;
    }
    const { grant } = entry;
    this.log.info(closeLine(this.firewall.label, grant.sourceIp, rule.port, grant.timeoutSec, why));
    this.forget(key, grant);
    return true;
  }

  /** Stops tracking one port; the grant's closed notification goes out with its last port. */
  private forget(key: string, grant: Grant): void {
    const entry = this.open.get(key);
    if (entry?.grant !== grant) return;
    clearTimeout(entry.timer);
    this.open.delete(key);
    const stillOpen = grant.ports.some((p) => this.owns(portKey(grant.sourceIp, p), grant));
    if (stillOpen || grant.stanza === 0) return; // adopted grants have no user to tell
    for (const n of this.notifiers) {
      n.closed(grant).catch((err) => {
        // A notification failure never blocks a close.
        this.log.warning(`notification (closed) for ${grant.sourceIp} failed: ${String(err)}`);
      });
    }
  }
}
