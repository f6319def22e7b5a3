/**
 * The Lambda functions' environment, validated once per container. A missing or bad variable
 * fails the first invocation with one message naming every bad variable.
 *
 * Hand-written checks, not a schema library: zod was about 450 KiB of each bundle (its locales
 * stay whatever is imported) for the dozen variables and two event shapes the functions read.
 */

/** The variables of the knock function. */
export interface KnockEnvironment {
  readonly REPLAY_TABLE: string;
  readonly ACCESS_CONFIG_SECRET: string;
  readonly SCHEDULE_GROUP: string;
  readonly REVOKE_FUNCTION_ARN: string;
  readonly SCHEDULER_ROLE_ARN: string;
  /** Where Scheduler puts a revoke it could not deliver (the sweeper still closes the rule). */
  readonly SCHEDULE_DLQ_ARN: string | undefined;
  readonly MANAGED_GROUPS: readonly string[];
  readonly OPENER_ROLE_ARN: string | undefined;
  readonly NOTIFY_TOPIC_ARN: string | undefined;
  readonly MAX_SPA_PACKET_AGE: number;
  /** Seconds an access.conf read from Secrets Manager is reused before it is read again. */
  readonly ACCESS_CONFIG_TTL: number;
}

/** The variables of the revoke and sweep functions. */
export interface RevokeEnvironment {
  readonly MANAGED_GROUPS: readonly string[];
  readonly OPENER_ROLE_ARN: string | undefined;
  readonly NOTIFY_TOPIC_ARN: string | undefined;
}

export interface EnvironmentSchema<T> {
  /** The environment's values, or throws naming every bad variable. */
  parse(env: Readonly<Record<string, string | undefined>>): T;
}

/** One variable's check: its value, or why it is refused (collected by `schema`). */
type Check<V> = (value: string | undefined) => { value: V } | { problem: string };

const nonEmpty: Check<string> = (v) =>
  v !== undefined && v.length > 0 ? { value: v } : { problem: "missing" };

const arn: Check<string> = (v) =>
  v?.startsWith("arn:") ? { value: v } : { problem: v === undefined ? "missing" : "not an ARN" };

const optionalArn: Check<string | undefined> = (v) => (v === undefined ? { value: v } : arn(v));

const SECURITY_GROUP_ID = /^sg-[0-9a-f]{8,17}$/;

/** Comma-separated security group ids, at least one. */
const securityGroups: Check<readonly string[]> = (v) => {
  const ids = (v ?? "")
    .split(",")
    .map((x) => x.trim())
    .filter((x) => x.length > 0);
  if (ids.length === 0) return { problem: "no security group id" };
  const bad = ids.find((id) => !SECURITY_GROUP_ID.test(id));
  return bad === undefined
    ? { value: ids }
    : { problem: `"${bad.slice(0, 40)}" is not a security group id` };
};

/** A whole number in min..max, `fallback` when the variable is unset. */
const wholeNumber =
  (min: number, max: number, fallback: number): Check<number> =>
  (v) => {
    if (v === undefined) return { value: fallback };
    const n = Number(v);
    return Number.isInteger(n) && n >= min && n <= max && v.trim() !== ""
      ? { value: n }
      : { problem: `not a whole number from ${min} to ${max}` };
  };

function schema<T>(checks: { readonly [K in keyof T]: Check<T[K]> }): EnvironmentSchema<T> {
  return {
    parse(env) {
      const values: Partial<Record<keyof T, unknown>> = {};
      const problems: string[] = [];
      for (const name of Object.keys(checks) as (keyof T & string)[]) {
        const result = checks[name](env[name]);
        if ("problem" in result) problems.push(`${name}: ${result.problem}`);
        else values[name] = result.value;
      }
      if (problems.length > 0)
        throw new Error(`spaknock Lambda misconfigured: ${problems.join("; ")}`);
      return values as T;
    },
  };
}

export const knockEnvironment: EnvironmentSchema<KnockEnvironment> = schema<KnockEnvironment>({
  REPLAY_TABLE: nonEmpty,
  ACCESS_CONFIG_SECRET: nonEmpty,
  SCHEDULE_GROUP: nonEmpty,
  REVOKE_FUNCTION_ARN: arn,
  SCHEDULER_ROLE_ARN: arn,
  SCHEDULE_DLQ_ARN: optionalArn,
  MANAGED_GROUPS: securityGroups,
  OPENER_ROLE_ARN: optionalArn,
  NOTIFY_TOPIC_ARN: optionalArn,
  MAX_SPA_PACKET_AGE: wholeNumber(1, 100000, 120),
  ACCESS_CONFIG_TTL: wholeNumber(0, 3600, 300),
});

export const revokeEnvironment: EnvironmentSchema<RevokeEnvironment> = schema<RevokeEnvironment>({
  MANAGED_GROUPS: securityGroups,
  OPENER_ROLE_ARN: optionalArn,
  NOTIFY_TOPIC_ARN: optionalArn,
});

export function readEnvironment<T>(
  environment: EnvironmentSchema<T>,
  env: Readonly<Record<string, string | undefined>>,
): T {
  return environment.parse(env);
}
