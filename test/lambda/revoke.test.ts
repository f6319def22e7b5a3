// The revoke and sweep functions (lambda/revoke-service.ts): the exact EC2 requests with mocked
// clients, and, with a REAL EC2 client against a loopback HTTP server, that a throttled
// request is retried by the SDK (aws-sdk-client-mock replaces send() and so skips the retry
// middleware entirely).
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import {
  DescribeSecurityGroupRulesCommand,
  EC2Client,
  RevokeSecurityGroupIngressCommand,
  type SecurityGroupRule,
} from "@aws-sdk/client-ec2";
import { PublishCommand } from "@aws-sdk/client-sns";
import { AssumeRoleCommand } from "@aws-sdk/client-sts";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { type RevokeEnvironment, revokeEnvironment } from "../../lambda/environment.js";
import { createRevokeService } from "../../lambda/revoke-service.js";
import {
  ARNS,
  awsClients,
  clientConfig,
  describeRulesPerGroup,
  ec2Error,
  inputsOf,
  mockAwsExceptDynamoDb,
  NOW_MS,
  NOW_SEC,
  RecordingLog,
  resetAws,
  restoreAws,
  SG_A,
  SG_B,
  SG_UNMANAGED,
  useDummyAwsEnvironment,
} from "../helpers/lambda-fixtures.js";

useDummyAwsEnvironment();

const MANAGED_FILTER = { Name: "tag-key", Values: ["spaknock:managed"] };

function revokeEnv(overrides: Record<string, string> = {}): RevokeEnvironment {
  return revokeEnvironment.parse({ MANAGED_GROUPS: `${SG_A},${SG_B}`, ...overrides });
}

/** A spaknock rule as DescribeSecurityGroupRules returns it. */
function managedRule(
  groupId: string,
  ruleId: string,
  expires: number | string | null,
  opts: { user?: string; egress?: boolean } = {},
): SecurityGroupRule {
  const user = opts.user ?? "alice";
  return {
    SecurityGroupRuleId: ruleId,
    GroupId: groupId,
    GroupOwnerId: "111122223333",
    IsEgress: opts.egress ?? false,
    IpProtocol: "tcp",
    FromPort: 22,
    ToPort: 22,
    CidrIpv4: "203.0.113.7/32",
    Description: `spaknock user=${user} until=...`,
    Tags: [
      { Key: "spaknock:managed", Value: "true" },
      { Key: "spaknock:user", Value: user },
      ...(expires === null ? [] : [{ Key: "spaknock:expires", Value: String(expires) }]),
      { Key: "spaknock:stanza", Value: "1" },
    ],
  };
}

function describeInput(groupId: string, token?: string) {
  return {
    Filters: [{ Name: "group-id", Values: [groupId] }, MANAGED_FILTER],
    MaxResults: 1000,
    ...(token ? { NextToken: token } : {}),
  };
}

