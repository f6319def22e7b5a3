// The replay table against dynalite (a DynamoDB-compatible server from npm, in memory, on
// loopback): the conditional put really is atomic, so one packet handled by 20 concurrent knock
// functions opens exactly once, and a copy arriving later opens nothing. EC2, Scheduler and
// Secrets Manager are mocked; DynamoDB is a real client talking to dynalite.
import type { Server } from "node:http";
import type { AddressInfo } from "node:net";
import {
  CreateTableCommand,
  DescribeTableCommand,
  DynamoDBClient,
  GetItemCommand,
  PutItemCommand,
} from "@aws-sdk/client-dynamodb";
import {
  AuthorizeSecurityGroupIngressCommand,
  type AuthorizeSecurityGroupIngressCommandInput,
} from "@aws-sdk/client-ec2";
import { CreateScheduleCommand } from "@aws-sdk/client-scheduler";
import dynalite from "dynalite";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { replayDigest } from "../../core/index.js";
import { DynamoDbReplayCache } from "../../lambda/adapters/dynamodb-replay.js";
import { createKnockService } from "../../lambda/knock-service.js";
import { authorizedKeysText, buildWithJose, testKeyPair } from "../helpers/jose-packets.js";
import {
  accessConf,
  awsClients,
  clientConfig,
  inputsOf,
  knockEnv,
  mockAwsExceptDynamoDb,
  NOW_MS,
  NOW_SEC,
  RecordingLog,
  relayEvent,
  resetAws,
  restoreAws,
  SG_A,
  spaData,
  useDummyAwsEnvironment,
} from "../helpers/lambda-fixtures.js";

useDummyAwsEnvironment();

const TABLE = "spaknock-replay";
const CONCURRENCY = 20;
const RETENTION = { maxPacketAge: 120, eventLagSec: 10, marginSec: 60 };
/** What the knock function keeps a digest for: age 120 s + event lag 10 s + 60 s of clock margin. */
const KEPT = 120 + 10 + 60;

let server: Server;
let endpoint: string;
let dynamodb: DynamoDBClient;
const clients: DynamoDBClient[] = [];
let mocks: ReturnType<typeof mockAwsExceptDynamoDb>;

