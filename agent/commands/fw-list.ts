/** `spaknockd --fw-list [--json]`: what spaknock's table/chain holds now, both address families. */
import type { ManagedFirewall, OpenRule } from "../firewall/managed-firewall.js";

/** One grant in `--json` output (also `--fw-revoke --json`). */
export interface GrantJson {
  readonly sourceIp: string;
  readonly proto: "tcp" | "udp";
  readonly port: number;
  /** Epoch seconds; null when the backend cannot tell. */
  readonly expiresAt: number | null;
  readonly secondsLeft: number | null;
}

/** Seconds until the rule's expiry, never negative (iptables before the sweep); null: unknown. */
export function secondsLeft(rule: OpenRule, nowSec: number): number | null {
  return rule.expiresAt === null ? null : Math.max(0, rule.expiresAt - nowSec);
}

export function grantJson(rule: OpenRule, nowSec: number): GrantJson {
  return {
    sourceIp: rule.sourceIp,
    proto: rule.port.proto,
    port: rule.port.port,
    expiresAt: rule.expiresAt,
    secondsLeft: secondsLeft(rule, nowSec),
  };
}

export interface FwListJson {
  readonly backend: ManagedFirewall["backend"];
  /** The table or chain: "inet spaknock", "SPAKNOCK_INPUT". */
  readonly target: string;
  readonly grants: readonly GrantJson[];
}

export function fwListJson(
  firewall: Pick<ManagedFirewall, "backend" | "label">,
  rules: readonly OpenRule[],
  nowSec: number,
): FwListJson {
  return {
    backend: firewall.backend,
    target: firewall.label,
    grants: rules.map((r) => grantJson(r, nowSec)),
  };
}

/** The human listing, unchanged since the first release: scripts should read `--json`. */
export function fwListText(label: string, rules: readonly OpenRule[], nowSec: number): string {
  const lines = [`${label}: ${rules.length} open`];
  for (const r of rules) {
    const left = r.expiresAt === null ? "?" : `${secondsLeft(r, nowSec)} s left`;
    lines.push(`  ${r.sourceIp} -> ${r.port.proto}/${r.port.port}  ${left}`);
  }
  return `${lines.join("\n")}\n`;
}

export async function runFwList(
  firewall: ManagedFirewall,
  json: boolean,
  nowSec: () => number,
): Promise<void> {
  const rules = await firewall.list();
  const now = nowSec();
  process.stdout.write(
    json
      ? `${JSON.stringify(fwListJson(firewall, rules, now))}\n`
      : fwListText(firewall.label, rules, now),
  );
}
