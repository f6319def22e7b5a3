// `spaknock grants` and `spaknock revoke` against EC2 mocked at its documented shapes
// (DescribeSecurityGroupRules with a tag filter, RevokeSecurityGroupIngress by rule id).
import {
  DescribeSecurityGroupRulesCommand,
  EC2Client,
  RevokeSecurityGroupIngressCommand,
  type SecurityGroupRule,
} from "@aws-sdk/client-ec2";
import { mockClient } from "aws-sdk-client-mock";
import { afterAll, beforeEach, describe, expect, it } from "vitest";
import { type AwsCommandDeps, runGrants, runRevoke } from "../../cli/commands/grants.js";

const ec2 = mockClient(EC2Client);
afterAll(() => ec2.restore());

const SG_A = "sg-0123456789abcdef0";
const SG_B = "sg-0fedcba9876543210";
const NOW = 1_795_608_000;

function rule(
  group: string,
  id: string,
  cidr: string,
  user: string,
  expires: number,
): SecurityGroupRule {
  return {
    SecurityGroupRuleId: id,
    GroupId: group,
    GroupOwnerId: "111122223333",
    IsEgress: false,
    IpProtocol: "tcp",
    FromPort: 22,
    ToPort: 22,
    ...(cidr.includes(":") ? { CidrIpv6: cidr } : { CidrIpv4: cidr }),
    Description: `spaknock user=${user} until=x`,
    Tags: [
      { Key: "spaknock:managed", Value: "true" },
      { Key: "spaknock:user", Value: user },
      { Key: "spaknock:expires", Value: String(expires) },
      { Key: "spaknock:stanza", Value: "1" },
    ],
  };
}

const RULES: Record<string, SecurityGroupRule[]> = {
  [SG_A]: [
    rule(SG_A, "sgr-0aaaaaaaaaaaaaaa1", "203.0.113.7/32", "alice", NOW + 20),
    rule(SG_A, "sgr-0aaaaaaaaaaaaaaa2", "2001:db8::9/128", "bob", NOW - 5),
  ],
  [SG_B]: [rule(SG_B, "sgr-0bbbbbbbbbbbbbbb1", "203.0.113.7/32", "alice", NOW + 20)],
};

const deps: AwsCommandDeps = {
  ec2For: () =>
    new EC2Client({ region: "eu-west-1", credentials: { accessKeyId: "a", secretAccessKey: "b" } }),
  nowSec: () => NOW,
};

beforeEach(() => {
  ec2.reset();
  // The tag filter is EC2's: the mock answers only requests that carry it, as EC2 would filter.
  ec2.on(DescribeSecurityGroupRulesCommand).callsFake((input) => {
    const group = input.Filters?.find((f: { Name: string }) => f.Name === "group-id")?.Values?.[0];
    const tagged = input.Filters?.some(
      (f: { Name: string; Values: string[] }) =>
        f.Name === "tag-key" && f.Values.includes("spaknock:managed"),
    );
    return { SecurityGroupRules: tagged ? (RULES[group] ?? []) : [] };
  });
  ec2.on(RevokeSecurityGroupIngressCommand).resolves({ Return: true });
});

async function run<T>(fn: (out: (l: string) => void) => Promise<T>) {
  const lines: string[] = [];
  const result = await fn((l) => lines.push(l));
  return { result, lines };
}

describe("spaknock grants", () => {
  it("lists the spaknock-tagged rules of every guarded group, with time left", async () => {
    const { lines } = await run((out) => runGrants({ group: [SG_A, SG_B], json: true }, out, deps));
    expect(JSON.parse(lines[0] as string).grants).toEqual([
      {
        region: "eu-west-1",
        group: SG_A,
        ruleId: "sgr-0aaaaaaaaaaaaaaa1",
        user: "alice",
        source: "203.0.113.7",
        proto: "tcp",
        port: 22,
        expiresAt: NOW + 20,
        secondsLeft: 20,
      },
      expect.objectContaining({
        ruleId: "sgr-0aaaaaaaaaaaaaaa2",
        source: "2001:db8::9",
        secondsLeft: -5,
      }),
      expect.objectContaining({ group: SG_B, ruleId: "sgr-0bbbbbbbbbbbbbbb1" }),
    ]);
    const table = await run((out) => runGrants({ group: [SG_A] }, out, deps));
    expect(table.lines[0]).toMatch(/2001:db8::9\s+tcp\/22 .*past by 5s/);
  });

  it("needs guarded groups", async () => {
    await expect(
      runGrants({ config: "/nonexistent/spaknock.cloud.json" }, () => {}, deps),
    ).rejects.toThrow(/cannot read/);
    await expect(runGrants({}, () => {}, deps)).rejects.toThrow(/no guarded groups/);
  });
});

describe("spaknock revoke", () => {
  it("--user closes every grant of that engineer, group by group, and says what it closed", async () => {
    const { result, lines } = await run((out) =>
      runRevoke({ group: [SG_A, SG_B], user: "alice" }, out, deps),
    );
    expect(result).toBe(2);
    expect(ec2.commandCalls(RevokeSecurityGroupIngressCommand).map((c) => c.args[0].input)).toEqual(
      [
        { GroupId: SG_A, SecurityGroupRuleIds: ["sgr-0aaaaaaaaaaaaaaa1"] },
        { GroupId: SG_B, SecurityGroupRuleIds: ["sgr-0bbbbbbbbbbbbbbb1"] },
      ],
    );
    expect(lines[0]).toBe("revoked 2 spaknock grant(s):");
  });

  it("--source matches an IPv6 address however it is written; --rule one rule", async () => {
    await run((out) => runRevoke({ group: [SG_A], source: "2001:DB8:0::9" }, out, deps));
    await run((out) =>
      runRevoke({ group: [SG_A, SG_B], rule: "sgr-0bbbbbbbbbbbbbbb1" }, out, deps),
    );
    expect(ec2.commandCalls(RevokeSecurityGroupIngressCommand).map((c) => c.args[0].input)).toEqual(
      [
        { GroupId: SG_A, SecurityGroupRuleIds: ["sgr-0aaaaaaaaaaaaaaa2"] },
        { GroupId: SG_B, SecurityGroupRuleIds: ["sgr-0bbbbbbbbbbbbbbb1"] },
      ],
    );
  });

  it("never revokes a rule that is not spaknock's, and says when nothing matched", async () => {
    // An admin's untagged rule for the same address: DescribeSecurityGroupRules with the tag
    // filter does not return it, so it cannot be chosen.
    const { result, lines } = await run((out) =>
      runRevoke({ group: [SG_A], source: "192.0.2.10" }, out, deps),
    );
    expect(result).toBe(0);
    expect(lines).toEqual(["nothing to revoke: no spaknock grant matches"]);
    expect(ec2.commandCalls(RevokeSecurityGroupIngressCommand)).toHaveLength(0);
  });

  it("takes exactly one of --rule, --user, --source", async () => {
    await expect(runRevoke({ group: [SG_A] }, () => {}, deps)).rejects.toThrow(
      /one of --rule, --user, --source/,
    );
    await expect(
      runRevoke({ group: [SG_A], user: "a", source: "192.0.2.1" }, () => {}, deps),
    ).rejects.toThrow(/one of/);
    await expect(runRevoke({ group: [SG_A], rule: "sg-1" }, () => {}, deps)).rejects.toThrow(
      /not a security group rule id/,
    );
  });
});
