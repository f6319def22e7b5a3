// The knock function (lambda/knock-service.ts) against mocked AWS clients: the exact EC2,
// DynamoDB, Scheduler, STS, SNS and Secrets Manager requests for a grant, a refresh, a partial
// failure rolled back, the opener role, function URL requests, and every kind of refusal.
import { createHash } from "node:crypto";
import {
  ConditionalCheckFailedException,
  DynamoDBServiceException,
  GetItemCommand,
  PutItemCommand,
} from "@aws-sdk/client-dynamodb";
import {
  AuthorizeSecurityGroupIngressCommand,
  CreateTagsCommand,
  DescribeSecurityGroupRulesCommand,
  EC2Client,
  ModifySecurityGroupRulesCommand,
  RevokeSecurityGroupIngressCommand,
} from "@aws-sdk/client-ec2";
import { CreateScheduleCommand, SchedulerServiceException } from "@aws-sdk/client-scheduler";
import { GetSecretValueCommand } from "@aws-sdk/client-secrets-manager";
import { PublishCommand } from "@aws-sdk/client-sns";
import { AssumeRoleCommand } from "@aws-sdk/client-sts";
import type { LambdaFunctionURLEvent } from "aws-lambda";
import { afterAll, beforeEach, describe, expect, it } from "vitest";
import { replayDigest } from "../../core/index.js";
import { URL_RESPONSE } from "../../lambda/knock-event.js";
import {
  ARNS,
  accessConf,
  describeRulesPerGroup,
  ec2Error,
  HMAC_KEY_BASE64,
  inputsOf,
  KEY_BASE64,
  knockService,
  managedTags,
  mockAws,
  NOW_MS,
  NOW_SEC,
  relayEvent,
  resetAws,
  restoreAws,
  SG_A,
  SG_B,
  SG_UNMANAGED,
  spaData,
  urlEvent,
  useDummyAwsEnvironment,
  WRONG_KEYS,
} from "../helpers/lambda-fixtures.js";

useDummyAwsEnvironment();
const mocks = mockAws();
afterAll(() => restoreAws(mocks));

const SOURCE = "203.0.113.7";
const EXPIRES = NOW_SEC + 30;
const UNTIL = "2026-11-25T12:00:30Z";
const RULE_A = "sgr-0a1a1a1a1a1a1a1a1";
const RULE_B = "sgr-0b2b2b2b2b2b2b2b2";
/** The rule id EC2 gives the knock's rule in each group. */
const ruleOf = (groupId: string) => (groupId === SG_A ? RULE_A : RULE_B);

/** Authorize answers with one new rule id per group, as EC2 does. */
function authorizeCreates(): void {
  for (const groupId of [SG_A, SG_B]) {
    mocks.ec2.on(AuthorizeSecurityGroupIngressCommand, { GroupId: groupId }).resolves({
      Return: true,
      SecurityGroupRules: [
        {
          SecurityGroupRuleId: ruleOf(groupId),
          GroupId: groupId,
          IsEgress: false,
          IpProtocol: "tcp",
          FromPort: 22,
          ToPort: 22,
          CidrIpv4: `${SOURCE}/32`,
        },
      ],
    });
  }
}

function authorizeInput(groupId: string, opts: { cidr?: string; user?: string } = {}) {
  const user = opts.user ?? "alice";
  return {
    GroupId: groupId,
    IpPermissions: [
      {
        IpProtocol: "tcp",
        FromPort: 22,
        ToPort: 22,
        IpRanges: [
          {
            CidrIp: opts.cidr ?? `${SOURCE}/32`,
            Description: `spaknock user=${user} until=${UNTIL}`,
          },
        ],
      },
    ],
    TagSpecifications: [{ ResourceType: "security-group-rule", Tags: managedTags(EXPIRES, user) }],
  };
}

/** Scheduler's name for a rule set: written out here independently of the adapter. */
function scheduleName(rules: readonly { groupId: string; ruleId: string }[]): string {
  const digest = createHash("sha256")
    .update(rules.map((r) => `${r.groupId}/${r.ruleId}`).join(","))
    .digest("hex")
    .slice(0, 24);
  return `spaknock-${EXPIRES}-${digest}`;
}

function createScheduleInput(rules: readonly { groupId: string; ruleId: string }[]) {
  return {
    Name: scheduleName(rules),
    GroupName: "spaknock",
    ScheduleExpression: "at(2026-11-25T12:00:30)",
    ScheduleExpressionTimezone: "UTC",
    FlexibleTimeWindow: { Mode: "OFF" },
    ActionAfterCompletion: "DELETE",
    Description: `revoke spaknock grant for ${SOURCE} (alice)`,
    Target: {
      Arn: ARNS.revokeFunction,
      RoleArn: ARNS.schedulerRole,
      Input: JSON.stringify({ rules }),
      RetryPolicy: { MaximumRetryAttempts: 10, MaximumEventAgeInSeconds: 3600 },
    },
  };
}

