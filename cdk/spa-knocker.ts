/**
 * `SpaKnocker`: the whole AWS half of spaknock as one construct. A knock (UDP through the relay,
 * or HTTPS through an optional function URL) reaches the knock function, which checks the packet
 * with the same core pipeline as the host daemon and opens a /32 rule in the guarded security
 * groups; a one-time Scheduler schedule invokes the revoke function at expiry, and a sweep every
 * minute revokes anything a schedule missed.
 *
 * Keys never pass through here: the access stanzas live only in the Secrets Manager secret,
 * written after deploy with `aws secretsmanager put-secret-value` (cdk/README.md). The stack is
 * environment-agnostic and does no context lookups, so `cdk synth` needs no AWS account.
 */
import { execFileSync } from "node:child_process";
import { join } from "node:path";
import {
  AssetHashType,
  Aws,
  CfnOutput,
  DockerImage,
  Duration,
  Fn,
  RemovalPolicy,
  SecretValue,
  Stack,
  Token,
  Validations,
} from "aws-cdk-lib";
import { AttributeType, Billing, TableV2 } from "aws-cdk-lib/aws-dynamodb";
import {
  FlowLogDestination,
  FlowLogTrafficType,
  InstanceType,
  IpProtocol,
  type ISecurityGroup,
  type IVpc,
  SecurityGroup,
  SubnetType,
  Vpc,
} from "aws-cdk-lib/aws-ec2";
import { Rule, Schedule } from "aws-cdk-lib/aws-events";
import { LambdaFunction } from "aws-cdk-lib/aws-events-targets";
import {
  ArnPrincipal,
  CompositePrincipal,
  ManagedPolicy,
  type PolicyDocument,
  PolicyStatement,
  Role,
  ServicePrincipal,
} from "aws-cdk-lib/aws-iam";
import { Alias } from "aws-cdk-lib/aws-kms";
import {
  ApplicationLogLevel,
  Architecture,
  Code,
  type FunctionUrl,
  FunctionUrlAuthType,
  Function as LambdaFunctionResource,
  LoggingFormat,
  Runtime,
  SystemLogLevel,
} from "aws-cdk-lib/aws-lambda";
import { LogGroup, RetentionDays } from "aws-cdk-lib/aws-logs";
import { ScheduleGroup } from "aws-cdk-lib/aws-scheduler";
import { Secret } from "aws-cdk-lib/aws-secretsmanager";
import { Topic } from "aws-cdk-lib/aws-sns";
import { EmailSubscription } from "aws-cdk-lib/aws-sns-subscriptions";
import { Queue, QueueEncryption } from "aws-cdk-lib/aws-sqs";
import { Construct } from "constructs";
import { GRAVITON_INSTANCE_TYPE, SECURITY_GROUP_ID } from "./aws-ids.js";
import { nagArn, wildcardFinding } from "./nag-findings.js";
import {
  auditorStatements,
  closeStatements,
  describeRulesStatement,
  type GuardedGroupArns,
  guardedGroupArns,
  openStatements,
  operatorStatements,
} from "./security-group-policy.js";
import { findSourceRoot } from "./source-root.js";
import { type RelayMode, UdpRelay } from "./udp-relay.js";

/** fwknop's default SPA port, which stock clients send to. */
export const DEFAULT_RELAY_PORT = 62201;

/**
 * What the secret holds until an operator puts the real access.conf in: a comment only, which the
 * knock function rejects as a config without stanzas, so it fails closed and says why in its log.
 * CloudFormation writes it only when the secret is created or this text changes, so it must never
 * change: a changed placeholder would overwrite the keys on the next deploy.
 */
export const ACCESS_CONF_PLACEHOLDER =
  "# spaknock access.conf: replace with `aws secretsmanager put-secret-value` (see cdk/README.md)\n";

export interface SpaKnockerRelayProps {
  /**
   * `eip`: one Graviton instance in an auto-scaling group with an Elastic IP (cheap; replaced in a
   * minute or two if it fails). `nlb`: two instances behind a Network Load Balancer with a UDP
   * listener across two zones (highly available). `none`: no relay; then `functionUrl` must be on.
   * @default "eip"
   */
  readonly mode?: RelayMode | "none";
  /**
   * A Graviton (arm64) instance type.
   * @default t4g.nano
   */
  readonly instanceType?: InstanceType;
  /**
   * The UDP port clients send to; 1024 or above (the relay runs unprivileged).
   * @default 62201
   */
  readonly port?: number;
}

