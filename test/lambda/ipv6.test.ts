// IPv6 senders in AWS (issue 10): a knock from an IPv6 address, through the relay event and
// through the function URL, opens one `Ipv6Ranges` /128 rule per group with the same description
// and tags as an IPv4 /32, refreshes it, rolls it back, schedules its revoke, and revoke and sweep
// close it. Mocks answer with the shapes EC2 documents (SecurityGroupRule.CidrIpv6). The packets
// are real fwknop-format packets whose allow-IP is 0.0.0.0 ("the source address"), so the grant's
// address is the sender's.

import { PutItemCommand } from "@aws-sdk/client-dynamodb";
import {
  AuthorizeSecurityGroupIngressCommand,
  CreateTagsCommand,
  ModifySecurityGroupRulesCommand,
  RevokeSecurityGroupIngressCommand,
  type SecurityGroupRule,
} from "@aws-sdk/client-ec2";
import { CreateScheduleCommand } from "@aws-sdk/client-scheduler";
import { PublishCommand } from "@aws-sdk/client-sns";
import { afterAll, beforeEach, describe, expect, it } from "vitest";
import { isSpaError } from "../../core/index.js";
import {
  grantOfRule,
  type ManagedRule,
  ruleSource,
} from "../../lambda/adapters/security-group-firewall.js";
import {
  ARNS,
  describeRulesPerGroup,
  ec2Error,
  inputsOf,
  knockService,
  managedTags,
  mockAws,
  NOW_SEC,
  relayEvent,
  resetAws,
  restoreAws,
  revokeService,
  SG_A,
  SG_B,
  spaData,
  urlEvent,
  useDummyAwsEnvironment,
} from "../helpers/lambda-fixtures.js";

useDummyAwsEnvironment();
const mocks = mockAws();
afterAll(() => restoreAws(mocks));

/** The sender as a client's stack might spell it, and as RFC 5952 writes it. */
const SENDER = "2001:DB8:0:0:0:0:0:7";
const SOURCE = "2001:db8::7";
const CIDR = `${SOURCE}/128`;
const UNTIL = "2026-11-25T12:00:30Z";
const RULE_A = "sgr-0a6a6a6a6a6a6a6a6";
const RULE_B = "sgr-0b6b6b6b6b6b6b6b6";
const ruleOf = (groupId: string) => (groupId === SG_A ? RULE_A : RULE_B);
const BOTH_RULES = [
  { groupId: SG_A, ruleId: RULE_A },
  { groupId: SG_B, ruleId: RULE_B },
];

/** A packet that asks for the address it is sent from. */
const fromSender = () => spaData({ message: "0.0.0.0,tcp/22" });

/** AuthorizeSecurityGroupIngress for one IPv6 address: Ipv6Ranges, and no IpRanges at all. */
function authorizeInput(groupId: string) {
  return {
    GroupId: groupId,
    IpPermissions: [
      {
        IpProtocol: "tcp",
        FromPort: 22,
        ToPort: 22,
        Ipv6Ranges: [{ CidrIpv6: CIDR, Description: `spaknock user=alice until=${UNTIL}` }],
      },
    ],
    TagSpecifications: [{ ResourceType: "security-group-rule", Tags: managedTags() }],
  };
}

/** What EC2 answers to that request: the new rule, with its CidrIpv6. */
function authorizeCreates(groups = [SG_A, SG_B]): void {
  for (const groupId of groups)
    mocks.ec2.on(AuthorizeSecurityGroupIngressCommand, { GroupId: groupId }).resolves({
      Return: true,
      SecurityGroupRules: [
        {
          SecurityGroupRuleId: ruleOf(groupId),
          GroupId: groupId,
          GroupOwnerId: "111122223333",
          IsEgress: false,
          IpProtocol: "tcp",
          FromPort: 22,
          ToPort: 22,
          CidrIpv6: CIDR,
          Description: `spaknock user=alice until=${UNTIL}`,
        },
      ],
    });
}

/** Both services notify, so each test can see what a notice says. */
const NOTIFIED = { NOTIFY_TOPIC_ARN: ARNS.topic };

beforeEach(() => {
  resetAws(mocks);
  mocks.scheduler.on(CreateScheduleCommand).resolves({ ScheduleArn: "arn:aws:scheduler:x" });
  mocks.sns.on(PublishCommand).resolves({ MessageId: "m-1" });
  mocks.ec2.on(RevokeSecurityGroupIngressCommand).resolves({ Return: true });
});

