/**
 * The repository's CDK app: one stack holding one `SpaKnocker`, configured from
 * `spaknock.cloud.json` (validated at synth time), checked by cdk-nag's AwsSolutions pack.
 * `cdk/app.mjs` runs it for the CDK CLI; tests call `createApp` directly.
 */
import { existsSync } from "node:fs";
import { isAbsolute, join, resolve } from "node:path";
import { App, Duration, Stack, Tags, Validations } from "aws-cdk-lib";
import { InstanceType, Vpc } from "aws-cdk-lib/aws-ec2";
import type { RetentionDays } from "aws-cdk-lib/aws-logs";
import { AwsSolutionsChecks } from "cdk-nag";
import { type CloudConfig, loadCloudConfig } from "./cloud-config.js";
import { SpaKnocker } from "./spa-knocker.js";

/** Context key (`cdk synth -c spaknockConfig=path`) and environment variable naming the file. */
export const CONFIG_CONTEXT_KEY = "spaknockConfig";
export const CONFIG_ENV = "SPAKNOCK_CLOUD_CONFIG";
export const DEFAULT_CONFIG_FILE = "spaknock.cloud.json";
/** Used, with a note on stderr, when there is no config file yet (a fresh clone, CI). */
export const EXAMPLE_CONFIG_FILE = "spaknock.cloud.json.example";

export interface CreateAppOptions {
  /** Overrides context and environment. */
  readonly configPath?: string;
  /** Where `synth` writes the cloud assembly; default: the CLI's, or a temporary folder. */
  readonly outdir?: string;
  /** Run cdk-nag's AwsSolutions pack during synth (default: true). */
  readonly nag?: boolean;
  /** Extra CDK context, e.g. `{ "aws:cdk:bundling-stacks": [] }` to skip bundling in tests. */
  readonly context?: Record<string, unknown>;
  /** Where relative paths resolve and the default file is looked for (default: cwd). */
  readonly cwd?: string;
  /** For notes such as "using the example config" (default: stderr). */
  readonly note?: (message: string) => void;
}

export interface SpaknockApp {
  readonly app: App;
  readonly stack: Stack;
  readonly knocker: SpaKnocker;
  readonly config: CloudConfig;
  readonly configPath: string;
}

/** Which config file: option, then `-c spaknockConfig=`, then $SPAKNOCK_CLOUD_CONFIG, then default. */
export function resolveConfigPath(
  app: App,
  options: CreateAppOptions,
  env: NodeJS.ProcessEnv = process.env,
): string {
  const cwd = options.cwd ?? process.cwd();
  const fromContext: unknown = app.node.tryGetContext(CONFIG_CONTEXT_KEY);
  const named =
    options.configPath ??
    (typeof fromContext === "string" && fromContext !== "" ? fromContext : undefined) ??
    (env[CONFIG_ENV] || undefined);
  if (named) return isAbsolute(named) ? named : resolve(cwd, named);
  const file = join(cwd, DEFAULT_CONFIG_FILE);
  if (existsSync(file)) return file;
  const example = join(cwd, EXAMPLE_CONFIG_FILE);
  (options.note ?? ((m) => process.stderr.write(`${m}\n`)))(
    `spaknock: no ${DEFAULT_CONFIG_FILE}; synthesizing ${EXAMPLE_CONFIG_FILE} (copy it and edit it to deploy your own)`,
  );
  return example;
}

export function createApp(options: CreateAppOptions = {}): SpaknockApp {
  const app = new App({
    ...(options.outdir ? { outdir: options.outdir } : {}),
    ...(options.context ? { context: options.context } : {}),
  });
  const configPath = resolveConfigPath(app, options);
  const config = loadCloudConfig(configPath);
  if (options.nag ?? true) {
    // Acknowledged findings are written into the template's Metadata, with their reasons.
    Validations.of(app).addPlugins(
      new AwsSolutionsChecks(app, { writeSuppressionsToCloudFormation: true }),
    );
  }
  // Environment-agnostic on purpose: no account, no region, no lookups.
  const stack = new Stack(app, config.stackName, {
    description: "spaknock: Single Packet Authorization for EC2 security groups",
  });
  for (const [key, value] of Object.entries(config.tags)) Tags.of(stack).add(key, value);
  const vpc = config.vpc
    ? Vpc.fromVpcAttributes(stack, "Vpc", {
        vpcId: config.vpc.vpcId,
        vpcCidrBlock: config.vpc.vpcCidrBlock,
        availabilityZones: config.vpc.availabilityZones,
        publicSubnetIds: config.vpc.publicSubnetIds,
      })
    : undefined;
  const knocker = new SpaKnocker(stack, "SpaKnocker", {
    guardedSecurityGroupIds: config.guardedSecurityGroupIds,
    ...(vpc ? { vpc } : {}),
    ipv6: config.ipv6,
    relay: {
      mode: config.relay.mode,
      instanceType: new InstanceType(config.relay.instanceType),
      port: config.relay.port,
    },
    functionUrl: config.functionUrl,
    notificationEmails: config.notificationEmails,
    openerRole: config.openerRole,
    maxSpaPacketAge: Duration.seconds(config.maxSpaPacketAgeSeconds),
    knockTimeout: Duration.seconds(config.knockTimeoutSeconds),
    accessConfigTtl: Duration.seconds(config.accessConfigTtlSeconds),
    reservedConcurrency: config.reservedConcurrency,
    logRetention: config.logRetentionDays as RetentionDays,
    clientAccess: config.clientAccess,
  });
  return { app, stack, knocker, config, configPath };
}
