/**
 * The nftables backend. spaknock owns one table (`inet spaknock` by default):
 *
 *   - `allow_tcp` / `allow_udp`: sets of `ipv4_addr . inet_service` with per-element timeouts, so
 *     the kernel itself ends a grant on time even if the daemon is dead; `allow6_tcp` /
 *     `allow6_udp` the same for `ipv6_addr` (an nft set holds one address family);
 *   - `guard_tcp` / `guard_udp`: the ports spaknock keeps closed;
 *   - an input chain: established/related accept (open sessions outlive their grant), granted
 *     source+port accept, guarded port drop. The guard matches the port alone, so it closes the
 *     port to both families.
 *
 * An accept here cannot overrule a drop in another table, so the table guards its ports itself and
 * needs no other rule. Every change is one `nft -f -` transaction.
 */
import {
  canonicalIp,
  type Grant,
  type OpenedRule,
  type ProtoPort,
  SPA_SHAPE,
} from "../../core/index.js";
import type { CommandRunner } from "./command-runner.js";
import {
  type GrantMatch,
  grantAddress,
  hostRulesOf,
  type ManagedFirewall,
  matchesGrant,
  type OpenRule,
} from "./managed-firewall.js";
import { NftSession } from "./nft-session.js";

export interface NftablesOptions {
  readonly table: string;
  readonly guardPorts: readonly ProtoPort[];
  readonly nftPath?: string;
  readonly spaGuard?: SpaPortGuard | null;
  /** Apply grants through a long-lived `nft -i` (fast path); default true. */
  readonly interactive?: boolean;
}

type Proto = "tcp" | "udp";
type Family = 4 | 6;

const guardSet = (proto: Proto) => `guard_${proto}`;
/** IPv4 keeps the set names of the first release, so a table made by it is adopted as it is. */
const allowSet = (family: Family, proto: Proto) =>
  family === 4 ? `allow_${proto}` : `allow6_${proto}`;
const ALLOW_SETS = ([4, 6] as const).flatMap((f) =>
  (["tcp", "udp"] as const).map((proto) => ({ family: f, proto, name: allowSet(f, proto) })),
);

/** Declares the grant sets; `add set` leaves an existing set and its elements as they are. */
function allowSetLines(t: string): string[] {
  return ALLOW_SETS.map(
    (s) =>
      `add set ${t} ${s.name} { type ${s.family === 4 ? "ipv4" : "ipv6"}_addr . inet_service; flags timeout; }`,
  );
}

/** Kernel-side protection of the SPA port itself, before any packet reaches the daemon. */
export interface SpaPortGuard {
  readonly port: number;
  /** Datagrams per second one source address may send to the SPA port; 0: no limit. */
  readonly perSourcePerSecond: number;
  /** Drop datagrams whose shape no SPA packet of either profile has (core's SPA_SHAPE). */
  readonly shapeFilter?: boolean;
}

/** The named counter of datagrams the shape filter dropped (`nft list counter`). */
export const SHAPE_DROP_COUNTER = "spa_shape_drops";

const hex = (bytes: readonly number[]) =>
  `0x${bytes.map((b) => b.toString(16).padStart(2, "0")).join("")}`;

/**
 * The `spa_shape` chain: a datagram returns from it only when its shape could be an SPA packet
 * (core/precheck.ts SPA_SHAPE); anything else is counted and dropped. `@th,64,N` is the UDP
 * payload's first N bits (after the 8-byte header); `udp length` counts that header too.
 */
function shapeChainLines(t: string): string[] {
  const lengths = SPA_SHAPE.fwknopLengths.map((n) => n + 8).join(", ");
  const firstBytes = SPA_SHAPE.fwknopFirstBytes.map((b) => hex([b])).join(", ");
  return [
    `add counter ${t} ${SHAPE_DROP_COUNTER}`,
    `add chain ${t} spa_shape`,
    `flush chain ${t} spa_shape`,
    `add rule ${t} spa_shape @th,64,24 ${hex(SPA_SHAPE.joseStart)} return`,
    `add rule ${t} spa_shape udp length { ${lengths} } @th,64,8 { ${firstBytes} } return`,
    `add rule ${t} spa_shape counter name ${SHAPE_DROP_COUNTER} drop`,
  ];
}