describe("ruleSource: the rule an address becomes", () => {
  it.each([
    ["203.0.113.7", { family: 4, cidr: "203.0.113.7/32" }],
    ["2001:db8::7", { family: 6, cidr: "2001:db8::7/128" }],
    [SENDER, { family: 6, cidr: "2001:db8::7/128" }],
    ["::ffff:203.0.113.7", { family: 4, cidr: "203.0.113.7/32" }],
    ["::ffff:cb00:7107", { family: 4, cidr: "203.0.113.7/32" }],
  ])("%s becomes %j", (address, expected) => {
    expect(ruleSource(address)).toEqual(expected);
  });

  it.each(["", "2001:db8::7/128", "[2001:db8::7]", "fe80::1%eth0", "2001:db8::7::1", "010.0.0.1"])(
    "refuses %j with FIREWALL_FAILED",
    (address) => {
      let caught: unknown;
      try {
        ruleSource(address);
      } catch (err) {
        caught = err;
      }
      expect(isSpaError(caught) && caught.code).toBe("FIREWALL_FAILED");
    },
  );

  it("names the closed grant's address without its /128", () => {
    const rule: ManagedRule = {
      groupId: SG_A,
      ruleId: RULE_A,
      expiresAt: NOW_SEC,
      user: "alice",
      cidr: CIDR,
      proto: "tcp",
      port: 22,
      stanza: 1,
    };
    expect(grantOfRule(rule, NOW_SEC).sourceIp).toBe(SOURCE);
    // A wider rule (not spaknock's shape) keeps its prefix, so the notice does not understate it.
    expect(grantOfRule({ ...rule, cidr: "2001:db8::/64" }, NOW_SEC).sourceIp).toBe("2001:db8::/64");
  });
});

describe("knock from an IPv6 sender", () => {
  it("through the relay: one /128 rule per group, tagged, claimed, scheduled and notified", async () => {
    // Prepare
    authorizeCreates();
    const { knock, log } = knockService(NOTIFIED);

    // Act
    await knock.handle(relayEvent(fromSender(), SENDER));

    // Assess
    expect(inputsOf(mocks.ec2, AuthorizeSecurityGroupIngressCommand)).toEqual([
      authorizeInput(SG_A),
      authorizeInput(SG_B),
    ]);
    // The replay record keeps the sender in canonical text.
    expect(inputsOf(mocks.dynamodb, PutItemCommand)[0]?.Item?.sourceIp).toEqual({ S: SOURCE });
    const [schedule] = inputsOf(mocks.scheduler, CreateScheduleCommand);
    expect(schedule).toMatchObject({
      ScheduleExpression: "at(2026-11-25T12:00:30)",
      Description: `revoke spaknock grant for ${SOURCE} (alice)`,
      Target: { Arn: ARNS.revokeFunction, Input: JSON.stringify({ rules: BOTH_RULES }) },
    });
    expect(inputsOf(mocks.sns, PublishCommand)[0]).toMatchObject({
      Subject: `spaknock opened ${SOURCE} for alice`,
    });
    expect(inputsOf(mocks.sns, PublishCommand)[0]?.Message).toContain(`source:  ${SOURCE}`);
    expect(mocks.ec2.commandCalls(RevokeSecurityGroupIngressCommand)).toHaveLength(0);
    expect(log.entries.find((e) => e.message === "granted")?.extra).toMatchObject({
      sourceIp: SOURCE,
      rules: BOTH_RULES,
      via: "relay",
    });
  });

  it.each([
    ["POST", (spa: string) => urlEvent("POST", { body: spa, sourceIp: SOURCE })],
    [
      "GET /<data>",
      (spa: string) =>
        urlEvent("GET", {
          rawPath: `/${spa.replace(/\+/g, "-").replace(/\//g, "_")}`,
          sourceIp: SOURCE,
        }),
    ],
  ])("through the function URL (%s): the same /128 rules", async (_name, event) => {
    authorizeCreates();
    const { knock, log } = knockService(NOTIFIED);
    await knock.handle(event(fromSender()));
    expect(inputsOf(mocks.ec2, AuthorizeSecurityGroupIngressCommand)).toEqual([
      authorizeInput(SG_A),
      authorizeInput(SG_B),
    ]);
    expect(mocks.scheduler.commandCalls(CreateScheduleCommand)).toHaveLength(1);
    expect(log.entries.find((e) => e.message === "granted")?.extra).toMatchObject({
      sourceIp: SOURCE,
      via: "url",
    });
  });

  it.each([
    ["the relay", () => relayEvent(fromSender(), "::ffff:198.51.100.9")],
    [
      "the function URL",
      () => urlEvent("POST", { body: fromSender(), sourceIp: "::ffff:198.51.100.9" }),
    ],
  ])("an IPv4-mapped sender through %s opens the IPv4 /32", async (_name, event) => {
    authorizeCreates();
    const { knock } = knockService(NOTIFIED);
    await knock.handle(event());
    const [first] = inputsOf(mocks.ec2, AuthorizeSecurityGroupIngressCommand);
    expect(first?.IpPermissions).toEqual([
      {
        IpProtocol: "tcp",
        FromPort: 22,
        ToPort: 22,
        IpRanges: [
          { CidrIp: "198.51.100.9/32", Description: `spaknock user=alice until=${UNTIL}` },
        ],
      },
    ]);
    expect(inputsOf(mocks.dynamodb, PutItemCommand)[0]?.Item?.sourceIp).toEqual({
      S: "198.51.100.9",
    });
  });

  it("a packet naming an IPv4 address opens that address even when sent over IPv6", async () => {
    authorizeCreates();
    const { knock } = knockService(NOTIFIED);
    await knock.handle(relayEvent(spaData({ message: "203.0.113.7,tcp/22" }), SOURCE));
    const ranges = inputsOf(mocks.ec2, AuthorizeSecurityGroupIngressCommand).map(
      (i) => i.IpPermissions?.[0],
    );
    expect(ranges.map((p) => p?.IpRanges?.[0]?.CidrIp)).toEqual([
      "203.0.113.7/32",
      "203.0.113.7/32",
    ]);
    expect(ranges.every((p) => p?.Ipv6Ranges === undefined)).toBe(true);
  });
});

