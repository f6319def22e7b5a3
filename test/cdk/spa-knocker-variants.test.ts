/**
 * The other shapes, synthesized without bundling (placeholder assets; the bundles are checked in
 * spa-knocker.test.ts): the highly available relay behind a UDP load balancer in an existing VPC
 * with a new guarded group and no opener roles, a function-URL-only deployment, and a dual-stack
 * VPC whose relay takes IPv6 senders.
 */

import { App, Stack } from "aws-cdk-lib";
import { Match, Template } from "aws-cdk-lib/assertions";
import { InstanceType } from "aws-cdk-lib/aws-ec2";
import { AwsSolutionsChecks } from "cdk-nag";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { SpaKnocker } from "../../cdk/spa-knocker.js";
import {
  actionsOf,
  policyOf,
  resourceNamed,
  type Synthesized,
  statement,
  synthesize,
} from "./synthesize.js";

const VPC = {
  vpcId: "vpc-0123456789abcdef0",
  vpcCidrBlock: "10.1.0.0/16",
  availabilityZones: ["eu-west-1a", "eu-west-1b"],
  publicSubnetIds: ["subnet-0123456789abcdef0", "subnet-0123456789abcdef1"],
};

let ha: Synthesized;
let urlOnly: Synthesized;
let dualStack: Synthesized;

beforeAll(() => {
  ha = synthesize(
    {
      stackName: "SpaknockHa",
      vpc: VPC,
      relay: { mode: "nlb", instanceType: "c7g.medium", port: 40000 },
      openerRole: false,
      logRetentionDays: 365,
      knockTimeoutSeconds: 20,
      maxSpaPacketAgeSeconds: 60,
      reservedConcurrency: false,
    },
    { bundle: false },
  );
  urlOnly = synthesize(
    {
      stackName: "SpaknockUrl",
      relay: { mode: "none" },
      functionUrl: true,
      guardedSecurityGroupIds: ["sg-0123456789abcdef0"],
    },
    { bundle: false },
  );
  dualStack = synthesize({ stackName: "SpaknockV6", ipv6: true }, { bundle: false });
}, 120_000);

afterAll(() => {
  ha?.cleanUp();
  urlOnly?.cleanUp();
  dualStack?.cleanUp();
});

describe("highly available relay", () => {
  it("puts two instances across two zones behind an internet-facing UDP load balancer", () => {
    ha.template.hasResourceProperties("AWS::ElasticLoadBalancingV2::LoadBalancer", {
      Type: "network",
      Scheme: "internet-facing",
      Subnets: VPC.publicSubnetIds,
      LoadBalancerAttributes: Match.arrayWith([
        { Key: "load_balancing.cross_zone.enabled", Value: "true" },
      ]),
    });
    ha.template.hasResourceProperties("AWS::ElasticLoadBalancingV2::Listener", {
      Protocol: "UDP",
      Port: 40000,
    });
    ha.template.hasResourceProperties("AWS::ElasticLoadBalancingV2::TargetGroup", {
      Protocol: "UDP",
      Port: 40000,
      TargetType: "instance",
      HealthCheckProtocol: "TCP",
      HealthCheckPort: "40000",
    });
    ha.template.hasResourceProperties("AWS::AutoScaling::AutoScalingGroup", {
      MinSize: "2",
      MaxSize: "2",
      VPCZoneIdentifier: VPC.publicSubnetIds,
      HealthCheckType: "ELB",
    });
    ha.template.resourceCountIs("AWS::EC2::EIP", 0);
    ha.template.resourceCountIs("AWS::EC2::VPC", 0);
  });

  it("lets the internet send UDP and only the VPC reach the TCP health check", () => {
    const sg = resourceNamed(
      ha.template,
      "AWS::EC2::SecurityGroup",
      "SpaKnockerRelaySecurityGroup",
    );
    expect(sg.Properties.SecurityGroupIngress).toEqual([
      expect.objectContaining({ IpProtocol: "udp", FromPort: 40000, CidrIp: "0.0.0.0/0" }),
      expect.objectContaining({ IpProtocol: "tcp", FromPort: 40000, CidrIp: VPC.vpcCidrBlock }),
    ]);
  });

  it("runs the health unit only while the relay unit runs", () => {
    const lt = resourceNamed(
      ha.template,
      "AWS::EC2::LaunchTemplate",
      "SpaKnockerRelayLaunchTemplate",
    ).Properties.LaunchTemplateData as { UserData: unknown; InstanceType: string };
    expect(lt.InstanceType).toBe("c7g.medium");
    const script = JSON.stringify(lt.UserData);
    expect(script).toContain("Upholds=spaknock-relay-health.service");
    expect(script).toContain("BindsTo=spaknock-relay.service");
    expect(script).toContain("--listen 0.0.0.0:40000");
    expect(script).not.toContain("associate-address");
  });

  it("gives the relay role nothing but invoking the knock function and reading its bundle", () => {
    expect(actionsOf(policyOf(ha.template, "SpaKnockerRelayRole"))).toEqual([
      "lambda:InvokeFunction",
      "s3:GetObject",
    ]);
  });

  it("outputs the load balancer's DNS name as the relay address", () => {
    expect(ha.template.findOutputs("SpaKnockerRelayAddress").SpaKnockerRelayAddress?.Value).toEqual(
      {
        "Fn::GetAtt": [expect.stringMatching(/^SpaKnockerRelayLoadBalancer/), "DNSName"],
      },
    );
  });
});

