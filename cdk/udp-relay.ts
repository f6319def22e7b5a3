/**
 * The UDP relay: Lambda cannot receive UDP, so `spaknockd relay` listens on the SPA port and
 * hands each datagram to the knock function. Either one Graviton instance in an auto-scaling
 * group that claims an Elastic IP at boot (cheap, a minute or two of downtime when it is
 * replaced), or two behind a Network Load Balancer with a UDP listener across two zones.
 *
 * The instance gets spaknock as one esbuild bundle of agent/main.ts (an S3 asset, so nothing is
 * fetched from npm at boot), Node.js from Amazon Linux 2023's own package, and a hardened systemd
 * unit. Its role can invoke the knock function, read that one bundle, and (Elastic IP mode) move
 * its own address onto itself; nothing else.
 */
import { join } from "node:path";
import {
  AssetHashType,
  Aws,
  BundlingOutput,
  DockerImage,
  Duration,
  Names,
  Stack,
  Validations,
} from "aws-cdk-lib";
import {
  AdditionalHealthCheckType,
  AutoScalingGroup,
  HealthChecks,
  UpdatePolicy,
} from "aws-cdk-lib/aws-autoscaling";
import {
  AmazonLinuxCpuType,
  BlockDeviceVolume,
  CfnEIP,
  EbsDeviceVolumeType,
  type InstanceType,
  type IVpc,
  LaunchTemplate,
  MachineImage,
  Peer,
  Port,
  SecurityGroup,
  SubnetType,
  UserData,
} from "aws-cdk-lib/aws-ec2";
import { NetworkLoadBalancer, Protocol } from "aws-cdk-lib/aws-elasticloadbalancingv2";
import { PolicyStatement, Role, ServicePrincipal } from "aws-cdk-lib/aws-iam";
import type { IFunction } from "aws-cdk-lib/aws-lambda";
import { Asset } from "aws-cdk-lib/aws-s3-assets";
import { Construct } from "constructs";
import { buildSync } from "esbuild";
import { nagArn, wildcardFinding } from "./nag-findings.js";

export type RelayMode = "eip" | "nlb";

export interface UdpRelayProps {
  readonly vpc: IVpc;
  /** The function every datagram that passes the precheck is handed to. */
  readonly knockFunction: IFunction;
  /** `eip`: one instance and an Elastic IP; `nlb`: two instances behind a UDP load balancer. */
  readonly mode: RelayMode;
  /** A Graviton (arm64) type: the AMI and the bundle are arm64. */
  readonly instanceType: InstanceType;
  /** The UDP port clients send to (fwknop's default is 62201). */
  readonly port: number;
  /**
   * The VPC has IPv6: listen dual-stack and let the port in from `::/0` too.
   * @default false
   */
  readonly ipv6?: boolean;
  /** The folder holding agent/main.ts and package.json. */
  readonly sourceRoot: string;
}

/** Node.js from AL2023's namespaced package (`node-24`, as the Lambda runtime): 20 left upstream support in 2026-04. */
const NODE_MAJOR = 24;
const BUNDLE_PATH = "/opt/spaknock/spaknockd.mjs";
const UNIT = "spaknock-relay.service";
const HEALTH_UNIT = "spaknock-relay-health.service";

/** Bundles agent/main.ts into one ESM file that runs on a bare Node.js, no node_modules. */
export function bundleRelay(sourceRoot: string, outfile: string): void {
  buildSync({
    entryPoints: [join(sourceRoot, "agent", "main.ts")],
    outfile,
    bundle: true,
    platform: "node",
    format: "esm",
    target: "node20",
    minify: true,
    legalComments: "eof",
    logLevel: "error",
    tsconfig: join(sourceRoot, "tsconfig.json"),
    // The optional libpcap binding is native and only used by the host daemon's pcap mode.
    external: ["cap"],
    // CommonJS dependencies inside an ESM bundle still call require().
    banner: {
      js: "import { createRequire as __spaknockRequire } from 'node:module'; const require = __spaknockRequire(import.meta.url);",
    },
  });
}

const HARDENING = [
  "NoNewPrivileges=yes",
  "ProtectSystem=strict",
  "ProtectHome=yes",
  "PrivateTmp=yes",
  "PrivateDevices=yes",
  "ProtectKernelTunables=yes",
  "ProtectKernelModules=yes",
  "ProtectKernelLogs=yes",
  "ProtectControlGroups=yes",
  "ProtectClock=yes",
  "ProtectHostname=yes",
  "RestrictNamespaces=yes",
  "RestrictRealtime=yes",
  "RestrictSUIDSGID=yes",
  "LockPersonality=yes",
  "SystemCallArchitectures=native",
  // glibc's getaddrinfo asks the kernel for interface addresses over netlink.
  "RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX AF_NETLINK",
  "CapabilityBoundingSet=",
  "UMask=0077",
];

