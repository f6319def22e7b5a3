/**
 * The Firewall port on EC2 security groups. A grant becomes, for each of its stanza's groups and
 * each port, one ingress rule for the knocker's address alone (an IPv4 /32 in `IpRanges`, or an
 * IPv6 /128 in `Ipv6Ranges`), described and tagged with who opened it and until when (so
 * CloudTrail and the console show it). A second knock refreshes the existing
 * rule's description and tags instead of failing on InvalidPermission.Duplicate. All or nothing:
 * if any group refuses, the rules this knock created are revoked again.
 */
import {
  AuthorizeSecurityGroupIngressCommand,
  CreateTagsCommand,
  DescribeSecurityGroupRulesCommand,
  type EC2Client,
  ModifySecurityGroupRulesCommand,
  RevokeSecurityGroupIngressCommand,
  type SecurityGroupRule,
  type Tag,
} from "@aws-sdk/client-ec2";
import {
  type Firewall,
  type Grant,
  type IpAddress,
  type OpenedRule,
  type ProtoPort,
  parseIpAddress,
  SpaError,
} from "../../core/index.js";

export const TAG = {
  managed: "spaknock:managed",
  user: "spaknock:user",
  expires: "spaknock:expires",
  stanza: "spaknock:stanza",
} as const;

export interface RuleRef {
  readonly groupId: string;
  readonly ruleId: string;
}

