/**
 * spaknockd's run loop: datagrams in, the core knock pipeline, one log line each, grants opened
 * through the firewall backend, closes scheduled, notifications sent. Never answers a sender,
 * never throws on a packet.
 */
import {
  type AccessStanza,
  type Grant,
  type GrantOutcome,
  type GrantParts,
  grantAccess,
  type JosePrivateKey,
  type KnockRefusal,
  type Notifier,
  type ReplayCache,
  type SpaErrorCode,
  screenKnock,
} from "../core/index.js";
import type { Capture, Datagram } from "./capture/datagram.js";
import { TimerExpiry } from "./expiry-timers.js";
import type { GrantMatch, ManagedFirewall, OpenRule } from "./firewall/managed-firewall.js";
import { type Log, ruleText } from "./log.js";

export interface DaemonParts {
  stanzas: readonly AccessStanza[];
  maxPacketAge: number | null;
  /** SERVER_KEY_FILE's key; null: JOSE packets are refused. */
  serverKey: JosePrivateKey | null;
  readonly firewall: ManagedFirewall;
  readonly replay: ReplayCache | null;
  readonly capture: Capture;
  readonly notifiers: readonly Notifier[];
  readonly log: Log;
  readonly nowMs?: () => number;
  /** Backstop sweep for backends the kernel does not expire (iptables). */
  readonly sweepIntervalMs?: number;
  readonly flushAtExit: boolean;
  /** Told when a reload changes the packet aging window (the replay file prunes by it). */
  readonly onAgingChange?: (maxPacketAge: number | null) => void;
}

/** Packets that passed the precheck and wait for crypto or the firewall: bounded under flood. */
const MAX_IN_FLIGHT = 512;
/** Refusal lines logged per second before the rest are summarised. */
const REFUSAL_LOG_BUDGET = 50;

export class Spaknockd {
  private inFlight = 0;
  private readonly expiry: TimerExpiry;
  /** What the core pipeline drives; stanzas are read live, so a reload takes effect at once. */
  private readonly pipeline: GrantParts;
  private sweepTimer: NodeJS.Timeout | null = null;
  private summaryTimer: NodeJS.Timeout | null = null;
  private refusalsLogged = 0;
  private readonly suppressed = new Map<SpaErrorCode, number>();
  readonly stats = { received: 0, granted: 0, refused: 0, dropped: 0 };
  private readonly nowMs: () => number;

  constructor(private readonly parts: DaemonParts) {
    this.nowMs = parts.nowMs ?? (() => Date.now());
    const expiry = new TimerExpiry(parts.firewall, parts.log, parts.notifiers, this.nowMs);
    this.expiry = expiry;
    this.pipeline = {
      get stanzas() {
        return parts.stanzas;
      },
      get serverKey() {
        return parts.serverKey;
      },
      replay: parts.replay,
      firewall: parts.firewall,
      expiry,
      notifiers: parts.notifiers,
    };
  }

  private now(): number {
    return Math.floor(this.nowMs() / 1000);
  }

  async start(): Promise<void> {
    const { firewall, log } = this.parts;
    await firewall.setup();
    const removed = await firewall.removeExpired(this.now());
    for (const r of removed)
      log.info(
        `removed ${firewall.label} ${ruleText(r.sourceIp, r.port)}: expired while spaknockd was down`,
      );
    for (const r of await firewall.list()) this.adoptSurvivingRule(r);
    if (!firewall.kernelExpires) {
      this.sweepTimer = setInterval(() => void this.sweep(), this.parts.sweepIntervalMs ?? 5_000);
      this.sweepTimer.unref();
    }
    await this.parts.capture.start((d) => this.onDatagram(d));
  }

  /** A grant from before a restart: keep closing it on time, without its user (unknown now). */
  private adoptSurvivingRule(r: OpenRule): void {
    if (r.expiresAt === null) return;
    const grant: Grant = {
      sourceIp: r.sourceIp,
      ports: [r.port],
      username: "(before restart)",
      openedAt: this.now(),
      expiresAt: r.expiresAt,
      timeoutSec: Math.max(0, r.expiresAt - this.now()),
      stanza: 0,
      targets: [],
    };
    this.expiry.adopt(grant);
    this.parts.log.info(
      `kept ${this.parts.firewall.label} ${ruleText(r.sourceIp, r.port)}, ${grant.timeoutSec} sec left`,
    );
  }

  /**
   * Swaps in a new access configuration and keys (SIGHUP): a key deleted from an authorized set
   * opens nothing from the next packet on; packets in flight finish with the old configuration.
   */
  reload(next: Pick<DaemonParts, "stanzas" | "maxPacketAge" | "serverKey">): void {
    this.parts.stanzas = next.stanzas;
    this.parts.maxPacketAge = next.maxPacketAge;
    this.parts.serverKey = next.serverKey;
    this.parts.onAgingChange?.(next.maxPacketAge);
  }

