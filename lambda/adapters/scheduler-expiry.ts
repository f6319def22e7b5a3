/**
 * Closing a grant on time: an EventBridge Scheduler one-time schedule at the expiry (UTC) that
 * invokes the revoke function with the rule ids, and deletes itself after it ran. A refresh
 * creates a new schedule; the old one still fires, and revoke skips rules whose expiry moved.
 */
import { createHash } from "node:crypto";
import { CreateScheduleCommand, type SchedulerClient } from "@aws-sdk/client-scheduler";
import type { Expiry, Grant, OpenedRule } from "../../core/index.js";
import { type RuleRef, ruleRefsOf } from "./security-group-firewall.js";

export interface RevokeEvent {
  readonly rules: readonly RuleRef[];
}

export interface ScheduleTarget {
  readonly groupName: string;
  readonly revokeFunctionArn: string;
  readonly schedulerRoleArn: string;
  readonly deadLetterArn?: string | undefined;
}

/** `at(yyyy-mm-ddThh:mm:ss)` in UTC, as Scheduler's one-time expressions are written. */
export function atExpression(epochSec: number): string {
  return `at(${new Date(epochSec * 1000).toISOString().slice(0, 19)})`;
}

/** Unique per rule set and expiry, within Scheduler's 64-character name limit. */
export function scheduleName(rules: readonly RuleRef[], expiresAt: number): string {
  const digest = createHash("sha256")
    .update(rules.map((r) => `${r.groupId}/${r.ruleId}`).join(","))
    .digest("hex")
    .slice(0, 24);
  return `spaknock-${expiresAt}-${digest}`;
}

export async function scheduleRevoke(
  client: SchedulerClient,
  target: ScheduleTarget,
  grant: Grant,
  rules: readonly RuleRef[],
): Promise<string> {
  const name = scheduleName(rules, grant.expiresAt);
  const input: RevokeEvent = { rules };
  await client.send(
    new CreateScheduleCommand({
      Name: name,
      GroupName: target.groupName,
      ScheduleExpression: atExpression(grant.expiresAt),
      ScheduleExpressionTimezone: "UTC",
      FlexibleTimeWindow: { Mode: "OFF" },
      ActionAfterCompletion: "DELETE",
      Description: `revoke spaknock grant for ${grant.sourceIp} (${grant.username})`.slice(0, 512),
      Target: {
        Arn: target.revokeFunctionArn,
        RoleArn: target.schedulerRoleArn,
        Input: JSON.stringify(input),
        RetryPolicy: { MaximumRetryAttempts: 10, MaximumEventAgeInSeconds: 3600 },
        ...(target.deadLetterArn ? { DeadLetterConfig: { Arn: target.deadLetterArn } } : {}),
      },
    }),
  );
  return name;
}

/** The Expiry port in AWS: one schedule per grant, the sweeper as backstop. */
export class SchedulerExpiry implements Expiry {
  constructor(
    private readonly client: SchedulerClient,
    private readonly target: ScheduleTarget,
  ) {}

  scheduleClose(grant: Grant, rules: readonly OpenedRule[]): Promise<string> {
    return scheduleRevoke(this.client, this.target, grant, ruleRefsOf(rules));
  }
}
