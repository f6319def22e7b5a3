/**
 * `spaknock grants` (what is open right now in the stack's guarded groups) and `spaknock revoke`
 * (close grants early). Both read the spaknock-tagged rules with the same code the revoke and
 * sweep functions use (lambda/adapters/security-group-firewall.ts), so a rule without
 * `spaknock:managed` (an admin's own) is never listed, let alone revoked.
 */
import { EC2Client } from "@aws-sdk/client-ec2";
import { canonicalIp } from "../../core/index.js";
import {
  listManagedRules,
  type ManagedRule,
  revokeRules,
} from "../../lambda/adapters/security-group-firewall.js";
import { awsErrorText, resolveScope, type ScopeOptions } from "../aws/operator-config.js";
import { duration, isoTime, renderTable } from "../aws/table.js";
import { UsageError } from "../exit-codes.js";

export interface OpenGrant {
  readonly region: string;
  readonly group: string;
  readonly ruleId: string;
  readonly user: string | null;
  readonly source: string | null;
  readonly proto: string | null;
  readonly port: number | null;
  readonly expiresAt: number | null;
  readonly secondsLeft: number | null;
}

export interface AwsCommandDeps {
  /** An EC2 client for a region (undefined: the SDK's default); tests hand a mocked one. */
  readonly ec2For: (region: string | undefined) => EC2Client;
  readonly nowSec: () => number;
}

export const defaultAwsDeps: AwsCommandDeps = {
  ec2For: (region) => new EC2Client(region ? { region } : {}),
  nowSec: () => Math.floor(Date.now() / 1000),
};

function sourceOf(rule: ManagedRule): string | null {
  const [ip, bits] = (rule.cidr ?? "").split("/");
  const canonical = canonicalIp(ip ?? "");
  return canonical !== null && (bits === "32" || bits === "128") ? canonical : rule.cidr;
}

async function openGrants(scope: ScopeOptions, deps: AwsCommandDeps): Promise<OpenGrant[]> {
  const { groups, regions } = resolveScope(scope);
  if (groups.length === 0) {
    throw new UsageError("no guarded groups: pass --group sg-… or --config spaknock.cloud.json");
  }
  const now = deps.nowSec();
  const out: OpenGrant[] = [];
  for (const region of regions) {
    const ec2 = deps.ec2For(region);
    const regionName = region ?? (await ec2.config.region());
    for (const group of groups) {
      let rules: ManagedRule[];
      try {
        rules = await listManagedRules(ec2, group);
      } catch (err) {
        throw new Error(awsErrorText(err, "ec2:DescribeSecurityGroupRules"));
      }
      for (const r of rules) {
        out.push({
          region: regionName,
          group,
          ruleId: r.ruleId,
          user: r.user,
          source: sourceOf(r),
          proto: r.proto,
          port: r.port,
          expiresAt: r.expiresAt,
          secondsLeft: r.expiresAt === null ? null : r.expiresAt - now,
        });
      }
    }
  }
  return out;
}

function grantRows(grants: readonly OpenGrant[]): string {
  return renderTable(
    ["region", "group", "rule", "user", "source", "port", "expires", "left"],
    grants.map((g) => [
      g.region,
      g.group,
      g.ruleId,
      g.user ?? "?",
      g.source ?? "?",
      g.proto && g.port !== null ? `${g.proto}/${g.port}` : "?",
      isoTime(g.expiresAt),
      g.secondsLeft === null
        ? ""
        : g.secondsLeft < 0
          ? `past by ${duration(-g.secondsLeft)}`
          : duration(g.secondsLeft),
    ]),
  );
}

export async function runGrants(
  opts: ScopeOptions & { json?: boolean },
  out: (line: string) => void,
  deps: AwsCommandDeps = defaultAwsDeps,
): Promise<void> {
  const grants = await openGrants(opts, deps);
  if (opts.json) out(JSON.stringify({ grants }));
  else if (grants.length === 0) out("no spaknock grant is open");
  else out(grantRows(grants));
}

export interface RevokeOptions extends ScopeOptions {
  rule?: string;
  user?: string;
  source?: string;
  json?: boolean;
}

/** Closes the matching spaknock grants; returns how many it closed. */
export async function runRevoke(
  opts: RevokeOptions,
  out: (line: string) => void,
  deps: AwsCommandDeps = defaultAwsDeps,
): Promise<number> {
  const chosen = [opts.rule, opts.user, opts.source].filter((x) => x !== undefined).length;
  if (chosen !== 1) throw new UsageError("name what to revoke: one of --rule, --user, --source");
  if (opts.rule !== undefined && !/^sgr-[0-9a-f]{8,17}$/.test(opts.rule)) {
    throw new UsageError(`--rule ${opts.rule}: not a security group rule id`);
  }
  const source = opts.source === undefined ? undefined : canonicalIp(opts.source);
  if (source === null) throw new UsageError(`--source ${opts.source}: not an IP address`);
  const matching = (await openGrants(opts, deps)).filter(
    (g) =>
      (opts.rule !== undefined && g.ruleId === opts.rule) ||
      (opts.user !== undefined && g.user === opts.user) ||
      (source !== undefined && g.source === source),
  );
  if (matching.length === 0) {
    out("nothing to revoke: no spaknock grant matches");
    return 0;
  }
  const byTarget = new Map<string, OpenGrant[]>();
  for (const g of matching) {
    const key = `${g.region} ${g.group}`;
    byTarget.set(key, [...(byTarget.get(key) ?? []), g]);
  }
  for (const grants of byTarget.values()) {
    const first = grants[0] as OpenGrant;
    try {
      await revokeRules(
        deps.ec2For(first.region),
        first.group,
        grants.map((g) => g.ruleId),
      );
    } catch (err) {
      throw new Error(awsErrorText(err, "ec2:RevokeSecurityGroupIngress"));
    }
  }
  if (opts.json) out(JSON.stringify({ revoked: matching }));
  else {
    out(`revoked ${matching.length} spaknock grant(s):`);
    out(grantRows(matching));
  }
  return matching.length;
}