  onDatagram(d: Datagram): void {
    this.stats.received++;
    if (this.inFlight >= MAX_IN_FLIGHT) {
      this.stats.dropped++;
      this.noteRefusal("OVERLOAD", null);
      return;
    }
    // Junk is refused here, synchronously, before a promise is made for it: under a flood this
    // is most of the work (core/knock.ts screenKnock: precheck, SOURCE, HMAC).
    const screening = screenKnock(d, this.parts);
    if (!screening.passed) {
      this.refused(d, screening.refusal);
      return;
    }
    this.inFlight++;
    grantAccess(d, this.pipeline, { maxPacketAge: this.parts.maxPacketAge }, screening)
      .then((outcome) => this.afterKnock(d, outcome))
      .catch((err) =>
        this.parts.log.error(`internal error on packet from ${d.sourceIp}: ${String(err)}`),
      )
      .finally(() => {
        this.inFlight--;
      });
  }

  private refused(d: Datagram, outcome: KnockRefusal): void {
    this.stats.refused++;
    this.noteRefusal(outcome.code, () => {
      const stanza = outcome.stanza ? ` (stanza #${outcome.stanza.index})` : "";
      const user = outcome.username ? `, remote user: ${outcome.username}` : "";
      return `refused SPA packet from ${d.sourceIp}:${d.sourcePort}${user}${stanza}: ${outcome.code} (${outcome.detail})`;
    });
  }

  private afterKnock(d: Datagram, outcome: GrantOutcome): void {
    const { log, firewall } = this.parts;
    if (!outcome.granted) {
      this.refused(d, outcome);
      return;
    }
    this.stats.granted++;
    const { grant, stanza, packet } = outcome;
    const key = packet.keyId ? `, key: ${packet.keyId}` : "";
    log.info(
      `received valid SPA packet from: ${d.sourceIp}, remote user: ${packet.username}${key}, ` +
        `client version: ${packet.version} (SOURCE line num: ${stanza.origin.line})`,
    );
    for (const p of grant.ports) {
      log.info(
        `add ${firewall.label} ${ruleText(grant.sourceIp, p)} ACCEPT rule ${grant.timeoutSec} sec`,
      );
    }
    void outcome.notified.then((failures) => {
      // A notification failure never blocks or undoes a grant.
      for (const f of failures)
        log.warning(`notification (opened) for ${grant.sourceIp} failed: ${f}`);
    });
  }

  /**
   * Logs a refusal while this second's budget lasts (the line is built only then), else sums it.
   * The second starts at its first refusal: an idle daemon has no timer to wake it.
   */
  private noteRefusal(code: SpaErrorCode, line: (() => string) | null): void {
    if (this.summaryTimer === null) {
      this.summaryTimer = setTimeout(() => {
        this.summaryTimer = null;
        this.flushRefusalSummary();
      }, 1_000);
      this.summaryTimer.unref();
    }
    if (line !== null && this.refusalsLogged < REFUSAL_LOG_BUDGET) {
      this.refusalsLogged++;
      this.parts.log.warning(line());
      return;
    }
    this.suppressed.set(code, (this.suppressed.get(code) ?? 0) + 1);
  }

  private flushRefusalSummary(): void {
    this.refusalsLogged = 0;
    if (this.suppressed.size === 0) return;
    const parts = [...this.suppressed].map(([code, n]) => `${code}: ${n}`).join(", ");
    this.parts.log.warning(`refused packets not logged one by one in the last second: ${parts}`);
    this.suppressed.clear();
  }

  /** `--fw-revoke` sent to the running daemon: closed, logged and notified like an expiry. */
  revoke(match: GrantMatch): Promise<OpenRule[]> {
    return this.expiry.revoke(match);
  }

  private async sweep(): Promise<void> {
    try {
      const removed = await this.parts.firewall.removeExpired(this.now());
      for (const r of this.expiry.closedElsewhere(removed))
        this.parts.log.info(
          `removed ${this.parts.firewall.label} ${ruleText(r.sourceIp, r.port)} (sweep)`,
        );
    } catch (err) {
      this.parts.log.error(`expiry sweep failed: ${String(err)}`);
    }
  }

  async stop(): Promise<void> {
    await this.parts.capture.stop();
    const open = this.expiry.size;
    this.expiry.stop();
    if (this.sweepTimer) clearInterval(this.sweepTimer);
    if (this.summaryTimer) clearTimeout(this.summaryTimer);
    this.summaryTimer = null;
    this.flushRefusalSummary();
    if (this.parts.flushAtExit) {
      await this.parts.firewall.removeAllGrants();
      if (open > 0) this.parts.log.info(`removed ${open} open grant(s) at exit`);
    }
    this.parts.firewall.shutdown?.();
  }
}