const BOTH_RULES = [
  { groupId: SG_A, ruleId: RULE_A },
  { groupId: SG_B, ruleId: RULE_B },
];

function expectNothingOpened(): void {
  expect(mocks.ec2.commandCalls(AuthorizeSecurityGroupIngressCommand)).toHaveLength(0);
  expect(mocks.ec2.commandCalls(ModifySecurityGroupRulesCommand)).toHaveLength(0);
  expect(mocks.ec2.commandCalls(CreateTagsCommand)).toHaveLength(0);
  expect(mocks.scheduler.commandCalls(CreateScheduleCommand)).toHaveLength(0);
  expect(mocks.sns.commandCalls(PublishCommand)).toHaveLength(0);
}

beforeEach(() => {
  resetAws(mocks);
  mocks.scheduler.on(CreateScheduleCommand).resolves({ ScheduleArn: "arn:aws:scheduler:x" });
  mocks.sns.on(PublishCommand).resolves({ MessageId: "m-1" });
});

describe("knock: a grant from a relay event", () => {
  it("authorizes each group, claims the digest, schedules the revoke and notifies", async () => {
    // Prepare
    authorizeCreates();
    const { knock, log } = knockService({ NOTIFY_TOPIC_ARN: ARNS.topic });
    const spa = spaData();
    const digest = replayDigest(spa);

    // Act
    const answer = await knock.handle(relayEvent(spa));

    // Assess
    expect(answer).toBeUndefined();
    expect(inputsOf(mocks.secrets, GetSecretValueCommand)).toEqual([
      { SecretId: "spaknock/access.conf" },
    ]);
    // No paid look-up before the HMAC: the conditional put alone refuses a replay.
    expect(mocks.dynamodb.commandCalls(GetItemCommand)).toHaveLength(0);
    expect(inputsOf(mocks.dynamodb, PutItemCommand)).toEqual([
      {
        TableName: "spaknock-replay",
        Item: {
          pk: { S: digest },
          sourceIp: { S: SOURCE },
          sourcePort: { N: "40123" },
          seenAt: { N: String(NOW_SEC) },
          packetTime: { N: String(NOW_SEC) },
          // The latest clock + the 120 s packet age + 10 s event lag + 60 s margin: the TTL.
          expiresAt: { N: String(NOW_SEC + 190) },
        },
        ConditionExpression: "attribute_not_exists(pk) OR expiresAt < :now",
        ExpressionAttributeValues: { ":now": { N: String(NOW_SEC) } },
      },
    ]);
    expect(inputsOf(mocks.ec2, AuthorizeSecurityGroupIngressCommand)).toEqual([
      authorizeInput(SG_A),
      authorizeInput(SG_B),
    ]);
    // The digest is claimed before anything is opened.
    expect(mocks.dynamodb.send.calledBefore(mocks.ec2.send)).toBe(true);
    expect(inputsOf(mocks.scheduler, CreateScheduleCommand)).toEqual([
      createScheduleInput(BOTH_RULES),
    ]);
    expect(inputsOf(mocks.sns, PublishCommand)).toEqual([
      {
        TopicArn: ARNS.topic,
        Subject: `spaknock opened ${SOURCE} for alice`,
        Message: [
          "event:   opened",
          `source:  ${SOURCE}`,
          "user:    alice",
          "ports:   tcp/22",
          `groups:  ${SG_A}, ${SG_B}`,
          "until:   2026-11-25T12:00:30.000Z",
        ].join("\n"),
      },
    ]);
    expect(mocks.ec2.commandCalls(RevokeSecurityGroupIngressCommand)).toHaveLength(0);
    expect(mocks.sts.calls()).toHaveLength(0);
    const granted = log.entries.find((e) => e.message === "granted");
    expect(granted?.extra).toMatchObject({
      sourceIp: SOURCE,
      user: "alice",
      ports: ["tcp/22"],
      expiresAt: EXPIRES,
      stanza: 1,
      rules: BOTH_RULES,
      schedule: scheduleName(BOTH_RULES),
      via: "relay",
    });
    expect(log.text()).not.toContain(KEY_BASE64);
    expect(log.text()).not.toContain(HMAC_KEY_BASE64);
  });

  it("publishes nothing without NOTIFY_TOPIC_ARN", async () => {
    authorizeCreates();
    const { knock } = knockService();
    await knock.handle(relayEvent(spaData()));
    expect(mocks.ec2.commandCalls(AuthorizeSecurityGroupIngressCommand)).toHaveLength(2);
    expect(mocks.sns.calls()).toHaveLength(0);
  });

  it("opens the relay's sourceIp when the packet asks for the source address (0.0.0.0)", async () => {
    authorizeCreates();
    const { knock } = knockService();
    await knock.handle(relayEvent(spaData({ message: "0.0.0.0,tcp/22" }), "198.51.100.9"));
    expect(inputsOf(mocks.ec2, AuthorizeSecurityGroupIngressCommand)).toEqual([
      authorizeInput(SG_A, { cidr: "198.51.100.9/32" }),
      authorizeInput(SG_B, { cidr: "198.51.100.9/32" }),
    ]);
  });

  it("reads the access.conf secret once per container", async () => {
    authorizeCreates();
    const { knock } = knockService();
    await knock.handle(relayEvent(spaData()));
    await knock.handle(relayEvent(spaData()));
    expect(mocks.secrets.commandCalls(GetSecretValueCommand)).toHaveLength(1);
    expect(mocks.ec2.commandCalls(AuthorizeSecurityGroupIngressCommand)).toHaveLength(4);
  });

  it("keeps the grant when the schedule cannot be created, and says the sweeper will close it", async () => {
    authorizeCreates();
    mocks.scheduler.on(CreateScheduleCommand).rejects(
      new SchedulerServiceException({
        name: "ServiceQuotaExceededException",
        $fault: "client",
        $metadata: {},
        message: "quota",
      }),
    );
    const { knock, log } = knockService();
    await knock.handle(relayEvent(spaData()));
    expect(mocks.ec2.commandCalls(AuthorizeSecurityGroupIngressCommand)).toHaveLength(2);
    expect(mocks.ec2.commandCalls(RevokeSecurityGroupIngressCommand)).toHaveLength(0);
    expect(log.codes()).toEqual(["SCHEDULE_FAILED"]);
    expect(log.entries.find((e) => e.message === "granted")?.extra.schedule).toBeNull();
  });
});