export class UdpRelay extends Construct {
  /** What clients send to: the Elastic IP, or the load balancer's DNS name. */
  readonly address: string;
  readonly role: Role;
  readonly securityGroup: SecurityGroup;
  readonly autoScalingGroup: AutoScalingGroup;
  readonly loadBalancer?: NetworkLoadBalancer;

  constructor(scope: Construct, id: string, props: UdpRelayProps) {
    super(scope, id);
    const { vpc, knockFunction, mode, port } = props;
    const stack = Stack.of(this);
    const instances = mode === "nlb" ? 2 : 1;

    const bundle = new Asset(this, "Bundle", {
      path: join(props.sourceRoot, "agent"),
      assetHashType: AssetHashType.OUTPUT,
      bundling: {
        // Never pulled: local bundling with the project's esbuild always succeeds or throws.
        image: DockerImage.fromRegistry("scratch"),
        outputType: BundlingOutput.SINGLE_FILE,
        local: {
          tryBundle(outputDir: string) {
            bundleRelay(props.sourceRoot, join(outputDir, "spaknockd.mjs"));
            return true;
          },
        },
      },
    });

    this.role = new Role(this, "Role", {
      assumedBy: new ServicePrincipal("ec2.amazonaws.com"),
      description:
        "spaknock relay: invoke the knock function (and fetch its code, claim its address)",
    });
    // The exact function ARN: the relay invokes the unqualified function, never a version.
    this.role.addToPolicy(
      new PolicyStatement({
        sid: "InvokeKnockFunctionOnly",
        actions: ["lambda:InvokeFunction"],
        resources: [knockFunction.functionArn],
      }),
    );
    this.role.addToPolicy(
      new PolicyStatement({
        sid: "ReadOwnCodeBundleOnly",
        actions: ["s3:GetObject"],
        resources: [
          stack.formatArn({
            service: "s3",
            region: "",
            account: "",
            resource: bundle.s3BucketName,
            resourceName: bundle.s3ObjectKey,
          }),
        ],
      }),
    );

    const ipv6 = props.ipv6 ?? false;
    if (ipv6 && mode === "nlb")
      throw new TypeError(
        "UdpRelay: ipv6 needs mode eip (a dual-stack NLB forwards UDP to IPv6 IP targets only)",
      );
    this.securityGroup = this.createSecurityGroup(vpc, port, ipv6);

    const userData = UserData.forLinux();
    userData.addCommands("set -euo pipefail");
    let eip: CfnEIP | undefined;
    // Named up front, so the role's policy can name the group without depending on it.
    const groupName = `${Aws.STACK_NAME}-${Names.uniqueId(this)}`;
    if (mode === "eip") {
      eip = new CfnEIP(this, "Address", { domain: "vpc" });
      userData.addCommands(...eipAssociationCommands(eip));
      // An auto-scaling group cannot attach an Elastic IP itself, so the instance claims it at
      // boot: this one allocation, and only onto an instance of this group.
      this.role.addToPolicy(
        new PolicyStatement({
          sid: "AssociateOwnAddressOnly",
          actions: ["ec2:AssociateAddress"],
          resources: [
            stack.formatArn({
              service: "ec2",
              resource: "elastic-ip",
              resourceName: eip.attrAllocationId,
            }),
          ],
        }),
      );
      this.role.addToPolicy(
        new PolicyStatement({
          sid: "AssociateOntoOwnInstancesOnly",
          actions: ["ec2:AssociateAddress"],
          resources: [stack.formatArn({ service: "ec2", resource: "instance", resourceName: "*" })],
          conditions: { StringEquals: { "aws:ResourceTag/aws:autoscaling:groupName": groupName } },
        }),
      );
      Validations.of(this.role).acknowledge({
        id: wildcardFinding(nagArn("ec2", "instance/*")),
        reason:
          "The instance id is known only at boot. The statement requires the instance to carry this group's aws:autoscaling:groupName tag, and the only address it can move is this relay's own Elastic IP.",
      });
    }
    installRelay(userData, bundle, { mode, port, ipv6, functionArn: knockFunction.functionArn });

    const launchTemplate = new LaunchTemplate(this, "LaunchTemplate", {
      // Resolved from AWS's public SSM parameter at deploy time (not a synth-time lookup), so
      // each deploy picks up the latest patched AMI.
      machineImage: MachineImage.latestAmazonLinux2023({ cpuType: AmazonLinuxCpuType.ARM_64 }),
      instanceType: props.instanceType,
      role: this.role,
      securityGroup: this.securityGroup,
      userData,
      requireImdsv2: true,
      httpPutResponseHopLimit: 1,
      blockDevices: [
        {
          deviceName: "/dev/xvda",
          volume: BlockDeviceVolume.ebs(8, {
            encrypted: true,
            volumeType: EbsDeviceVolumeType.GP3,
            deleteOnTermination: true,
          }),
        },
      ],
    });

    this.autoScalingGroup = new AutoScalingGroup(this, "Instances", {
      autoScalingGroupName: groupName,
      vpc,
      vpcSubnets: { subnetType: SubnetType.PUBLIC },
      launchTemplate,
      minCapacity: instances,
      maxCapacity: instances,
      // A changed launch template (new AMI, new bundle) replaces the instances one at a time.
      updatePolicy: UpdatePolicy.rollingUpdate({ minInstancesInService: instances - 1 }),
      ...(mode === "nlb"
        ? {
            healthChecks: HealthChecks.withAdditionalChecks({
              additionalTypes: [AdditionalHealthCheckType.ELB],
              gracePeriod: Duration.minutes(5),
            }),
          }
        : {}),
    });

    if (mode === "nlb") {
      this.loadBalancer = this.addLoadBalancer(vpc, port);
      this.address = this.loadBalancer.loadBalancerDnsName;
    } else {
      this.address = (eip as CfnEIP).ref;
    }
    Validations.of(this.autoScalingGroup).acknowledge({
      id: "AwsSolutions-AS3",
      reason:
        "The group has a fixed size (1, or 2 behind the load balancer) and never scales; replacements are in its activity history and CloudTrail, and a notification topic for them would need a customer-managed KMS key Auto Scaling can use.",
    });
    // The instance boots only once its role's policy exists, so it can claim its address and
    // reach the function at once.
    this.autoScalingGroup.node.addDependency(this.role);
  }