describe("refresh and all-or-nothing for an IPv6 rule", () => {
  /** Each group lists look-alikes and then spaknock's /128 for SOURCE on tcp/22. */
  function describeFinds(tags: SecurityGroupRule["Tags"]): void {
    describeRulesPerGroup(mocks.ec2, (groupId) => {
      const base = { GroupId: groupId, IpProtocol: "tcp", FromPort: 22, ToPort: 22 };
      return [
        // Same address, but outbound; a /64 around it; another /128; the IPv4 rule of the port.
        { ...base, SecurityGroupRuleId: "sgr-0000000000000001e", IsEgress: true, CidrIpv6: CIDR },
        {
          ...base,
          SecurityGroupRuleId: "sgr-0000000000000001f",
          IsEgress: false,
          CidrIpv6: "2001:db8::/64",
        },
        {
          ...base,
          SecurityGroupRuleId: "sgr-00000000000000020",
          IsEgress: false,
          CidrIpv6: "2001:db8::8/128",
        },
        {
          ...base,
          SecurityGroupRuleId: "sgr-00000000000000021",
          IsEgress: false,
          CidrIpv4: "203.0.113.7/32",
        },
        {
          ...base,
          SecurityGroupRuleId: ruleOf(groupId),
          IsEgress: false,
          CidrIpv6: CIDR,
          Description: "spaknock user=alice until=2026-11-25T11:59:55Z",
          Tags: tags,
        },
      ];
    });
  }

  const modifyInput = (groupId: string, description: string) => ({
    GroupId: groupId,
    SecurityGroupRules: [
      {
        SecurityGroupRuleId: ruleOf(groupId),
        SecurityGroupRule: {
          IpProtocol: "tcp",
          FromPort: 22,
          ToPort: 22,
          CidrIpv6: CIDR,
          Description: description,
        },
      },
    ],
  });

  it("a second knock modifies the /128 rule's description and re-tags it, then schedules", async () => {
    // Prepare
    mocks.ec2
      .on(AuthorizeSecurityGroupIngressCommand)
      .rejects(ec2Error("InvalidPermission.Duplicate"));
    describeFinds(managedTags(NOW_SEC + 5));
    const { knock, log } = knockService(NOTIFIED);

    // Act
    await knock.handle(relayEvent(fromSender(), SENDER));

    // Assess
    expect(inputsOf(mocks.ec2, ModifySecurityGroupRulesCommand)).toEqual([
      modifyInput(SG_A, `spaknock user=alice until=${UNTIL}`),
      modifyInput(SG_B, `spaknock user=alice until=${UNTIL}`),
    ]);
    expect(inputsOf(mocks.ec2, CreateTagsCommand)).toEqual([
      { Resources: [RULE_A], Tags: managedTags() },
      { Resources: [RULE_B], Tags: managedTags() },
    ]);
    expect(mocks.scheduler.commandCalls(CreateScheduleCommand)).toHaveLength(1);
    expect(log.entries.map((e) => e.message)).toContain("granted");
  });

  it("leaves an admin's permanent /128 for the same address alone", async () => {
    mocks.ec2
      .on(AuthorizeSecurityGroupIngressCommand)
      .rejects(ec2Error("InvalidPermission.Duplicate"));
    describeFinds([{ Key: "Name", Value: "office" }]);
    const { knock, log } = knockService(NOTIFIED);
    await knock.handle(relayEvent(fromSender(), SOURCE));
    expect(mocks.ec2.commandCalls(ModifySecurityGroupRulesCommand)).toHaveLength(0);
    expect(mocks.ec2.commandCalls(CreateTagsCommand)).toHaveLength(0);
    // Found as the same address and port, so the door is open without spaknock: no failure.
    expect(log.codes()).not.toContain("FIREWALL_FAILED");
    expect(
      log.entries
        .filter((e) => e.message.startsWith("address already allowed by a rule spaknock does not"))
        .map((e) => e.extra.ruleId),
    ).toEqual([RULE_A, RULE_B]);
  });

  it("fails closed when EC2 says duplicate and only look-alike rules are listed", async () => {
    mocks.ec2
      .on(AuthorizeSecurityGroupIngressCommand)
      .rejects(ec2Error("InvalidPermission.Duplicate"));
    // The address is 2001:db8::9 this time: none of the listed rules is its /128.
    describeFinds(managedTags(NOW_SEC + 5));
    const { knock, log } = knockService(NOTIFIED);
    await knock.handle(relayEvent(fromSender(), "2001:db8::9"));
    expect(log.codes()).toEqual(["FIREWALL_FAILED"]);
    expect(mocks.ec2.commandCalls(ModifySecurityGroupRulesCommand)).toHaveLength(0);
    expect(mocks.scheduler.commandCalls(CreateScheduleCommand)).toHaveLength(0);
  });

  it("revokes the first group's new /128 when the second group refuses", async () => {
    // Prepare
    authorizeCreates([SG_A]);
    mocks.ec2
      .on(AuthorizeSecurityGroupIngressCommand, { GroupId: SG_B })
      .rejects(ec2Error("RulesPerSecurityGroupLimitExceeded"));
    const { knock, log } = knockService(NOTIFIED);

    // Act
    await knock.handle(relayEvent(fromSender(), SOURCE));

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
    expect(log.entries.find((e) => e.message === "refused")?.extra).toMatchObject({
      code: "FIREWALL_FAILED",
      sourceIp: SOURCE,
    });
  });

  it("puts a refreshed /128's old description and tags back when the second group refuses", async () => {
    mocks.ec2
      .on(AuthorizeSecurityGroupIngressCommand, { GroupId: SG_A })
      .rejects(ec2Error("InvalidPermission.Duplicate"));
    mocks.ec2
      .on(AuthorizeSecurityGroupIngressCommand, { GroupId: SG_B })
      .rejects(ec2Error("UnauthorizedOperation"));
    describeFinds(managedTags(NOW_SEC + 5));
    const { knock, log } = knockService(NOTIFIED);
    await knock.handle(relayEvent(fromSender(), SOURCE));
    expect(inputsOf(mocks.ec2, ModifySecurityGroupRulesCommand)).toEqual([
      modifyInput(SG_A, `spaknock user=alice until=${UNTIL}`),
      modifyInput(SG_A, "spaknock user=alice until=2026-11-25T11:59:55Z"),
    ]);
    expect(inputsOf(mocks.ec2, CreateTagsCommand)).toEqual([
      { Resources: [RULE_A], Tags: managedTags() },
      { Resources: [RULE_A], Tags: managedTags(NOW_SEC + 5) },
    ]);
    expect(mocks.scheduler.commandCalls(CreateScheduleCommand)).toHaveLength(0);
    expect(log.codes()).toContain("FIREWALL_FAILED");
  });
});

