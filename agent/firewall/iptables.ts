/**
 * The iptables backend, as fwknopd does it: an own chain jumped to first from INPUT, one ACCEPT
 * rule per granted source+port with its expiry written on the rule (`_exp_<epoch>` comment), so a
 * restarted daemon can still find and remove what a crashed one left. The admin's own rules drop
 * the port. Grants are changed with `iptables-restore --noflush`: one atomic batch per grant.
 */
import type { Grant, OpenedRule, ProtoPort } from "../../core/index.js";
import { CommandFailed, type CommandRunner } from "./command-runner.js";
import { hostRulesOf, type ManagedFirewall, type OpenRule } from "./managed-firewall.js";

export interface IptablesOptions {
  readonly chain: string;
  readonly iptablesPath?: string;
  readonly restorePath?: string;
}

export interface IptablesRule extends OpenRule {
  /** The rule as `iptables -S` prints it, minus `-A <chain> `: also what `-D` takes. */
  readonly spec: string;
}

const ESTABLISHED = ["-m", "conntrack", "--ctstate", "RELATED,ESTABLISHED", "-j", "ACCEPT"];

/** The rule for one port of a grant, in `iptables -S` form so a listed rule compares equal. */
export function iptablesRuleSpec(sourceIp: string, port: ProtoPort, expiresAt: number): string[] {
  return [
    "-s",
    `${sourceIp}/32`,
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
  /^-A (\S+) (-s (\d+\.\d+\.\d+\.\d+)\/32 -p (tcp|udp) -m (?:tcp|udp) --dport (\d+) -m comment --comment "?_exp_(\d+)"? -j ACCEPT)$/;

/** Parses `iptables -S <chain>` output into spaknock's grant rules (other lines are skipped). */
export function parseIptablesRules(output: string, chain: string): IptablesRule[] {
  const rules: IptablesRule[] = [];
  for (const line of output.split("\n")) {
    const m = RULE_LINE.exec(line.trim());
    if (!m || m[1] !== chain) continue;
    rules.push({
      spec: m[2] as string,
      sourceIp: m[3] as string,
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

export class IptablesFirewall implements ManagedFirewall {
  readonly kernelExpires = false;
  get label(): string {
    return this.options.chain;
  }
  private readonly ipt: string;
  private readonly restore: string;
  /** Changes are list-then-restore: run them one at a time so two cannot race on one rule. */
  private queue: Promise<unknown> = Promise.resolve();

  constructor(
    private readonly runner: CommandRunner,
    private readonly options: IptablesOptions,
  ) {
    this.ipt = options.iptablesPath ?? "iptables";
    this.restore = options.restorePath ?? "iptables-restore";
  }

  private async check(args: string[]): Promise<boolean> {
    try {
      await this.runner.run([this.ipt, "-w", ...args]);
      return true;
    } catch (err) {
      if (err instanceof CommandFailed) return false;
      throw err;
    }
  }

  /** Creates the chain, its jump from INPUT (first) and its established/related accept. */
  async setup(): Promise<void> {
    const chain = this.options.chain;
    if (!(await this.check(["-S", chain]))) await this.runner.run([this.ipt, "-w", "-N", chain]);
    if (!(await this.check(["-C", "INPUT", "-j", chain]))) {
      await this.runner.run([this.ipt, "-w", "-I", "INPUT", "1", "-j", chain]);
    }
    if (!(await this.check(["-C", chain, ...ESTABLISHED]))) {
      await this.runner.run([this.ipt, "-w", "-I", chain, "1", ...ESTABLISHED]);
    }
  }

  async listRules(): Promise<IptablesRule[]> {
    try {
      const { stdout } = await this.runner.run([this.ipt, "-w", "-S", this.options.chain]);
      return parseIptablesRules(stdout, this.options.chain);
    } catch (err) {
      if (err instanceof CommandFailed) return [];
      throw err;
    }
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
    await this.serial(() => this.openNow(grant));
    return hostRulesOf(this.label, grant);
  }

  private async openNow(grant: Grant): Promise<void> {
    const existing = await this.listRules();
    const stale = existing.filter((r) =>
      grant.ports.some(
        (p) => r.sourceIp === grant.sourceIp && r.port.proto === p.proto && r.port.port === p.port,
      ),
    );
    const add = grant.ports.map((p) => iptablesRuleSpec(grant.sourceIp, p, grant.expiresAt));
    const fresh = new Set(add.map((a) => a.join(" ")));
    const remove = stale.map((r) => r.spec).filter((s) => !fresh.has(s));
    const keep = stale.map((r) => r.spec).filter((s) => fresh.has(s));
    const toAdd = add.filter((a) => !keep.includes(a.join(" ")));
    if (toAdd.length === 0 && remove.length === 0) return;
    await this.runner.run(
      [this.restore, "-w", "--noflush"],
      iptablesBatch(this.options.chain, toAdd, remove),
    );
  }

  async removeRules(rules: readonly IptablesRule[]): Promise<void> {
    if (rules.length === 0) return;
    await this.runner.run(
      [this.restore, "-w", "--noflush"],
      iptablesBatch(
        this.options.chain,
        [],
        rules.map((r) => r.spec),
      ),
    );
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

  async removeAllGrants(): Promise<void> {
    await this.removeRules(await this.listRules());
  }

  /** Removes the chain, its jump and every rule (`--fw-flush`). */
  async removeAll(): Promise<void> {
    const chain = this.options.chain;
    while (await this.check(["-D", "INPUT", "-j", chain])) {
      // a jump may have been added more than once by hand; remove them all
    }
    if (await this.check(["-S", chain])) {
      await this.runner.run([this.ipt, "-w", "-F", chain]);
      await this.runner.run([this.ipt, "-w", "-X", chain]);
    }
  }
}
