/**
 * The Lambda functions' environment, validated once per container with zod. A missing or bad
 * variable fails the cold start with one clear message naming it.
 */
import { z } from "zod";

const sgList = z
  .string()
  .transform((s) =>
    s
      .split(",")
      .map((x) => x.trim())
      .filter((x) => x.length > 0),
  )
  .pipe(z.array(z.string().regex(/^sg-[0-9a-f]{8,17}$/, "not a security group id")).min(1));
const optionalArn = z.string().startsWith("arn:").optional();

export const knockEnvironment = z.object({
  REPLAY_TABLE: z.string().min(1),
  ACCESS_CONFIG_SECRET: z.string().min(1),
  SCHEDULE_GROUP: z.string().min(1),
  REVOKE_FUNCTION_ARN: z.string().startsWith("arn:"),
  SCHEDULER_ROLE_ARN: z.string().startsWith("arn:"),
  /** Where Scheduler puts a revoke it could not deliver (the sweeper still closes the rule). */
  SCHEDULE_DLQ_ARN: optionalArn,
  MANAGED_GROUPS: sgList,
  OPENER_ROLE_ARN: optionalArn,
  NOTIFY_TOPIC_ARN: optionalArn,
  MAX_SPA_PACKET_AGE: z.coerce.number().int().min(1).max(100000).default(120),
  /** Seconds an access.conf read from Secrets Manager is reused before it is read again. */
  ACCESS_CONFIG_TTL: z.coerce.number().int().min(0).max(3600).default(300),
});
export type KnockEnvironment = z.infer<typeof knockEnvironment>;

export const revokeEnvironment = z.object({
  MANAGED_GROUPS: sgList,
  OPENER_ROLE_ARN: optionalArn,
  NOTIFY_TOPIC_ARN: optionalArn,
});
export type RevokeEnvironment = z.infer<typeof revokeEnvironment>;

export function readEnvironment<T extends z.ZodType>(
  schema: T,
  env: NodeJS.ProcessEnv,
): z.infer<T> {
  const result = schema.safeParse(env);
  if (!result.success) {
    const problems = result.error.issues.map((i) => `${i.path.join(".")}: ${i.message}`).join("; ");
    throw new Error(`spaknock Lambda misconfigured: ${problems}`);
  }
  return result.data;
}