export interface SpaKnockerProps {
  /**
   * Existing security groups the knock function may open rules in, by id (imported without a
   * lookup). Every stanza's `SECURITY_GROUPS` must be among them.
   * @default - a new, empty security group in `vpc`, for the hosts you want to guard
   */
  readonly guardedSecurityGroupIds?: readonly string[];
  /**
   * Where the relay (and a new guarded group) live. Needs public subnets.
   * @default - a new VPC with two public subnets, no NAT gateways, and flow logs
   */
  readonly vpc?: IVpc;
  /**
   * The VPC has IPv6, so engineers on IPv6-only networks can knock through the relay: the relay
   * listens dual-stack and its group lets the SPA port in from `::/0` as well. A new VPC is then
   * made dual-stack (an Amazon-provided /56; its public subnets give instances an IPv6 address and
   * still a public IPv4 one, which the relay's boot and AWS API calls use). An existing `vpc` must
   * already be dual-stack, with public subnets that assign IPv6 addresses on launch. The relay's
   * IPv6 address is the instance's own (EC2 has no Elastic IP for IPv6). Not with relay mode
   * `nlb`: a dual-stack Network Load Balancer forwards UDP only to IPv6 IP targets, not to
   * instances. The function URL, when on, is dual-stack whatever this says.
   * @default false
   */
  readonly ipv6?: boolean;
  /** @default - one instance with an Elastic IP on udp/62201 */
  readonly relay?: SpaKnockerRelayProps;
  /**
   * Also accept knocks over HTTPS at a Lambda function URL.
   * @default false
   */
  readonly functionUrl?: boolean;
  /**
   * Addresses that get an email on every open and close (SNS; each must confirm once).
   * @default - no topic
   */
  readonly notificationEmails?: readonly string[];
  /**
   * Make the EC2 calls under an assumed role whose session carries the SPA username as its
   * source identity, so CloudTrail names the engineer. Two roles are made: one that may only
   * open (assumed by the knock function) and one that may only close (revoke and sweep).
   * @default true
   */
  readonly openerRole?: boolean;
  /**
   * fwknop's MAX_SPA_PACKET_AGE: packets older or newer than this are refused.
   * @default Duration.seconds(120)
   */
  readonly maxSpaPacketAge?: Duration;
  /**
   * The knock function's timeout.
   * @default Duration.seconds(15)
   */
  readonly knockTimeout?: Duration;
  /**
   * How long a container reuses the access.conf it read from the secret.
   * @default Duration.minutes(5)
   */
  readonly accessConfigTtl?: Duration;
  /**
   * Retention of the functions' (and the VPC flow log's) CloudWatch logs.
   * @default RetentionDays.THREE_MONTHS
   */
  readonly logRetention?: RetentionDays;
  /**
   * The Secrets Manager secret's name, which operators type in put-secret-value.
   * @default "<stack name>/access.conf"
   */
  readonly accessConfigSecretName?: string;
  /**
   * Concurrency reserved for each function. Revoke and sweep get their own share, so a flood of
   * knocks (or anything else in the account) cannot starve the functions that close doors; the
   * knock function is capped, so a flood costs at most that many invocations at a time. Each
   * reservation is taken from the account's concurrency, which must keep 100 unreserved: an
   * account still at the new-account limit of 10 cannot deploy with this on (ask for the
   * default 1,000, or pass `false`, which turns all three off).
   * @default { knock: 10, revoke: 5, sweep: 1 }
   */
  readonly reservedConcurrency?: { knock: number; revoke: number; sweep: number } | false;
  /**
   * The ACCESS line of the `~/.fwknoprc` skeleton in the stack outputs.
   * @default "tcp/22"
   */
  readonly clientAccess?: string;
}

/** A trust that lets `arn` assume the role only while setting a source identity. */
class SourceIdentityPrincipal extends ArnPrincipal {
  override addToAssumeRolePolicy(document: PolicyDocument): void {
    document.addStatements(
      new PolicyStatement({
        actions: ["sts:AssumeRole", "sts:SetSourceIdentity"],
        principals: [new ArnPrincipal(this.arn)],
        // Every session must name the engineer: that is the role's whole point.
        conditions: { Null: { "sts:SourceIdentity": "false" } },
      }),
    );
  }
}

