/**
 * Shared material for the Lambda tests: fixed keys that appear both in real SPA packets and in the
 * access.conf text the mocked Secrets Manager returns, a fixed clock, the knock environment,
 * function URL events, a recording logger, AWS clients that can never reach a real endpoint, and the
 * EC2 answers (errors, spaknock's tags, DescribeSecurityGroupRules per group) the tests mock.
 */
import { randomBytes } from "node:crypto";
import { DynamoDBClient, GetItemCommand, PutItemCommand } from "@aws-sdk/client-dynamodb";
import {
  DescribeSecurityGroupRulesCommand,
  EC2Client,
  EC2ServiceException,
  type SecurityGroupRule,
  type Tag,
} from "@aws-sdk/client-ec2";
import { SchedulerClient } from "@aws-sdk/client-scheduler";
import { GetSecretValueCommand, SecretsManagerClient } from "@aws-sdk/client-secrets-manager";
import { SNSClient } from "@aws-sdk/client-sns";
import { STSClient } from "@aws-sdk/client-sts";
import type { LambdaFunctionURLEvent } from "aws-lambda";
import { mockClient } from "aws-sdk-client-mock";
import { afterAll, beforeAll } from "vitest";
import { buildSpaPacket, randomValueFromBytes, type SpaKeys } from "../../core/index.js";
import type { AwsClients, StructuredLog } from "../../lambda/clients.js";
import {
  type KnockEnvironment,
  knockEnvironment,
  revokeEnvironment,
} from "../../lambda/environment.js";
import { createKnockService } from "../../lambda/knock-service.js";
import { createRevokeService } from "../../lambda/revoke-service.js";

/** 2026-11-25T12:00:00Z: the clock every mocked test runs at. */
export const NOW_MS = Date.UTC(2026, 10, 25, 12, 0, 0);
export const NOW_SEC = NOW_MS / 1000;

export const REGION = "eu-west-1";
export const DUMMY_CREDENTIALS = { accessKeyId: "test", secretAccessKey: "test" } as const;

/** Environment for any AWS SDK code in the test process or its children: no IMDS, no profile. */
export const DUMMY_AWS_ENV: Readonly<Record<string, string>> = {
  AWS_ACCESS_KEY_ID: "test",
  AWS_SECRET_ACCESS_KEY: "test",
  AWS_REGION: REGION,
  AWS_DEFAULT_REGION: REGION,
  AWS_EC2_METADATA_DISABLED: "true",
  AWS_CONFIG_FILE: "/dev/null",
  AWS_SHARED_CREDENTIALS_FILE: "/dev/null",
};

/** Puts DUMMY_AWS_ENV into process.env for the file's tests and restores it afterwards. */
export function useDummyAwsEnvironment(): void {
  const saved = new Map<string, string | undefined>();
  beforeAll(() => {
    for (const [k, v] of Object.entries(DUMMY_AWS_ENV)) {
      saved.set(k, process.env[k]);
      process.env[k] = v;
    }
    saved.set("AWS_PROFILE", process.env.AWS_PROFILE);
    delete process.env.AWS_PROFILE;
  });
  afterAll(() => {
    for (const [k, v] of saved) {
      if (v === undefined) delete process.env[k];
      else process.env[k] = v;
    }
  });
}

/** Explicit region and static credentials: no credential provider ever runs. */
export function clientConfig(endpoint?: string) {
  return { region: REGION, credentials: DUMMY_CREDENTIALS, ...(endpoint ? { endpoint } : {}) };
}

export const SG_A = "sg-0123456789abcdef0";
export const SG_B = "sg-0fedcba9876543210";
export const SG_UNMANAGED = "sg-0aaaaaaaaaaaaaaaa";

/** 32-byte Rijndael key and 64-byte HMAC key, as fwknop --key-gen makes them. */
export const KEY_BASE64 = Buffer.from(
  Array.from({ length: 32 }, (_, i) => (i * 7 + 3) & 0xff),
).toString("base64");
export const HMAC_KEY_BASE64 = Buffer.from(
  Array.from({ length: 64 }, (_, i) => (i * 13 + 101) & 0xff),
).toString("base64");

export const KEYS: SpaKeys = {
  key: Buffer.from(KEY_BASE64, "base64"),
  mode: "cbc",
  hmacKey: Buffer.from(HMAC_KEY_BASE64, "base64"),
  hmacType: "sha256",
};

/** Keys nobody configured: a packet made with them must never verify. */
export const WRONG_KEYS: SpaKeys = {
  key: Buffer.alloc(32, 0x41),
  mode: "cbc",
  hmacKey: Buffer.alloc(64, 0x42),
  hmacType: "sha256",
};

