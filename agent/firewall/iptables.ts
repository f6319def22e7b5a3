/**
 * The iptables backend, as fwknopd does it: an own chain jumped to first from INPUT, one ACCEPT
 * rule per granted source+port with its expiry written on the rule (`_exp_<epoch>` comment), so a
 * restarted daemon can still find and remove what a crashed one left. The admin's own rules drop
 * the port. Grants are changed with `iptables-restore --noflush`: one atomic batch per grant.
 *
 * IPv6 grants go the same way through `ip6tables` and `ip6tables-restore`, into a chain of the same
 * name. A host without a working ip6tables still grants IPv4; only IPv6 grants fail.
 */
import {
  canonicalIp,
  type Grant,
  type OpenedRule,
  type ProtoPort,
  parseIpAddress,
  SpaError,
} from "../../core/index.js";
import { CommandFailed, type CommandRunner } from "./command-runner.js";
import {
  type GrantMatch,
  grantAddress,
  hostRulesOf,
  type ManagedFirewall,
  matchesGrant,
  type OpenRule,
} from "./managed-firewall.js";

export interface IptablesOptions {
  readonly chain: string;
  readonly iptablesPath?: string;
  readonly restorePath?: string;
  readonly ip6tablesPath?: string;
  readonly ip6RestorePath?: string;
}

type Family = 4 | 6;

export interface IptablesRule extends OpenRule {
  /** Which binary holds the rule: iptables (4) or ip6tables (6). */
  readonly family: Family;
  /** The rule as `iptables -S` prints it, minus `-A <chain> `: also what `-D` takes. */
  readonly spec: string;
}

const ESTABLISHED = ["-m", "conntrack", "--ctstate", "RELATED,ESTABLISHED", "-j", "ACCEPT"];

/** The rule for one port of a grant, in `iptables -S` form so a listed rule compares equal. */
export function iptablesRuleSpec(sourceIp: string, port: ProtoPort, expiresAt: number): string[] {
  const ip = grantAddress(sourceIp);
  return [
    "-s",
    `${ip.text}/${ip.family === 4 ? 32 : 128}`,
    "-p",
    port.proto,
    "-m",
    port.proto,
    "--dport",
    String(port.port),
    "-m",
    "comment",
    "--comment",
    `_exp_${expiresAt}`,
    "-j",
    "ACCEPT",
  ];
}

const RULE_LINE =
  /^-A (\S+) (-s (\d+\.\d+\.\d+\.\d+\/32|[0-9a-f:.]+\/128) -p (tcp|udp) -m (?:tcp|udp) --dport (\d+) -m comment --comment "?_exp_(\d+)"? -j ACCEPT)$/;

/**
 * Parses `iptables -S <chain>` (or `ip6tables -S <chain>`) output into spaknock's grant rules;
 * other lines, and host rules (`/32` in IPv4, `/128` in IPv6) of the other family, are skipped.
 */
export function parseIptablesRules(
  output: string,
  chain: string,
  family: Family = 4,
): IptablesRule[] {
  const rules: IptablesRule[] = [];
  for (const line of output.split("\n")) {
    const m = RULE_LINE.exec(line.trim());
    if (!m || m[1] !== chain) continue;
    const [address = "", bits] = (m[3] as string).split("/");
    const ip = parseIpAddress(address);
    // ip6tables prints some addresses in forms RFC 5952 does not use (`::1.2.3.4`): one spelling.
    if (ip === null || ip.family !== family || (bits === "32") !== (family === 4)) continue;
    rules.push({
      family,
      spec: m[2] as string,
      sourceIp: canonicalIp(address) ?? address,
      port: { proto: m[4] as "tcp" | "udp", port: Number(m[5]) },
      expiresAt: Number(m[6]),
    });
  }
  return rules;
}

/** One atomic `iptables-restore --noflush` batch: append the new rules, delete the old ones. */
export function iptablesBatch(
  chain: string,
  add: readonly string[][],
  remove: readonly string[],
): string {
  const lines = ["*filter"];
  for (const spec of add) lines.push(`-A ${chain} ${spec.join(" ")}`);
  for (const spec of remove) lines.push(`-D ${chain} ${spec}`);
  lines.push("COMMIT", "");
  return lines.join("\n");
}

/** The two binaries that manage one address family. */
interface FamilyTools {
  readonly family: Family;
  readonly ipt: string;
  readonly restore: string;
}

export class IptablesFirewall implements ManagedFirewall {
  readonly backend = "iptables";
  readonly kernelExpires = false;
  get label(): string {
    return this.options.chain;
  }
  private readonly families: Readonly<Record<Family, FamilyTools>>;
  /** Both families, IPv4 first: the order of listings, removals and --fw-flush. */
  private readonly bothFamilies: readonly FamilyTools[];
  /** Why ip6tables cannot hold grants on this host, once setup() has found out; null: it can. */
  private ipv6Unusable: string | null = null;
  /** Changes are list-then-restore: run them one at a time so two cannot race on one rule. */
  private queue: Promise<unknown> = Promise.resolve();

  constructor(
    private readonly runner: CommandRunner,
    private readonly options: IptablesOptions,
  ) {
    this.families = {
      4: {
        family: 4,
        ipt: options.iptablesPath ?? "iptables",
        restore: options.restorePath ?? "iptables-restore",
      },
      6: {
        family: 6,
        ipt: options.ip6tablesPath ?? "ip6tables",
        restore: options.ip6RestorePath ?? "ip6tables-restore",
      },
    };
    this.bothFamilies = [this.families[4], this.families[6]];
  }

  private async check(tools: FamilyTools, args: string[]): Promise<boolean> {
    try {
      await this.runner.run([tools.ipt, "-w", ...args]);
      return true;
    } catch (err) {
      if (err instanceof CommandFailed) return false;
      throw err;
    }
  }

