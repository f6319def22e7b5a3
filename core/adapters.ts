/**
 * The interfaces the knock pipeline drives. Adapters live at the edges: nftables, iptables and
 * a digest file in agent/; EC2 security groups, Scheduler and DynamoDB in lambda/.
 */
import type { ProtoPort } from "./message.js";

/** One opened door: who, from where, which ports, until when. */
export interface Grant {
  readonly sourceIp: string;
  readonly ports: readonly ProtoPort[];
  readonly username: string;
  /** Epoch seconds. */
  readonly openedAt: number;
  readonly expiresAt: number;
  readonly timeoutSec: number;
  /** 1-based index of the access stanza that granted it. */
  readonly stanza: number;
}

export interface Firewall {
  /** Opens, or refreshes the expiry of, every port of the grant. Never stacks duplicates. */
  open(grant: Grant): Promise<void>;
  /** Removes the grant's rules if they are still there (idempotent). */
  close(grant: Grant): Promise<void>;
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
  opened(grant: Grant): Promise<void>;
  closed(grant: Grant): Promise<void>;
}