beforeAll(async () => {
  server = dynalite({ createTableMs: 0 });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  endpoint = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  dynamodb = new DynamoDBClient(clientConfig(endpoint));
  await dynamodb.send(
    new CreateTableCommand({
      TableName: TABLE,
      AttributeDefinitions: [{ AttributeName: "pk", AttributeType: "S" }],
      KeySchema: [{ AttributeName: "pk", KeyType: "HASH" }],
      BillingMode: "PAY_PER_REQUEST",
    }),
  );
  for (let i = 0; i < 50; i++) {
    const out = await dynamodb.send(new DescribeTableCommand({ TableName: TABLE }));
    if (out.Table?.TableStatus === "ACTIVE") break;
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  mocks = mockAwsExceptDynamoDb();
});

afterAll(async () => {
  restoreAws(mocks);
  for (const c of [dynamodb, ...clients]) c.destroy();
  server.closeAllConnections();
  await new Promise((resolve) => server.close(resolve));
});

beforeEach(() => {
  resetAws(mocks, accessConf([SG_A]));
  mocks.ec2.on(AuthorizeSecurityGroupIngressCommand).callsFake(async () => ({
    Return: true,
    SecurityGroupRules: [{ SecurityGroupRuleId: "sgr-0a1a1a1a1a1a1a1a1", GroupId: SG_A }],
  }));
  mocks.scheduler.on(CreateScheduleCommand).resolves({ ScheduleArn: "arn:aws:scheduler:x" });
});

/** A DynamoDB client for dynalite, destroyed after the file's tests. */
function dynamoDbClient(): DynamoDBClient {
  const client = new DynamoDBClient(clientConfig(endpoint));
  clients.push(client);
  return client;
}

/** One knock function container: its own DynamoDB client, logger and clock. */
function container(nowMs: number) {
  const client = dynamoDbClient();
  const log = new RecordingLog();
  const service = createKnockService(
    knockEnv({ MANAGED_GROUPS: SG_A }),
    awsClients({ dynamodb: client }),
    log,
    () => nowMs,
  );
  return { service, log };
}

async function handleConcurrently(events: readonly unknown[], nowMs: number) {
  const containers = events.map(() => container(nowMs));
  await Promise.all(containers.map((c, i) => c.service.handle(events[i])));
  const logs = containers.flatMap((c) => c.log.entries);
  return {
    granted: logs.filter((e) => e.message === "granted").length,
    codes: logs.filter((e) => e.message === "refused").map((e) => e.extra.code),
  };
}

async function itemOf(spa: string) {
  const out = await dynamodb.send(
    new GetItemCommand({
      TableName: TABLE,
      Key: { pk: { S: replayDigest(spa) } },
      ConsistentRead: true,
    }),
  );
  return out.Item;
}

const authorizeCount = () => mocks.ec2.commandCalls(AuthorizeSecurityGroupIngressCommand).length;

describe("replay table (dynalite)", () => {
  it("opens exactly once when 20 knock functions handle the same packet at once", async () => {
    // Prepare
    const spa = spaData();
    const event = relayEvent(spa);

    // Act
    const first = await handleConcurrently(Array(CONCURRENCY).fill(event), NOW_MS);

    // Assess
    expect(first.granted).toBe(1);
    expect(first.codes).toEqual(Array(CONCURRENCY - 1).fill("SPA_REPLAY"));
    expect(authorizeCount()).toBe(1);
    const [authorize] = inputsOf(mocks.ec2, AuthorizeSecurityGroupIngressCommand);
    expect((authorize as AuthorizeSecurityGroupIngressCommandInput).GroupId).toBe(SG_A);
    expect(mocks.scheduler.commandCalls(CreateScheduleCommand)).toHaveLength(1);
    expect(await itemOf(spa)).toEqual({
      pk: { S: replayDigest(spa) },
      sourceIp: { S: "203.0.113.7" },
      sourcePort: { N: "40123" },
      seenAt: { N: String(NOW_SEC) },
      packetTime: { N: String(NOW_SEC) },
      expiresAt: { N: String(NOW_SEC + KEPT) },
    });

    // Act: a minute later, the same packet again (a redelivery, and a copy sent from elsewhere).
    const later = NOW_MS + 60_000;
    const second = await handleConcurrently(
      Array.from({ length: CONCURRENCY }, (_, i) =>
        i % 2 === 0 ? { ...event, receivedAt: later } : relayEvent(spa, "192.0.2.66", later),
      ),
      later,
    );

    // Assess
    expect(second.granted).toBe(0);
    expect(second.codes).toEqual(Array(CONCURRENCY).fill("SPA_REPLAY"));
    expect(authorizeCount()).toBe(1);
  });

  it("opens exactly once when 20 knock functions handle the same packet from an IPv6 sender", async () => {
    // Prepare: a packet that asks for its source address, relayed from an IPv6 sender
    const spa = spaData({ message: "0.0.0.0,tcp/22" });
    const event = relayEvent(spa, "2001:db8::7");

    // Act
    const first = await handleConcurrently(Array(CONCURRENCY).fill(event), NOW_MS);

    // Assess
    expect(first.granted).toBe(1);
    expect(first.codes).toEqual(Array(CONCURRENCY - 1).fill("SPA_REPLAY"));
    expect(
      inputsOf(mocks.ec2, AuthorizeSecurityGroupIngressCommand).map((i) => i.IpPermissions),
    ).toEqual([
      [
        {
          IpProtocol: "tcp",
          FromPort: 22,
          ToPort: 22,
          Ipv6Ranges: [
            {
              CidrIpv6: "2001:db8::7/128",
              Description: "spaknock user=alice until=2026-11-25T12:00:30Z",
            },
          ],
        },
      ],
    ]);
    expect(mocks.scheduler.commandCalls(CreateScheduleCommand)).toHaveLength(1);
    expect((await itemOf(spa))?.sourceIp).toEqual({ S: "2001:db8::7" });

    // Act: the same packet again, from the same sender spelled out in full, and from another
    // IPv6 address (a copy captured on the way)
    const later = NOW_MS + 30_000;
    const second = await handleConcurrently(
      Array.from({ length: CONCURRENCY }, (_, i) =>
        relayEvent(spa, i % 2 === 0 ? "2001:0db8:0:0:0:0:0:7" : "2001:db8:bad::66", later),
      ),
      later,
    );

    // Assess
    expect(second.granted).toBe(0);
    expect(second.codes).toEqual(Array(CONCURRENCY).fill("SPA_REPLAY"));
    expect(authorizeCount()).toBe(1);
  });

  it("opens exactly once when 20 knock functions handle the same JOSE packet", async () => {
    // Prepare: the server key and alice's key in the secret bundle; a packet built with jose
    const [alice, serverPair] = await Promise.all([testKeyPair("Ed25519"), testKeyPair("X25519")]);
    resetAws(
      mocks,
      JSON.stringify({
        accessConf: `SOURCE ANY\nAUTHORIZED_KEYS team\nSECURITY_GROUPS ${SG_A}\n`,
        authorizedKeys: { team: JSON.parse(authorizedKeysText([{ key: alice, name: "alice" }])) },
        serverKey: serverPair.privateJwk,
      }),
    );
    mocks.ec2.on(AuthorizeSecurityGroupIngressCommand).resolves({
      Return: true,
      SecurityGroupRules: [{ SecurityGroupRuleId: "sgr-0a1a1a1a1a1a1a1a1", GroupId: SG_A }],
    });
    mocks.scheduler.on(CreateScheduleCommand).resolves({ ScheduleArn: "arn:aws:scheduler:x" });
    const spa = await buildWithJose({
      signer: alice,
      server: serverPair,
      username: "alice",
      now: NOW_MS / 1000,
      ip: "::",
    });

    // Act
    const first = await handleConcurrently(
      Array(CONCURRENCY).fill(relayEvent(spa, "2001:db8::7")),
      NOW_MS,
    );

    // Assess
    expect(first.granted).toBe(1);
    expect(first.codes).toEqual(Array(CONCURRENCY - 1).fill("SPA_REPLAY"));
    expect(authorizeCount()).toBe(1);
  });

  it("lets exactly one of 20 concurrent conditional puts claim a digest", async () => {
    const caches = Array.from(
      { length: CONCURRENCY },
      () => new DynamoDbReplayCache(dynamoDbClient(), TABLE, RETENTION, () => NOW_SEC),
    );
    const digest = replayDigest(spaData());
    const meta = {
      sourceIp: "203.0.113.7",
      sourcePort: 40123,
      seenAt: NOW_SEC,
      packetTime: NOW_SEC,
    };
    const claims = await Promise.all(caches.map((c) => c.claim(digest, meta)));
    expect(claims.filter(Boolean)).toHaveLength(1);
    await expect(caches[0]?.claim(digest, meta)).resolves.toBe(false);
  });

  it("claims again a digest whose item is past its TTL but not yet deleted", async () => {
    // Prepare: DynamoDB deletes expired items only eventually; this one is still there.
    const spa = spaData();
    await dynamodb.send(
      new PutItemCommand({
        TableName: TABLE,
        Item: {
          pk: { S: replayDigest(spa) },
          sourceIp: { S: "203.0.113.7" },
          sourcePort: { N: "40000" },
          seenAt: { N: String(NOW_SEC - 400) },
          expiresAt: { N: String(NOW_SEC - 1) },
        },
      }),
    );

    // Act
    const outcome = await handleConcurrently(Array(CONCURRENCY).fill(relayEvent(spa)), NOW_MS);

    // Assess
    expect(outcome.granted).toBe(1);
    expect(authorizeCount()).toBe(1);
    expect((await itemOf(spa))?.expiresAt).toEqual({ N: String(NOW_SEC + KEPT) });
  });

  it("refuses a digest whose item has not expired yet", async () => {
    const spa = spaData();
    await dynamodb.send(
      new PutItemCommand({
        TableName: TABLE,
        Item: { pk: { S: replayDigest(spa) }, expiresAt: { N: String(NOW_SEC) } },
      }),
    );
    const outcome = await handleConcurrently([relayEvent(spa)], NOW_MS);
    expect(outcome).toEqual({ granted: 0, codes: ["SPA_REPLAY"] });
    expect(authorizeCount()).toBe(0);
  });
});

// Issue 17.1: Lambda's asynchronous queue can hold a throttled event for up to 6 hours, and the
// packet's age is checked against the relay's receive time. A replayed copy must never outlive
// its replay record, whichever clock runs late.
describe("a replayed packet delivered late opens nothing (dynalite)", () => {
  const T = NOW_MS;
  const S = 1000;

  it.each([
    ["301 s", 301 * S],
    ["6 h", 6 * 3600 * S],
  ])("the same packet at T and its queued copy at T + %s open once", async (_name, delay) => {
    // Prepare: the engineer's knock at T; an attacker's copy, relayed at T + 100 s (inside the
    // 120 s age window), is held in the throttled queue
    const spa = spaData({ timestamp: NOW_SEC });
    const engineer = await handleConcurrently([relayEvent(spa, "203.0.113.7", T)], T);
    // Act
    const late = await handleConcurrently([relayEvent(spa, "192.0.2.66", T + 100 * S)], T + delay);
    // Assess
    expect(engineer.granted).toBe(1);
    expect(late).toEqual({ granted: 0, codes: ["EVENT_STALE"] });
    expect(authorizeCount()).toBe(1);
  });

  it.each([
    ["the function's clock 50 s behind the relay's", -50 * S],
    ["the function's clock 9 s behind the event (just inside the lag)", 9 * S],
  ])("a copy relayed at the edge of the age window is refused, with %s", async (_name, skew) => {
    // Prepare: the first copy is handled at once; the second is received by the relay at the last
    // second its age passes (T + 120 s) and reaches a function whose clock is off by `skew`
    const spa = spaData({ timestamp: NOW_SEC });
    const first = await handleConcurrently([relayEvent(spa, "203.0.113.7", T)], T + skew);
    const edge = T + 120 * S;
    // Act
    const copy = await handleConcurrently([relayEvent(spa, "192.0.2.66", edge)], edge + skew);
    // Assess
    expect(first.granted).toBe(1);
    expect(copy).toEqual({ granted: 0, codes: ["SPA_REPLAY"] });
    expect(authorizeCount()).toBe(1);
  });

  it("keeps the record past the age window of a packet stamped ahead of every clock", async () => {
    // Prepare: a client clock 119 s fast; its packet is accepted at T and could be accepted again
    // until T + 239 s
    const spa = spaData({ timestamp: NOW_SEC + 119 });
    const first = await handleConcurrently([relayEvent(spa, "203.0.113.7", T)], T);
    const last = T + 239 * S;
    // Act
    const copy = await handleConcurrently([relayEvent(spa, "192.0.2.66", last)], last + 9 * S);
    // Assess
    expect(first.granted).toBe(1);
    expect(copy).toEqual({ granted: 0, codes: ["SPA_REPLAY"] });
    expect(Number((await itemOf(spa))?.expiresAt?.N)).toBeGreaterThanOrEqual(NOW_SEC + 239 + 10);
  });
});
