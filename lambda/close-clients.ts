/** The clients of the revoke and sweep functions: the three they call, no more. */
import { EC2Client } from "@aws-sdk/client-ec2";
import { SNSClient } from "@aws-sdk/client-sns";
import { STSClient } from "@aws-sdk/client-sts";
import { type CloseClients, lazyClients } from "./clients.js";

export function createCloseClients(): CloseClients {
  return lazyClients({
    ec2: () => new EC2Client({}),
    sts: () => new STSClient({}),
    sns: () => new SNSClient({}),
  });
}
