/** Lambda entry: a knock from the relay or from a function URL request. */
import { DynamoDBClient } from "@aws-sdk/client-dynamodb";
import { EC2Client } from "@aws-sdk/client-ec2";
import { SchedulerClient } from "@aws-sdk/client-scheduler";
import { SecretsManagerClient } from "@aws-sdk/client-secrets-manager";
import { SNSClient } from "@aws-sdk/client-sns";
import { STSClient } from "@aws-sdk/client-sts";
import { type AwsClients, createLogger, lazyClients } from "./clients.js";
import { knockEnvironment, readEnvironment } from "./environment.js";
import { createKnockService, type KnockService } from "./knock-service.js";

const clients: AwsClients = lazyClients({
  dynamodb: () => new DynamoDBClient({}),
  ec2: () => new EC2Client({}),
  scheduler: () => new SchedulerClient({}),
  secrets: () => new SecretsManagerClient({}),
  sns: () => new SNSClient({}),
  sts: () => new STSClient({}),
});
const log = createLogger("spaknock-knock");
let service: KnockService | undefined;

export const handler = async (event: unknown) => {
  service ??= createKnockService(readEnvironment(knockEnvironment, process.env), clients, log);
  return service.handle(event);
};