/** The access.conf text stored in the secret, with the Lambda's SECURITY_GROUPS keyword. */
export function accessConf(groups: readonly string[] = [SG_A, SG_B], extra = ""): string {
  return [
    "SOURCE ANY",
    `KEY_BASE64 ${KEY_BASE64}`,
    `HMAC_KEY_BASE64 ${HMAC_KEY_BASE64}`,
    "OPEN_PORTS tcp/22",
    "FW_ACCESS_TIMEOUT 30",
    `SECURITY_GROUPS ${groups.join(", ")}`,
    extra,
    "",
  ].join("\n");
}

export interface PacketFields {
  readonly username?: string;
  /** `allow_ip,proto/port`. */
  readonly message?: string;
  /** Epoch seconds. */
  readonly timestamp?: number;
  readonly keys?: SpaKeys;
}

/** A real SPA packet's wire string, made by core's client direction (fresh random and salt). */
export function spaData(fields: PacketFields = {}): string {
  return buildSpaPacket(
    {
      randomValue: randomValueFromBytes(randomBytes(8)),
      username: fields.username ?? "alice",
      timestamp: fields.timestamp ?? NOW_SEC,
      messageType: 1,
      message: fields.message ?? "203.0.113.7,tcp/22",
      natAccess: null,
      clientTimeout: 0,
      digestType: "sha256",
    },
    fields.keys ?? KEYS,
    randomBytes(8),
  ).wire;
}

/** What the relay sends: `{"spa", "sourceIp", "sourcePort", "receivedAt"}`. */
export function relayEvent(spa: string, sourceIp = "203.0.113.7", receivedAt = NOW_MS) {
  return { spa, sourceIp, sourcePort: 40123, receivedAt };
}

/** A Lambda function URL request (payload format 2.0), as AWS delivers it. */
export function urlEvent(
  method: "GET" | "POST" | "PUT",
  opts: { rawPath?: string; body?: string; isBase64Encoded?: boolean; sourceIp?: string } = {},
): LambdaFunctionURLEvent {
  const rawPath = opts.rawPath ?? "/";
  return {
    version: "2.0",
    routeKey: "$default",
    rawPath,
    rawQueryString: "",
    headers: { host: "abc.lambda-url.eu-west-1.on.aws", "user-agent": "Fwknop/2.6.10" },
    requestContext: {
      accountId: "anonymous",
      apiId: "abc",
      domainName: "abc.lambda-url.eu-west-1.on.aws",
      domainPrefix: "abc",
      http: {
        method,
        path: rawPath,
        protocol: "HTTP/1.1",
        sourceIp: opts.sourceIp ?? "203.0.113.7",
        userAgent: "Fwknop/2.6.10",
      },
      requestId: "11111111-2222-3333-4444-555555555555",
      routeKey: "$default",
      stage: "$default",
      time: "25/Nov/2026:12:00:00 +0000",
      timeEpoch: NOW_MS,
    },
    isBase64Encoded: opts.isBase64Encoded ?? false,
    ...(opts.body !== undefined ? { body: opts.body } : {}),
  };
}

export const ARNS = {
  revokeFunction: "arn:aws:lambda:eu-west-1:111122223333:function:spaknock-revoke",
  schedulerRole: "arn:aws:iam::111122223333:role/spaknock-scheduler",
  openerRole: "arn:aws:iam::111122223333:role/spaknock-opener",
  topic: "arn:aws:sns:eu-west-1:111122223333:spaknock",
} as const;

/** The knock function's environment, parsed by the same schema as at a cold start. */
export function knockEnv(overrides: Record<string, string> = {}): KnockEnvironment {
  return knockEnvironment.parse({
    REPLAY_TABLE: "spaknock-replay",
    ACCESS_CONFIG_SECRET: "spaknock/access.conf",
    SCHEDULE_GROUP: "spaknock",
    REVOKE_FUNCTION_ARN: ARNS.revokeFunction,
    SCHEDULER_ROLE_ARN: ARNS.schedulerRole,
    MANAGED_GROUPS: `${SG_A},${SG_B}`,
    ...overrides,
  });
}

/** The knock function's work at NOW_MS with knockEnv(env), and the log it writes. */
export function knockService(env: Record<string, string> = {}) {
  const log = new RecordingLog();
  return { knock: createKnockService(knockEnv(env), awsClients(), log, () => NOW_MS), log };
}

/** The revoke and sweep functions' work at NOW_MS, managing SG_A and SG_B, and their log. */
export function revokeService(env: Record<string, string> = {}) {
  const log = new RecordingLog();
  const svc = createRevokeService(
    revokeEnvironment.parse({ MANAGED_GROUPS: `${SG_A},${SG_B}`, ...env }),
    awsClients(),
    log,
    () => NOW_MS,
  );
  return { svc, log };
}