export class SpaKnocker extends Construct {
  readonly knockFunction: LambdaFunctionResource;
  readonly revokeFunction: LambdaFunctionResource;
  readonly sweepFunction: LambdaFunctionResource;
  readonly replayTable: TableV2;
  readonly accessConfigSecret: Secret;
  /** `spaknock audit` and `grants`: read only. */
  readonly auditorPolicy: ManagedPolicy;
  /** Also `spaknock revoke`: revoke in the guarded groups. */
  readonly operatorPolicy: ManagedPolicy;
  readonly scheduleGroup: ScheduleGroup;
  /** The role EventBridge Scheduler assumes to invoke the revoke function. */
  readonly schedulerRole: Role;
  /** Where Scheduler puts revoke invocations it could not deliver after its retries. */
  readonly scheduleDeadLetterQueue: Queue;
  readonly guardedSecurityGroups: readonly ISecurityGroup[];
  readonly vpc?: IVpc;
  readonly relay?: UdpRelay;
  readonly functionUrl?: FunctionUrl;
  readonly notificationTopic?: Topic;
  /** Assumed by the knock function to open rules (when `openerRole` is on). */
  readonly openerRole?: Role;
  /** Assumed by the revoke and sweep functions to close rules (when `openerRole` is on). */
  readonly closerRole?: Role;