describe("revoke and sweep with mocked clients", () => {
  let mocks: ReturnType<typeof mockAwsExceptDynamoDb>;
  beforeAll(() => {
    mocks = mockAwsExceptDynamoDb();
  });
  afterAll(() => restoreAws(mocks));
  beforeEach(() => {
    resetAws(mocks);
    mocks.ec2.on(RevokeSecurityGroupIngressCommand).resolves({ Return: true });
    mocks.sns.on(PublishCommand).resolves({ MessageId: "m-1" });
  });

  function service(env: Record<string, string> = {}) {
    const log = new RecordingLog();
    const svc = createRevokeService(revokeEnv(env), awsClients(), log, () => NOW_MS);
    return { svc, log };
  }

  /** DescribeSecurityGroupRules answers with these rules for each group (one page). */
  function groupsHold(byGroup: Record<string, SecurityGroupRule[]>): void {
    describeRulesPerGroup(mocks.ec2, (groupId) => byGroup[groupId] ?? []);
  }

  const event = (...rules: [string, string][]) => ({
    rules: rules.map(([groupId, ruleId]) => ({ groupId, ruleId })),
  });

  describe("revoke (from a grant's schedule)", () => {
    it("revokes a rule whose spaknock:expires has passed", async () => {
      // Prepare
      groupsHold({ [SG_A]: [managedRule(SG_A, "sgr-0a1", NOW_SEC - 1)] });
      const { svc, log } = service();

      // Act
      const result = await svc.revoke(event([SG_A, "sgr-0a1"]));

      // Assess
      expect(result).toEqual({ revoked: ["sgr-0a1"], kept: [] });
      expect(inputsOf(mocks.ec2, DescribeSecurityGroupRulesCommand)).toEqual([describeInput(SG_A)]);
      expect(inputsOf(mocks.ec2, RevokeSecurityGroupIngressCommand)).toEqual([
        { GroupId: SG_A, SecurityGroupRuleIds: ["sgr-0a1"] },
      ]);
      expect(log.entries.find((e) => e.message === "revoked")?.extra).toMatchObject({
        reason: "schedule",
        groupId: SG_A,
        ruleId: "sgr-0a1",
        user: "alice",
        cidr: "203.0.113.7/32",
        port: 22,
        expiresAt: NOW_SEC - 1,
      });
      expect(mocks.sts.calls()).toHaveLength(0);
      expect(mocks.sns.calls()).toHaveLength(0);
    });

    it("revokes at the exact second of expiry", async () => {
      groupsHold({ [SG_A]: [managedRule(SG_A, "sgr-0a1", NOW_SEC)] });
      const { svc } = service();
      await expect(svc.revoke(event([SG_A, "sgr-0a1"]))).resolves.toEqual({
        revoked: ["sgr-0a1"],
        kept: [],
      });
    });

    it("keeps a rule refreshed since its schedule was made", async () => {
      groupsHold({ [SG_A]: [managedRule(SG_A, "sgr-0a1", NOW_SEC + 25)] });
      const { svc, log } = service();
      const result = await svc.revoke(event([SG_A, "sgr-0a1"]));
      expect(result).toEqual({ revoked: [], kept: ["sgr-0a1"] });
      expect(mocks.ec2.commandCalls(RevokeSecurityGroupIngressCommand)).toHaveLength(0);
      expect(log.entries.map((e) => e.message)).toEqual([
        "kept: refreshed since this schedule was made",
      ]);
    });

    it("revokes the expired rules of a grant and keeps its refreshed one, across groups", async () => {
      groupsHold({
        [SG_A]: [
          managedRule(SG_A, "sgr-0a1", NOW_SEC - 30),
          managedRule(SG_A, "sgr-0a2", NOW_SEC + 30),
          managedRule(SG_A, "sgr-0a3", NOW_SEC - 30), // expired, but not this schedule's
        ],
        [SG_B]: [managedRule(SG_B, "sgr-0b1", NOW_SEC - 30)],
      });
      const { svc } = service();
      const result = await svc.revoke(
        event([SG_A, "sgr-0a1"], [SG_A, "sgr-0a2"], [SG_B, "sgr-0b1"]),
      );
      expect(result).toEqual({ revoked: ["sgr-0a1", "sgr-0b1"], kept: ["sgr-0a2"] });
      expect(inputsOf(mocks.ec2, RevokeSecurityGroupIngressCommand)).toEqual([
        { GroupId: SG_A, SecurityGroupRuleIds: ["sgr-0a1"] },
        { GroupId: SG_B, SecurityGroupRuleIds: ["sgr-0b1"] },
      ]);
    });

    it("succeeds when the rule is already gone (not listed any more)", async () => {
      groupsHold({});
      const { svc, log } = service();
      await expect(svc.revoke(event([SG_A, "sgr-0a1"]))).resolves.toEqual({
        revoked: [],
        kept: [],
      });
      expect(mocks.ec2.commandCalls(RevokeSecurityGroupIngressCommand)).toHaveLength(0);
      expect(log.codes()).toEqual([]);
    });

    it("succeeds when Revoke says InvalidSecurityGroupRuleId.NotFound (a second delivery)", async () => {
      groupsHold({ [SG_A]: [managedRule(SG_A, "sgr-0a1", NOW_SEC - 1)] });
      mocks.ec2
        .on(RevokeSecurityGroupIngressCommand)
        .rejects(ec2Error("InvalidSecurityGroupRuleId.NotFound"));
      const { svc, log } = service();
      await expect(svc.revoke(event([SG_A, "sgr-0a1"]))).resolves.toEqual({
        revoked: ["sgr-0a1"],
        kept: [],
      });
      expect(inputsOf(mocks.ec2, RevokeSecurityGroupIngressCommand)).toEqual([
        { GroupId: SG_A, SecurityGroupRuleIds: ["sgr-0a1"] },
      ]);
      expect(log.codes()).toEqual([]);
    });

    it("fails (so Scheduler retries) when Revoke is refused for another reason", async () => {
      groupsHold({ [SG_A]: [managedRule(SG_A, "sgr-0a1", NOW_SEC - 1)] });
      mocks.ec2.on(RevokeSecurityGroupIngressCommand).rejects(ec2Error("UnauthorizedOperation"));
      const { svc } = service();
      await expect(svc.revoke(event([SG_A, "sgr-0a1"]))).rejects.toMatchObject({
        code: "FIREWALL_FAILED",
        message: expect.stringContaining("UnauthorizedOperation"),
      });
    });

    it("refuses a rule in a group that is not managed, without touching EC2", async () => {
      groupsHold({ [SG_UNMANAGED]: [managedRule(SG_UNMANAGED, "sgr-0c1", NOW_SEC - 1)] });
      const { svc, log } = service();
      const result = await svc.revoke(event([SG_UNMANAGED, "sgr-0c1"]));
      expect(result).toEqual({ revoked: [], kept: [] });
      expect(mocks.ec2.calls()).toHaveLength(0);
      expect(log.entries).toEqual([
        {
          level: "error",
          message: "refused",
          extra: { code: "GROUP_NOT_MANAGED", groupId: SG_UNMANAGED, ruleId: "sgr-0c1" },
        },
      ]);
    });

    it("revokes the managed group's rule and refuses the other in a mixed event", async () => {
      groupsHold({ [SG_A]: [managedRule(SG_A, "sgr-0a1", NOW_SEC - 1)] });
      const { svc, log } = service();
      const result = await svc.revoke(event([SG_UNMANAGED, "sgr-0c1"], [SG_A, "sgr-0a1"]));
      expect(result).toEqual({ revoked: ["sgr-0a1"], kept: [] });
      expect(inputsOf(mocks.ec2, RevokeSecurityGroupIngressCommand)).toEqual([
        { GroupId: SG_A, SecurityGroupRuleIds: ["sgr-0a1"] },
      ]);
      expect(log.codes()).toEqual(["GROUP_NOT_MANAGED"]);
    });

    it.each([
      ["null", null],
      ["no rules", { rules: [] }],
      ["a bad rule id", { rules: [{ groupId: SG_A, ruleId: "sg-0a1" }] }],
      ["a bad group id", { rules: [{ groupId: "default", ruleId: "sgr-0a1" }] }],
    ])("refuses %s as EVENT_INVALID", async (_, bad) => {
      const { svc, log } = service();
      await expect(svc.revoke(bad)).resolves.toEqual({ revoked: [], kept: [] });
      expect(log.codes()).toEqual(["EVENT_INVALID"]);
      expect(mocks.ec2.calls()).toHaveLength(0);
    });

    it("revokes under the opener role as the rule's user and notifies the close", async () => {
      // Prepare
      groupsHold({ [SG_A]: [managedRule(SG_A, "sgr-0a1", NOW_SEC - 1, { user: "bob_smith_1" })] });
      mocks.sts.on(AssumeRoleCommand).resolves({
        Credentials: {
          AccessKeyId: "ASIAOPENEREXAMPLE",
          SecretAccessKey: "opener-secret",
          SessionToken: "opener-token",
          Expiration: new Date(NOW_MS + 900_000),
        },
      });
      const { svc } = service({ OPENER_ROLE_ARN: ARNS.openerRole, NOTIFY_TOPIC_ARN: ARNS.topic });

      // Act
      await svc.revoke(event([SG_A, "sgr-0a1"]));

      // Assess
      expect(inputsOf(mocks.sts, AssumeRoleCommand)).toEqual([
        {
          RoleArn: ARNS.openerRole,
          // The session says why: CloudTrail's record of the revoke tells schedule from sweep.
          RoleSessionName: "spaknock-revoke-bob_smith_1",
          SourceIdentity: "bob_smith_1",
          DurationSeconds: 900,
        },
      ]);
      const [revokeCall] = mocks.ec2.commandCalls(RevokeSecurityGroupIngressCommand);
      expect(revokeCall?.args[0].input).toEqual({
        GroupId: SG_A,
        SecurityGroupRuleIds: ["sgr-0a1"],
      });
      const client = revokeCall?.thisValue as EC2Client;
      await expect(client.config.credentials()).resolves.toMatchObject({
        accessKeyId: "ASIAOPENEREXAMPLE",
      });
      expect(inputsOf(mocks.sns, PublishCommand)).toEqual([
        {
          TopicArn: ARNS.topic,
          Subject: "spaknock closed 203.0.113.7 for bob_smith_1",
          Message: [
            "event:   closed",
            "source:  203.0.113.7",
            "user:    bob_smith_1",
            // The close names the protocol as the open notice does (issue 9: one SnsNotifier).
            "ports:   tcp/22",
            `groups:  ${SG_A}`,
            `until:   ${new Date((NOW_SEC - 1) * 1000).toISOString()}`,
          ].join("\n"),
        },
      ]);
    });
  });

  describe("sweep (every minute)", () => {
    it("revokes only the expired rules of every managed group, following NextToken", async () => {
      // Prepare
      const pages: Record<string, { SecurityGroupRules: SecurityGroupRule[]; NextToken?: string }> =
        {
          [`${SG_A}/`]: {
            SecurityGroupRules: [
              managedRule(SG_A, "sgr-0a1", NOW_SEC - 90),
              managedRule(SG_A, "sgr-0a2", NOW_SEC + 20),
              managedRule(SG_A, "sgr-0a3", NOW_SEC - 90, { egress: true }),
            ],
            NextToken: "page-2",
          },
          [`${SG_A}/page-2`]: {
            SecurityGroupRules: [
              managedRule(SG_A, "sgr-0a4", NOW_SEC - 1),
              // A managed rule whose expiry cannot be read is closed, not left open forever.
              managedRule(SG_A, "sgr-0a5", "soon"),
              managedRule(SG_A, "sgr-0a6", NOW_SEC + 1),
            ],
          },
          [`${SG_B}/`]: {
            SecurityGroupRules: [
              managedRule(SG_B, "sgr-0b1", NOW_SEC + 300),
              managedRule(SG_B, "sgr-0b2", NOW_SEC - 3600),
            ],
          },
        };
      mocks.ec2.on(DescribeSecurityGroupRulesCommand).callsFake((input) => {
        const { Filters, NextToken } = input as {
          Filters: { Values: string[] }[];
          NextToken?: string;
        };
        return pages[`${Filters[0]?.Values[0]}/${NextToken ?? ""}`] ?? { SecurityGroupRules: [] };
      });
      const { svc, log } = service();

      // Act
      const result = await svc.sweep();

      // Assess
      expect(result).toEqual({ revoked: ["sgr-0a1", "sgr-0a4", "sgr-0a5", "sgr-0b2"] });
      expect(inputsOf(mocks.ec2, DescribeSecurityGroupRulesCommand)).toEqual([
        describeInput(SG_A),
        describeInput(SG_A, "page-2"),
        describeInput(SG_B),
      ]);
      expect(inputsOf(mocks.ec2, RevokeSecurityGroupIngressCommand)).toEqual([
        { GroupId: SG_A, SecurityGroupRuleIds: ["sgr-0a1", "sgr-0a4", "sgr-0a5"] },
        { GroupId: SG_B, SecurityGroupRuleIds: ["sgr-0b2"] },
      ]);
      expect(log.entries.filter((e) => e.message === "revoked").map((e) => e.extra.reason)).toEqual(
        ["sweep", "sweep", "sweep", "sweep"],
      );
      expect(log.codes()).toEqual([]);
    });

    it("revokes nothing when nothing has expired", async () => {
      groupsHold({
        [SG_A]: [managedRule(SG_A, "sgr-0a1", NOW_SEC + 5)],
        [SG_B]: [managedRule(SG_B, "sgr-0b1", NOW_SEC + 5)],
      });
      const { svc } = service();
      await expect(svc.sweep()).resolves.toEqual({ revoked: [] });
      expect(mocks.ec2.commandCalls(RevokeSecurityGroupIngressCommand)).toHaveLength(0);
    });

    it("sweeps under the opener role in a session named for the sweep (spaknock audit reads it)", async () => {
      groupsHold({ [SG_A]: [managedRule(SG_A, "sgr-0a1", NOW_SEC - 1, { user: "alice" })] });
      mocks.sts.on(AssumeRoleCommand).resolves({
        Credentials: {
          AccessKeyId: "ASIAOPENEREXAMPLE",
          SecretAccessKey: "opener-secret",
          SessionToken: "opener-token",
          Expiration: new Date(NOW_MS + 900_000),
        },
      });
      const { svc } = service({ OPENER_ROLE_ARN: ARNS.openerRole });
      await expect(svc.sweep()).resolves.toEqual({ revoked: ["sgr-0a1"] });
      expect(inputsOf(mocks.sts, AssumeRoleCommand).map((i) => i.RoleSessionName)).toEqual([
        "spaknock-sweep-alice",
      ]);
    });

    it("still sweeps the other groups when one group fails, and logs FIREWALL_FAILED", async () => {
      mocks.ec2.on(DescribeSecurityGroupRulesCommand).callsFake(async (input) => {
        const groupId = (input as { Filters: { Values: string[] }[] }).Filters[0]?.Values[0];
        if (groupId === SG_A) throw ec2Error("UnauthorizedOperation");
        return { SecurityGroupRules: [managedRule(SG_B, "sgr-0b1", NOW_SEC - 1)] };
      });
      const { svc, log } = service();
      await expect(svc.sweep()).resolves.toEqual({ revoked: ["sgr-0b1"] });
      expect(inputsOf(mocks.ec2, RevokeSecurityGroupIngressCommand)).toEqual([
        { GroupId: SG_B, SecurityGroupRuleIds: ["sgr-0b1"] },
      ]);
      expect(log.codes()).toEqual(["FIREWALL_FAILED"]);
      expect(log.entries[0]?.extra.groupId).toBe(SG_A);
    });
  });
});

