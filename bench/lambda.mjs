// The cloud knock's own cost, from the real artifacts `cdk synth` writes (cdk.out), on the
// Node.js the template deploys them to (nodejs24.x → Node 24, the official binaries from the npm
// registry). For each function of the stack:
//
// - its bundle's size;
// - its cold init: a fresh process importing the bundle as Lambda's runtime does, timed inside
//   that process, median of --runs;
// - the warm CPU of one invocation (user + system time of the function's process, so the AWS
//   calls' waiting is not in it): a grant (from a user new to the container, so with the opener
//   role's AssumeRole, and from the same user again), a refused packet (wrong HMAC key), the
//   revoke of one expired rule (revoke, sweep), after warm-up invocations, median of 5 × --runs.
//   Every AWS call goes to loopback: test/helpers/fake-aws-endpoint.ts (EC2, STS, Secrets
//   Manager, Scheduler) and dynalite (DynamoDB), with the function's environment from the
//   template. The system time includes the kernel's loopback TCP work for each request (the
//   receiving side too), hence the user-only column;
// - the first invocation after the cold init (wall time, loopback AWS included), where whatever
//   the function defers from its init is paid.
//
//   npm run bench:lambda [-- --runs 10] [--json]
//
// It fails when a bundle is missing, does not import, or an invocation errors or does not do
// what it should (no rule for a grant, a rule for a refused packet, a rule left after a revoke);
// it never fails on a figure.
import { execFile, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { existsSync, readdirSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { parseArgs, promisify } from "node:util";
import { formatNumber, machineInfo, percentile } from "./lib/report.mjs";

const execFileAsync = promisify(execFile);
const REPO = fileURLToPath(new URL("..", import.meta.url));
const OUT = join(REPO, "cdk.out");
const INVOKE = join(REPO, "bench", "lib", "lambda-invoke.mjs");
const HARNESS = join(REPO, "build", "harness", "fake-aws-endpoint.js");
const CORE = join(REPO, "dist", "core", "index.js");

const { values: args } = parseArgs({
  options: { runs: { type: "string", default: "10" }, json: { type: "boolean", default: false } },
});
const runs = Number(args.runs);
if (!Number.isInteger(runs) || runs < 1) throw new Error("--runs: a whole number, 1 or more");
const WARMUP = 5;
const INVOCATIONS = 5 * runs;

const ACCOUNT = "111122223333";
const REGION = "eu-west-1";
const GROUP = "sg-0123456789abcdef0";
/** What the SDK in the function's process reads instead of a real account: no IMDS, no profile. */
const DUMMY_AWS_ENV = {
  AWS_ACCESS_KEY_ID: "bench",
  AWS_SECRET_ACCESS_KEY: "bench",
  AWS_REGION: REGION,
  AWS_DEFAULT_REGION: REGION,
  AWS_EC2_METADATA_DISABLED: "true",
  AWS_CONFIG_FILE: "/dev/null",
  AWS_SHARED_CREDENTIALS_FILE: "/dev/null",
};

/** The keys of the one stanza in the secret (fixed, like test/helpers/lambda-fixtures.ts's). */
const KEYS = {
  key: Buffer.from(Array.from({ length: 32 }, (_, i) => (i * 7 + 3) & 0xff)),
  mode: "cbc",
  hmacKey: Buffer.from(Array.from({ length: 64 }, (_, i) => (i * 13 + 101) & 0xff)),
  hmacType: "sha256",
};
const WRONG_KEYS = { ...KEYS, key: Buffer.alloc(32, 0x41), hmacKey: Buffer.alloc(64, 0x42) };
const ACCESS_CONF = [
  "SOURCE ANY",
  `KEY_BASE64 ${KEYS.key.toString("base64")}`,
  `HMAC_KEY_BASE64 ${KEYS.hmacKey.toString("base64")}`,
  "OPEN_PORTS tcp/22",
  "FW_ACCESS_TIMEOUT 30",
  `SECURITY_GROUPS ${GROUP}`,
  "",
].join("\n");

function functionsOf(template) {
  return Object.entries(template.Resources)
    .filter(([, r]) => r.Type === "AWS::Lambda::Function" && r.Properties?.Code?.S3Key)
    .map(([id, r]) => {
      const hash = r.Properties.Code.S3Key.replace(/\.zip$/, "");
      return {
        name: id.replace(/^SpaKnocker/, "").replace(/[0-9A-F]{8}$/, ""),
        runtime: r.Properties.Runtime,
        bundle: join(OUT, `asset.${hash}`, "index.mjs"),
        env: environmentOf(r.Properties.Environment?.Variables ?? {}),
      };
    })
    .filter((f) => /^nodejs/.test(f.runtime ?? ""));
}

/** The function's variables with the template's references made concrete for loopback. */
function environmentOf(variables) {
  const value = (name, v) => {
    if (typeof v === "string") return v;
    const [id, attribute] = v["Fn::GetAtt"] ?? [v.Ref, "Ref"];
    if (attribute === "GroupId") return GROUP;
    if (attribute === "Arn") return `arn:aws:bench:${REGION}:${ACCOUNT}:${id}`;
    if (attribute === "Ref" && typeof id === "string") return id;
    throw new Error(`${name}: no loopback value for ${JSON.stringify(v)}`);
  };
  return Object.fromEntries(Object.entries(variables).map(([k, v]) => [k, value(k, v)]));
}

/** The Node.js of a runtime (`nodejs24.x`): the npm registry's binaries, through npx's cache. */
async function nodeBinary(runtime) {
  const major = /^nodejs([0-9]+)/.exec(runtime)?.[1];
  const { stdout } = await execFileAsync(
    "npx",
    [
      "--yes",
      "--prefer-offline",
      `--package=node-${process.platform}-${process.arch}@${major}`,
      "--",
      "node",
      "-p",
      "process.execPath",
    ],
    { timeout: 300_000 },
  );
  return stdout.trim();
}

// Timed inside the child: from before the import to after it, plus the child's resident memory.
const PROBE = `
const t = performance.now();
await import(process.argv[1]);
const ms = performance.now() - t;
console.log(JSON.stringify({ ms, rssMiB: process.memoryUsage().rss / 1048576, node: process.version }));
`;

/** The `p`th percentile of one field over the samples. */
const percentileOf = (samples, field, p) =>
  percentile(
    samples.map((s) => s[field]),
    p,
  );

async function coldInit(node, f) {
  const samples = [];
  for (let i = 0; i < runs; i++) {
    const { stdout } = await execFileAsync(
      node,
      ["--input-type=module", "-e", PROBE, pathToFileURL(f.bundle).href],
      // What Lambda sets, so module-level code that reads them finds them; no call is made.
      {
        env: { ...DUMMY_AWS_ENV, ...f.env, AWS_LAMBDA_FUNCTION_NAME: "bench" },
        timeout: 120_000,
      },
    );
    samples.push(JSON.parse(stdout.trim().split("\n").at(-1)));
  }
  return {
    node: samples[0].node,
    initMs: percentileOf(samples, "ms", 50),
    rssMiB: percentileOf(samples, "rssMiB", 50),
  };
}

/** The loopback AWS: the fake endpoint for everything but DynamoDB, dynalite for the table. */
async function startAws(template) {
  const { FakeAwsEndpoint } = await import(pathToFileURL(HARNESS).href);
  const aws = new FakeAwsEndpoint(ACCOUNT, REGION, ACCESS_CONF);
  await aws.start();
  const { default: dynalite } = await import("dynalite");
  const dynamo = dynalite({ createTableMs: 0 });
  await new Promise((resolve) => dynamo.listen(0, "127.0.0.1", resolve));
  const dynamoEndpoint = `http://127.0.0.1:${dynamo.address().port}`;
  // The table as the template declares it; dynalite reads the JSON API and checks no signature.
  for (const [id, r] of Object.entries(template.Resources)) {
    if (r.Type !== "AWS::DynamoDB::GlobalTable") continue;
    const response = await fetch(dynamoEndpoint, {
      method: "POST",
      headers: {
        "content-type": "application/x-amz-json-1.0",
        "x-amz-target": "DynamoDB_20120810.CreateTable",
        "x-amz-date": "20260101T000000Z",
        authorization: `AWS4-HMAC-SHA256 Credential=bench/20260101/${REGION}/dynamodb/aws4_request, SignedHeaders=host, Signature=0`,
      },
      body: JSON.stringify({
        TableName: id,
        KeySchema: r.Properties.KeySchema,
        AttributeDefinitions: r.Properties.AttributeDefinitions,
        BillingMode: "PAY_PER_REQUEST",
      }),
    });
    if (!response.ok) throw new Error(`dynalite CreateTable: ${await response.text()}`);
  }
  return {
    aws,
    env: { AWS_ENDPOINT_URL: aws.endpoint, AWS_ENDPOINT_URL_DYNAMODB: dynamoEndpoint },
    async stop() {
      await aws.stop();
      await new Promise((resolve) => dynamo.close(resolve));
    },
  };
}

/** One function's process, invoked once per `invoke`; its log (stdout) is kept for errors. */
async function startFunction(node, f, awsEnv) {
  const child = spawn(node, [INVOKE, f.bundle], {
    env: {
      ...DUMMY_AWS_ENV,
      ...f.env,
      ...awsEnv,
      AWS_LAMBDA_FUNCTION_NAME: `bench-${f.name}`,
      AWS_EXECUTION_ENV: `AWS_Lambda_${f.runtime}`,
    },
    stdio: ["ignore", "pipe", "pipe", "ipc"],
  });
  let log = "";
  const keep = (d) => {
    log = (log + d.toString()).slice(-4000);
  };
  child.stdout.on("data", keep);
  child.stderr.on("data", keep);
  const next = () =>
    new Promise((resolve, reject) => {
      const onExit = (code) => reject(new Error(`${f.name} exited (${code}): ${log}`));
      child.once("exit", onExit);
      child.once("message", (m) => {
        child.off("exit", onExit);
        resolve(m);
      });
    });
  const ready = await next();
  return {
    node: ready.node,
    async invoke(event, { stampReceivedAt = false } = {}) {
      const answer = next();
      child.send({ op: "invoke", event, stampReceivedAt });
      const outcome = await answer;
      if (outcome.error) throw new Error(`${f.name}: ${outcome.error}\n${log}`);
      return outcome;
    },
    stop() {
      child.send({ op: "exit" });
    },
  };
}

/** A fresh packet for each grant (a replayed one is refused), and a sender of its own. */
async function packets() {
  const { buildSpaPacket, randomValueFromBytes } = await import(pathToFileURL(CORE).href);
  const packet = (keys, sourceIp, username = "alice") =>
    buildSpaPacket(
      {
        randomValue: randomValueFromBytes(randomBytes(8)),
        username,
        timestamp: Math.floor(Date.now() / 1000),
        messageType: 1,
        message: `${sourceIp},tcp/22`,
        natAccess: null,
        clientTimeout: 0,
        digestType: "sha256",
      },
      keys,
      randomBytes(8),
    ).wire;
  let n = 0;
  return {
    /** From a user of its own (`newUser`: a session to assume) or alice's again. */
    grant(newUser) {
      n++;
      const sourceIp = `198.18.${(n >> 8) & 0xff}.${n & 0xff}`;
      const username = newUser ? `user${n}` : "alice";
      return { spa: packet(KEYS, sourceIp, username), sourceIp, sourcePort: 40000 + (n % 20000) };
    },
    refused: () => ({
      spa: packet(WRONG_KEYS, "198.19.0.1"),
      sourceIp: "198.19.0.1",
      sourcePort: 40000,
    }),
  };
}

/** A spaknock rule in the guarded group whose expiry has passed: what revoke and sweep close. */
function expiredRule(aws) {
  const ruleId = `sgr-${randomBytes(9).toString("hex").slice(0, 17)}`;
  aws.rules.set(ruleId, {
    ruleId,
    groupId: GROUP,
    protocol: "tcp",
    fromPort: 22,
    toPort: 22,
    cidrIpv4: "198.18.0.1/32",
    description: "spaknock user=alice",
    tags: new Map([
      ["spaknock:managed", "true"],
      ["spaknock:user", "alice"],
      ["spaknock:expires", String(Math.floor(Date.now() / 1000) - 1)],
      ["spaknock:stanza", "1"],
    ]),
  });
  return ruleId;
}

/**
 * The invocations of one kind: `prepare` makes the event (and the state it needs), `check`
 * throws when the invocation did not do its job. The first call of the first kind is the
 * process's first invocation, reported apart; then WARMUP unmeasured calls, then the measured.
 */
async function measure(fn, kind, { prepare, check, stampReceivedAt = false }, first = null) {
  const once = async () => {
    const event = prepare();
    const outcome = await fn.invoke(event.event, { stampReceivedAt });
    check(event, outcome);
    return outcome;
  };
  const firstOutcome = first ? await once() : null;
  for (let i = 0; i < WARMUP; i++) await once();
  const samples = [];
  for (let i = 0; i < INVOCATIONS; i++) samples.push(await once());
  return {
    kind,
    cpuMs: percentileOf(samples, "cpuMs", 50),
    cpuP90Ms: percentileOf(samples, "cpuMs", 90),
    userMs: percentileOf(samples, "userMs", 50),
    wallMs: percentileOf(samples, "wallMs", 50),
    ...(firstOutcome ? { firstWallMs: firstOutcome.wallMs, firstCpuMs: firstOutcome.cpuMs } : {}),
  };
}

/** The invocations each function gets, in order; the first one's first call is the cold one. */
function workloads(f, aws, packet) {
  const authorizes = () =>
    aws.requests.filter((r) => r.action === "AuthorizeSecurityGroupIngress").length;
  if (f.name === "Knock") {
    let before = 0;
    const grant = (kind, newUser) => ({
      kind,
      stampReceivedAt: true,
      prepare: () => {
        before = authorizes();
        return { event: packet.grant(newUser) };
      },
      check: () => {
        if (authorizes() !== before + 1) throw new Error("knock: a grant opened no rule");
      },
    });
    return [
      // Each from a user this container has not seen: AssumeRole of the opener role included.
      grant("grant", true),
      // The same user again within ten minutes: the assumed session is reused.
      grant("grant, same user", false),
      {
        kind: "refused packet",
        stampReceivedAt: true,
        prepare: () => {
          before = authorizes();
          return { event: packet.refused() };
        },
        check: () => {
          if (authorizes() !== before) throw new Error("knock: a refused packet opened a rule");
        },
      },
    ];
  }
  const revokeOne = (eventOf) => ({
    kind: "revoke",
    prepare: () => {
      // One expired rule in the group at each call, as at the end of one grant.
      aws.rules.clear();
      const ruleId = expiredRule(aws);
      return { ruleId, event: eventOf(ruleId) };
    },
    check: ({ ruleId }) => {
      if (aws.rules.has(ruleId)) throw new Error(`${f.name}: the expired rule is still there`);
    },
  });
  if (f.name === "Revoke")
    return [revokeOne((ruleId) => ({ rules: [{ groupId: GROUP, ruleId }] }))];
  if (f.name === "Sweep")
    return [revokeOne(() => ({ source: "aws.events", "detail-type": "Scheduled Event" }))];
  throw new Error(`no workload for the ${f.name} function`);
}

async function warmCpu(node, f, loopback, packet) {
  const fn = await startFunction(node, f, loopback.env);
  try {
    const rows = [];
    for (const [i, w] of workloads(f, loopback.aws, packet).entries())
      rows.push(await measure(fn, w.kind, w, i === 0));
    if (loopback.aws.unanswered.length > 0)
      throw new Error(`${f.name}: unanswered AWS calls: ${loopback.aws.unanswered.join("; ")}`);
    return rows;
  } finally {
    fn.stop();
    loopback.aws.requests.length = 0;
  }
}

async function main() {
  for (const [file, how] of [
    [HARNESS, "npm run build"],
    [CORE, "npm run build"],
  ])
    if (!existsSync(file)) throw new Error(`${file} missing: run \`${how}\` first`);
  const templates = readdirSync(OUT).filter((f) => f.endsWith(".template.json"));
  if (templates.length === 0) throw new Error("no template in cdk.out: run `npm run synth` first");
  const template = JSON.parse(readFileSync(join(OUT, templates[0]), "utf8"));
  const functions = functionsOf(template);
  const loopback = await startAws(template);
  const packet = await packets();
  const rows = [];
  try {
    for (const f of functions) {
      if (!existsSync(f.bundle)) throw new Error(`${f.name}: no bundle at ${f.bundle}`);
      const node = await nodeBinary(f.runtime);
      const sizeKiB = statSync(f.bundle).size / 1024;
      process.stderr.write(
        `bench:lambda: ${f.name} on ${f.runtime}, ${runs} cold imports, ${WARMUP} + ${INVOCATIONS} invocations of each kind\n`,
      );
      const cold = await coldInit(node, f);
      const invocations = await warmCpu(node, f, loopback, packet);
      rows.push({ name: f.name, runtime: f.runtime, sizeKiB, ...cold, invocations });
    }
  } finally {
    await loopback.stop();
  }
  const m = machineInfo();
  if (args.json) {
    const machine = { cpu: m.cpu, cores: m.cores, kernel: m.kernel };
    process.stdout.write(
      `${JSON.stringify({ machine, runs, warmup: WARMUP, invocations: INVOCATIONS, rows }, null, 2)}\n`,
    );
    return;
  }
  const first = (r) => r.invocations.find((i) => i.firstWallMs !== undefined);
  const lines = [
    `machine: ${m.cpu}, ${m.cores} cores, Linux ${m.kernel}; ${runs} cold imports per function, ` +
      `${WARMUP} warm-up + ${INVOCATIONS} measured invocations of each kind, AWS on loopback`,
    "",
    "function   node       bundle (KiB)   cold init (ms)   RSS (MiB)   first call (ms)",
    ...rows.map(
      (r) =>
        `${r.name.padEnd(10)} ${r.node.padEnd(10)} ${formatNumber(r.sizeKiB, 0).padStart(12)}   ${formatNumber(r.initMs, 0).padStart(14)}   ${formatNumber(r.rssMiB, 1).padStart(9)}   ${`${formatNumber(first(r).firstWallMs, 0)} (${first(r).kind})`.padStart(15)}`,
    ),
    "",
    "function   invocation       warm CPU median (ms)   p90 (ms)   user only (ms)   wall median (ms)",
    ...rows.flatMap((r) =>
      r.invocations.map(
        (i) =>
          `${r.name.padEnd(10)} ${i.kind.padEnd(16)} ${formatNumber(i.cpuMs, 2).padStart(20)}   ${formatNumber(i.cpuP90Ms, 2).padStart(8)}   ${formatNumber(i.userMs, 2).padStart(14)}   ${formatNumber(i.wallMs, 2).padStart(16)}`,
      ),
    ),
  ];
  process.stdout.write(`${lines.join("\n")}\n`);
}

main().catch((err) => {
  process.stderr.write(
    `bench:lambda failed: ${err instanceof Error ? err.message : String(err)}\n`,
  );
  process.exitCode = 1;
});