  constructor(scope: Construct, id: string, props: SpaKnockerProps = {}) {
    super(scope, id);
    const sourceRoot = findSourceRoot();
    const relayMode = props.relay?.mode ?? "eip";
    const relayPort = props.relay?.port ?? DEFAULT_RELAY_PORT;
    const groupIds = [...(props.guardedSecurityGroupIds ?? [])];
    validateProps(props, relayMode, relayPort, groupIds);
    const retention = props.logRetention ?? RetentionDays.THREE_MONTHS;
    const maxPacketAge = props.maxSpaPacketAge ?? Duration.seconds(120);
    const concurrency =
      props.reservedConcurrency === false
        ? undefined
        : (props.reservedConcurrency ?? { knock: 10, revoke: 5, sweep: 1 });

    if (props.vpc || relayMode !== "none" || groupIds.length === 0) {
      this.vpc = props.vpc ?? this.createVpc(retention, props.ipv6 ?? false);
    }
    this.guardedSecurityGroups =
      groupIds.length > 0
        ? groupIds.map((sg, i) =>
            SecurityGroup.fromSecurityGroupId(this, `Guarded${i}`, sg, { mutable: false }),
          )
        : [
            new SecurityGroup(this, "GuardedGroup", {
              vpc: this.vpc as IVpc,
              description: "Hosts guarded by spaknock: no ingress until a valid SPA packet",
              allowAllOutbound: true,
            }),
          ];
    const guardedIds = this.guardedSecurityGroups.map((g) => g.securityGroupId);
    const arns = guardedGroupArns(this, guardedIds);

    const stores = this.createStores(props);
    this.replayTable = stores.replayTable;
    this.accessConfigSecret = stores.accessConfigSecret;
    this.scheduleGroup = stores.scheduleGroup;
    this.scheduleDeadLetterQueue = stores.scheduleDeadLetterQueue;
    this.notificationTopic = stores.notificationTopic;

    const common = {
      sourceRoot,
      retention,
      notifyTopicArn: this.notificationTopic?.topicArn,
      managedGroups: guardedIds.join(","),
    };

    // Revoke and sweep: close rules in the guarded groups, nothing else.
    const revoke = this.createFunction("Revoke", "revoke.ts", {
      ...common,
      description: "spaknock: revoke one grant's rules at its expiry (invoked by Scheduler)",
      timeout: Duration.seconds(30),
      reservedConcurrency: concurrency?.revoke,
    });
    const sweep = this.createFunction("Sweep", "sweep.ts", {
      ...common,
      description: "spaknock: every minute, revoke any spaknock rule past its expiry",
      timeout: Duration.seconds(50),
      // The next minute's sweep is the retry.
      asyncRetries: 0,
      reservedConcurrency: concurrency?.sweep,
    });
    this.revokeFunction = revoke.fn;
    this.sweepFunction = sweep.fn;

    this.schedulerRole = new Role(this, "SchedulerRole", {
      description: "EventBridge Scheduler: invoke the spaknock revoke function",
      assumedBy: new ServicePrincipal("scheduler.amazonaws.com", {
        conditions: {
          StringEquals: {
            "aws:SourceAccount": Aws.ACCOUNT_ID,
            "aws:SourceArn": this.scheduleGroup.scheduleGroupArn,
          },
        },
      }),
    });
    this.schedulerRole.addToPolicy(
      new PolicyStatement({
        sid: "InvokeRevokeFunctionOnly",
        actions: ["lambda:InvokeFunction"],
        resources: [this.revokeFunction.functionArn],
      }),
    );
    this.schedulerRole.addToPolicy(
      new PolicyStatement({
        sid: "DeadLetterUndeliveredRevokes",
        actions: ["sqs:SendMessage"],
        resources: [this.scheduleDeadLetterQueue.queueArn],
      }),
    );

    const knock = this.createFunction("Knock", "knock.ts", {
      ...common,
      description: "spaknock: check an SPA packet and open a /32 rule in the guarded groups",
      timeout: props.knockTimeout ?? Duration.seconds(15),
      // A knock has a person waiting, who knocks again; Lambda's retries a minute or two later
      // could open a port nobody is waiting for any more.
      asyncRetries: 0,
      // A throttled asynchronous event is otherwise queued for up to 6 hours. The function also
      // refuses any event more than 10 s old (lambda/knock-event.ts); this drops the rest
      // early (60 s is Lambda's minimum).
      maxEventAge: Duration.seconds(60),
      reservedConcurrency: concurrency?.knock,
      environment: {
        REPLAY_TABLE: this.replayTable.tableName,
        ACCESS_CONFIG_SECRET: this.accessConfigSecret.secretArn,
        SCHEDULE_GROUP: this.scheduleGroup.scheduleGroupName,
        REVOKE_FUNCTION_ARN: this.revokeFunction.functionArn,
        SCHEDULER_ROLE_ARN: this.schedulerRole.roleArn,
        SCHEDULE_DLQ_ARN: this.scheduleDeadLetterQueue.queueArn,
        MAX_SPA_PACKET_AGE: String(maxPacketAge.toSeconds()),
        ACCESS_CONFIG_TTL: String((props.accessConfigTtl ?? Duration.minutes(5)).toSeconds()),
      },
    });
    this.knockFunction = knock.fn;
    this.grantKnock(knock.role);

    const roles = this.grantEc2({ knock, revoke, sweep }, arns, props.openerRole ?? true);
    // For the team's own roles: attach these to who audits and who operates.
    this.auditorPolicy = new ManagedPolicy(this, "AuditorPolicy", {
      description: "spaknock audit and grants: read CloudTrail events and security group rules",
      statements: auditorStatements(),
    });
    this.operatorPolicy = new ManagedPolicy(this, "OperatorPolicy", {
      description: "spaknock audit, grants and revoke: also revoke rules in the guarded groups",
      statements: operatorStatements(arns),
    });
    for (const policy of [this.auditorPolicy, this.operatorPolicy]) {
      Validations.of(policy).acknowledge({
        id: "AwsSolutions-IAM5[Resource::*]",
        reason:
          "cloudtrail:LookupEvents and ec2:DescribeSecurityGroupRules (both read-only) support no resource-level permissions; they are the only actions on Resource *. The operator's revoke is on the guarded groups' ARNs.",
      });
    }
    this.openerRole = roles.openerRole;
    this.closerRole = roles.closerRole;
    if (this.notificationTopic) {
      for (const f of [knock, revoke, sweep]) {
        f.role.addToPolicy(
          new PolicyStatement({
            sid: "PublishNotices",
            actions: ["sns:Publish"],
            resources: [this.notificationTopic.topicArn],
          }),
        );
      }
    }
    this.acknowledgeRoleFindings(knock.role, this.openerRole ?? knock.role, [
      revoke.role,
      sweep.role,
    ]);

    new Rule(this, "EveryMinute", {
      description: "spaknock sweep: revoke rules past their expiry (backstop for the schedules)",
      schedule: Schedule.rate(Duration.minutes(1)),
      // A missed sweep is made up by the next one a minute later.
      targets: [
        new LambdaFunction(this.sweepFunction, {
          retryAttempts: 0,
          maxEventAge: Duration.minutes(1),
        }),
      ],
    });

    if (props.functionUrl) {
      // AuthType NONE on purpose: the SPA packet is the authentication (HMAC, then decryption,
      // then age and replay checks, all before anything opens), exactly as with the UDP relay.
      // IAM auth would need AWS credentials on every engineer's laptop, which is what SPA avoids.
      // Every request gets the same empty 200, so the URL is no oracle.
      this.functionUrl = this.knockFunction.addFunctionUrl({ authType: FunctionUrlAuthType.NONE });
    }

    if (relayMode !== "none") {
      this.relay = new UdpRelay(this, "Relay", {
        vpc: this.vpc as IVpc,
        knockFunction: this.knockFunction,
        mode: relayMode,
        instanceType: props.relay?.instanceType ?? new InstanceType("t4g.nano"),
        port: relayPort,
        ipv6: props.ipv6 ?? false,
        sourceRoot,
      });
    }

    this.addOutputs(relayPort, props.clientAccess ?? "tcp/22");
  }

