/**
 * Where the operator and auditor commands (`spaknock audit`, `grants`, `revoke`) find the stack:
 * the guarded groups and regions from `spaknock.cloud.json` (the file `cdk deploy` was run with),
 * or `--group`/`--region` given on the command line, which win. Credentials, profiles and
 * endpoints are the AWS SDK's own (AWS_PROFILE, AWS_REGION, AWS_ENDPOINT_URL_EC2, …).
 */
import { existsSync, readFileSync } from "node:fs";
import { z } from "zod";
import { UsageError } from "../exit-codes.js";

export const DEFAULT_CLOUD_CONFIG = "spaknock.cloud.json";

export interface StackScope {
  /** Guarded security groups; empty: every group (audit), refused (grants, revoke). */
  readonly groups: readonly string[];
  /** Regions to ask; `[undefined]`: the SDK's default region. */
  readonly regions: readonly (string | undefined)[];
}

export interface ScopeOptions {
  config?: string;
  group?: string[];
  region?: string[];
  allRegions?: boolean;
}

const SG = /^sg-[0-9a-f]{8}([0-9a-f]{9})?$/;
const REGION = /^[a-z]{2}(-[a-z]+)+-[0-9]$/;

// Only the members these commands read; the CDK app validates the whole file.
const scopeFile = z.looseObject({
  guardedSecurityGroupIds: z.array(z.string().regex(SG)).default([]),
  regions: z.array(z.string().regex(REGION)).optional(),
});

export function resolveScope(opts: ScopeOptions): StackScope {
  const file = opts.config ?? (existsSync(DEFAULT_CLOUD_CONFIG) ? DEFAULT_CLOUD_CONFIG : null);
  let fromFile: z.infer<typeof scopeFile> = { guardedSecurityGroupIds: [] };
  if (file !== null) {
    let json: unknown;
    try {
      json = JSON.parse(readFileSync(file, "utf8"));
    } catch (err) {
      throw new UsageError(
        `cannot read ${file}: ${err instanceof Error ? err.message : String(err)}`,
      );
    }
    const parsed = scopeFile.safeParse(json);
    if (!parsed.success) {
      const issue = parsed.error.issues[0];
      throw new UsageError(`${file}: ${issue?.path.join(".")}: ${issue?.message}`);
    }
    fromFile = parsed.data;
  }
  for (const g of opts.group ?? []) {
    if (!SG.test(g)) throw new UsageError(`--group ${g}: not a security group id`);
  }
  for (const r of opts.region ?? []) {
    if (!REGION.test(r)) throw new UsageError(`--region ${r}: not a region name`);
  }
  const groups = opts.group?.length ? opts.group : fromFile.guardedSecurityGroupIds;
  let regions: (string | undefined)[] = opts.region?.length ? [...opts.region] : [undefined];
  if (opts.allRegions) {
    if (!fromFile.regions?.length) {
      throw new UsageError(`--all-regions needs "regions" in ${file ?? DEFAULT_CLOUD_CONFIG}`);
    }
    regions = [...fromFile.regions];
  }
  return { groups, regions };
}

/** `24h`, `7d`, `90m`, or a date/time (`2026-11-01`, ISO 8601): epoch seconds. */
export function parseWhen(text: string, nowSec: number, flag: string): number {
  const rel = /^([0-9]+)([mhd])$/.exec(text);
  if (rel) {
    const unit = { m: 60, h: 3600, d: 86400 }[rel[2] as "m" | "h" | "d"];
    return nowSec - Number(rel[1]) * unit;
  }
  const t = Date.parse(/^[0-9]{4}-[0-9]{2}-[0-9]{2}$/.test(text) ? `${text}T00:00:00Z` : text);
  if (Number.isNaN(t)) throw new UsageError(`${flag} ${text}: expected 24h, 7d, 90m or a date`);
  return Math.floor(t / 1000);
}

/** A short form of an SDK error that says what to do about the common ones. */
export function awsErrorText(err: unknown, action: string): string {
  const name = (err as { name?: string })?.name ?? "";
  const message = err instanceof Error ? err.message : String(err);
  if (name === "CredentialsProviderError" || /Could not load credentials/i.test(message)) {
    return `no AWS credentials: set AWS_PROFILE or the usual AWS_* variables (${message})`;
  }
  if (
    name === "AccessDeniedException" ||
    name === "UnauthorizedOperation" ||
    /not authorized/i.test(message)
  ) {
    return `not allowed to call ${action}: attach the stack's AuditorPolicy or OperatorPolicy (${message})`;
  }
  if (/region is missing/i.test(message)) return "no region: pass --region or set AWS_REGION";
  return `${action} failed: ${name ? `${name}: ` : ""}${message}`;
}