describe("revoke and sweep close IPv6 rules", () => {
  /** A spaknock /128 as DescribeSecurityGroupRules lists it. */
  function managedIpv6Rule(groupId: string, ruleId: string, expires: number): SecurityGroupRule {
    return {
      SecurityGroupRuleId: ruleId,
      GroupId: groupId,
      GroupOwnerId: "111122223333",
      IsEgress: false,
      IpProtocol: "tcp",
      FromPort: 22,
      ToPort: 22,
      CidrIpv6: CIDR,
      Description: `spaknock user=alice until=${UNTIL}`,
      Tags: managedTags(expires),
    };
  }

  const groupsHold = (byGroup: Record<string, SecurityGroupRule[]>) =>
    describeRulesPerGroup(mocks.ec2, (groupId) => byGroup[groupId] ?? []);

  it("the schedule's revoke closes the /128 rules by id and notifies with the address", async () => {
    // Prepare
    groupsHold({
      [SG_A]: [managedIpv6Rule(SG_A, RULE_A, NOW_SEC - 1)],
      [SG_B]: [managedIpv6Rule(SG_B, RULE_B, NOW_SEC - 1)],
    });
    const { svc, log } = revokeService(NOTIFIED);

    // Act
    const out = await svc.revoke({ rules: BOTH_RULES });

    // Assess
    expect(out).toEqual({ revoked: [RULE_A, RULE_B], kept: [] });
    expect(inputsOf(mocks.ec2, RevokeSecurityGroupIngressCommand)).toEqual([
      { GroupId: SG_A, SecurityGroupRuleIds: [RULE_A] },
      { GroupId: SG_B, SecurityGroupRuleIds: [RULE_B] },
    ]);
    expect(log.entries.find((e) => e.message === "revoked")?.extra).toMatchObject({
      reason: "schedule",
      cidr: CIDR,
      port: 22,
    });
    const notices = inputsOf(mocks.sns, PublishCommand);
    expect(notices.map((n) => n.Subject)).toEqual([
      `spaknock closed ${SOURCE} for alice`,
      `spaknock closed ${SOURCE} for alice`,
    ]);
    expect(notices[0]?.Message).toContain(`source:  ${SOURCE}\n`);
  });

  it("the schedule's revoke keeps a /128 refreshed since", async () => {
    groupsHold({ [SG_A]: [managedIpv6Rule(SG_A, RULE_A, NOW_SEC + 20)] });
    const { svc } = revokeService(NOTIFIED);
    await expect(svc.revoke({ rules: [{ groupId: SG_A, ruleId: RULE_A }] })).resolves.toEqual({
      revoked: [],
      kept: [RULE_A],
    });
    expect(mocks.ec2.commandCalls(RevokeSecurityGroupIngressCommand)).toHaveLength(0);
  });

  it("the sweep closes expired IPv6 and IPv4 rules alike and keeps the rest", async () => {
    const ipv4Rule: SecurityGroupRule = {
      ...managedIpv6Rule(SG_B, "sgr-0b4b4b4b4b4b4b4b4", NOW_SEC - 60),
      CidrIpv6: undefined,
      CidrIpv4: "203.0.113.7/32",
    };
    groupsHold({
      [SG_A]: [
        managedIpv6Rule(SG_A, RULE_A, NOW_SEC - 60),
        managedIpv6Rule(SG_A, "sgr-0a7a7a7a7a7a7a7a7", NOW_SEC + 60),
      ],
      [SG_B]: [ipv4Rule, managedIpv6Rule(SG_B, RULE_B, NOW_SEC)],
    });
    const { svc, log } = revokeService(NOTIFIED);
    const out = await svc.sweep();
    expect(out.revoked).toEqual([RULE_A, "sgr-0b4b4b4b4b4b4b4b4", RULE_B]);
    expect(inputsOf(mocks.ec2, RevokeSecurityGroupIngressCommand)).toEqual([
      { GroupId: SG_A, SecurityGroupRuleIds: [RULE_A] },
      { GroupId: SG_B, SecurityGroupRuleIds: ["sgr-0b4b4b4b4b4b4b4b4", RULE_B] },
    ]);
    expect(log.entries.filter((e) => e.message === "revoked").map((e) => e.extra.cidr)).toEqual([
      CIDR,
      "203.0.113.7/32",
      CIDR,
    ]);
  });
});
