/**
 * The default deployment (one relay instance with an Elastic IP, opener roles) plus the optional
 * parts (function URL, SNS notices), synthesized once with real bundling: resources, IAM, relay,
 * outputs, cdk-nag, and a scan of cdk.out for a test access.conf's keys.
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { Token } from "aws-cdk-lib";
import { Match } from "aws-cdk-lib/assertions";
import { Runtime } from "aws-cdk-lib/aws-lambda";
import { AwsSolutionsChecks } from "cdk-nag";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { RULE_TAG_KEYS } from "../../cdk/security-group-policy.js";
import { ACCESS_CONF_PLACEHOLDER } from "../../cdk/spa-knocker.js";
import { parseAccessConf, parseConfText } from "../../core/index.js";
import { TAG } from "../../lambda/adapters/security-group-firewall.js";
import {
  actionsOf,
  filesUnder,
  policyOf,
  resourceNamed,
  type Synthesized,
  statement,
  synthesize,
} from "./synthesize.js";

const GROUPS = ["sg-0123456789abcdef0", "sg-0fedcba9876543210"];
const ACCESS_CONF = readFileSync(join(import.meta.dirname, "fixtures", "access.conf"), "utf8");

let s: Synthesized;

beforeAll(() => {
  s = synthesize({
    stackName: "SpaknockTest",
    guardedSecurityGroupIds: GROUPS,
    relay: { mode: "eip" },
    functionUrl: true,
    notificationEmails: ["ops@example.com", "security@example.com"],
  });
}, 120_000);

afterAll(() => s?.cleanUp());

const sgArn = (id: string) => ({
  "Fn::Join": [
    "",
    [
      "arn:",
      { Ref: "AWS::Partition" },
      ":ec2:",
      { Ref: "AWS::Region" },
      ":",
      { Ref: "AWS::AccountId" },
      `:security-group/${id}`,
    ],
  ],
});
const ruleArn = {
  "Fn::Join": [
    "",
    [
      "arn:",
      { Ref: "AWS::Partition" },
      ":ec2:",
      { Ref: "AWS::Region" },
      ":",
      { Ref: "AWS::AccountId" },
      ":security-group-rule/*",
    ],
  ],
};

describe("functions", () => {
  it("deploys knock, revoke and sweep on arm64 with the newest Node.js runtime and JSON logs", () => {
    // Prepare / Act
    const functions = s.template.findResources("AWS::Lambda::Function");
    // Assess
    expect(Object.keys(functions)).toHaveLength(3);
    for (const prefix of ["SpaKnockerKnock", "SpaKnockerRevoke", "SpaKnockerSweep"]) {
      const fn = resourceNamed(s.template, "AWS::Lambda::Function", prefix).Properties;
      expect(fn.Runtime).toBe("nodejs24.x");
      expect(fn.Architectures).toEqual(["arm64"]);
      expect(fn.Handler).toBe("index.handler");
      expect(fn.LoggingConfig).toMatchObject({
        LogFormat: "JSON",
        ApplicationLogLevel: "INFO",
        SystemLogLevel: "WARN",
        LogGroup: { Ref: expect.stringMatching(new RegExp(`^${prefix}Logs`)) },
      });
    }
  });

  it("uses the newest Node.js runtime this aws-cdk-lib knows", () => {
    const newest = Runtime.ALL.filter((r) => /^nodejs\d+\.x$/.test(r.name))
      .map((r) => r.name)
      .sort((a, b) => Number.parseInt(b.slice(6), 10) - Number.parseInt(a.slice(6), 10))[0];
    expect(newest).toBe("nodejs24.x");
  });

  it("lets Lambda retry a failed revoke, but not a knock or a sweep", () => {
    const configs = s.template.findResources("AWS::Lambda::EventInvokeConfig");
    expect(
      Object.values(configs).map((c) => [
        (c.Properties.FunctionName as { Ref: string }).Ref.replace(/[0-9A-F]{8}$/, ""),
        c.Properties.MaximumRetryAttempts,
      ]),
    ).toEqual(
      expect.arrayContaining([
        ["SpaKnockerKnock", 0],
        ["SpaKnockerSweep", 0],
      ]),
    );
    expect(Object.keys(configs)).toHaveLength(2);
  });

  it("drops a knock event Lambda could not run within 60 s, instead of queueing it for 6 hours", () => {
    const knock = Object.values(s.template.findResources("AWS::Lambda::EventInvokeConfig")).find(
      (c) => (c.Properties.FunctionName as { Ref: string }).Ref.startsWith("SpaKnockerKnock"),
    );
    expect(knock?.Properties).toMatchObject({
      MaximumEventAgeInSeconds: 60,
      MaximumRetryAttempts: 0,
    });
  });

  it("reserves concurrency for revoke and sweep, and caps the knock function", () => {
    const reserved = (prefix: string) =>
      resourceNamed(s.template, "AWS::Lambda::Function", prefix).Properties
        .ReservedConcurrentExecutions;
    expect(reserved("SpaKnockerKnock")).toBe(10);
    expect(reserved("SpaKnockerRevoke")).toBe(5);
    expect(reserved("SpaKnockerSweep")).toBe(1);
  });

  it("keeps every function's logs for the configured retention", () => {
    const groups = s.template.findResources("AWS::Logs::LogGroup");
    // Three functions and the VPC flow log.
    expect(Object.keys(groups)).toHaveLength(4);
    for (const group of Object.values(groups)) {
      expect(group.Properties.RetentionInDays).toBe(90);
    }
  });

  it("gives the knock function every variable lambda/environment.ts reads, and the DLQ", () => {
    const env = resourceNamed(s.template, "AWS::Lambda::Function", "SpaKnockerKnock").Properties
      .Environment as { Variables: Record<string, unknown> };
    expect(Object.keys(env.Variables).sort()).toEqual(
      [
        "ACCESS_CONFIG_SECRET",
        "ACCESS_CONFIG_TTL",
        "MANAGED_GROUPS",
        "MAX_SPA_PACKET_AGE",
        "NOTIFY_TOPIC_ARN",
        "OPENER_ROLE_ARN",
        "REPLAY_TABLE",
        "REVOKE_FUNCTION_ARN",
        "SCHEDULER_ROLE_ARN",
        "SCHEDULE_DLQ_ARN",
        "SCHEDULE_GROUP",
      ].sort(),
    );
    expect(env.Variables.MANAGED_GROUPS).toBe(GROUPS.join(","));
    expect(env.Variables.MAX_SPA_PACKET_AGE).toBe("120");
    expect(env.Variables.ACCESS_CONFIG_TTL).toBe("300");
    expect(env.Variables.OPENER_ROLE_ARN).toEqual({
      "Fn::GetAtt": [expect.stringMatching(/^SpaKnockerOpenerRole/), "Arn"],
    });
    expect(env.Variables.SCHEDULE_DLQ_ARN).toEqual({
      "Fn::GetAtt": [expect.stringMatching(/^SpaKnockerScheduleDeadLetters/), "Arn"],
    });
  });

  it("gives revoke and sweep the managed groups, the closer role and the topic only", () => {
    for (const prefix of ["SpaKnockerRevoke", "SpaKnockerSweep"]) {
      const env = resourceNamed(s.template, "AWS::Lambda::Function", prefix).Properties
        .Environment as { Variables: Record<string, unknown> };
      expect(Object.keys(env.Variables).sort()).toEqual([
        "MANAGED_GROUPS",
        "NOTIFY_TOPIC_ARN",
        "OPENER_ROLE_ARN",
      ]);
      expect(env.Variables.OPENER_ROLE_ARN).toEqual({
        "Fn::GetAtt": [expect.stringMatching(/^SpaKnockerCloserRole/), "Arn"],
      });
    }
  });

  it("runs the sweep every minute without retries (the next minute retries)", () => {
    s.template.hasResourceProperties("AWS::Events::Rule", {
      ScheduleExpression: "rate(1 minute)",
      State: "ENABLED",
      Targets: [
        Match.objectLike({
          Arn: { "Fn::GetAtt": [Match.stringLikeRegexp("^SpaKnockerSweep"), "Arn"] },
          RetryPolicy: { MaximumRetryAttempts: 0, MaximumEventAgeInSeconds: 60 },
        }),
      ],
    });
  });

  it("offers a function URL without IAM auth (the SPA packet is the credential)", () => {
    s.template.hasResourceProperties("AWS::Lambda::Url", {
      AuthType: "NONE",
      TargetFunctionArn: { "Fn::GetAtt": [Match.stringLikeRegexp("^SpaKnockerKnock"), "Arn"] },
    });
  });
});

describe("state", () => {
  it("keeps the replay cache in an on-demand table with TTL on expiresAt and PITR", () => {
    s.template.hasResourceProperties("AWS::DynamoDB::GlobalTable", {
      BillingMode: "PAY_PER_REQUEST",
      KeySchema: [{ AttributeName: "pk", KeyType: "HASH" }],
      AttributeDefinitions: [{ AttributeName: "pk", AttributeType: "S" }],
      TimeToLiveSpecification: { AttributeName: "expiresAt", Enabled: true },
      Replicas: [
        Match.objectLike({
          PointInTimeRecoverySpecification: { PointInTimeRecoveryEnabled: true },
        }),
      ],
    });
  });

  it("holds the access stanzas in a secret whose only template value is a placeholder", () => {
    s.template.hasResourceProperties("AWS::SecretsManager::Secret", {
      Name: { "Fn::Join": ["", [{ Ref: "AWS::StackName" }, "/access.conf"]] },
      SecretString: ACCESS_CONF_PLACEHOLDER,
    });
    // Until the real access.conf is put, the knock function fails closed with a clear reason.
    expect(() =>
      parseAccessConf(parseConfText(ACCESS_CONF_PLACEHOLDER, "placeholder"), {
        allowSecurityGroups: true,
        ignored: () => {},
      }),
    ).toThrow(/no SOURCE stanza/);
  });

  it("creates a schedule group, and a DLQ that is encrypted and TLS-only", () => {
    s.template.resourceCountIs("AWS::Scheduler::ScheduleGroup", 1);
    s.template.hasResourceProperties("AWS::SQS::Queue", {
      SqsManagedSseEnabled: true,
      MessageRetentionPeriod: 14 * 24 * 3600,
    });
    s.template.hasResourceProperties("AWS::SQS::QueuePolicy", {
      PolicyDocument: {
        Statement: [
          Match.objectLike({
            Effect: "Deny",
            Condition: { Bool: { "aws:SecureTransport": "false" } },
          }),
        ],
      },
    });
  });

  it("notifies by email through an encrypted, TLS-only topic", () => {
    s.template.hasResourceProperties("AWS::SNS::Topic", {
      KmsMasterKeyId: {
        "Fn::Join": ["", Match.arrayWith([Match.stringLikeRegexp(":alias/aws/sns$")])],
      },
    });
    const subscriptions = s.template.findResources("AWS::SNS::Subscription");
    expect(
      Object.values(subscriptions)
        .map((r) => [r.Properties.Protocol, r.Properties.Endpoint])
        .sort(),
    ).toEqual([
      ["email", "ops@example.com"],
      ["email", "security@example.com"],
    ]);
    s.template.hasResourceProperties("AWS::SNS::TopicPolicy", {
      PolicyDocument: {
        Statement: [Match.objectLike({ Effect: "Deny", Action: "sns:Publish" })],
      },
    });
  });

  it("imports the guarded groups by id, without lookups or new groups for them", () => {
    // Only the relay's own group is created.
    s.template.resourceCountIs("AWS::EC2::SecurityGroup", 1);
    // A context lookup that synth could not answer offline would be listed as "missing".
    const manifest = JSON.parse(readFileSync(join(s.outdir, "manifest.json"), "utf8"));
    expect(manifest.missing).toBeUndefined();
    // Environment-agnostic: account and region stay CloudFormation pseudo parameters.
    expect(Token.isUnresolved(s.stack.account) && Token.isUnresolved(s.stack.region)).toBe(true);
  });
});

describe("scheduler role", () => {
  it("is assumable by Scheduler for this account and this schedule group only", () => {
    const role = resourceNamed(s.template, "AWS::IAM::Role", "SpaKnockerSchedulerRole");
    expect(role.Properties.AssumeRolePolicyDocument).toEqual({
      Version: "2012-10-17",
      Statement: [
        {
          Effect: "Allow",
          Action: "sts:AssumeRole",
          Principal: { Service: "scheduler.amazonaws.com" },
          Condition: {
            StringEquals: {
              "aws:SourceAccount": { Ref: "AWS::AccountId" },
              "aws:SourceArn": {
                "Fn::GetAtt": [expect.stringMatching(/^SpaKnockerSchedules/), "Arn"],
              },
            },
          },
        },
      ],
    });
  });

  it("may invoke the revoke function and dead-letter to the DLQ, nothing else", () => {
    const statements = policyOf(s.template, "SpaKnockerSchedulerRole");
    expect(statements).toEqual([
      expect.objectContaining({
        Action: "lambda:InvokeFunction",
        Resource: { "Fn::GetAtt": [expect.stringMatching(/^SpaKnockerRevoke/), "Arn"] },
      }),
      expect.objectContaining({
        Action: "sqs:SendMessage",
        Resource: {
          "Fn::GetAtt": [expect.stringMatching(/^SpaKnockerScheduleDeadLetters/), "Arn"],
        },
      }),
    ]);
  });
});

describe("least privilege", () => {
  it("lets the knock function touch EC2 only through the opener role", () => {
    const knock = policyOf(s.template, "SpaKnockerKnockRole");
    expect(actionsOf(knock)).toEqual([
      "dynamodb:PutItem",
      "iam:PassRole",
      "logs:CreateLogStream",
      "logs:PutLogEvents",
      "scheduler:CreateSchedule",
      "secretsmanager:GetSecretValue",
      "sns:Publish",
      "sts:AssumeRole",
      "sts:SetSourceIdentity",
    ]);
    expect(statement(knock, "ActAsTheEngineer").Resource).toEqual({
      "Fn::GetAtt": [expect.stringMatching(/^SpaKnockerOpenerRole/), "Arn"],
    });
  });

  it("creates schedules only in spaknock's group, under its name prefix, passing one role", () => {
    const knock = policyOf(s.template, "SpaKnockerKnockRole");
    const group = resourceNamed(s.template, "AWS::Scheduler::ScheduleGroup", "SpaKnockerSchedules")
      .Properties.Name as string;
    expect(statement(knock, "CreateRevokeSchedulesInOwnGroupOnly").Resource).toEqual({
      "Fn::Join": [
        "",
        [
          "arn:",
          { Ref: "AWS::Partition" },
          ":scheduler:",
          { Ref: "AWS::Region" },
          ":",
          { Ref: "AWS::AccountId" },
          `:schedule/${group}/spaknock-*`,
        ],
      ],
    });
    expect(statement(knock, "PassSchedulerRoleOnly")).toMatchObject({
      Action: "iam:PassRole",
      Resource: { "Fn::GetAtt": [expect.stringMatching(/^SpaKnockerSchedulerRole/), "Arn"] },
      Condition: { StringEquals: { "iam:PassedToService": "scheduler.amazonaws.com" } },
    });
  });

  it("uses the same tag keys as the Lambda's security-group adapter", () => {
    expect([...RULE_TAG_KEYS].sort()).toEqual(Object.values(TAG).sort());
  });

  it("lets the opener authorize only on the guarded groups and only rules tagged managed", () => {
    const opener = policyOf(s.template, "SpaKnockerOpenerRole");
    expect(statement(opener, "AuthorizeOnGuardedGroupsOnly")).toMatchObject({
      Action: "ec2:AuthorizeSecurityGroupIngress",
      Resource: GROUPS.map(sgArn),
    });
    expect(statement(opener, "AuthorizeOnlyRulesTaggedManaged")).toMatchObject({
      Action: "ec2:AuthorizeSecurityGroupIngress",
      Resource: ruleArn,
      Condition: {
        StringEquals: { "aws:RequestTag/spaknock:managed": "true" },
        "ForAllValues:StringEquals": { "aws:TagKeys": [...RULE_TAG_KEYS] },
      },
    });
  });

  it("lets the opener tag rules only while authorizing them, or re-tag rules already managed", () => {
    const opener = policyOf(s.template, "SpaKnockerOpenerRole");
    const tagging = opener.filter((st) => st.Action === "ec2:CreateTags");
    expect(tagging).toHaveLength(2);
    expect(statement(opener, "TagNewRulesOnlyWhileAuthorizing")).toMatchObject({
      Resource: ruleArn,
      Condition: {
        StringEquals: {
          "ec2:CreateAction": "AuthorizeSecurityGroupIngress",
          "aws:RequestTag/spaknock:managed": "true",
        },
      },
    });
    expect(statement(opener, "RetagOnlyRulesAlreadyManaged")).toMatchObject({
      Resource: ruleArn,
      Condition: {
        StringEquals: {
          "aws:ResourceTag/spaknock:managed": "true",
          "aws:RequestTag/spaknock:managed": "true",
        },
        "ForAllValues:StringEquals": { "aws:TagKeys": [...RULE_TAG_KEYS] },
      },
    });
    expect(statement(opener, "RefreshDescriptionOfManagedRulesOnly")).toMatchObject({
      Action: "ec2:ModifySecurityGroupRules",
      Resource: ruleArn,
      Condition: { StringEquals: { "aws:ResourceTag/spaknock:managed": "true" } },
    });
  });

  it("never grants an EC2 write action on a resource outside the guarded groups and rules", () => {
    for (const role of ["SpaKnockerOpenerRole", "SpaKnockerCloserRole"]) {
      for (const st of policyOf(s.template, role)) {
        const actions = [st.Action].flat();
        if (actions.every((a) => a === "ec2:DescribeSecurityGroupRules")) {
          expect(st.Resource).toBe("*");
          continue;
        }
        expect(actions.every((a) => a.startsWith("ec2:"))).toBe(true);
        const resources = [st.Resource].flat();
        for (const r of resources) expect([...GROUPS.map(sgArn), ruleArn]).toContainEqual(r);
      }
    }
  });

  it("lets revoke and sweep only revoke, through the closer role", () => {
    expect(actionsOf(policyOf(s.template, "SpaKnockerCloserRole"))).toEqual([
      "ec2:RevokeSecurityGroupIngress",
    ]);
    const closer = policyOf(s.template, "SpaKnockerCloserRole");
    expect(statement(closer, "RevokeOnGuardedGroupsOnly").Resource).toEqual(GROUPS.map(sgArn));
    for (const fn of ["SpaKnockerRevokeRole", "SpaKnockerSweepRole"]) {
      expect(actionsOf(policyOf(s.template, fn))).toEqual([
        "ec2:DescribeSecurityGroupRules",
        "logs:CreateLogStream",
        "logs:PutLogEvents",
        "sns:Publish",
        "sts:AssumeRole",
        "sts:SetSourceIdentity",
      ]);
    }
  });

  it("makes the opener and closer roles trust their functions only with a source identity", () => {
    const trust = (prefix: string) =>
      resourceNamed(s.template, "AWS::IAM::Role", prefix).Properties.AssumeRolePolicyDocument as {
        Statement: { Action: string[]; Principal: unknown; Condition: unknown }[];
      };
    const expected = (fn: string) => ({
      Effect: "Allow",
      Action: ["sts:AssumeRole", "sts:SetSourceIdentity"],
      Principal: { AWS: { "Fn::GetAtt": [expect.stringMatching(new RegExp(`^${fn}`)), "Arn"] } },
      Condition: { Null: { "sts:SourceIdentity": "false" } },
    });
    expect(trust("SpaKnockerOpenerRole").Statement).toEqual([expected("SpaKnockerKnockRole")]);
    expect(trust("SpaKnockerCloserRole").Statement).toEqual([
      expected("SpaKnockerRevokeRole"),
      expected("SpaKnockerSweepRole"),
    ]);
  });

  it("attaches no AWS managed policy to any role", () => {
    for (const role of Object.values(s.template.findResources("AWS::IAM::Role"))) {
      expect(role.Properties.ManagedPolicyArns).toBeUndefined();
    }
  });
});

describe("relay", () => {
  it("has a role that may invoke the knock function, read its bundle and claim its EIP", () => {
    const statements = policyOf(s.template, "SpaKnockerRelayRole");
    expect(actionsOf(statements)).toEqual([
      "ec2:AssociateAddress",
      "lambda:InvokeFunction",
      "s3:GetObject",
    ]);
    expect(statement(statements, "InvokeKnockFunctionOnly").Resource).toEqual({
      "Fn::GetAtt": [expect.stringMatching(/^SpaKnockerKnock[0-9A-F]{8}$/), "Arn"],
    });
    const bundle = JSON.stringify(statement(statements, "ReadOwnCodeBundleOnly").Resource);
    expect(bundle).toMatch(/\/[0-9a-f]{64}\.mjs"/);
    expect(statement(statements, "AssociateOwnAddressOnly").Resource).toMatchObject({
      "Fn::Join": [
        "",
        expect.arrayContaining([{ "Fn::GetAtt": [expect.any(String), "AllocationId"] }]),
      ],
    });
    expect(statement(statements, "AssociateOntoOwnInstancesOnly").Condition).toEqual({
      StringEquals: {
        "aws:ResourceTag/aws:autoscaling:groupName": {
          "Fn::Join": ["", [{ Ref: "AWS::StackName" }, expect.stringMatching(/^-/)]],
        },
      },
    });
  });

  it("runs in a new VPC that is IPv4 only, ipv6 being off by default", () => {
    s.template.resourceCountIs("AWS::EC2::VPCCidrBlock", 0);
    const subnets = Object.values(s.template.findResources("AWS::EC2::Subnet"));
    expect(subnets.length).toBeGreaterThan(0);
    for (const subnet of subnets) expect(subnet.Properties.Ipv6CidrBlock).toBeUndefined();
  });

  it("listens on udp/62201 from anywhere, with HTTPS as the only way out", () => {
    const sg = resourceNamed(s.template, "AWS::EC2::SecurityGroup", "SpaKnockerRelaySecurityGroup");
    expect(sg.Properties.SecurityGroupIngress).toEqual([
      expect.objectContaining({
        IpProtocol: "udp",
        FromPort: 62201,
        ToPort: 62201,
        CidrIp: "0.0.0.0/0",
      }),
    ]);
    expect(sg.Properties.SecurityGroupEgress).toEqual([
      expect.objectContaining({
        IpProtocol: "tcp",
        FromPort: 443,
        ToPort: 443,
        CidrIp: "0.0.0.0/0",
      }),
    ]);
  });

  it("is one Graviton instance with IMDSv2 only and an encrypted disk, behind an Elastic IP", () => {
    const lt = resourceNamed(
      s.template,
      "AWS::EC2::LaunchTemplate",
      "SpaKnockerRelayLaunchTemplate",
    ).Properties.LaunchTemplateData as Record<string, unknown>;
    expect(lt.InstanceType).toBe("t4g.nano");
    expect(lt.MetadataOptions).toMatchObject({
      HttpTokens: "required",
      HttpPutResponseHopLimit: 1,
    });
    expect(lt.BlockDeviceMappings).toEqual([
      {
        DeviceName: "/dev/xvda",
        Ebs: { Encrypted: true, VolumeSize: 8, VolumeType: "gp3", DeleteOnTermination: true },
      },
    ]);
    const image = (lt.ImageId as { Ref: string }).Ref;
    // AWS's public SSM parameter, read by CloudFormation at deploy time, not a synth lookup.
    expect(s.template.toJSON().Parameters[image]).toEqual({
      Type: "AWS::SSM::Parameter::Value<AWS::EC2::Image::Id>",
      Default: expect.stringMatching(
        /^\/aws\/service\/ami-amazon-linux-latest\/al2023-ami-kernel-.+-arm64$/,
      ),
    });
    s.template.hasResourceProperties("AWS::AutoScaling::AutoScalingGroup", {
      MinSize: "1",
      MaxSize: "1",
    });
    s.template.resourceCountIs("AWS::EC2::EIP", 1);
    s.template.resourceCountIs("AWS::ElasticLoadBalancingV2::LoadBalancer", 0);
  });

  it("boots into a systemd service running spaknockd relay for the knock function", () => {
    const lt = resourceNamed(
      s.template,
      "AWS::EC2::LaunchTemplate",
      "SpaKnockerRelayLaunchTemplate",
    ).Properties.LaunchTemplateData as { UserData: { "Fn::Base64": unknown } };
    const script = JSON.stringify(lt.UserData["Fn::Base64"]);
    expect(script).toContain("dnf install -y nodejs24");
    expect(script).toContain("aws s3 cp");
    expect(script).toContain("aws ec2 associate-address");
    expect(script).toContain("/etc/systemd/system/spaknock-relay.service");
    expect(script).toContain("DynamicUser=yes");
    expect(script).toMatch(
      /ExecStart=\/usr\/bin\/node-24 \/opt\/spaknock\/spaknockd\.mjs relay --function ",\{"Fn::GetAtt":\["SpaKnockerKnock[0-9A-F]{8}","Arn"\]\}," --listen 0\.0\.0\.0:62201 --region ",\{"Ref":"AWS::Region"\}," --foreground/,
    );
    expect(script).toContain("systemctl enable --now spaknock-relay.service");
  });

  it("ships a bundle of agent/main.ts that runs without node_modules", () => {
    const bundle = filesUnder(s.outdir).find((f) => f.endsWith(".mjs") && !f.includes("index"));
    expect(bundle).toBeDefined();
    const text = readFileSync(bundle as string, "utf8");
    // The interpreter line may carry V8 flags (`env -S node --max-semi-space-size=1`).
    expect(text).toMatch(/^#!\/usr\/bin\/env (-S )?node\b/);
    expect(text).toContain("forward SPA datagrams to the spaknock knock Lambda");
    expect(text).not.toMatch(/from\s*"(?:commander|@aws-sdk\/client-lambda|zod)"/);
  });
});

describe("outputs", () => {
  it("gives the relay address, function URL, secret name and a fwknoprc stanza without keys", () => {
    const outputs = s.template.findOutputs("*");
    expect(Object.keys(outputs).sort()).toEqual([
      "SpaKnockerAccessConfigSecretName",
      "SpaKnockerAuditorPolicyArn",
      "SpaKnockerFunctionUrl",
      "SpaKnockerFwknoprcStanza",
      "SpaKnockerGuardedSecurityGroupIds",
      "SpaKnockerOperatorPolicyArn",
      "SpaKnockerRelayAddress",
      "SpaKnockerRelayPort",
    ]);
    expect(outputs.SpaKnockerRelayAddress?.Value).toEqual({
      Ref: expect.stringMatching(/^SpaKnockerRelayAddress/),
    });
    const stanza = JSON.stringify(outputs.SpaKnockerFwknoprcStanza?.Value);
    for (const line of [
      "SPA_SERVER_PROTO    udp",
      "SPA_SERVER_PORT     62201",
      "ACCESS              tcp/22",
      "USE_HMAC            Y",
    ]) {
      expect(stanza).toContain(line);
    }
    expect(stanza).not.toMatch(/KEY_BASE64\s|HMAC_KEY_BASE64\s|KEY\s/);
  });
});

describe("cdk-nag AwsSolutions", () => {
  it("has no unacknowledged finding", () => {
    const report = new AwsSolutionsChecks().validateScope(s.app);
    expect(
      report.violations.map((v) => `${v.ruleName} at ${v.violatingResources[0]?.constructPath}`),
    ).toEqual([]);
  });

  it("gives every acknowledgement a reason, written into the template", () => {
    const acknowledged = Object.values(
      s.template.toJSON().Resources as Record<
        string,
        { Metadata?: { cdk_nag?: { rules_to_suppress: { id: string; reason: string }[] } } }
      >,
    )
      .flatMap((r) => r.Metadata?.cdk_nag?.rules_to_suppress ?? [])
      .filter(({ id }) => id.startsWith("AwsSolutions-"));
    expect(acknowledged.length).toBeGreaterThan(0);
    for (const { id, reason } of acknowledged) {
      expect(reason.length, id).toBeGreaterThan(40);
    }
  });
});

describe("keys", () => {
  const keyValues = ACCESS_CONF.split("\n")
    .map((line) => /^(?:HMAC_)?KEY_BASE64\s+(\S+)/.exec(line)?.[1])
    .filter((v): v is string => v !== undefined);

  it("uses a real access.conf with keys and SECURITY_GROUPS", () => {
    const stanzas = parseAccessConf(parseConfText(ACCESS_CONF, "fixtures/access.conf"), {
      allowSecurityGroups: true,
      ignored: () => {},
    });
    expect(stanzas).toHaveLength(1);
    expect(stanzas[0]?.securityGroups).toEqual(GROUPS);
    expect(keyValues).toHaveLength(2);
  });

  it("appears nowhere in cdk.out: template, manifest, function and relay bundles", () => {
    const needles = keyValues.flatMap((b64) => {
      const raw = Buffer.from(b64, "base64");
      return [b64, raw.toString("hex"), raw.toString("base64url"), b64.slice(8, 32)];
    });
    const files = filesUnder(s.outdir);
    expect(files.length).toBeGreaterThan(8);
    for (const file of files) {
      const bytes = readFileSync(file);
      const text = bytes.toString("latin1");
      for (const needle of needles)
        expect(text.includes(needle), `${needle} in ${file}`).toBe(false);
      for (const b64 of keyValues) {
        expect(bytes.includes(Buffer.from(b64, "base64")), `raw key bytes in ${file}`).toBe(false);
      }
    }
  });

  it("cannot be put in the config file: a key field is an unknown field", () => {
    expect(() => synthesize({ KEY_BASE64: keyValues[0] }, { bundle: false })).toThrow(
      /KEY_BASE64: unknown field/,
    );
  });
});
