/**
 * `spaknock.cloud.json`: what the repository's CDK app deploys, validated with zod at synth time.
 * Every bad field gets one line naming it; unknown fields are errors (a typo must not silently
 * fall back to a default). The file never holds key material: keys live only in the Secrets
 * Manager secret, put there after deploy (cdk/README.md).
 */
import { readFileSync } from "node:fs";
import { z } from "zod";
import { GRAVITON_INSTANCE_TYPE, SECURITY_GROUP_ID, SUBNET_ID, VPC_ID } from "./aws-ids.js";

/** fwknop's ACCESS syntax for the ~/.fwknoprc skeleton: proto/port[,proto/port...]. */
const ACCESS_LIST = /^(?:tcp|udp)\/\d{1,5}(?:,(?:tcp|udp)\/\d{1,5})*$/;
const IPV4_CIDR = /^(?:\d{1,3}\.){3}\d{1,3}\/\d{1,2}$/;
/** CloudFormation stack names. */
const STACK_NAME = /^[A-Za-z][A-Za-z0-9-]{0,127}$/;

/** The retention periods CloudWatch Logs accepts, in days. */
export const LOG_RETENTION_DAYS = [
  1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288,
  3653,
] as const;

export const RELAY_MODES = ["eip", "nlb", "none"] as const;

const int = (min: number, max: number, what: string) =>
  z
    .number({ error: `expected a whole number of ${what}` })
    .int(`expected a whole number of ${what}`)
    .min(min, `must be between ${min} and ${max} ${what}`)
    .max(max, `must be between ${min} and ${max} ${what}`);

const vpcSchema = z.strictObject({
  vpcId: z.string().regex(VPC_ID, 'not a VPC id ("vpc-" and 8 or 17 hex digits)'),
  vpcCidrBlock: z.string().regex(IPV4_CIDR, "not an IPv4 CIDR block"),
  availabilityZones: z.array(z.string().min(1)).min(1, "name at least one zone"),
  publicSubnetIds: z
    .array(z.string().regex(SUBNET_ID, 'not a subnet id ("subnet-" and 8 or 17 hex digits)'))
    .min(1, "name at least one public subnet"),
});

const relaySchema = z.strictObject({
  mode: z
    .enum(RELAY_MODES, { error: `expected one of ${RELAY_MODES.map((m) => `"${m}"`).join(", ")}` })
    .default("eip"),
  instanceType: z
    .string()
    .regex(GRAVITON_INSTANCE_TYPE, "expected a Graviton (arm64) instance type such as t4g.nano")
    .default("t4g.nano"),
  // The relay runs as an unprivileged systemd DynamicUser, so it cannot bind below 1024.
  port: int(1024, 65535, "(a port number)").default(62201),
});