/** The whole table, idempotent: re-running it replaces the chain's rules and the guard sets. */
export function nftSetupScript(
  table: string,
  guardPorts: readonly ProtoPort[],
  spaGuard: SpaPortGuard | null = null,
): string {
  const t = `inet ${table}`;
  const shapeFilter = spaGuard !== null && spaGuard.shapeFilter !== false;
  const lines = [
    `add table ${t}`,
    ...allowSetLines(t),
    `add set ${t} guard_tcp { type inet_service; }`,
    `add set ${t} guard_udp { type inet_service; }`,
    `add chain ${t} input { type filter hook input priority -10; policy accept; }`,
    // Declared before the input chain's rules jump to it.
    ...(shapeFilter ? shapeChainLines(t) : []),
    `flush chain ${t} input`,
    `flush set ${t} guard_tcp`,
    `flush set ${t} guard_udp`,
  ];
  if (spaGuard) {
    // First in the chain, before the established accept: a flood from one source port is
    // "established" to conntrack after its first datagram.
    const dport = `udp dport ${spaGuard.port}`;
    // 8-byte UDP header + 140..1500 bytes of SPA data: anything else is junk by size alone.
    lines.push(`add rule ${t} input ${dport} udp length != 148-1508 drop`);
    // Then by shape: junk that is not even shaped like a packet never wakes the daemon.
    if (shapeFilter) lines.push(`add rule ${t} input ${dport} jump spa_shape`);
    if (spaGuard.perSourcePerSecond > 0) {
      const rate = spaGuard.perSourcePerSecond;
      const limit = `limit rate over ${rate}/second burst ${2 * rate} packets`;
      // An IPv6 sender usually holds a whole /64: counting per address would let one sender
      // rotate through 2^64 of them, so IPv6 is counted per /64.
      lines.push(
        `add set ${t} spa_rate { type ipv4_addr; flags dynamic,timeout; timeout 10s; size 65536; }`,
        `add rule ${t} input ${dport} update @spa_rate { ip saddr ${limit} } drop`,
        `add set ${t} spa_rate6 { type ipv6_addr; flags dynamic,timeout; timeout 10s; size 65536; }`,
        `add rule ${t} input ${dport} update @spa_rate6 { ip6 saddr and ffff:ffff:ffff:ffff:: ${limit} } drop`,
      );
    }
  }
  for (const proto of ["tcp", "udp"] as const) {
    const ports = [...new Set(guardPorts.filter((p) => p.proto === proto).map((p) => p.port))];
    if (ports.length > 0) lines.push(`add element ${t} ${guardSet(proto)} { ${ports.join(", ")} }`);
  }
  lines.push(
    `add rule ${t} input ct state established,related accept`,
    ...ALLOW_SETS.map(
      (set) =>
        `add rule ${t} input ${set.family === 4 ? "ip" : "ip6"} saddr . ${set.proto} dport @${set.name} accept`,
    ),
    `add rule ${t} input tcp dport @guard_tcp drop`,
    `add rule ${t} input udp dport @guard_udp drop`,
  );
  return `${lines.join("\n")}\n`;
}

/** One script line per `(set, element)` of a grant, e.g. `inet spaknock allow_tcp`, `1.2.3.4 . 22`. */
function grantScript(
  table: string,
  grant: Grant,
  linesFor: (target: string, element: string) => string[],
): string {
  const family = grantAddress(grant.sourceIp).family;
  const lines = grant.ports.flatMap((p) =>
    linesFor(`inet ${table} ${allowSet(family, p.proto)}`, `${grant.sourceIp} . ${p.port}`),
  );
  return `${lines.join("\n")}\n`;
}

/**
 * Opens or refreshes every port of a grant in one transaction. `add` alone would leave an
 * existing element's old timeout in place, so each element is added (a no-op if present),
 * deleted and added again with the new timeout: atomic, so the door never blinks shut.
 */
export function nftGrantScript(table: string, grant: Grant): string {
  return grantScript(table, grant, (target, element) => [
    `add element ${target} { ${element} timeout ${grant.timeoutSec}s }`,
    `delete element ${target} { ${element} }`,
    `add element ${target} { ${element} timeout ${grant.timeoutSec}s }`,
  ]);
}

/**
 * Removes listed grants' elements. Each is added first (a no-op when it is there), so the delete
 * cannot fail the transaction on an element the kernel expired since it was listed.
 */