describe("without opener roles", () => {
  it("creates an empty guarded group in the given VPC and guards it", () => {
    const group = resourceNamed(ha.template, "AWS::EC2::SecurityGroup", "SpaKnockerGuardedGroup");
    expect(group.Properties.VpcId).toBe(VPC.vpcId);
    expect(group.Properties.SecurityGroupIngress).toBeUndefined();
    const env = resourceNamed(ha.template, "AWS::Lambda::Function", "SpaKnockerKnock").Properties
      .Environment as { Variables: Record<string, unknown> };
    expect(env.Variables.MANAGED_GROUPS).toEqual({ "Fn::GetAtt": [group.id, "GroupId"] });
    expect(env.Variables.OPENER_ROLE_ARN).toBeUndefined();
    expect(env.Variables.MAX_SPA_PACKET_AGE).toBe("60");
  });

  it("gives the knock function the open statements itself, scoped to the guarded group", () => {
    // knock, revoke, sweep, scheduler, relay: no opener or closer role.
    ha.template.resourceCountIs("AWS::IAM::Role", 5);
    const knock = policyOf(ha.template, "SpaKnockerKnockRole");
    expect(actionsOf(knock)).toEqual([
      "dynamodb:PutItem",
      "ec2:AuthorizeSecurityGroupIngress",
      "ec2:CreateTags",
      "ec2:DescribeSecurityGroupRules",
      "ec2:ModifySecurityGroupRules",
      "ec2:RevokeSecurityGroupIngress",
      "iam:PassRole",
      "logs:CreateLogStream",
      "logs:PutLogEvents",
      "scheduler:CreateSchedule",
      "secretsmanager:GetSecretValue",
    ]);
    expect(statement(knock, "AuthorizeOnlyRulesTaggedManaged").Condition).toMatchObject({
      StringEquals: { "aws:RequestTag/spaknock:managed": "true" },
    });
  });

  it("lets revoke and sweep describe and revoke, nothing else", () => {
    for (const role of ["SpaKnockerRevokeRole", "SpaKnockerSweepRole"]) {
      expect(actionsOf(policyOf(ha.template, role))).toEqual([
        "ec2:DescribeSecurityGroupRules",
        "ec2:RevokeSecurityGroupIngress",
        "logs:CreateLogStream",
        "logs:PutLogEvents",
      ]);
    }
  });

  it("uses the configured log retention and knock timeout", () => {
    for (const group of Object.values(ha.template.findResources("AWS::Logs::LogGroup"))) {
      expect(group.Properties.RetentionInDays).toBe(365);
    }
    const knock = resourceNamed(ha.template, "AWS::Lambda::Function", "SpaKnockerKnock");
    expect(knock.Properties.Timeout).toBe(20);
  });

  it("reserves no concurrency when told not to (an account still at the limit of 10)", () => {
    const functions = Object.values(ha.template.findResources("AWS::Lambda::Function"));
    expect(functions).toHaveLength(3);
    for (const fn of functions) expect(fn.Properties.ReservedConcurrentExecutions).toBeUndefined();
  });
});

describe("function URL only", () => {
  it("deploys no VPC, relay or instance, and outputs the URL and no fwknoprc stanza", () => {
    for (const type of [
      "AWS::EC2::VPC",
      "AWS::EC2::SecurityGroup",
      "AWS::AutoScaling::AutoScalingGroup",
      "AWS::EC2::LaunchTemplate",
    ]) {
      urlOnly.template.resourceCountIs(type, 0);
    }
    urlOnly.template.hasResourceProperties("AWS::Lambda::Url", { AuthType: "NONE" });
    expect(Object.keys(urlOnly.template.findOutputs("*")).sort()).toEqual([
      "SpaKnockerAccessConfigSecretName",
      "SpaKnockerAuditorPolicyArn",
      "SpaKnockerFunctionUrl",
      "SpaKnockerGuardedSecurityGroupIds",
      "SpaKnockerOperatorPolicyArn",
    ]);
  });
});