describe("knock: a refresh of a rule that is already open", () => {
  /** DescribeSecurityGroupRules lists, for each group, noise and then the rule for SOURCE. */
  function describeFinds(managed: boolean, expiresAt = NOW_SEC + 5): void {
    describeRulesPerGroup(mocks.ec2, (groupId) => {
      const base = {
        GroupId: groupId,
        IpProtocol: "tcp",
        FromPort: 22,
        ToPort: 22,
        CidrIpv4: `${SOURCE}/32`,
      };
      return [
        { ...base, SecurityGroupRuleId: "sgr-0000000000000000e", IsEgress: true },
        { ...base, SecurityGroupRuleId: "sgr-0000000000000000f", CidrIpv4: "192.0.2.1/32" },
        { ...base, SecurityGroupRuleId: "sgr-00000000000000010", FromPort: 443, ToPort: 443 },
        {
          ...base,
          SecurityGroupRuleId: ruleOf(groupId),
          IsEgress: false,
          Tags: managed ? managedTags(expiresAt) : [{ Key: "Name", Value: "office" }],
        },
      ];
    });
  }

  it("modifies the description and re-tags the rule with the new expiry, then schedules", async () => {
    // Prepare
    mocks.ec2
      .on(AuthorizeSecurityGroupIngressCommand)
      .rejects(
        ec2Error(
          "InvalidPermission.Duplicate",
          `the specified rule "peer: ${SOURCE}/32, TCP, from port: 22, to port: 22, ALLOW" already exists`,
        ),
      );
    describeFinds(true);
    const { knock, log } = knockService();

    // Act
    await knock.handle(relayEvent(spaData()));

    // Assess
    expect(inputsOf(mocks.ec2, AuthorizeSecurityGroupIngressCommand)).toEqual([
      authorizeInput(SG_A),
      authorizeInput(SG_B),
    ]);
    expect(inputsOf(mocks.ec2, DescribeSecurityGroupRulesCommand)).toEqual([
      { Filters: [{ Name: "group-id", Values: [SG_A] }], MaxResults: 1000 },
      { Filters: [{ Name: "group-id", Values: [SG_B] }], MaxResults: 1000 },
    ]);
    expect(inputsOf(mocks.ec2, ModifySecurityGroupRulesCommand)).toEqual(
      [SG_A, SG_B].map((groupId) => ({
        GroupId: groupId,
        SecurityGroupRules: [
          {
            SecurityGroupRuleId: ruleOf(groupId),
            SecurityGroupRule: {
              IpProtocol: "tcp",
              FromPort: 22,
              ToPort: 22,
              CidrIpv4: `${SOURCE}/32`,
              Description: `spaknock user=alice until=${UNTIL}`,
            },
          },
        ],
      })),
    );
    expect(inputsOf(mocks.ec2, CreateTagsCommand)).toEqual([
      { Resources: [RULE_A], Tags: managedTags() },
      { Resources: [RULE_B], Tags: managedTags() },
    ]);
    expect(mocks.ec2.commandCalls(RevokeSecurityGroupIngressCommand)).toHaveLength(0);
    expect(inputsOf(mocks.scheduler, CreateScheduleCommand)).toEqual([
      createScheduleInput(BOTH_RULES),
    ]);
    expect(log.codes()).toEqual([]);
    expect(log.entries.map((e) => e.message)).toEqual(["granted"]);
  });

  it("fails closed (FIREWALL_FAILED) when EC2 says duplicate but the rule cannot be found", async () => {
    mocks.ec2
      .on(AuthorizeSecurityGroupIngressCommand)
      .rejects(ec2Error("InvalidPermission.Duplicate"));
    mocks.ec2.on(DescribeSecurityGroupRulesCommand).resolves({ SecurityGroupRules: [] });
    const { knock, log } = knockService();
    await knock.handle(relayEvent(spaData()));
    // The rule may have been revoked in between (issue 16.4): the knock tries once more, then
    // gives up rather than loop.
    expect(mocks.ec2.commandCalls(AuthorizeSecurityGroupIngressCommand)).toHaveLength(2);
    expect(mocks.scheduler.commandCalls(CreateScheduleCommand)).toHaveLength(0);
    expect(log.codes()).toEqual(["FIREWALL_FAILED"]);
  });

  it("replaces a rule past its expiry instead of refreshing it, so a pending revoke cannot hit the new grant (issue 16.4)", async () => {
    // Prepare: the rule for SOURCE expired 5 s ago; its schedule or the sweeper may revoke it by
    // id at any moment.
    for (const groupId of [SG_A, SG_B])
      mocks.ec2
        .on(AuthorizeSecurityGroupIngressCommand, { GroupId: groupId })
        .rejectsOnce(ec2Error("InvalidPermission.Duplicate"))
        .resolves({
          Return: true,
          SecurityGroupRules: [{ SecurityGroupRuleId: `${ruleOf(groupId)}9`, GroupId: groupId }],
        });
    describeFinds(true, NOW_SEC - 5);
    mocks.ec2.on(RevokeSecurityGroupIngressCommand).resolves({ Return: true });
    const { knock, log } = knockService();

    // Act
    await knock.handle(relayEvent(spaData()));

    // Assess: the old ids revoked by the knock, no refresh, new rules granted and scheduled
    expect(inputsOf(mocks.ec2, RevokeSecurityGroupIngressCommand)).toEqual([
      { GroupId: SG_A, SecurityGroupRuleIds: [RULE_A] },
      { GroupId: SG_B, SecurityGroupRuleIds: [RULE_B] },
    ]);
    expect(mocks.ec2.commandCalls(ModifySecurityGroupRulesCommand)).toHaveLength(0);
    expect(log.entries.find((e) => e.message === "granted")?.extra.rules).toEqual([
      { groupId: SG_A, ruleId: `${RULE_A}9` },
      { groupId: SG_B, ruleId: `${RULE_B}9` },
    ]);
    expect(log.codes()).toEqual([]);
  });

  it("opens anew when a revoke removes the rule while the knock refreshes it (issue 16.4)", async () => {
    // Prepare: the first authorize finds the old rule; the revoke (schedule or sweep) removes it
    // before the knock's ModifySecurityGroupRules lands; the second authorize creates a new rule.
    mocks.ec2
      .on(AuthorizeSecurityGroupIngressCommand, { GroupId: SG_A })
      .rejectsOnce(ec2Error("InvalidPermission.Duplicate"))
      .resolves({
        Return: true,
        SecurityGroupRules: [{ SecurityGroupRuleId: "sgr-0a0a0a0a0a0a0a0a9", GroupId: SG_A }],
      });
    mocks.ec2.on(AuthorizeSecurityGroupIngressCommand, { GroupId: SG_B }).resolves({
      Return: true,
      SecurityGroupRules: [{ SecurityGroupRuleId: RULE_B, GroupId: SG_B }],
    });
    mocks.ec2.on(DescribeSecurityGroupRulesCommand).resolves({
      SecurityGroupRules: [
        {
          SecurityGroupRuleId: RULE_A,
          GroupId: SG_A,
          IsEgress: false,
          IpProtocol: "tcp",
          FromPort: 22,
          ToPort: 22,
          CidrIpv4: `${SOURCE}/32`,
          Tags: managedTags(NOW_SEC + 5),
        },
      ],
    });
    mocks.ec2
      .on(ModifySecurityGroupRulesCommand)
      .rejects(ec2Error("InvalidSecurityGroupRuleId.NotFound"));
    const { knock, log } = knockService();

    // Act
    await knock.handle(relayEvent(spaData()));

    // Assess: granted on the new rule, and its close scheduled
    expect(
      mocks.ec2.commandCalls(AuthorizeSecurityGroupIngressCommand, { GroupId: SG_A }),
    ).toHaveLength(2);
    const granted = log.entries.find((e) => e.message === "granted");
    expect(granted?.extra.rules).toContainEqual({ groupId: SG_A, ruleId: "sgr-0a0a0a0a0a0a0a0a9" });
    expect(mocks.scheduler.commandCalls(CreateScheduleCommand)).toHaveLength(1);
    expect(log.codes()).toEqual([]);
  });

  it("puts a refreshed rule's old expiry back when another group refuses (all or nothing)", async () => {
    // Prepare: SG_A's rule exists (refresh), SG_B refuses the authorize outright.
    mocks.ec2
      .on(AuthorizeSecurityGroupIngressCommand, { GroupId: SG_A })
      .rejects(ec2Error("InvalidPermission.Duplicate"));
    mocks.ec2
      .on(AuthorizeSecurityGroupIngressCommand, { GroupId: SG_B })
      .rejects(ec2Error("UnauthorizedOperation"));
    describeFinds(true);
    const { knock, log } = knockService();
    // Act
    await knock.handle(relayEvent(spaData()));
    // Assess: modified twice (refresh, then restore), re-tagged with the new then the old expiry
    const modify = inputsOf(mocks.ec2, ModifySecurityGroupRulesCommand);
    expect(modify).toHaveLength(2);
    const retags = inputsOf(mocks.ec2, CreateTagsCommand).map(
      (i) => i.Tags?.find((t) => t.Key === "spaknock:expires")?.Value,
    );
    expect(retags).toEqual([String(EXPIRES), String(NOW_SEC + 5)]);
    // The restore writes the whole old tag set: IAM allows re-tagging only with spaknock:managed.
    expect(inputsOf(mocks.ec2, CreateTagsCommand)[1]).toEqual({
      Resources: [RULE_A],
      Tags: managedTags(NOW_SEC + 5),
    });
    expect(mocks.scheduler.commandCalls(CreateScheduleCommand)).toHaveLength(0);
    expect(log.codes()).toContain("FIREWALL_FAILED");
  });

  it("leaves a hand-made permanent rule for the same address and port untouched", async () => {
    mocks.ec2
      .on(AuthorizeSecurityGroupIngressCommand)
      .rejects(ec2Error("InvalidPermission.Duplicate"));
    describeFinds(false);
    const { knock } = knockService();
    await knock.handle(relayEvent(spaData()));
    expect(mocks.ec2.commandCalls(CreateTagsCommand)).toHaveLength(0);
    expect(mocks.ec2.commandCalls(ModifySecurityGroupRulesCommand)).toHaveLength(0);
    for (const input of inputsOf(mocks.scheduler, CreateScheduleCommand)) {
      expect(input.Target?.Input).not.toContain(RULE_A);
    }
  });
});

