/** What the daemon needs from a firewall backend beyond core's Firewall port. */
import {
  type Firewall,
  type Grant,
  type IpAddress,
  type OpenedRule,
  type ProtoPort,
  parseIpAddress,
} from "../../core/index.js";

/** A rule a host firewall currently holds, as `list` reports it. */
export interface OpenRule {
  readonly sourceIp: string;
  readonly port: ProtoPort;
  /** Epoch seconds; null when the backend cannot tell. */
  readonly expiresAt: number | null;
}

/** Which of spaknock's grants a revoke names: one address, and one port of it or all of them. */
export interface GrantMatch {
  /** Canonical text (core's canonicalIp), as `list` reports addresses. */
  readonly sourceIp: string;
  /** null: every port of the address. */
  readonly port: ProtoPort | null;
}

export function matchesGrant(rule: OpenRule, match: GrantMatch): boolean {
  if (rule.sourceIp !== match.sourceIp) return false;
  return (
    match.port === null ||
    (rule.port.proto === match.port.proto && rule.port.port === match.port.port)
  );
}

export interface ManagedFirewall extends Firewall {
  /** Which backend this is, for `--json` output. */
  readonly backend: "nftables" | "iptables" | "none";
  /** e.g. "inet spaknock" or "SPAKNOCK_INPUT", for log lines. */
  readonly label: string;
  /** True when the kernel removes expired grants by itself (nftables set timeouts). */
  readonly kernelExpires: boolean;
  /** What is open now, with expiries (`--fw-list`, and adopting grants after a restart). */
  list(): Promise<OpenRule[]>;
  setup(): Promise<void>;
  /** Removes grants whose expiry has passed; returns what it removed. */
  removeExpired(nowSec: number): Promise<OpenRule[]>;
  /**
   * Removes spaknock's own grants that match (elements of its sets, `_exp_` rules of its chain;
   * nothing else, so an admin's rule for the same address stays); returns what it removed.
   */
  revoke(match: GrantMatch): Promise<OpenRule[]>;
  removeAllGrants(): Promise<void>;
  removeAll(): Promise<void>;
  /** Releases helper processes (the interactive nft session). */
  shutdown?(): void;
}

/** A grant's address, parsed; anything else is a bug upstream, not a knock. */
export function grantAddress(sourceIp: string): IpAddress {
  const ip = parseIpAddress(sourceIp);
  if (ip === null) throw new TypeError(`grant source "${sourceIp}" is not an IP address`);
  return ip;
}

/** A host grant is one rule per port, named by address and port in the backend's table/chain. */
export function hostRulesOf(label: string, grant: Grant): OpenedRule[] {
  return grant.ports.map((p) => ({
    target: label,
    ruleId: `${grant.sourceIp} ${p.proto}/${p.port}`,
  }));
}

/** `fwknopd -t`: decide and log, change nothing. */
export class DryRunFirewall implements ManagedFirewall {
  readonly backend = "none";
  readonly label = "test-mode (no firewall change)";
  readonly kernelExpires = true;
  async setup(): Promise<void> {}
  async open(grant: Grant): Promise<readonly OpenedRule[]> {
    return hostRulesOf(this.label, grant);
  }
  async list(): Promise<OpenRule[]> {
    return [];
  }
  async removeExpired(): Promise<OpenRule[]> {
    return [];
  }
  async revoke(): Promise<OpenRule[]> {
    return [];
  }
  async removeAllGrants(): Promise<void> {}
  async removeAll(): Promise<void> {}
}
