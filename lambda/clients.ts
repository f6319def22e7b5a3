/**
 * AWS clients, at most one of each per container. Each function bundles only the clients it calls:
 * the SDK clients are most of a bundle's size and of its cold start, and esbuild keeps whatever a
 * module imports (the knock function has all six in knock.ts, revoke and sweep three in
 * close-clients.ts). Each is built when first read (lazyClients), not at the cold start: a refused
 * packet needs Secrets Manager's alone, and STS and SNS serve only the configurations with an
 * opener role or a notification topic. Only types are imported here.
 */

import type { DynamoDBClient } from "@aws-sdk/client-dynamodb";
import type { EC2Client } from "@aws-sdk/client-ec2";
import type { SchedulerClient } from "@aws-sdk/client-scheduler";
import type { SecretsManagerClient } from "@aws-sdk/client-secrets-manager";
import type { SNSClient } from "@aws-sdk/client-sns";
import type { STSClient } from "@aws-sdk/client-sts";
import type { SpaErrorCode } from "../core/index.js";

export interface AwsClients {
  readonly dynamodb: DynamoDBClient;
  readonly ec2: EC2Client;
  readonly scheduler: SchedulerClient;
  readonly secrets: SecretsManagerClient;
  readonly sns: SNSClient;
  readonly sts: STSClient;
}

/** A log line's fields; a reason code must be one of core/errors.ts, so a typo fails to compile. */
export type LogFields = Record<string, unknown> & { readonly code?: SpaErrorCode };

export interface StructuredLog {
  info(message: string, extra?: LogFields): void;
  warn(message: string, extra?: LogFields): void;
  error(message: string, extra?: LogFields): void;
}

/** What revoke and sweep call: EC2, STS (the closer role), SNS (close notices). */
export type CloseClients = Pick<AwsClients, "ec2" | "sts" | "sns">;

/**
 * The clients, each built by its factory on first read and kept: what the functions' services
 * read as plain properties (tests pass clients built beforehand).
 */
export function lazyClients<T extends object>(
  factories: { readonly [K in keyof T]: () => T[K] },
): T {
  const built: Partial<T> = {};
  const clients = {} as T;
  for (const name of Object.keys(factories) as (keyof T)[]) {
    Object.defineProperty(clients, name, {
      enumerable: true,
      get: () => {
        if (!(name in built)) built[name] = factories[name]();
        return built[name];
      },
    });
  }
  return clients;
}

/** Lambda's log levels, lowest first (what AWS_LAMBDA_LOG_LEVEL may say). */
const LEVELS = ["TRACE", "DEBUG", "INFO", "WARN", "ERROR", "FATAL"] as const;

/** Errors as their name and message (JSON.stringify writes `{}`), bigints as text. */
function jsonValue(_key: string, value: unknown): unknown {
  if (value instanceof Error) return { name: value.name, message: value.message };
  return typeof value === "bigint" ? value.toString() : value;
}

/**
 * One JSON object per line on stdout: `level`, `message`, `timestamp`, `service`, then the
 * fields, as CloudWatch Logs Insights reads them. Below the level the function's log
 * configuration sets (AWS_LAMBDA_LOG_LEVEL, INFO in the template) nothing is written.
 *
 * Not Powertools' Logger: it was 21 KiB of each bundle, set the SDK's user agent at import, and
 * took about five times the CPU of this for a line (measured on Node 24, issue 15), for features
 * these functions do not use (sampling, buffering, context injection).
 */
export function createLogger(
  serviceName: string,
  env: Readonly<Record<string, string | undefined>> = process.env,
  write: (line: string) => void = (line) => {
    process.stdout.write(line);
  },
): StructuredLog {
  const configured = LEVELS.indexOf(
    (env.AWS_LAMBDA_LOG_LEVEL ?? "INFO").toUpperCase() as (typeof LEVELS)[number],
  );
  const threshold = configured < 0 ? LEVELS.indexOf("INFO") : configured;
  const line = (level: "INFO" | "WARN" | "ERROR", message: string, extra?: LogFields) => {
    if (LEVELS.indexOf(level) < threshold) return;
    const head = { level, message, timestamp: new Date().toISOString(), service: serviceName };
    let text: string;
    try {
      text = JSON.stringify({ ...head, ...extra, ...head }, jsonValue);
    } catch (err) {
      // A field that cannot be written (a cycle) must not fail the invocation.
      text = JSON.stringify({ ...head, logError: String(err) });
    }
    write(`${text}\n`);
  };
  return {
    info: (m, extra) => line("INFO", m, extra),
    warn: (m, extra) => line("WARN", m, extra),
    error: (m, extra) => line("ERROR", m, extra),
  };
}