export interface LogEntry {
  readonly level: "info" | "warn" | "error";
  readonly message: string;
  readonly extra: Record<string, unknown>;
}

/** A StructuredLog that keeps every line for assertions. */
export class RecordingLog implements StructuredLog {
  readonly entries: LogEntry[] = [];
  info(message: string, extra: Record<string, unknown> = {}): void {
    this.entries.push({ level: "info", message, extra });
  }
  warn(message: string, extra: Record<string, unknown> = {}): void {
    this.entries.push({ level: "warn", message, extra });
  }
  error(message: string, extra: Record<string, unknown> = {}): void {
    this.entries.push({ level: "error", message, extra });
  }
  /** The `code` of every line that has one, in order. */
  codes(): unknown[] {
    return this.entries.filter((e) => "code" in e.extra).map((e) => e.extra.code);
  }
  /** Everything logged, as one string (to check that no key leaks). */
  text(): string {
    return JSON.stringify(this.entries);
  }
}

/** One client of each kind, with explicit region and credentials. */
export function awsClients(overrides: Partial<AwsClients> = {}): AwsClients {
  return {
    dynamodb: new DynamoDBClient(clientConfig()),
    ec2: new EC2Client(clientConfig()),
    scheduler: new SchedulerClient(clientConfig()),
    secrets: new SecretsManagerClient(clientConfig()),
    sns: new SNSClient(clientConfig()),
    sts: new STSClient(clientConfig()),
    ...overrides,
  };
}

/**
 * Class-level mocks of every client but DynamoDB's (every instance, including clients the code
 * builds itself, such as the EC2 client under the opener role).
 */
export function mockAwsExceptDynamoDb() {
  return {
    ec2: mockClient(EC2Client),
    scheduler: mockClient(SchedulerClient),
    secrets: mockClient(SecretsManagerClient),
    sns: mockClient(SNSClient),
    sts: mockClient(STSClient),
  };
}

/** Class-level mocks of every client the Lambda functions use. */
export function mockAws() {
  return { ...mockAwsExceptDynamoDb(), dynamodb: mockClient(DynamoDBClient) };
}

type ServiceMocks = ReturnType<typeof mockAwsExceptDynamoDb> & {
  readonly dynamodb?: ReturnType<typeof mockAws>["dynamodb"];
};

/** Resets every mock and installs the happy-path answers of the stores (not of EC2). */
export function resetAws(mocks: ServiceMocks, conf = accessConf()): void {
  for (const m of Object.values(mocks)) m.reset();
  mocks.secrets.on(GetSecretValueCommand).resolves({ SecretString: conf });
  mocks.dynamodb?.on(GetItemCommand).resolves({});
  mocks.dynamodb?.on(PutItemCommand).resolves({});
}

/** Restores every mocked class (afterAll). */
export function restoreAws(mocks: ServiceMocks): void {
  for (const m of Object.values(mocks)) m.restore();
}

/** The input objects of every call of one command on a mocked client, in call order. */
export function inputsOf<TCmdIn extends object>(
  mock: { commandCalls(command: never): { readonly args: readonly unknown[] }[] },
  command: new (...args: never[]) => { readonly input: TCmdIn },
): TCmdIn[] {
  return mock.commandCalls(command as never).map((c) => (c.args[0] as { input: TCmdIn }).input);
}

/** An EC2 API error as the SDK throws it: `name` is EC2's error code. */
export function ec2Error(name: string, message = name): EC2ServiceException {
  return new EC2ServiceException({ name, $fault: "client", $metadata: {}, message });
}

/** When a grant made at NOW_SEC under accessConf()'s FW_ACCESS_TIMEOUT 30 expires. */
export const GRANT_EXPIRES = NOW_SEC + 30;

/** The tags spaknock writes on a rule of stanza #1, written out independently of the adapter. */
export function managedTags(expires = GRANT_EXPIRES, user = "alice"): Tag[] {
  return [
    { Key: "spaknock:managed", Value: "true" },
    { Key: "spaknock:user", Value: user },
    { Key: "spaknock:expires", Value: String(expires) },
    { Key: "spaknock:stanza", Value: "1" },
  ];
}

/** DescribeSecurityGroupRules answers, in one page, with the rules of the group it filters on. */
export function describeRulesPerGroup(
  ec2: ReturnType<typeof mockAwsExceptDynamoDb>["ec2"],
  rulesOf: (groupId: string) => SecurityGroupRule[],
): void {
  ec2.on(DescribeSecurityGroupRulesCommand).callsFake((input) => ({
    SecurityGroupRules: rulesOf(
      (input as { Filters: { Values: string[] }[] }).Filters[0]?.Values[0] ?? "",
    ),
  }));
}