  /** The state of the deployment: replay table, access.conf secret, schedules, notices. */
  private createStores(props: SpaKnockerProps) {
    const replayTable = new TableV2(this, "ReplayCache", {
      partitionKey: { name: "pk", type: AttributeType.STRING },
      billing: Billing.onDemand(),
      timeToLiveAttribute: "expiresAt",
      pointInTimeRecoverySpecification: { pointInTimeRecoveryEnabled: true },
      // Only digests of packets seen in the last few minutes: nothing to keep.
      removalPolicy: RemovalPolicy.DESTROY,
    });

    const accessConfigSecret = new Secret(this, "AccessConfig", {
      secretName: props.accessConfigSecretName ?? `${Aws.STACK_NAME}/access.conf`,
      description:
        "spaknock access.conf (fwknop format plus SECURITY_GROUPS); put with put-secret-value",
      secretStringValue: SecretValue.unsafePlainText(ACCESS_CONF_PLACEHOLDER),
    });
    // Rotating HMAC/AES keys means giving every engineer's client the new ones: a human step
    // (`spaknock` keygen, then put-secret-value), which a rotation Lambda cannot do.
    Validations.of(accessConfigSecret).acknowledge({
      id: "AwsSolutions-SMG4",
      reason:
        "The secret holds fwknop access stanzas whose keys are shared with each engineer's client; rotation is a coordinated manual re-key, not something a rotation function can do.",
    });

    const scheduleGroup = new ScheduleGroup(this, "Schedules", {
      removalPolicy: RemovalPolicy.DESTROY,
    });
    const scheduleDeadLetterQueue = new Queue(this, "ScheduleDeadLetters", {
      encryption: QueueEncryption.SQS_MANAGED,
      enforceSSL: true,
      retentionPeriod: Duration.days(14),
    });
    Validations.of(scheduleDeadLetterQueue).acknowledge({
      id: "AwsSolutions-SQS3",
      reason:
        "This queue is itself the dead-letter queue of the one-time revoke schedules (set per schedule by the knock function), so it has no dead-letter queue of its own.",
    });

    let notificationTopic: Topic | undefined;
    if (props.notificationEmails && props.notificationEmails.length > 0) {
      notificationTopic = new Topic(this, "Notices", {
        displayName: "spaknock open/close notices",
        enforceSSL: true,
        // The AWS managed key: publishers in this account need no key policy of ours, and
        // email subscriptions read nothing encrypted.
        masterKey: Alias.fromAliasName(this, "SnsKey", "alias/aws/sns"),
      });
      for (const email of props.notificationEmails) {
        notificationTopic.addSubscription(new EmailSubscription(email));
      }
    }
    return {
      replayTable,
      accessConfigSecret,
      scheduleGroup,
      scheduleDeadLetterQueue,
      notificationTopic,
    };
  }

