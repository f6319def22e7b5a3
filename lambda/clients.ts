/**
 * AWS clients, built once per container (module scope of each handler). Each function builds only
 * the clients it calls: the SDK clients are most of a bundle's size and of its cold start, and
 * esbuild keeps whatever a module imports (the knock function builds all six in knock.ts, revoke
 * and sweep three in close-clients.ts). Only types are imported here.
 */

import { Logger } from "@aws-lambda-powertools/logger";
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

export function createLogger(serviceName: string): StructuredLog {
  const logger = new Logger({ serviceName });
  return {
    info: (m, extra) => logger.info(m, extra ?? {}),
    warn: (m, extra) => logger.warn(m, extra ?? {}),
    error: (m, extra) => logger.error(m, extra ?? {}),
  };
}