/** The characters EC2 allows in a rule description; anything else becomes `_`. */
export function sanitiseDescription(text: string): string {
  return text.replace(/[^a-zA-Z0-9. _\-:/()#,@[\]+=&;{}!$*]/g, "_").slice(0, 255);
}

export function ruleDescription(grant: Grant): string {
  const until = new Date(grant.expiresAt * 1000).toISOString().replace(/\.\d{3}Z$/, "Z");
  return sanitiseDescription(`spaknock user=${grant.username} until=${until}`);
}

export function ruleTags(grant: Grant): Tag[] {
  return [
    { Key: TAG.managed, Value: "true" },
    { Key: TAG.user, Value: grant.username.slice(0, 256) },
    { Key: TAG.expires, Value: String(grant.expiresAt) },
    { Key: TAG.stanza, Value: String(grant.stanza) },
  ];
}

function errorName(err: unknown): string {
  return (
    (err as { name?: string; Code?: string })?.name ?? (err as { Code?: string })?.Code ?? "Error"
  );
}

/** Translates an SDK error into the project's code, keeping AWS's error name for the log. */
export function firewallError(err: unknown, what: string): SpaError {
  const message = err instanceof Error ? err.message : String(err);
  return new SpaError("FIREWALL_FAILED", `${what}: ${errorName(err)}: ${message}`);
}

/** The rule a knock meant to refresh is gone (revoked meanwhile). */
class RuleVanished extends Error {
  /** `what` names the rule for log lines: its id, or the address and port when none was found. */
  constructor(readonly what: string) {
    super(`rule ${what} vanished`);
  }
}

/** One address as a security-group rule source: its family and its single-address CIDR. */
export interface RuleSource {
  readonly family: 4 | 6;
  /** `a.b.c.d/32` or `<RFC 5952 text>/128`. */
  readonly cidr: string;
}

/** The single-address rule source of one address: its /32 or its /128. */
function sourceOf(ip: IpAddress): RuleSource {
  return { family: ip.family, cidr: `${ip.text}/${ip.family === 4 ? 32 : 128}` };
}

/** The rule source for a grant's address; an IPv4-mapped IPv6 address is its IPv4 address. */
export function ruleSource(sourceIp: string): RuleSource {
  const ip = parseIpAddress(sourceIp);
  if (ip === null)
    throw new SpaError("FIREWALL_FAILED", `"${sourceIp.slice(0, 64)}" is not an IP address`);
  return sourceOf(ip);
}

/**
 * The address of a single-address CIDR (`a.b.c.d/32`, `<IPv6>/128`), or null for a wider one.
 * `::ffff:a.b.c.d/128` stays IPv6: EC2 keeps it in `CidrIpv6`, and it is not an IPv4 sender's /32.
 */
function singleAddress(cidr: string | undefined): IpAddress | null {
  const [text = "", bits, ...rest] = (cidr ?? "").split("/");
  const ip = parseIpAddress(text);
  if (ip === null || rest.length > 0) return null;
  const family = text.includes(":") ? 6 : 4;
  if (ip.family !== family || bits !== (family === 4 ? "32" : "128")) return null;
  return ip;
}

/** The rule's own source, when it is one address of the family its field says. */
function sourceOfRule(rule: SecurityGroupRule): RuleSource | null {
  const v4 = singleAddress(rule.CidrIpv4);
  if (v4?.family === 4) return sourceOf(v4);
  const v6 = singleAddress(rule.CidrIpv6);
  return v6?.family === 6 ? sourceOf(v6) : null;
}

function matches(rule: SecurityGroupRule, source: RuleSource, port: ProtoPort): boolean {
  return (
    rule.IsEgress === false &&
    // The CIDR text names the family too: a /32 has no ":", a /128 has.
    sourceOfRule(rule)?.cidr === source.cidr &&
    rule.IpProtocol === port.proto &&
    rule.FromPort === port.port &&
    rule.ToPort === port.port
  );
}

/** The source half of an IpPermission: IPv4 in `IpRanges`, IPv6 in `Ipv6Ranges`. */
function permissionRange(source: RuleSource, description: string) {
  return source.family === 4
    ? { IpRanges: [{ CidrIp: source.cidr, Description: description }] }
    : { Ipv6Ranges: [{ CidrIpv6: source.cidr, Description: description }] };
}

/** The source half of a SecurityGroupRuleRequest (ModifySecurityGroupRules). */
function ruleRequestSource(source: RuleSource) {
  return source.family === 4 ? { CidrIpv4: source.cidr } : { CidrIpv6: source.cidr };
}

/** What a refreshed rule looked like before, so a failed knock can put it back. */
interface Previous {
  readonly port: ProtoPort;
  readonly source: RuleSource;
  readonly description: string | undefined;
  /** The rule's spaknock:* tags before the refresh (it always carries spaknock:managed). */
  readonly tags: readonly Tag[];
}

export interface SecurityGroupFirewallOptions {
  /** The EC2 client to act with for this user (under the opener role when configured). */
  readonly ec2For: (username: string) => Promise<EC2Client>;
  /** Events of a grant's rules, with their severity: a race resolved is info, a rule left open is an error. */
  readonly log: (
    level: "info" | "warn" | "error",
    message: string,
    extra?: Record<string, unknown>,
  ) => void;
}

/** A grant's rules as the revoke function's event names them. */
export function ruleRefsOf(rules: readonly OpenedRule[]): RuleRef[] {
  return rules.map((r) => ({ groupId: r.target, ruleId: r.ruleId }));
}

export class SecurityGroupFirewall implements Firewall {
  constructor(private readonly options: SecurityGroupFirewallOptions) {}

  /** The grant's targets are its stanza's SECURITY_GROUPS. */
  async open(grant: Grant): Promise<readonly OpenedRule[]> {
    const ec2 = await this.options.ec2For(grant.username);
    const groups = grant.targets;
    if (groups.length === 0)
      throw new SpaError("FIREWALL_FAILED", `stanza #${grant.stanza} names no security group`);
    const created: RuleRef[] = [];
    const refreshed: (RuleRef & Previous)[] = [];
    const held: RuleRef[] = [];
    try {
      for (const groupId of groups) {
        for (const port of grant.ports) {
          const ref = await this.authorizeOrRefreshOnce(ec2, groupId, port, grant);
          if (!ref.foreign) held.push(ref.rule);
          if (ref.created) created.push(ref.rule);
          if (ref.previous) refreshed.push({ ...ref.rule, ...ref.previous });
        }
      }
    } catch (err) {
      await this.rollBack(ec2, created, err);
      await this.restoreRefreshed(ec2, refreshed);
      throw err instanceof SpaError ? err : firewallError(err, "opening the grant");
    }
    return held.map((r) => ({ target: r.groupId, ruleId: r.ruleId }));
  }

  /**
   * A revoke (its schedule, the sweeper) may remove the rule between this knock's Duplicate and
   * its refresh (issue 16.4): the refresh then finds no rule, or EC2 answers NotFound. The door
   * must open all the same, so the knock starts over once: now the authorize creates a new rule.
   */
  private async authorizeOrRefreshOnce(
    ec2: EC2Client,
    groupId: string,
    port: ProtoPort,
    grant: Grant,
  ): Promise<{ rule: RuleRef; created: boolean; foreign?: boolean; previous?: Previous }> {
    try {
      return await this.authorizeOrRefresh(ec2, groupId, port, grant);
    } catch (err) {
      if (!(err instanceof RuleVanished)) throw err;
      this.options.log(
        "info",
        "the rule expired or was revoked while this knock refreshed it; authorizing anew",
        { groupId, rule: err.what },
      );
    }
    try {
      return await this.authorizeOrRefresh(ec2, groupId, port, grant);
    } catch (err) {
      if (!(err instanceof RuleVanished)) throw err;
      throw new SpaError(
        "FIREWALL_FAILED",
        `${groupId}: ${err.what} vanished twice while this knock refreshed it`,
      );
    }
  }

  private async authorizeOrRefresh(
    ec2: EC2Client,
    groupId: string,
    port: ProtoPort,
    grant: Grant,
  ): Promise<{ rule: RuleRef; created: boolean; foreign?: boolean; previous?: Previous }> {
    const source = ruleSource(grant.sourceIp);
    try {
      const out = await ec2.send(
        new AuthorizeSecurityGroupIngressCommand({
          GroupId: groupId,
          IpPermissions: [
            {
              IpProtocol: port.proto,
              FromPort: port.port,
              ToPort: port.port,
              ...permissionRange(source, ruleDescription(grant)),
            },
          ],
          TagSpecifications: [{ ResourceType: "security-group-rule", Tags: ruleTags(grant) }],
        }),
      );
      const ruleId = out.SecurityGroupRules?.[0]?.SecurityGroupRuleId;
      if (!ruleId)
        throw new SpaError(
          "FIREWALL_FAILED",
          `${groupId}: AuthorizeSecurityGroupIngress returned no rule id`,
        );
      return { rule: { groupId, ruleId }, created: true };
    } catch (err) {
      if (errorName(err) !== "InvalidPermission.Duplicate")
        throw firewallError(err, `authorizing ${groupId}`);
    }
    // Already open for this address and port: refresh its expiry instead.
    const existing = await this.findRule(ec2, groupId, source, port);
    if (!existing?.SecurityGroupRuleId) {
      throw new RuleVanished(
        `for ${source.cidr} ${port.proto}/${port.port} (EC2 said duplicate, then listed none)`,
      );
    }
    const ruleId = existing.SecurityGroupRuleId;
    if (!existing.Tags?.some((t) => t.Key === TAG.managed)) {
      // Someone else's rule (an admin's permanent one) already lets this address in. Never tag,
      // schedule or revoke it: the door is open without us.
      this.options.log(
        "warn",
        "address already allowed by a rule spaknock does not manage; left alone",
        {
          groupId,
          ruleId,
        },
      );
      return { rule: { groupId, ruleId }, created: false, foreign: true };
    }
    const expiresTag = existing.Tags?.find((t) => t.Key === TAG.expires)?.Value;
    if (
      expiresTag === undefined ||
      !/^\d+$/.test(expiresTag) ||
      Number(expiresTag) <= grant.openedAt
    ) {
      // Past its expiry, this rule may be in a revoke's hands right now (its schedule, the
      // sweeper), and a refresh would race that revoke by id and could lose (issue 16.4). Replace
      // it instead: revoke it here and authorize a new rule, whose id no pending revoke holds.
      // Security groups track connections, so a session already made through it carries on.
      await revokeRules(ec2, groupId, [ruleId]);
      throw new RuleVanished(ruleId);
    }
    try {
      await ec2.send(
        new ModifySecurityGroupRulesCommand({
          GroupId: groupId,
          SecurityGroupRules: [
            {
              SecurityGroupRuleId: ruleId,
              SecurityGroupRule: {
                IpProtocol: port.proto,
                FromPort: port.port,
                ToPort: port.port,
                ...ruleRequestSource(source),
                Description: ruleDescription(grant),
              },
            },
          ],
        }),
      );
      await ec2.send(new CreateTagsCommand({ Resources: [ruleId], Tags: ruleTags(grant) }));
    } catch (err) {
      if (/NotFound/.test(errorName(err))) throw new RuleVanished(ruleId);
      throw firewallError(err, `refreshing ${ruleId} in ${groupId}`);
    }
    return {
      rule: { groupId, ruleId },
      created: false,
      previous: {
        port,
        source,
        description: existing.Description,
        tags: (existing.Tags ?? []).filter((t) => t.Key?.startsWith("spaknock:")),
      },
    };
  }

  /** All or nothing also for refreshes: a failed knock must not extend an earlier grant. */
  private async restoreRefreshed(
    ec2: EC2Client,
    rules: readonly (RuleRef & Previous)[],
  ): Promise<void> {
    for (const r of rules) {
      try {
        await ec2.send(
          new ModifySecurityGroupRulesCommand({
            GroupId: r.groupId,
            SecurityGroupRules: [
              {
                SecurityGroupRuleId: r.ruleId,
                SecurityGroupRule: {
                  IpProtocol: r.port.proto,
                  FromPort: r.port.port,
                  ToPort: r.port.port,
                  ...ruleRequestSource(r.source),
                  ...(r.description !== undefined ? { Description: r.description } : {}),
                },
              },
            ],
          }),
        );
        // The whole spaknock tag set, not only spaknock:expires: IAM lets the knock function
        // re-tag a rule only in a request that also says spaknock:managed=true.
        await ec2.send(new CreateTagsCommand({ Resources: [r.ruleId], Tags: [...r.tags] }));
      } catch (err) {
        this.options.log(
          "warn",
          "could not restore a refreshed rule's old expiry; the sweeper closes it at the new one",
          {
            groupId: r.groupId,
            ruleId: r.ruleId,
            error: String(err),
          },
        );
      }
    }
  }

  private async findRule(ec2: EC2Client, groupId: string, source: RuleSource, port: ProtoPort) {
    let token: string | undefined;
    do {
      const out = await ec2.send(
        new DescribeSecurityGroupRulesCommand({
          Filters: [{ Name: "group-id", Values: [groupId] }],
          NextToken: token,
          MaxResults: 1000,
        }),
      );
      const hit = out.SecurityGroupRules?.find((r) => matches(r, source, port));
      if (hit) return hit;
      token = out.NextToken;
    } while (token);
    return undefined;
  }

  private async rollBack(
    ec2: EC2Client,
    created: readonly RuleRef[],
    cause: unknown,
  ): Promise<void> {
    const byGroup = new Map<string, string[]>();
    for (const r of created) byGroup.set(r.groupId, [...(byGroup.get(r.groupId) ?? []), r.ruleId]);
    for (const [groupId, ids] of byGroup) {
      try {
        await ec2.send(
          new RevokeSecurityGroupIngressCommand({ GroupId: groupId, SecurityGroupRuleIds: ids }),
        );
        this.options.log("warn", "rolled back a partial grant", {
          groupId,
          ruleIds: ids,
          cause: String(cause),
        });
      } catch (err) {
        // The sweeper removes it at its expiry; say so loudly.
        this.options.log(
          "error",
          "could not roll back a partial grant; the sweeper will revoke it at expiry",
          {
            groupId,
            ruleIds: ids,
            error: String(err),
          },
        );
      }
    }
  }
}

/** Revokes rules by id; rules already gone count as revoked (Scheduler may deliver twice). */
export async function revokeRules(
  ec2: EC2Client,
  groupId: string,
  ruleIds: readonly string[],
): Promise<void> {
  if (ruleIds.length === 0) return;
  try {
    await ec2.send(
      new RevokeSecurityGroupIngressCommand({
        GroupId: groupId,
        SecurityGroupRuleIds: [...ruleIds],
      }),
    );
  } catch (err) {
    const name = errorName(err);
    if (name === "InvalidSecurityGroupRuleId.NotFound" || name === "InvalidPermission.NotFound")
      return;
    throw firewallError(err, `revoking ${ruleIds.join(",")} in ${groupId}`);
  }
}

export interface ManagedRule {
  readonly groupId: string;
  readonly ruleId: string;
  readonly expiresAt: number | null;
  readonly user: string | null;
  /** The rule's source as EC2 lists it: `CidrIpv4`, or `CidrIpv6` for an IPv6 rule. */
  readonly cidr: string | null;
  /** `tcp` or `udp` (EC2's IpProtocol), or null for anything else. */
  readonly proto: "tcp" | "udp" | null;
  readonly port: number | null;
  /** The access stanza that opened it (its `spaknock:stanza` tag), or 0 when unknown. */
  readonly stanza: number;
}

/**
 * The grant a managed rule holds, as far as the rule tells (for the Notifier when it closes): one
 * port, the group as its target. EC2 keeps no open time, so `openedAt` is the expiry and
 * `timeoutSec` 0; a rule whose expiry cannot be read closes `nowSec`.
 */
export function grantOfRule(rule: ManagedRule, nowSec: number): Grant {
  const expiresAt = rule.expiresAt ?? nowSec;
  return {
    sourceIp: singleAddress(rule.cidr ?? undefined)?.text ?? rule.cidr ?? "?",
    ports:
      rule.proto !== null && rule.port !== null ? [{ proto: rule.proto, port: rule.port }] : [],
    username: rule.user ?? "?",
    openedAt: expiresAt,
    expiresAt,
    timeoutSec: 0,
    stanza: rule.stanza,
    targets: [rule.groupId],
  };
}

/** Every spaknock-tagged ingress rule of a group, with its expiry tag. */
export async function listManagedRules(ec2: EC2Client, groupId: string): Promise<ManagedRule[]> {
  const rules: ManagedRule[] = [];
  let token: string | undefined;
  do {
    const out = await ec2.send(
      new DescribeSecurityGroupRulesCommand({
        Filters: [
          { Name: "group-id", Values: [groupId] },
          { Name: "tag-key", Values: [TAG.managed] },
        ],
        NextToken: token,
        MaxResults: 1000,
      }),
    );
    for (const r of out.SecurityGroupRules ?? []) {
      if (!r.SecurityGroupRuleId || r.IsEgress) continue;
      const tag = (k: string) => r.Tags?.find((t) => t.Key === k)?.Value;
      const expires = tag(TAG.expires);
      rules.push({
        groupId,
        ruleId: r.SecurityGroupRuleId,
        expiresAt: expires !== undefined && /^\d+$/.test(expires) ? Number(expires) : null,
        user: tag(TAG.user) ?? null,
        cidr: r.CidrIpv4 ?? r.CidrIpv6 ?? null,
        proto: r.IpProtocol === "tcp" || r.IpProtocol === "udp" ? r.IpProtocol : null,
        port: r.FromPort ?? null,
        stanza: /^\d+$/.test(tag(TAG.stanza) ?? "") ? Number(tag(TAG.stanza)) : 0,
      });
    }
    token = out.NextToken;
  } while (token);
  return rules;
}
