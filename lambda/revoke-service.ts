/**
 * Closing grants in AWS. `revoke` runs from a grant's one-time schedule; `sweep` runs every
 * minute and revokes every spaknock rule past its expiry, whatever happened to its schedule.
 * Both only touch rules in the managed groups, only when `spaknock:expires` has passed (a
 * refreshed rule survives its old schedule), and treat "already gone" as done.
 */
import type { EC2Client } from "@aws-sdk/client-ec2";
import type { Notifier } from "../core/index.js";
import { ec2ClientFactory } from "./adapters/opener-role.js";
import {
  grantOfRule,
  listManagedRules,
  type ManagedRule,
  revokeRules,
} from "./adapters/security-group-firewall.js";
import { SnsNotifier } from "./adapters/sns-notifier.js";
import type { CloseClients, StructuredLog } from "./clients.js";
import type { RevokeEnvironment } from "./environment.js";

/** The rules one schedule closes, as scheduler-expiry.ts writes its input. */
interface RevokeRequest {
  readonly rules: readonly { readonly groupId: string; readonly ruleId: string }[];
}

const GROUP_ID = /^sg-[0-9a-f]+$/;
const RULE_ID = /^sgr-[0-9a-f]+$/;
const MAX_RULES = 200;

/** The schedule's input, or why it is refused (logged as EVENT_INVALID). */
function parseRevokeEvent(event: unknown): RevokeRequest | { problem: string } {
  const rules = (event as { rules?: unknown } | null)?.rules;
  if (typeof event !== "object" || event === null || !Array.isArray(rules))
    return { problem: "not an object with a rules array" };
  if (rules.length === 0 || rules.length > MAX_RULES)
    return { problem: `${rules.length} rules (1 to ${MAX_RULES})` };
  const parsed: { groupId: string; ruleId: string }[] = [];
  for (const [i, rule] of rules.entries()) {
    const { groupId, ruleId } = (rule ?? {}) as { groupId?: unknown; ruleId?: unknown };
    if (typeof groupId !== "string" || !GROUP_ID.test(groupId))
      return { problem: `rules.${i}.groupId: not a security group id` };
    if (typeof ruleId !== "string" || !RULE_ID.test(ruleId))
      return { problem: `rules.${i}.ruleId: not a security group rule id` };
    parsed.push({ groupId, ruleId });
  }
  return { rules: parsed };
}

export interface RevokeService {
  revoke(event: unknown): Promise<{ revoked: string[]; kept: string[] }>;
  sweep(): Promise<{ revoked: string[] }>;
}

export function createRevokeService(
  env: RevokeEnvironment,
  clients: CloseClients,
  log: StructuredLog,
  nowMs: () => number = () => Date.now(),
): RevokeService {
  const ec2For = ec2ClientFactory(clients, env.OPENER_ROLE_ARN, nowMs);
  const now = () => Math.floor(nowMs() / 1000);
  const expired = (r: ManagedRule) => r.expiresAt === null || r.expiresAt <= now();
  const notifiers: readonly Notifier[] = env.NOTIFY_TOPIC_ARN
    ? [new SnsNotifier(clients.sns, env.NOTIFY_TOPIC_ARN)]
    : [];

  async function revokeGroup(
    groupId: string,
    rules: readonly ManagedRule[],
    reason: "schedule" | "sweep",
  ): Promise<string[]> {
    if (rules.length === 0) return [];
    // Under the opener role the revoke is recorded as the user whose rule it was.
    const byUser = new Map<string, ManagedRule[]>();
    for (const r of rules)
      byUser.set(r.user ?? "spaknock", [...(byUser.get(r.user ?? "spaknock") ?? []), r]);
    const done: string[] = [];
    let firstError: unknown = null;
    for (const [user, userRules] of byUser) {
      try {
        const ec2: EC2Client = await ec2For(user, reason === "sweep" ? "sweep" : "revoke");
        await revokeRules(
          ec2,
          groupId,
          userRules.map((r) => r.ruleId),
        );
      } catch (err) {
        // One user's failure must not keep everyone else's expired rules open.
        firstError ??= err;
        log.error("revoke failed", { code: "FIREWALL_FAILED", groupId, user, error: String(err) });
        continue;
      }
      for (const r of userRules) {
        log.info("revoked", {
          reason,
          groupId,
          ruleId: r.ruleId,
          user: r.user,
          cidr: r.cidr,
          port: r.port,
          expiresAt: r.expiresAt,
        });
        done.push(r.ruleId);
        const grant = grantOfRule(r, now());
        for (const notifier of notifiers) {
          await notifier
            .closed(grant)
            .catch((err) => log.warn("notification failed", { error: String(err) }));
        }
      }
    }
    if (firstError !== null) throw firstError; // Scheduler retries; the sweep tries again
    return done;
  }

  return {
    async revoke(event) {
      const parsed = parseRevokeEvent(event);
      if ("problem" in parsed) {
        log.error("refused", { code: "EVENT_INVALID", reason: parsed.problem });
        return { revoked: [], kept: [] };
      }
      const wanted = parsed.rules.filter((r) => {
        const managed = env.MANAGED_GROUPS.includes(r.groupId);
        if (!managed)
          log.error("refused", { code: "GROUP_NOT_MANAGED", groupId: r.groupId, ruleId: r.ruleId });
        return managed;
      });
      const revoked: string[] = [];
      const kept: string[] = [];
      for (const groupId of new Set(wanted.map((r) => r.groupId))) {
        const ids = new Set(wanted.filter((r) => r.groupId === groupId).map((r) => r.ruleId));
        const present = (await listManagedRules(clients.ec2, groupId)).filter((r) =>
          ids.has(r.ruleId),
        );
        for (const r of present.filter((r) => !expired(r))) {
          kept.push(r.ruleId);
          log.info("kept: refreshed since this schedule was made", {
            groupId,
            ruleId: r.ruleId,
            expiresAt: r.expiresAt,
          });
        }
        revoked.push(...(await revokeGroup(groupId, present.filter(expired), "schedule")));
        // Ids no longer present were revoked already (Scheduler may deliver twice): nothing to do.
      }
      return { revoked, kept };
    },

    async sweep() {
      const revoked: string[] = [];
      for (const groupId of env.MANAGED_GROUPS) {
        try {
          const due = (await listManagedRules(clients.ec2, groupId)).filter(expired);
          revoked.push(...(await revokeGroup(groupId, due, "sweep")));
        } catch (err) {
          log.error("sweep of a group failed", {
            code: "FIREWALL_FAILED",
            groupId,
            error: String(err),
          });
        }
      }
      return { revoked };
    },
  };
}