  /** UDP in from anywhere (the relay never answers), over IPv6 too when asked; HTTPS out only. */
  private createSecurityGroup(vpc: IVpc, port: number, ipv6: boolean): SecurityGroup {
    const securityGroup = new SecurityGroup(this, "SecurityGroup", {
      vpc,
      description: `spaknock relay: udp/${port} from anywhere (the SPA packet is the credential)`,
      allowAllOutbound: false,
    });
    securityGroup.addIngressRule(
      Peer.anyIpv4(),
      Port.udp(port),
      "SPA packets; the relay never answers",
    );
    if (ipv6)
      securityGroup.addIngressRule(
        Peer.anyIpv6(),
        Port.udp(port),
        "SPA packets over IPv6; the relay never answers",
      );
    Validations.of(securityGroup).acknowledge({
      id: "AwsSolutions-EC23",
      reason: `Engineers knock from wherever they are, so the SPA port is open to any IPv4${ipv6 ? " and any IPv6" : ""} source. It is UDP only, the relay never answers (a scan cannot tell it from a dropped port), and only packets that pass the SPA precheck are forwarded.`,
    });
    // Outbound: HTTPS only, to the Lambda, S3 and EC2 endpoints and AL2023's package
    // repositories. DNS, the instance metadata service and Amazon Time Sync are link-local or
    // the VPC resolver, which security groups do not filter.
    securityGroup.addEgressRule(Peer.anyIpv4(), Port.tcp(443), "AWS APIs and dnf over HTTPS");
    return securityGroup;
  }

  /** Two relays behind an internet-facing UDP load balancer, health-checked over TCP. */
  private addLoadBalancer(vpc: IVpc, port: number): NetworkLoadBalancer {
    const loadBalancer = new NetworkLoadBalancer(this, "LoadBalancer", {
      vpc,
      internetFacing: true,
      crossZoneEnabled: true,
      vpcSubnets: { subnetType: SubnetType.PUBLIC },
    });
    Validations.of(loadBalancer).acknowledge({
      id: "AwsSolutions-ELB2",
      reason:
        "Network Load Balancer access logs exist only for TLS listeners; this one has a single UDP listener, so there is nothing to log. The relay logs every datagram it forwards or drops.",
    });
    // UDP to instance targets always keeps the client's address, which the knock needs: the
    // relay reports the sender it saw, and the grant is for that /32.
    loadBalancer.addListener("Udp", { port, protocol: Protocol.UDP }).addTargets("Relays", {
      port,
      protocol: Protocol.UDP,
      targets: [this.autoScalingGroup],
      healthCheck: {
        protocol: Protocol.TCP,
        port: String(port),
        interval: Duration.seconds(10),
        healthyThresholdCount: 2,
        unhealthyThresholdCount: 2,
      },
    });
    this.securityGroup.addIngressRule(
      Peer.ipv4(vpc.vpcCidrBlock),
      Port.tcp(port),
      "load balancer health checks (relay unit running)",
    );
    return loadBalancer;
  }
}

