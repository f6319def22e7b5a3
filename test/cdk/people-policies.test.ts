// The two managed policies the construct makes for people (issue 12): AuditorPolicy reads,
// OperatorPolicy also revokes in the guarded groups, and neither allows any other write.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type Synthesized, synthesize } from "./synthesize.js";

const GROUPS = ["sg-0123456789abcdef0", "sg-0fedcba9876543210"];
let s: Synthesized;

beforeAll(() => {
  s = synthesize(
    { stackName: "SpaknockPeople", guardedSecurityGroupIds: GROUPS },
    { bundle: false },
  );
}, 120_000);
afterAll(() => s?.cleanUp());

interface Statement {
  Sid?: string;
  Effect: string;
  Action: string | string[];
  Resource: unknown;
  Condition?: unknown;
}

function statementsOf(logicalIdPrefix: string): Statement[] {
  const policies = s.template.findResources("AWS::IAM::ManagedPolicy");
  const [id] = Object.keys(policies).filter((k) => k.startsWith(logicalIdPrefix));
  expect(id, `a managed policy ${logicalIdPrefix}*`).toBeDefined();
  return (policies[id as string]?.Properties?.PolicyDocument?.Statement ?? []) as Statement[];
}

const actions = (statements: readonly Statement[]) =>
  statements.flatMap((st) => (Array.isArray(st.Action) ? st.Action : [st.Action])).sort();

describe("AuditorPolicy and OperatorPolicy", () => {
  it("the auditor reads CloudTrail events and security group rules, nothing else", () => {
    const statements = statementsOf("SpaKnockerAuditorPolicy");
    expect(actions(statements)).toEqual([
      "cloudtrail:LookupEvents",
      "ec2:DescribeSecurityGroupRules",
    ]);
    expect(statements.every((st) => st.Effect === "Allow" && st.Resource === "*")).toBe(true);
  });

  it("the operator adds revoke, on the guarded groups' ARNs only", () => {
    const statements = statementsOf("SpaKnockerOperatorPolicy");
    expect(actions(statements)).toEqual([
      "cloudtrail:LookupEvents",
      "ec2:DescribeSecurityGroupRules",
      "ec2:RevokeSecurityGroupIngress",
    ]);
    const revoke = statements.find((st) => st.Action === "ec2:RevokeSecurityGroupIngress");
    const resources = JSON.stringify(revoke?.Resource);
    for (const g of GROUPS) expect(resources).toContain(`:security-group/${g}`);
    expect(resources).not.toContain('"*"');
    expect(Array.isArray(revoke?.Resource) && revoke.Resource).toHaveLength(GROUPS.length);
  });

  it("both are stack outputs, for a team to attach to its own roles", () => {
    const outputs = s.template.findOutputs("*");
    expect(outputs.SpaKnockerAuditorPolicyArn?.Value).toEqual({
      Ref: expect.stringMatching(/^SpaKnockerAuditorPolicy/),
    });
    expect(outputs.SpaKnockerOperatorPolicyArn?.Value).toEqual({
      Ref: expect.stringMatching(/^SpaKnockerOperatorPolicy/),
    });
  });
});