  /**
   * Creates the chain, its jump from INPUT (first) and its established/related accept, for IPv4
   * and then IPv6. IPv4 must work; an ip6tables that is missing or refuses (a kernel without IPv6)
   * only disables IPv6 grants, each of which then fails with the reason.
   */
  async setup(): Promise<void> {
    await this.setupFamily(this.families[4]);
    try {
      await this.setupFamily(this.families[6]);
      this.ipv6Unusable = null;
    } catch (err) {
      if (!(err instanceof CommandFailed)) throw err;
      this.ipv6Unusable = err.message;
    }
  }

  private async setupFamily(tools: FamilyTools): Promise<void> {
    const chain = this.options.chain;
    if (!(await this.check(tools, ["-S", chain])))
      await this.runner.run([tools.ipt, "-w", "-N", chain]);
    if (!(await this.check(tools, ["-C", "INPUT", "-j", chain]))) {
      await this.runner.run([tools.ipt, "-w", "-I", "INPUT", "1", "-j", chain]);
    }
    if (!(await this.check(tools, ["-C", chain, ...ESTABLISHED]))) {
      await this.runner.run([tools.ipt, "-w", "-I", chain, "1", ...ESTABLISHED]);
    }
  }

  private async listFamily(tools: FamilyTools): Promise<IptablesRule[]> {
    try {
      const { stdout } = await this.runner.run([tools.ipt, "-w", "-S", this.options.chain]);
      return parseIptablesRules(stdout, this.options.chain, tools.family);
    } catch (err) {
      if (err instanceof CommandFailed) return []; // no chain (or no ip6tables): nothing open
      throw err;
    }
  }

  /** Both families' grant rules, IPv4 first. */
  async listRules(): Promise<IptablesRule[]> {
    const perFamily = await Promise.all(this.bothFamilies.map((tools) => this.listFamily(tools)));
    return perFamily.flat();
  }

  list(): Promise<OpenRule[]> {
    return this.listRules();
  }

  private serial<T>(work: () => Promise<T>): Promise<T> {
    const next = this.queue.then(work, work);
    this.queue = next.catch(() => {});
    return next;
  }

  /** Adds the grant's rules and, in the same batch, removes older rules for the same source+port. */
  async open(grant: Grant): Promise<readonly OpenedRule[]> {
    const ip = grantAddress(grant.sourceIp);
    if (ip.family === 6 && this.ipv6Unusable !== null) {
      throw new SpaError(
        "FIREWALL_FAILED",
        `ip6tables cannot hold IPv6 grants on this host: ${this.ipv6Unusable}`,
      );
    }
    await this.serial(() => this.openNow(this.families[ip.family], ip.text, grant));
    return hostRulesOf(this.label, grant);
  }

  private async openNow(tools: FamilyTools, sourceIp: string, grant: Grant): Promise<void> {
    const existing = await this.listFamily(tools);
    const samePort = (r: IptablesRule, p: ProtoPort) =>
      r.sourceIp === sourceIp && r.port.proto === p.proto && r.port.port === p.port;
    const stale = existing.filter((r) => grant.ports.some((p) => samePort(r, p)));
    const current = (r: IptablesRule) => r.expiresAt === grant.expiresAt;
    const toAdd = grant.ports
      .filter((p) => !stale.some((r) => samePort(r, p) && current(r)))
      .map((p) => iptablesRuleSpec(sourceIp, p, grant.expiresAt));
    const remove = stale.filter((r) => !current(r)).map((r) => r.spec);
    if (toAdd.length === 0 && remove.length === 0) return;
    await this.runner.run(
      [tools.restore, "-w", "--noflush"],
      iptablesBatch(this.options.chain, toAdd, remove),
    );
  }

  async removeRules(rules: readonly IptablesRule[]): Promise<void> {
    for (const tools of this.bothFamilies) {
      const specs = rules.filter((r) => r.family === tools.family).map((r) => r.spec);
      if (specs.length === 0) continue;
      await this.runner.run(
        [tools.restore, "-w", "--noflush"],
        iptablesBatch(this.options.chain, [], specs),
      );
    }
  }

  /** Removes rules whose expiry has passed; returns them. */
  removeExpired(nowSec: number): Promise<IptablesRule[]> {
    return this.serial(() => this.removeExpiredNow(nowSec));
  }

  private async removeExpiredNow(nowSec: number): Promise<IptablesRule[]> {
    const expired = (await this.listRules()).filter(
      (r) => r.expiresAt !== null && r.expiresAt <= nowSec,
    );
    await this.removeRules(expired);
    return expired;
  }

  /** Only `_exp_` ACCEPT rules of spaknock's chain are grants: an admin's rule never matches. */
  revoke(match: GrantMatch): Promise<IptablesRule[]> {
    return this.serial(async () => {
      const matching = (await this.listRules()).filter((r) => matchesGrant(r, match));
      await this.removeRules(matching);
      return matching;
    });
  }

  async removeAllGrants(): Promise<void> {
    await this.removeRules(await this.listRules());
  }

  /** Removes the chain, its jump and every rule, in both families (`--fw-flush`). */
  async removeAll(): Promise<void> {
    const chain = this.options.chain;
    for (const tools of this.bothFamilies) {
      while (await this.check(tools, ["-D", "INPUT", "-j", chain])) {
        // a jump may have been added more than once by hand; remove them all
      }
      if (await this.check(tools, ["-S", chain])) {
        await this.runner.run([tools.ipt, "-w", "-F", chain]);
        await this.runner.run([tools.ipt, "-w", "-X", chain]);
      }
    }
  }
}