  /**
   * Who opens and who closes. With the opener roles, the EC2 calls are made as the engineer
   * (SourceIdentity) and each function may assume only the role for its half; without them, the
   * same statements sit on the functions' own roles.
   */
  private grantEc2(
    {
      knock,
      revoke,
      sweep,
    }: Record<"knock" | "revoke" | "sweep", { fn: LambdaFunctionResource; role: Role }>,
    arns: GuardedGroupArns,
    useOpenerRoles: boolean,
  ): { openerRole?: Role; closerRole?: Role } {
    let roles: { openerRole?: Role; closerRole?: Role } = {};
    if (useOpenerRoles) {
      const openerRole = new Role(this, "OpenerRole", {
        description: "spaknock: open /32 rules in the guarded groups, as the knocking engineer",
        assumedBy: new SourceIdentityPrincipal(knock.role.roleArn),
        maxSessionDuration: Duration.hours(1),
      });
      for (const s of openStatements(arns)) openerRole.addToPolicy(s);
      const closerRole = new Role(this, "CloserRole", {
        description: "spaknock: revoke expired rules in the guarded groups, as their engineer",
        assumedBy: new CompositePrincipal(
          new SourceIdentityPrincipal(revoke.role.roleArn),
          new SourceIdentityPrincipal(sweep.role.roleArn),
        ),
        maxSessionDuration: Duration.hours(1),
      });
      for (const s of closeStatements(arns)) closerRole.addToPolicy(s);
      this.allowAssume(knock, openerRole);
      this.allowAssume(revoke, closerRole);
      this.allowAssume(sweep, closerRole);
      roles = { openerRole, closerRole };
    } else {
      for (const s of openStatements(arns)) knock.role.addToPolicy(s);
      for (const s of closeStatements(arns)) {
        revoke.role.addToPolicy(s);
        sweep.role.addToPolicy(s);
      }
    }
    // revoke and sweep list the rules under their own role before closing any.
    revoke.role.addToPolicy(describeRulesStatement());
    sweep.role.addToPolicy(describeRulesStatement());
    return roles;
  }

  /** The cdk-nag findings the roles carry on purpose, each with its reason. */
  private acknowledgeRoleFindings(knockRole: Role, opener: Role, closers: readonly Role[]): void {
    for (const role of [opener, ...closers]) {
      Validations.of(role).acknowledge({
        id: "AwsSolutions-IAM5[Resource::*]",
        reason:
          "ec2:DescribeSecurityGroupRules (read-only) supports no resource-level permissions; it is the only action on Resource *.",
      });
    }
    // Only the opening side names security-group-rule/* (a revoke is authorized on the group).
    Validations.of(opener).acknowledge({
      id: wildcardFinding(nagArn("ec2", "security-group-rule/*")),
      reason:
        "A rule's id exists only once the rule does. Every statement on security-group-rule/* is paired with the guarded groups' ARNs (EC2 authorizes both), and the open/retag/modify ones also require spaknock:managed tags.",
    });
    Validations.of(knockRole).acknowledge({
      id: wildcardFinding(
        nagArn("scheduler", `schedule/${this.scheduleGroup.scheduleGroupName}/spaknock-*`),
      ),
      reason:
        "Each grant gets its own one-time schedule named spaknock-<expiry>-<digest>; the wildcard is confined to spaknock's schedule group and that name prefix.",
    });
  }

  private createVpc(retention: RetentionDays, ipv6: boolean): Vpc {
    const flowLogs = new LogGroup(this, "FlowLogs", { retention });
    return new Vpc(this, "Vpc", {
      maxAzs: 2,
      natGateways: 0,
      ...(ipv6 ? { ipProtocol: IpProtocol.DUAL_STACK } : {}),
      subnetConfiguration: [
        {
          name: "public",
          subnetType: SubnetType.PUBLIC,
          cidrMask: 24,
          // CDK turns public IPv4 off in dual-stack public subnets; the relay needs it at boot,
          // before it holds its Elastic IP, to reach the EC2 and S3 APIs (over IPv4).
          ...(ipv6 ? { mapPublicIpOnLaunch: true, ipv6AssignAddressOnCreation: true } : {}),
        },
      ],
      // Nothing uses the default group; restricting it needs a custom-resource Lambda.
      restrictDefaultSecurityGroup: false,
      flowLogs: {
        all: {
          trafficType: FlowLogTrafficType.ALL,
          destination: FlowLogDestination.toCloudWatchLogs(flowLogs),
        },
      },
    });
  }