export const cloudConfigSchema = z
  .strictObject({
    /** JSON Schema pointers and comments are allowed and ignored. */
    $schema: z.string().optional(),
    $comment: z.string().optional(),
    stackName: z
      .string()
      .regex(STACK_NAME, "expected a CloudFormation stack name (letters, digits, hyphens)")
      .default("Spaknock"),
    guardedSecurityGroupIds: z
      .array(
        z
          .string()
          .regex(SECURITY_GROUP_ID, 'not a security group id ("sg-" and 8 or 17 hex digits)'),
      )
      .refine((ids) => new Set(ids).size === ids.length, "lists a group twice")
      .default([]),
    vpc: vpcSchema.optional(),
    /**
     * Regions `spaknock audit --all-regions` (and grants/revoke) ask; the stack itself deploys to
     * the CDK's region. Not read by the CDK app.
     */
    regions: z
      .array(z.string().regex(/^[a-z]{2}(-[a-z]+)+-[0-9]$/, "not a region name (eu-west-1)"))
      .optional(),
    /** The VPC has IPv6 (a new one is made dual-stack): the relay takes IPv6 senders too. */
    ipv6: z.boolean().default(false),
    relay: relaySchema.default({ mode: "eip", instanceType: "t4g.nano", port: 62201 }),
    functionUrl: z.boolean().default(false),
    notificationEmails: z.array(z.email("not an email address")).default([]),
    openerRole: z.boolean().default(true),
    maxSpaPacketAgeSeconds: int(10, 3600, "seconds").default(120),
    knockTimeoutSeconds: int(3, 60, "seconds").default(15),
    accessConfigTtlSeconds: int(0, 3600, "seconds").default(300),
    reservedConcurrency: z
      .union([
        z.literal(false),
        z.strictObject({
          knock: int(1, 1000, "concurrent invocations"),
          revoke: int(1, 1000, "concurrent invocations"),
          sweep: int(1, 10, "concurrent invocations"),
        }),
      ])
      .default({ knock: 10, revoke: 5, sweep: 1 }),
    logRetentionDays: z
      .number()
      .refine((d) => (LOG_RETENTION_DAYS as readonly number[]).includes(d), {
        message: `expected one of CloudWatch's retention periods: ${LOG_RETENTION_DAYS.join(", ")}`,
      })
      .default(90),
    clientAccess: z
      .string()
      .regex(ACCESS_LIST, 'expected fwknop ACCESS syntax such as "tcp/22" or "tcp/22,tcp/443"')
      .default("tcp/22"),
    tags: z.record(z.string().min(1).max(128), z.string().max(256)).default({}),
  })
  .superRefine((c, ctx) => {
    if (c.relay.mode === "none" && !c.functionUrl) {
      ctx.addIssue({
        code: "custom",
        path: ["relay", "mode"],
        message: '"none" needs "functionUrl": true, or nothing could reach the knock function',
      });
    }
    if (c.vpc && c.vpc.publicSubnetIds.length !== c.vpc.availabilityZones.length) {
      ctx.addIssue({
        code: "custom",
        path: ["vpc", "publicSubnetIds"],
        message: "needs one subnet per availability zone, in the same order",
      });
    }
    if (c.ipv6 && c.relay.mode === "nlb") {
      ctx.addIssue({
        code: "custom",
        path: ["ipv6"],
        message:
          'needs relay mode "eip" or "none": a dual-stack Network Load Balancer cannot forward UDP to instances',
      });
    }
    if (c.relay.mode === "nlb" && (c.vpc?.availabilityZones.length ?? 2) < 2) {
      ctx.addIssue({
        code: "custom",
        path: ["vpc", "availabilityZones"],
        message: 'relay mode "nlb" spans two zones: name at least two',
      });
    }
  });

export type CloudConfig = z.infer<typeof cloudConfigSchema>;

/** A config file that cannot be used; `problems` has one line per bad field. */
export class CloudConfigError extends Error {
  override readonly name = "CloudConfigError";
  constructor(
    readonly file: string,
    readonly problems: readonly string[],
  ) {
    super(problems.map((p) => `${file}: ${p}`).join("\n"));
  }
}

function describeIssue(issue: z.core.$ZodIssue): { path: string; text: string }[] {
  const at = issue.path.map(String).join(".");
  if (issue.code === "unrecognized_keys") {
    return issue.keys.map((key) => ({
      path: at ? `${at}.${key}` : key,
      text: `${at ? `${at}.` : ""}${key}: unknown field`,
    }));
  }
  return [{ path: at, text: `${at || "(top level)"}: ${issue.message}` }];
}

/** Validates parsed JSON; throws CloudConfigError listing each bad field once. */
export function parseCloudConfig(json: unknown, file: string): CloudConfig {
  const result = cloudConfigSchema.safeParse(json);
  if (result.success) return result.data;
  const seen = new Set<string>();
  const problems: string[] = [];
  for (const issue of result.error.issues) {
    for (const { path, text } of describeIssue(issue)) {
      if (seen.has(path)) continue;
      seen.add(path);
      problems.push(text);
    }
  }
  throw new CloudConfigError(file, problems);
}

/** Reads and validates a config file; throws CloudConfigError for a missing or bad one. */
export function loadCloudConfig(file: string): CloudConfig {
  let text: string;
  try {
    text = readFileSync(file, "utf8");
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? "unreadable";
    throw new CloudConfigError(file, [`cannot read the file (${code})`]);
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (err) {
    throw new CloudConfigError(file, [`not valid JSON: ${(err as Error).message}`]);
  }
  return parseCloudConfig(json, file);
}