describe("a dual-stack VPC (ipv6: true)", () => {
  it("gives the new VPC an Amazon IPv6 /56 and its public subnets IPv6 and public IPv4", () => {
    dualStack.template.hasResourceProperties("AWS::EC2::VPCCidrBlock", {
      AmazonProvidedIpv6CidrBlock: true,
    });
    const subnets = Object.values(dualStack.template.findResources("AWS::EC2::Subnet"));
    expect(subnets).toHaveLength(2);
    for (const subnet of subnets)
      expect(subnet.Properties).toMatchObject({
        AssignIpv6AddressOnCreation: true,
        // The relay calls the EC2 and S3 APIs over IPv4 at boot, before it holds its address.
        MapPublicIpOnLaunch: true,
        Ipv6CidrBlock: expect.anything(),
      });
    dualStack.template.hasResourceProperties("AWS::EC2::Route", {
      DestinationIpv6CidrBlock: "::/0",
      GatewayId: Match.anyValue(),
    });
  });

  it("lets the SPA port in from any IPv4 and any IPv6 source, and only HTTPS out over IPv4", () => {
    const sg = resourceNamed(
      dualStack.template,
      "AWS::EC2::SecurityGroup",
      "SpaKnockerRelaySecurityGroup",
    );
    expect(sg.Properties.SecurityGroupIngress).toEqual([
      expect.objectContaining({
        IpProtocol: "udp",
        FromPort: 62201,
        ToPort: 62201,
        CidrIp: "0.0.0.0/0",
      }),
      expect.objectContaining({
        IpProtocol: "udp",
        FromPort: 62201,
        ToPort: 62201,
        CidrIpv6: "::/0",
      }),
    ]);
    expect(sg.Properties.SecurityGroupEgress).toEqual([
      expect.objectContaining({ IpProtocol: "tcp", FromPort: 443, CidrIp: "0.0.0.0/0" }),
    ]);
  });

  it("runs the relay on one dual-stack socket", () => {
    const lt = resourceNamed(
      dualStack.template,
      "AWS::EC2::LaunchTemplate",
      "SpaKnockerRelayLaunchTemplate",
    ).Properties.LaunchTemplateData as { UserData: unknown };
    const script = JSON.stringify(lt.UserData);
    expect(script).toContain("--listen [::]:62201");
    expect(script).not.toContain("--listen 0.0.0.0");
  });

  // The VPC here is an imported one; the default shape's new IPv4-only VPC is checked in
  // spa-knocker.test.ts.
  it("keeps an IPv4-only VPC's relay IPv4-only", () => {
    const sg = resourceNamed(
      ha.template,
      "AWS::EC2::SecurityGroup",
      "SpaKnockerRelaySecurityGroup",
    );
    expect(JSON.stringify(sg.Properties)).not.toContain("CidrIpv6");
    ha.template.resourceCountIs("AWS::EC2::VPCCidrBlock", 0);
  });
});

describe("cdk-nag AwsSolutions", () => {
  it("has no unacknowledged finding in any shape", () => {
    for (const s of [ha, urlOnly, dualStack]) {
      const report = new AwsSolutionsChecks().validateScope(s.app);
      expect(
        report.violations.map((v) => `${v.ruleName} at ${v.violatingResources[0]?.constructPath}`),
      ).toEqual([]);
    }
  });
});

describe("the construct on its own", () => {
  const build = (props: ConstructorParameters<typeof SpaKnocker>[2]) => () =>
    new SpaKnocker(new Stack(new App(), "Direct"), "Knocker", props);

  it("refuses a group id that is not sg-…, a relay-less deployment without a URL, x86", () => {
    expect(build({ guardedSecurityGroupIds: ["sg-xyz"] })).toThrow(TypeError);
    expect(build({ guardedSecurityGroupIds: ["sg-xyz"] })).toThrow(
      /"sg-xyz" is not a security group id/,
    );
    expect(build({ relay: { mode: "none" } })).toThrow(/needs functionUrl: true/);
    expect(build({ relay: { instanceType: new InstanceType("t3.nano") } })).toThrow(/Graviton/);
    expect(build({ relay: { port: 53 } })).toThrow(/between 1024 and 65535/);
    expect(build({ ipv6: true, relay: { mode: "nlb" } })).toThrow(
      /ipv6 needs relay mode "eip" or "none"/,
    );
  });

  it("is usable in a team's own app, with defaults for everything", () => {
    const app = new App({ context: { "aws:cdk:bundling-stacks": [] } });
    const stack = new Stack(app, "TeamStack");
    const knocker = new SpaKnocker(stack, "Spa");
    const template = Template.fromStack(stack);
    template.resourceCountIs("AWS::Lambda::Function", 3);
    template.resourceCountIs("AWS::EC2::EIP", 1);
    expect(knocker.openerRole).toBeDefined();
    expect(knocker.relay?.address).toBeDefined();
    expect(Object.keys(template.findOutputs("*"))).toContain("SpaRelayAddress");
  });
});