  private createFunction(
    id: string,
    entryFile: string,
    opts: {
      sourceRoot: string;
      retention: RetentionDays;
      description: string;
      timeout: Duration;
      notifyTopicArn: string | undefined;
      managedGroups: string;
      environment?: Record<string, string>;
      /** Lambda's own retries of a failed asynchronous invocation (default 2). */
      asyncRetries?: number;
      /** How long Lambda keeps an asynchronous event it could not run yet (default 6 h). */
      maxEventAge?: Duration;
      reservedConcurrency?: number | undefined;
    },
  ): { fn: LambdaFunctionResource; role: Role } {
    const logGroup = new LogGroup(this, `${id}Logs`, { retention: opts.retention });
    // Our own role, without AWSLambdaBasicExecutionRole: it may write to its own log group only.
    const role = new Role(this, `${id}Role`, {
      assumedBy: new ServicePrincipal("lambda.amazonaws.com"),
      description: opts.description,
    });
    role.addToPolicy(
      new PolicyStatement({
        sid: "WriteOwnLogs",
        actions: ["logs:CreateLogStream", "logs:PutLogEvents"],
        resources: [logGroup.logGroupArn],
      }),
    );
    const fn = new LambdaFunctionResource(this, id, {
      code: lambdaBundle(opts.sourceRoot, entryFile),
      handler: "index.handler",
      runtime: Runtime.NODEJS_24_X,
      architecture: Architecture.ARM_64,
      memorySize: 256,
      timeout: opts.timeout,
      description: opts.description,
      role,
      logGroup,
      ...(opts.asyncRetries === undefined ? {} : { retryAttempts: opts.asyncRetries }),
      ...(opts.maxEventAge === undefined ? {} : { maxEventAge: opts.maxEventAge }),
      ...(opts.reservedConcurrency === undefined
        ? {}
        : { reservedConcurrentExecutions: opts.reservedConcurrency }),
      loggingFormat: LoggingFormat.JSON,
      applicationLogLevelV2: ApplicationLogLevel.INFO,
      systemLogLevelV2: SystemLogLevel.WARN,
      environment: {
        MANAGED_GROUPS: opts.managedGroups,
        ...(opts.notifyTopicArn ? { NOTIFY_TOPIC_ARN: opts.notifyTopicArn } : {}),
        ...opts.environment,
      },
    });
    return { fn, role };
  }

  private grantKnock(role: Role): void {
    role.addToPolicy(
      new PolicyStatement({
        sid: "ReplayCache",
        actions: ["dynamodb:PutItem"],
        resources: [this.replayTable.tableArn],
      }),
    );
    role.addToPolicy(
      new PolicyStatement({
        sid: "ReadAccessStanzas",
        actions: ["secretsmanager:GetSecretValue"],
        resources: [this.accessConfigSecret.secretArn],
      }),
    );
    // One-time revoke schedules, in spaknock's group only and under spaknock's name prefix.
    role.addToPolicy(
      new PolicyStatement({
        sid: "CreateRevokeSchedulesInOwnGroupOnly",
        actions: ["scheduler:CreateSchedule"],
        resources: [
          Stack.of(this).formatArn({
            service: "scheduler",
            resource: "schedule",
            resourceName: `${this.scheduleGroup.scheduleGroupName}/spaknock-*`,
          }),
        ],
      }),
    );
    role.addToPolicy(
      new PolicyStatement({
        sid: "PassSchedulerRoleOnly",
        actions: ["iam:PassRole"],
        resources: [this.schedulerRole.roleArn],
        conditions: { StringEquals: { "iam:PassedToService": "scheduler.amazonaws.com" } },
      }),
    );
  }

  private allowAssume(f: { role: Role; fn: LambdaFunctionResource }, target: Role): void {
    f.role.addToPolicy(
      new PolicyStatement({
        sid: "ActAsTheEngineer",
        actions: ["sts:AssumeRole", "sts:SetSourceIdentity"],
        resources: [target.roleArn],
      }),
    );
    f.fn.addEnvironment("OPENER_ROLE_ARN", target.roleArn);
  }

  /**
   * Outputs keep readable keys (`SpaKnockerRelayAddress`, not a hashed id) so scripts and the
   * README can name them: this construct's id, then what it is.
   */
  private output(name: string, description: string, value: string): void {
    new CfnOutput(this, name, { description, value }).overrideLogicalId(`${this.node.id}${name}`);
  }

