/**
 * The EC2 permissions that opening and closing a grant need, as IAM statements, scoped to the
 * guarded groups and to spaknock's own rules. Kept apart from the construct so that the policy a
 * reviewer reads is in one place.
 *
 * EC2 authorizes a security-group-rule call against two resources: the group (which the ARN
 * pins to the guarded groups) and the rule (`security-group-rule/*`: a new rule's id is not
 * known in advance, so the rule is narrowed by its tags instead).
 *
 * No statement names an address family: the Service Authorization Reference has no condition key
 * for a rule's CidrIp or CidrIpv6, so IAM cannot tell an IPv4 /32 from an IPv6 /128 (or from a
 * wider range). Both are allowed, and confined, by the same statements; that a rule is for the
 * knocker's one address is the code's doing (test/lambda/iam-calls.test.ts checks the reference
 * still lists no such key).
 */
import { ArnFormat, Stack } from "aws-cdk-lib";
import { PolicyStatement } from "aws-cdk-lib/aws-iam";
import type { Construct } from "constructs";

/** The tags lambda/adapters/security-group-firewall.ts puts on every rule it opens. */
export const RULE_TAG_KEYS = [
  "spaknock:managed",
  "spaknock:user",
  "spaknock:expires",
  "spaknock:stanza",
] as const;
export const MANAGED_TAG = "spaknock:managed";

export interface GuardedGroupArns {
  /** `arn:…:security-group/sg-…` of each guarded group. */
  readonly groupArns: readonly string[];
  /** `arn:…:security-group-rule/*`. */
  readonly ruleArn: string;
}

export function guardedGroupArns(scope: Construct, groupIds: readonly string[]): GuardedGroupArns {
  const stack = Stack.of(scope);
  const arn = (resource: string, resourceName: string) =>
    stack.formatArn({
      service: "ec2",
      resource,
      resourceName,
      arnFormat: ArnFormat.SLASH_RESOURCE_NAME,
    });
  return {
    groupArns: groupIds.map((id) => arn("security-group", id)),
    ruleArn: arn("security-group-rule", "*"),
  };
}

const onlySpaknockTagKeys = { "ForAllValues:StringEquals": { "aws:TagKeys": [...RULE_TAG_KEYS] } };

/**
 * Opening a grant (the knock function, or the opener role it acts through): authorize a rule for
 * one address (IPv4 /32 or IPv6 /128) that carries `spaknock:managed=true`, refresh a rule that is already spaknock's, find the
 * existing rule on a duplicate, and roll back a partial grant.
 */