/** Boot step: claim the Elastic IP for this instance, before anything else is downloaded. */
function eipAssociationCommands(eip: CfnEIP): string[] {
  const imds = "http://169.254.169.254/latest";
  return [
    `TOKEN=$(curl -sS -X PUT ${imds}/api/token -H 'X-aws-ec2-metadata-token-ttl-seconds: 300')`,
    `INSTANCE_ID=$(curl -sS -H "X-aws-ec2-metadata-token: $TOKEN" ${imds}/meta-data/instance-id)`,
    // The new instance's group tag and role may take a few seconds to reach EC2's IAM check.
    "for attempt in $(seq 30); do",
    `  aws ec2 associate-address --region ${Aws.REGION} --allocation-id ${eip.attrAllocationId} --instance-id "$INSTANCE_ID" --allow-reassociation && break`,
    "  sleep 10",
    "done",
  ];
}

function writeUnit(userData: UserData, name: string, lines: readonly string[]): void {
  userData.addCommands(
    `cat > /etc/systemd/system/${name} <<'UNIT'`,
    ...lines,
    "UNIT",
    `chmod 0644 /etc/systemd/system/${name}`,
  );
}

/** Boot steps after the address: Node.js, the bundle, and the relay's systemd unit(s). */
function installRelay(
  userData: UserData,
  bundle: Asset,
  {
    mode,
    port,
    ipv6,
    functionArn,
  }: { mode: RelayMode; port: number; ipv6: boolean; functionArn: string },
): void {
  // `[::]` is one dual-stack socket: IPv4 senders arrive as IPv4-mapped addresses, which the
  // relay and the knock function both read as the IPv4 address they map.
  const listen = ipv6 ? `[::]:${port}` : `0.0.0.0:${port}`;
  userData.addCommands(`dnf install -y nodejs${NODE_MAJOR}`, "install -d -m 0755 /opt/spaknock");
  userData.addS3DownloadCommand({
    bucket: bundle.bucket,
    bucketKey: bundle.s3ObjectKey,
    localFile: BUNDLE_PATH,
    region: Aws.REGION,
  });
  userData.addCommands(`chmod 0644 ${BUNDLE_PATH}`);
  const node = `/usr/bin/node-${NODE_MAJOR}`;
  writeUnit(userData, UNIT, [
    "[Unit]",
    `Description=spaknock relay: SPA datagrams on udp/${port} to the knock Lambda`,
    "Wants=network-online.target",
    "After=network-online.target",
    ...(mode === "nlb" ? [`Upholds=${HEALTH_UNIT}`] : []),
    "",
    "[Service]",
    `ExecStart=${node} ${BUNDLE_PATH} relay --function ${functionArn} --listen ${listen} --region ${Aws.REGION} --foreground`,
    "Restart=always",
    "RestartSec=5",
    "DynamicUser=yes",
    "MemoryMax=300M",
    ...HARDENING,
    "",
    "[Install]",
    "WantedBy=multi-user.target",
  ]);
  if (mode === "nlb") {
    // UDP target groups need a TCP (or HTTP) health check, and the relay never answers
    // anything. This unit accepts TCP on the same port number for as long as the relay unit is
    // running (BindsTo + the relay's Upholds), and only the VPC may reach it.
    writeUnit(userData, HEALTH_UNIT, [
      "[Unit]",
      "Description=spaknock relay health check for the load balancer (TCP, VPC only)",
      `BindsTo=${UNIT}`,
      `After=${UNIT}`,
      "",
      "[Service]",
      `ExecStart=${node} -e "require('node:net').createServer((s) => s.destroy()).listen(${port})"`,
      "Restart=always",
      "RestartSec=5",
      "DynamicUser=yes",
      "MemoryMax=100M",
      ...HARDENING,
    ]);
  }
  userData.addCommands("systemctl daemon-reload", `systemctl enable --now ${UNIT}`);
}
