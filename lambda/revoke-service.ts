/**
 * Closing grants in AWS. `revoke` runs from a grant's one-time schedule; `sweep` runs every
 * minute and revokes every spaknock rule past its expiry, whatever happened to its schedule.
 * Both only touch rules in the managed groups, only when `spaknock:expires` has passed (a
 * refreshed rule survives its old schedule), and treat "already gone" as done.
 */
import type { EC2Client } from "@aws-sdk/client-ec2";
import { z } from "zod";
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

const revokeEvent = z.object({
  rules: z
    .array(
      z.object({
        groupId: z.string().regex(/^sg-[0-9a-f]+$/),
        ruleId: z.string().regex(/^sgr-[0-9a-f]+$/),
      }),
    )
    .min(1)
    .max(200),
});

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
  const ec2For = ec2ClientFactory(clients.ec2, clients.sts, env.OPENER_ROLE_ARN);
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
      const parsed = revokeEvent.safeParse(event);
      if (!parsed.success) {
        log.error("refused", { code: "EVENT_INVALID", reason: parsed.error.issues[0]?.message });
        return { revoked: [], kept: [] };
      }
      const wanted = parsed.data.rules.filter((r) => {
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