export function openStatements({ groupArns, ruleArn }: GuardedGroupArns): PolicyStatement[] {
  return [
    new PolicyStatement({
      sid: "AuthorizeOnGuardedGroupsOnly",
      actions: ["ec2:AuthorizeSecurityGroupIngress"],
      resources: [...groupArns],
    }),
    // The rule being created is authorized with the request's tags: it must be marked
    // spaknock:managed=true (so the sweeper owns it) and carry spaknock's tag keys only.
    new PolicyStatement({
      sid: "AuthorizeOnlyRulesTaggedManaged",
      actions: ["ec2:AuthorizeSecurityGroupIngress"],
      resources: [ruleArn],
      conditions: {
        StringEquals: { [`aws:RequestTag/${MANAGED_TAG}`]: "true" },
        ...onlySpaknockTagKeys,
      },
    }),
    // Tag-on-create: TagSpecifications in AuthorizeSecurityGroupIngress are authorized as
    // ec2:CreateTags on the new rule. ec2:CreateAction limits this statement to that case, so it
    // cannot tag an existing rule, nor anything that is not a security-group rule.
    new PolicyStatement({
      sid: "TagNewRulesOnlyWhileAuthorizing",
      actions: ["ec2:CreateTags"],
      resources: [ruleArn],
      conditions: {
        StringEquals: {
          "ec2:CreateAction": "AuthorizeSecurityGroupIngress",
          [`aws:RequestTag/${MANAGED_TAG}`]: "true",
        },
        ...onlySpaknockTagKeys,
      },
    }),
    // A second knock for the same address and port refreshes the existing rule: CreateTags writes
    // the new spaknock:expires. Only on a rule that already carries spaknock:managed, so a
    // permanent rule somebody added by hand for the same address can never be re-tagged into one the
    // sweeper would later revoke.
    new PolicyStatement({
      sid: "RetagOnlyRulesAlreadyManaged",
      actions: ["ec2:CreateTags"],
      resources: [ruleArn],
      conditions: {
        StringEquals: {
          [`aws:ResourceTag/${MANAGED_TAG}`]: "true",
          [`aws:RequestTag/${MANAGED_TAG}`]: "true",
        },
        ...onlySpaknockTagKeys,
      },
    }),
    // The refresh also rewrites the rule's description (who, until when), in the guarded groups
    // and on spaknock's own rules only, for the same reason as above.
    new PolicyStatement({
      sid: "RefreshDescriptionOnGuardedGroupsOnly",
      actions: ["ec2:ModifySecurityGroupRules"],
      resources: [...groupArns],
    }),
    new PolicyStatement({
      sid: "RefreshDescriptionOfManagedRulesOnly",
      actions: ["ec2:ModifySecurityGroupRules"],
      resources: [ruleArn],
      conditions: { StringEquals: { [`aws:ResourceTag/${MANAGED_TAG}`]: "true" } },
    }),
    ...closeStatements({ groupArns }, "RollBack"),
    describeRulesStatement(),
  ];
}

/**
 * Closing a grant (revoke, sweep, the knock function's all-or-nothing rollback): revoke by rule
 * id, in the guarded groups only. The Service Authorization Reference lists one resource type for
 * ec2:RevokeSecurityGroupIngress, the security group: IAM never sees the rule being revoked, so
 * no statement can confine a revoke to spaknock's own rules (a condition on the rule's tags would
 * simply never apply). Which rules are revoked is decided in code: revoke and sweep take only
 * spaknock-tagged rules whose expiry has passed, and the rollback only the rules the same knock
 * has just created, by id. test/lambda/iam-calls.test.ts checks this against the reference.
 */
export function closeStatements(
  { groupArns }: Pick<GuardedGroupArns, "groupArns">,
  sidPrefix = "Revoke",
): PolicyStatement[] {
  return [
    new PolicyStatement({
      sid: `${sidPrefix}OnGuardedGroupsOnly`,
      actions: ["ec2:RevokeSecurityGroupIngress"],
      resources: [...groupArns],
    }),
  ];
}

/**
 * For people: what an auditor needs for `spaknock audit` and `spaknock grants` (read only:
 * CloudTrail's LookupEvents and DescribeSecurityGroupRules, neither of which has resource-level
 * permissions), and what an operator adds for `spaknock revoke`: revoke in the guarded groups
 * only. As for the closer role, IAM cannot confine a revoke to spaknock's tagged rules; the
 * command revokes only rules that carry `spaknock:managed` (cli/commands/grants.ts).
 */
export function auditorStatements(): PolicyStatement[] {
  return [
    new PolicyStatement({
      sid: "ReadCloudTrailEvents",
      actions: ["cloudtrail:LookupEvents"],
      resources: ["*"],
    }),
    describeRulesStatement(),
  ];
}

export function operatorStatements(arns: Pick<GuardedGroupArns, "groupArns">): PolicyStatement[] {
  return [...auditorStatements(), ...closeStatements(arns, "RevokeEarly")];
}

/** DescribeSecurityGroupRules has no resource-level permissions: it is `*` or nothing. */
export function describeRulesStatement(): PolicyStatement {
  return new PolicyStatement({
    sid: "DescribeSecurityGroupRules",
    actions: ["ec2:DescribeSecurityGroupRules"],
    resources: ["*"],
  });
}