describe("knock: all or nothing", () => {
  it.each([
    [
      "RulesPerSecurityGroupLimitExceeded",
      "The maximum number of rules per security group has been reached.",
    ],
    ["UnauthorizedOperation", "You are not authorized to perform this operation."],
  ])(
    "revokes the first group's new rule when the second refuses with %s",
    async (name, message) => {
      // Prepare
      mocks.ec2.on(AuthorizeSecurityGroupIngressCommand, { GroupId: SG_A }).resolves({
        Return: true,
        SecurityGroupRules: [{ SecurityGroupRuleId: RULE_A, GroupId: SG_A }],
      });
      mocks.ec2
        .on(AuthorizeSecurityGroupIngressCommand, { GroupId: SG_B })
        .rejects(ec2Error(name, message));
      mocks.ec2.on(RevokeSecurityGroupIngressCommand).resolves({ Return: true });
      const { knock, log } = knockService({ NOTIFY_TOPIC_ARN: ARNS.topic });

      // Act
      await knock.handle(relayEvent(spaData()));

      // Assess
      expect(inputsOf(mocks.ec2, AuthorizeSecurityGroupIngressCommand)).toEqual([
        authorizeInput(SG_A),
        authorizeInput(SG_B),
      ]);
      expect(inputsOf(mocks.ec2, RevokeSecurityGroupIngressCommand)).toEqual([
        { GroupId: SG_A, SecurityGroupRuleIds: [RULE_A] },
      ]);
      expect(mocks.scheduler.commandCalls(CreateScheduleCommand)).toHaveLength(0);
      expect(mocks.sns.commandCalls(PublishCommand)).toHaveLength(0);
      const refused = log.entries.find((e) => e.message === "refused");
      expect(refused?.extra).toMatchObject({ code: "FIREWALL_FAILED", user: "alice", stanza: 1 });
      expect(String(refused?.extra.reason)).toContain(name);
      expect(log.entries.some((e) => e.message === "granted")).toBe(false);
      expect(log.entries.find((e) => e.message === "rolled back a partial grant")).toMatchObject({
        level: "warn",
        extra: { groupId: SG_A, ruleIds: [RULE_A] },
      });
    },
  );

  it("revokes nothing when the first group already refuses", async () => {
    mocks.ec2.on(AuthorizeSecurityGroupIngressCommand).rejects(ec2Error("UnauthorizedOperation"));
    const { knock, log } = knockService();
    await knock.handle(relayEvent(spaData()));
    expect(mocks.ec2.commandCalls(AuthorizeSecurityGroupIngressCommand)).toHaveLength(1);
    expect(mocks.ec2.commandCalls(RevokeSecurityGroupIngressCommand)).toHaveLength(0);
    expect(mocks.scheduler.commandCalls(CreateScheduleCommand)).toHaveLength(0);
    expect(log.codes()).toEqual(["FIREWALL_FAILED"]);
  });
});