describe("throttling is retried by the SDK (real EC2 client, loopback server)", () => {
  interface Seen {
    readonly action: string;
    readonly params: Record<string, string>;
    readonly status: number;
  }
  const seen: Seen[] = [];
  let server: Server;
  let endpoint: string;

  const THROTTLED = `<?xml version="1.0" encoding="UTF-8"?>
<Response><Errors><Error><Code>RequestLimitExceeded</Code><Message>Request limit exceeded.</Message></Error></Errors><RequestID>x</RequestID></Response>`;

  const DESCRIBED = `<?xml version="1.0" encoding="UTF-8"?>
<DescribeSecurityGroupRulesResponse xmlns="http://ec2.amazonaws.com/doc/2016-11-15/">
  <requestId>req-describe</requestId>
  <securityGroupRuleSet>
    <item>
      <securityGroupRuleId>sgr-0a1</securityGroupRuleId>
      <groupId>${SG_A}</groupId>
      <groupOwnerId>111122223333</groupOwnerId>
      <isEgress>false</isEgress>
      <ipProtocol>tcp</ipProtocol>
      <fromPort>22</fromPort>
      <toPort>22</toPort>
      <cidrIpv4>203.0.113.7/32</cidrIpv4>
      <description>spaknock user=alice until=2026-11-25T11:59:00Z</description>
      <tagSet>
        <item><key>spaknock:managed</key><value>true</value></item>
        <item><key>spaknock:user</key><value>alice</value></item>
        <item><key>spaknock:expires</key><value>${NOW_SEC - 60}</value></item>
        <item><key>spaknock:stanza</key><value>1</value></item>
      </tagSet>
    </item>
    <item>
      <securityGroupRuleId>sgr-0a2</securityGroupRuleId>
      <groupId>${SG_A}</groupId>
      <isEgress>false</isEgress>
      <ipProtocol>tcp</ipProtocol>
      <fromPort>22</fromPort>
      <toPort>22</toPort>
      <cidrIpv4>198.51.100.4/32</cidrIpv4>
      <tagSet>
        <item><key>spaknock:managed</key><value>true</value></item>
        <item><key>spaknock:user</key><value>bob</value></item>
        <item><key>spaknock:expires</key><value>${NOW_SEC + 60}</value></item>
      </tagSet>
    </item>
  </securityGroupRuleSet>
</DescribeSecurityGroupRulesResponse>`;

  const REVOKED = `<?xml version="1.0" encoding="UTF-8"?>
<RevokeSecurityGroupIngressResponse xmlns="http://ec2.amazonaws.com/doc/2016-11-15/">
  <requestId>req-revoke</requestId>
  <return>true</return>
</RevokeSecurityGroupIngressResponse>`;

  /** Plays EC2: the first request of each action is throttled, the next one answered. */
  async function answer(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    const params = Object.fromEntries(new URLSearchParams(Buffer.concat(chunks).toString()));
    const action = params.Action ?? "";
    const first = !seen.some((s) => s.action === action);
    const status = first ? 503 : 200;
    seen.push({ action, params, status });
    const body = first
      ? THROTTLED
      : action === "DescribeSecurityGroupRules"
        ? DESCRIBED
        : action === "RevokeSecurityGroupIngress"
          ? REVOKED
          : THROTTLED;
    res.writeHead(status, { "content-type": "text/xml;charset=UTF-8" });
    res.end(body);
  }

  beforeAll(async () => {
    server = createServer((req, res) => {
      answer(req, res).catch(() => res.destroy());
    });
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    endpoint = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  afterAll(async () => {
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
  });

  it("sweeps through a RequestLimitExceeded on Describe and on Revoke", async () => {
    // Prepare: a real client with the SDK's default retry strategy (maxAttempts 3).
    const ec2 = new EC2Client(clientConfig(endpoint));
    const log = new RecordingLog();
    const svc = createRevokeService(
      revokeEnv({ MANAGED_GROUPS: SG_A }),
      awsClients({ ec2 }),
      log,
      () => NOW_MS,
    );

    // Act
    const result = await svc.sweep();

    // Assess
    expect(result).toEqual({ revoked: ["sgr-0a1"] });
    expect(log.codes()).toEqual([]);
    expect(seen.map((s) => `${s.action} ${s.status}`)).toEqual([
      "DescribeSecurityGroupRules 503",
      "DescribeSecurityGroupRules 200",
      "RevokeSecurityGroupIngress 503",
      "RevokeSecurityGroupIngress 200",
    ]);
    const describeParams = {
      Action: "DescribeSecurityGroupRules",
      Version: "2016-11-15",
      "Filter.1.Name": "group-id",
      "Filter.1.Value.1": SG_A,
      "Filter.2.Name": "tag-key",
      "Filter.2.Value.1": "spaknock:managed",
      MaxResults: "1000",
    };
    expect(seen[0]?.params).toEqual(describeParams);
    expect(seen[1]?.params).toEqual(describeParams);
    const revokeParams = {
      Action: "RevokeSecurityGroupIngress",
      Version: "2016-11-15",
      GroupId: SG_A,
      "SecurityGroupRuleId.1": "sgr-0a1",
    };
    expect(seen[2]?.params).toEqual(revokeParams);
    expect(seen[3]?.params).toEqual(revokeParams);
    ec2.destroy();
  });
});