export function nftRevokeScript(table: string, rules: readonly OpenRule[]): string {
  const lines = rules.flatMap((r) => {
    const target = `inet ${table} ${allowSet(grantAddress(r.sourceIp).family, r.port.proto)}`;
    const element = `${r.sourceIp} . ${r.port.port}`;
    return [
      `add element ${target} { ${element} timeout 1s }`,
      `delete element ${target} { ${element} }`,
    ];
  });
  return `${lines.join("\n")}\n`;
}

interface NftJsonSet {
  set?: {
    name?: string;
    elem?: { elem?: { val?: { concat?: [string, number] }; expires?: number } }[];
  };
}

/** Parses `nft -j list table inet <table>` into open rules. */
export function parseNftTableJson(json: string, nowSec: number): OpenRule[] {
  const doc = JSON.parse(json) as { nftables?: NftJsonSet[] };
  const out: OpenRule[] = [];
  for (const item of doc.nftables ?? []) {
    const allow = ALLOW_SETS.find((s) => s.name === item.set?.name);
    if (!allow) continue;
    for (const e of item.set?.elem ?? []) {
      const concat = e.elem?.val?.concat;
      if (!concat) continue;
      out.push({
        // nft's IPv6 text is not promised to be RFC 5952: compare grants in one spelling.
        sourceIp: canonicalIp(concat[0]) ?? concat[0],
        port: { proto: allow.proto, port: concat[1] },
        expiresAt: e.elem?.expires === undefined ? null : nowSec + e.elem.expires,
      });
    }
  }
  return out;
}

export class NftablesFirewall implements ManagedFirewall {
  readonly backend = "nftables";
  readonly kernelExpires = true;
  readonly label: string;
  private readonly nft: string;
  private readonly session: NftSession | null;

  constructor(
    private readonly runner: CommandRunner,
    private readonly options: NftablesOptions,
    private readonly nowSec: () => number = () => Math.floor(Date.now() / 1000),
  ) {
    this.nft = options.nftPath ?? "nft";
    this.label = `inet ${options.table}`;
    this.session = options.interactive === false ? null : new NftSession(this.nft);
  }

  /** One transaction: through the session when it works, else a fresh `nft -f -`. */
  private async apply(script: string): Promise<void> {
    if (this.session) {
      try {
        return await this.session.apply(script);
      } catch {
        // A broken session must not cost a grant: retry the same transaction the slow way.
      }
    }
    await this.runner.run([this.nft, "-f", "-"], script);
  }

  /** The kernel already dropped them; nothing to do. */
  async removeExpired(): Promise<OpenRule[]> {
    return [];
  }

  /** Creates or updates the table; existing grants survive (the sets are never re-created). */
  async setup(): Promise<void> {
    await this.runner.run(
      [this.nft, "-f", "-"],
      nftSetupScript(this.options.table, this.options.guardPorts, this.options.spaGuard ?? null),
    );
    this.session?.warm();
  }

  async open(grant: Grant): Promise<readonly OpenedRule[]> {
    await this.apply(nftGrantScript(this.options.table, grant));
    return hostRulesOf(this.label, grant);
  }

  async list(): Promise<OpenRule[]> {
    const t = this.options.table;
    try {
      const { stdout } = await this.runner.run([this.nft, "-j", "list", "table", "inet", t]);
      return parseNftTableJson(stdout, this.nowSec());
    } catch {
      return []; // no table: nothing open
    }
  }

  async revoke(match: GrantMatch): Promise<OpenRule[]> {
    const matching = (await this.list()).filter((r) => matchesGrant(r, match));
    if (matching.length > 0) await this.apply(nftRevokeScript(this.options.table, matching));
    return matching;
  }

  /**
   * Removes every grant, keeping the guard: ports stay closed. The sets are declared first so a
   * table from before IPv6 (no `allow6_*` yet) is flushed too instead of failing the transaction.
   */
  async removeAllGrants(): Promise<void> {
    const t = `inet ${this.options.table}`;
    const lines = [...allowSetLines(t), ...ALLOW_SETS.map((s) => `flush set ${t} ${s.name}`)];
    await this.runner.run([this.nft, "-f", "-"], `${lines.join("\n")}\n`);
  }

  /** Ends the interactive nft session. */
  shutdown(): void {
    this.session?.close();
  }

  /** Removes everything spaknock added, guard included (`--fw-flush`). */
  async removeAll(): Promise<void> {
    const t = `inet ${this.options.table}`;
    await this.runner.run([this.nft, "-f", "-"], `add table ${t}\ndelete table ${t}\n`);
  }
}
