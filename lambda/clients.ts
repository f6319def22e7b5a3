/** AWS clients, built once per container (module scope of each handler). */

import { Logger } from "@aws-lambda-powertools/logger";
import { DynamoDBClient } from "@aws-sdk/client-dynamodb";
import { EC2Client } from "@aws-sdk/client-ec2";
import { SchedulerClient } from "@aws-sdk/client-scheduler";
import { SecretsManagerClient } from "@aws-sdk/client-secrets-manager";
import { SNSClient } from "@aws-sdk/client-sns";
import { STSClient } from "@aws-sdk/client-sts";
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

export function createAwsClients(): AwsClients {
  return {
    dynamodb: new DynamoDBClient({}),
    ec2: new EC2Client({}),
    scheduler: new SchedulerClient({}),
    secrets: new SecretsManagerClient({}),
    sns: new SNSClient({}),
    sts: new STSClient({}),
  };
}

export function createLogger(serviceName: string): StructuredLog {
  const logger = new Logger({ serviceName });
  return {
    info: (m, extra) => logger.info(m, extra ?? {}),
    warn: (m, extra) => logger.warn(m, extra ?? {}),
    error: (m, extra) => logger.error(m, extra ?? {}),
  };
}