describe("knock: the opener role", () => {
  const credentials = {
    AccessKeyId: "ASIAOPENEREXAMPLE",
    SecretAccessKey: "opener-secret",
    SessionToken: "opener-token",
    Expiration: new Date(NOW_MS + 900_000),
  };

  it.each([
    ["alice", "spaknock-alice", "alice"],
    ["bob smith#1", "spaknock-bob_smith_1", "bob_smith_1"],
    ["o'brien&co~x", "spaknock-o_brien_co_x", "o_brien_co_x"],
    ["x", "spaknock-x", "x_"],
    ["a".repeat(48), `spaknock-${"a".repeat(48)}`, "a".repeat(48)],
  ])(
    "assumes OPENER_ROLE_ARN as %j and authorizes with those credentials",
    async (user, session, identity) => {
      // Prepare
      authorizeCreates();
      mocks.sts.on(AssumeRoleCommand).resolves({ Credentials: credentials });
      const { knock } = knockService({ OPENER_ROLE_ARN: ARNS.openerRole });

      // Act
      await knock.handle(relayEvent(spaData({ username: user })));

      // Assess
      expect(inputsOf(mocks.sts, AssumeRoleCommand)).toEqual([
        {
          RoleArn: ARNS.openerRole,
          RoleSessionName: session,
          SourceIdentity: identity,
          DurationSeconds: 900,
        },
      ]);
      const authorizeCalls = mocks.ec2.commandCalls(AuthorizeSecurityGroupIngressCommand);
      expect(authorizeCalls).toHaveLength(2);
      for (const call of authorizeCalls) {
        const client = call.thisValue as EC2Client;
        expect(client).toBeInstanceOf(EC2Client);
        await expect(client.config.credentials()).resolves.toMatchObject({
          accessKeyId: credentials.AccessKeyId,
          secretAccessKey: credentials.SecretAccessKey,
          sessionToken: credentials.SessionToken,
        });
        await expect(client.config.region()).resolves.toBe("eu-west-1");
      }
      const input = inputsOf(mocks.ec2, AuthorizeSecurityGroupIngressCommand)[0];
      expect(input?.TagSpecifications?.[0]?.Tags).toContainEqual({
        Key: "spaknock:user",
        Value: user,
      });
      expect(input?.IpPermissions?.[0]?.IpRanges?.[0]?.Description).toMatch(
        /^spaknock user=[a-zA-Z0-9. _\-:/()#,@[\]+=&;{}!$*]+ until=2026-11-25T12:00:30Z$/,
      );
    },
  );

  it("opens nothing when AssumeRole is refused (FIREWALL_FAILED)", async () => {
    authorizeCreates();
    mocks.sts.on(AssumeRoleCommand).rejects(new Error("AccessDenied"));
    const { knock, log } = knockService({ OPENER_ROLE_ARN: ARNS.openerRole });
    await knock.handle(relayEvent(spaData()));
    expect(log.codes()).toEqual(["FIREWALL_FAILED"]);
    expectNothingOpened();
  });
});

describe("knock: function URL requests", () => {
  /** A packet whose wire text holds both `+` and `/`, so the HTTP form must translate them. */
  function spaWithPlusAndSlash(): string {
    for (;;) {
      const spa = spaData();
      if (spa.includes("+") && spa.includes("/")) return spa;
    }
  }

  it.each([
    ["POST with the data as body", (spa: string) => urlEvent("POST", { body: spa })],
    ["POST with a trailing newline", (spa: string) => urlEvent("POST", { body: `${spa}\r\n` })],
    [
      "POST, base64-encoded by the function URL",
      (spa: string) =>
        urlEvent("POST", { body: Buffer.from(spa).toString("base64"), isBase64Encoded: true }),
    ],
    [
      "GET /<data> with - and _ for + and /",
      (spa: string) =>
        urlEvent("GET", { rawPath: `/${spa.replace(/\+/g, "-").replace(/\//g, "_")}` }),
    ],
  ])("grants a %s and answers with the one fixed response", async (_, event) => {
    authorizeCreates();
    const { knock, log } = knockService();
    const spa = spaWithPlusAndSlash();
    const answer = await knock.handle(event(spa));
    expect(answer).toBe(URL_RESPONSE);
    expect(answer).toEqual({
      statusCode: 200,
      headers: { "content-type": "text/plain" },
      body: "",
    });
    expect(inputsOf(mocks.ec2, AuthorizeSecurityGroupIngressCommand)).toEqual([
      authorizeInput(SG_A),
      authorizeInput(SG_B),
    ]);
    expect(inputsOf(mocks.dynamodb, PutItemCommand)[0]?.Item?.pk).toEqual({
      S: replayDigest(spa),
    });
    expect(log.entries.find((e) => e.message === "granted")?.extra.via).toBe("url");
  });

  it.each<[string, () => LambdaFunctionURLEvent, string]>([
    ["PUT", () => urlEvent("PUT", { body: spaData() }), "EVENT_INVALID"],
    ["GET /", () => urlEvent("GET"), "EVENT_INVALID"],
    ["POST without a body", () => urlEvent("POST"), "EVENT_INVALID"],
    [
      "an oversized body (7000 bytes)",
      () => urlEvent("POST", { body: "A".repeat(7000) }),
      "EVENT_INVALID",
    ],
    [
      "a body of 1501 characters",
      () => urlEvent("POST", { body: "A".repeat(1501) }),
      "EVENT_INVALID",
    ],
    // IPv6 senders are welcome (test/lambda/ipv6.test.ts); what is no one address is not.
    ...["fe80::1%eth0", "[2001:db8::1]", "2001:db8::1/128", "2001:db8:::1", "::ffff:999.0.0.1"].map(
      (sourceIp): [string, () => LambdaFunctionURLEvent, string] => [
        `a source of ${sourceIp}`,
        () => urlEvent("POST", { body: spaData(), sourceIp }),
        "EVENT_INVALID",
      ],
    ),
    [
      "a browser's GET /favicon.ico",
      () => urlEvent("GET", { rawPath: "/favicon.ico" }),
      "SPA_SIZE",
    ],
    ["junk text", () => urlEvent("POST", { body: `${"hello world! ".repeat(20)}` }), "SPA_CHARSET"],
    [
      "wrong keys",
      () => urlEvent("POST", { body: spaData({ keys: WRONG_KEYS }) }),
      "SPA_HMAC_MISMATCH",
    ],
    [
      "a stale packet",
      () => urlEvent("POST", { body: spaData({ timestamp: NOW_SEC - 121 }) }),
      "SPA_STALE",
    ],
  ])(
    "refuses %s with the same response, logs the code and opens nothing",
    async (_, event, code) => {
      const { knock, log } = knockService();
      const answer = await knock.handle(event());
      expect(answer).toBe(URL_RESPONSE);
      expect(log.codes()).toEqual([code]);
      expectNothingOpened();
    },
  );
});

describe("knock: refusals", () => {
  const valid = () => relayEvent(spaData());

  it.each([
    ["null", () => null],
    ["a string", () => "spa"],
    ["an empty object", () => ({})],
    ["an array", () => [valid()]],
    ["spa that is not a string", () => ({ ...valid(), spa: 42 })],
    ["an empty spa", () => ({ ...valid(), spa: "" })],
    ["an oversized spa (1501 characters)", () => ({ ...valid(), spa: "A".repeat(1501) })],
    ["an oversized spa (1 MB)", () => ({ ...valid(), spa: "A".repeat(1 << 20) })],
    ["a bad sourceIp", () => ({ ...valid(), sourceIp: "999.1.1.1" })],
    ["an IPv6 sourceIp with a zone id", () => ({ ...valid(), sourceIp: "fe80::1%eth0" })],
    ["a bracketed IPv6 sourceIp", () => ({ ...valid(), sourceIp: "[2001:db8::1]" })],
    ["an IPv6 sourceIp of nine groups", () => ({ ...valid(), sourceIp: "1:2:3:4:5:6:7:8:9" })],
    ["an IPv6 prefix as sourceIp", () => ({ ...valid(), sourceIp: "2001:db8::/64" })],
    ["a sourceIp that is not a string", () => ({ ...valid(), sourceIp: 3405803783 })],
    ["a bad sourcePort", () => ({ ...valid(), sourcePort: 70000 })],
    ["no receivedAt", () => ({ spa: spaData(), sourceIp: "203.0.113.7", sourcePort: 1 })],
  ])("refuses %s as EVENT_INVALID before reading keys or the replay table", async (_, event) => {
    const { knock, log } = knockService();
    await expect(knock.handle(event())).resolves.toBeUndefined();
    expect(log.codes()).toEqual(["EVENT_INVALID"]);
    expect(mocks.secrets.calls()).toHaveLength(0);
    expect(mocks.dynamodb.calls()).toHaveLength(0);
    expectNothingOpened();
  });

  it.each([
    ["junk of the right size", () => relayEvent("!".repeat(200)), "SPA_CHARSET"],
    ["too short", () => relayEvent("QUJD"), "SPA_SIZE"],
    [
      "with the Salted__ prefix put back",
      () => relayEvent(`U2FsdGVkX1${spaData()}`),
      "SPA_PREFIXED",
    ],
    ["wrong keys", () => relayEvent(spaData({ keys: WRONG_KEYS })), "SPA_HMAC_MISMATCH"],
    ["stale by 121 s", () => relayEvent(spaData({ timestamp: NOW_SEC - 121 })), "SPA_STALE"],
    ["121 s in the future", () => relayEvent(spaData({ timestamp: NOW_SEC + 121 })), "SPA_STALE"],
    [
      "for a port outside OPEN_PORTS",
      () => relayEvent(spaData({ message: `${SOURCE},tcp/23` })),
      "SPA_PORT_DENIED",
    ],
  ])(
    "refuses a packet %s with its code, claims nothing and opens nothing",
    async (_, event, code) => {
      const { knock, log } = knockService();
      await knock.handle(event());
      expect(log.codes()).toEqual([code]);
      expect(log.entries[0]).toMatchObject({ level: "warn", message: "refused" });
      expect(mocks.dynamodb.commandCalls(PutItemCommand)).toHaveLength(0);
      expectNothingOpened();
      expect(log.text()).not.toContain(KEY_BASE64);
      expect(log.text()).not.toContain(HMAC_KEY_BASE64);
    },
  );

  it("refuses a replay that loses the conditional put (SPA_REPLAY) and opens nothing", async () => {
    authorizeCreates();
    mocks.dynamodb.on(PutItemCommand).rejects(
      new ConditionalCheckFailedException({
        message: "The conditional request failed",
        $metadata: { httpStatusCode: 400 },
      }),
    );
    const { knock, log } = knockService();
    await knock.handle(relayEvent(spaData()));
    expect(mocks.dynamodb.commandCalls(PutItemCommand)).toHaveLength(1);
    expect(log.codes()).toEqual(["SPA_REPLAY"]);
    expect(log.entries[0]?.extra).toMatchObject({ user: "alice", sourceIp: SOURCE });
    expectNothingOpened();
  });

  it("makes no DynamoDB call at all for packets whose HMAC does not verify", async () => {
    // Prepare: a flood of forged packets that pass the precheck
    authorizeCreates();
    const { knock, log } = knockService();
    // Act
    for (let i = 0; i < 50; i++) await knock.handle(relayEvent(spaData({ keys: WRONG_KEYS })));
    // Assess
    expect(log.codes()).toEqual(Array(50).fill("SPA_HMAC_MISMATCH"));
    expect(mocks.dynamodb.send.callCount).toBe(0);
    expectNothingOpened();
  });

  it("opens nothing when the replay table fails (REPLAY_STORE_FAILED)", async () => {
    authorizeCreates();
    mocks.dynamodb.on(PutItemCommand).rejects(
      new DynamoDBServiceException({
        name: "ProvisionedThroughputExceededException",
        $fault: "client",
        $metadata: {},
        message: "throughput",
      }),
    );
    const { knock, log } = knockService();
    await knock.handle(relayEvent(spaData()));
    expect(log.codes()).toEqual(["REPLAY_STORE_FAILED"]);
    expectNothingOpened();
  });

  it("fails the cold start loudly when a stanza names a group outside MANAGED_GROUPS", async () => {
    resetAws(mocks, accessConf([SG_A, SG_UNMANAGED]));
    authorizeCreates();
    const { knock } = knockService();
    await expect(knock.handle(relayEvent(spaData()))).rejects.toMatchObject({
      code: "CONFIG_INVALID",
    });
    expectNothingOpened();
  });
});
