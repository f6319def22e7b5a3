/**
 * The interfaces the knock pipeline drives. Adapters live at the edges: nftables, iptables, timers,
 * a digest file, email and exec hooks in agent/; EC2 security groups, Scheduler, DynamoDB and
 * SNS in lambda/.
 */
import type { ProtoPort } from "./access-message.js";

/** One opened door: who, from where, which ports, until when. */
export interface Grant {
  readonly sourceIp: string;
  readonly ports: readonly ProtoPort[];
  readonly username: string;
  /** Epoch seconds. */
  readonly openedAt: number;
  readonly expiresAt: number;
  readonly timeoutSec: number;
  /** 1-based index of the access stanza that granted it (0: a rule adopted after a restart). */
  readonly stanza: number;
  /** Where the stanza opens: its SECURITY_GROUPS in AWS; empty on a host (its own firewall). */
  readonly targets: readonly string[];
}

/** One rule that holds a grant, named as its firewall names it. */
export interface OpenedRule {
  /** The firewall's container of the rule: a security group, or the host table/chain. */
  readonly target: string;
  readonly ruleId: string;
}

export interface Firewall {
  /**
   * Opens, or refreshes the expiry of, every port of the grant; never stacks duplicates. Returns
   * the rules of spaknock's that now hold it (a rule someone else made that already lets the
   * address in is not among them: nothing of spaknock's is there to close).
   */
  open(grant: Grant): Promise<readonly OpenedRule[]>;
}

/** Closes a grant's rules at its expiry: nothing for nftables, timers for iptables, Scheduler in AWS. */
export interface Expiry {
  /** Returns what the log should name (a schedule), or null. */
  scheduleClose(grant: Grant, rules: readonly OpenedRule[]): Promise<string | null>;
}

export interface ReplayCache {
  /**
   * A cheap local look-up before any crypto. Left out by adapters whose look-up is paid (a
   * DynamoDB read): there the HMAC is checked first, and `claim` alone refuses a replay.
   */
  seen?(digest: string): Promise<boolean>;
  /**
   * Atomically records the digest. Returns false if it was already there: the caller lost a race
   * against another copy of the same packet and must not grant.
   */
  claim(digest: string, meta: ReplayMeta): Promise<boolean>;
}

export interface ReplayMeta {
  readonly sourceIp: string;
  readonly sourcePort: number;
  /** When the packet was received (epoch seconds), the time its age was checked against. */
  readonly seenAt: number;
  /** The packet's own timestamp (epoch seconds), which may be ahead of seenAt by the age window. */
  readonly packetTime: number;
}

export interface Notifier {
  opened(grant: Grant, rules: readonly OpenedRule[]): Promise<void>;
  closed(grant: Grant): Promise<void>;
}