  private addOutputs(port: number, access: string): void {
    if (this.relay) {
      this.output(
        "RelayAddress",
        "Where engineers send SPA packets (SPA_SERVER, fwknop -D)",
        this.relay.address,
      );
      this.output("RelayPort", "The relay's UDP port (SPA_SERVER_PORT)", String(port));
      this.output(
        "FwknoprcStanza",
        "Paste into ~/.fwknoprc, then add KEY_BASE64 and HMAC_KEY_BASE64 from `fwknop --key-gen`",
        Fn.join("\n", [
          `[${Aws.STACK_NAME}]`,
          `SPA_SERVER          ${this.relay.address}`,
          "SPA_SERVER_PROTO    udp",
          `SPA_SERVER_PORT     ${port}`,
          `ACCESS              ${access}`,
          "ALLOW_IP            resolve",
          "USE_HMAC            Y",
        ]),
      );
    }
    if (this.functionUrl) {
      this.output(
        "FunctionUrl",
        "HTTPS knock endpoint: POST the SPA data as the body, or GET /<data>",
        this.functionUrl.url,
      );
    }
    this.output(
      "AccessConfigSecretName",
      "Put access.conf here: aws secretsmanager put-secret-value --secret-id <this> --secret-string file://access.conf",
      this.accessConfigSecret.secretName,
    );
    this.output(
      "AuditorPolicyArn",
      "Attach to whoever runs spaknock audit / grants (read only)",
      this.auditorPolicy.managedPolicyArn,
    );
    this.output(
      "OperatorPolicyArn",
      "Attach to whoever may also close grants early with spaknock revoke",
      this.operatorPolicy.managedPolicyArn,
    );
    this.output(
      "GuardedSecurityGroupIds",
      "Groups spaknock opens rules in; every stanza's SECURITY_GROUPS must be among them",
      Fn.join(
        ",",
        this.guardedSecurityGroups.map((g) => g.securityGroupId),
      ),
    );
  }
}

/**
 * One function's code: lambda/<entryFile> bundled by cdk/lambda-bundle.mjs (the project's own
 * esbuild, never Docker, so synth works offline and in CI) into `index.mjs`, with the AWS SDK
 * inside (the version the code was tested with, not whichever the runtime ships). Not
 * NodejsFunction's bundling: its esbuild runs without plugins, and the bundle's size and cold
 * start rest on two (see that script).
 */
function lambdaBundle(sourceRoot: string, entryFile: string): Code {
  return Code.fromAsset(join(sourceRoot, "lambda"), {
    assetHashType: AssetHashType.OUTPUT,
    bundling: {
      // Never pulled: local bundling always succeeds or throws.
      image: DockerImage.fromRegistry("scratch"),
      // What the local bundling runs, written out because CDK caches a staged asset by its source
      // folder and bundling options (not by tryBundle): without it, the three functions, all
      // from lambda/, would share the first one's bundle.
      command: ["node", "cdk/lambda-bundle.mjs", `lambda/${entryFile}`, "index.mjs"],
      local: {
        tryBundle(outputDir: string) {
          execFileSync(
            process.execPath,
            [
              join(sourceRoot, "cdk", "lambda-bundle.mjs"),
              join(sourceRoot, "lambda", entryFile),
              join(outputDir, "index.mjs"),
            ],
            { stdio: ["ignore", "inherit", "inherit"] },
          );
          return true;
        },
      },
    },
  });
}

function validateProps(
  props: SpaKnockerProps,
  relayMode: string,
  relayPort: number,
  groupIds: readonly string[],
): void {
  for (const id of groupIds) {
    if (!Token.isUnresolved(id) && !SECURITY_GROUP_ID.test(id)) {
      throw new TypeError(
        `SpaKnocker: guardedSecurityGroupIds: "${id}" is not a security group id`,
      );
    }
  }
  if (relayMode === "none" && !props.functionUrl) {
    throw new TypeError('SpaKnocker: relay mode "none" needs functionUrl: true');
  }
  if (props.ipv6 && relayMode === "nlb") {
    throw new TypeError(
      'SpaKnocker: ipv6 needs relay mode "eip" or "none": a dual-stack Network Load Balancer cannot forward UDP to instances',
    );
  }
  if (!Number.isInteger(relayPort) || relayPort < 1024 || relayPort > 65535) {
    throw new TypeError(`SpaKnocker: relay port ${relayPort} is not between 1024 and 65535`);
  }
  const type = props.relay?.instanceType?.toString();
  if (type && !GRAVITON_INSTANCE_TYPE.test(type)) {
    throw new TypeError(`SpaKnocker: relay instance type ${type} is not a Graviton (arm64) type`);
  }
}
