// The relay end to end on loopback: a packet from the REAL fwknop 2.6.10 client goes over UDP to
// the relay (agent/relay.ts, and once the built `spaknockd relay` CLI), which invokes the knock
// function through the REAL @aws-sdk/client-lambda. A loopback HTTP server plays the Lambda
// service: it takes the Invoke request, runs the knock service in-process with its JSON body, and
// answers as Lambda does. The EC2 mock then sees the grant.
import { type ChildProcess, execFile, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { createSocket } from "node:dgram";
import { existsSync } from "node:fs";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import {
  AuthorizeSecurityGroupIngressCommand,
  type AuthorizeSecurityGroupIngressCommandInput,
} from "@aws-sdk/client-ec2";
import { LambdaClient } from "@aws-sdk/client-lambda";
import { CreateScheduleCommand } from "@aws-sdk/client-scheduler";
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { UdpSocketCapture } from "../../agent/capture/udp-socket.js";
import { parseListen } from "../../agent/commands/relay.js";
import type { Log } from "../../agent/log.js";
import {
  checkFunction,
  RELAY_DEFAULTS,
  Relay,
  rateLimitKey,
  SourceWindows,
} from "../../agent/relay.js";
import { createKnockService } from "../../lambda/knock-service.js";
import { fwknopClientSkipReason, parseFinalSpaData } from "../helpers/fwknop-client.js";
import {
  awsClients,
  clientConfig,
  DUMMY_AWS_ENV,
  HMAC_KEY_BASE64,
  inputsOf,
  KEY_BASE64,
  knockEnv,
  mockAws,
  RecordingLog,
  resetAws,
  restoreAws,
  SG_A,
  SG_B,
  spaData,
} from "../helpers/lambda-fixtures.js";

const FUNCTION = "spaknock-knock";
const ACCOUNT = "111122223333";
const SPAKNOCKD = fileURLToPath(new URL("../../dist/spaknockd/main.js", import.meta.url));
const skipReason = fwknopClientSkipReason();

interface Invocation {
  readonly method: string;
  readonly path: string;
  readonly functionName: string;
  readonly invocationType: string | undefined;
  readonly body: string;
}

/** Plays the Lambda service's Invoke API for one function, running the knock service in-process. */
class FakeLambdaService {
  readonly invocations: Invocation[] = [];
  readonly handled: Promise<unknown>[] = [];
  readonly log = new RecordingLog();
  private readonly server: Server;
  private readonly knock = createKnockService(knockEnv(), awsClients(), this.log);
  endpoint = "";

  constructor() {
    this.server = createServer((req, res) => {
      this.answer(req, res).catch(() => res.destroy());
    });
  }

  async start(): Promise<void> {
    await new Promise<void>((resolve) => this.server.listen(0, "127.0.0.1", resolve));
    this.endpoint = `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
  }

  async stop(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise((resolve) => this.server.close(resolve));
  }

  /** Knock invocations (InvocationType Event) received so far. */
  events(): Invocation[] {
    return this.invocations.filter((i) => i.invocationType === "Event");
  }

  private async answer(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    const body = Buffer.concat(chunks).toString("utf8");
    const path = new URL(req.url ?? "/", "http://x").pathname;
    const m = /^\/2015-03-31\/functions\/([^/]+)\/invocations$/.exec(path);
    const functionName = decodeURIComponent(m?.[1] ?? "");
    const invocationType = req.headers["x-amz-invocation-type"] as string | undefined;
    this.invocations.push({ method: req.method ?? "", path, functionName, invocationType, body });
    const requestId = randomBytes(16).toString("hex");
    if (req.method !== "POST" || m === null || functionName !== FUNCTION) {
      res.writeHead(404, {
        "content-type": "application/json",
        "x-amzn-requestid": requestId,
        "x-amzn-errortype": "ResourceNotFoundException",
      });
      res.end(
        JSON.stringify({
          Type: "User",
          Message: `Function not found: arn:aws:lambda:eu-west-1:${ACCOUNT}:function:${functionName}`,
        }),
      );
      return;
    }
    if (invocationType === "DryRun") {
      res.writeHead(204, { "x-amzn-requestid": requestId });
      res.end();
      return;
    }
    // Asynchronous invocation: Lambda accepts, answers 202, and runs the function afterwards.
    res.writeHead(202, { "x-amzn-requestid": requestId, "content-length": "0" });
    res.end();
    this.handled.push(this.knock.handle(JSON.parse(body)));
  }
}

/** The agent's Log, kept for assertions. */
class RecordingAgentLog implements Log {
  readonly lines: { level: string; message: string }[] = [];
  error(message: string): void {
    this.lines.push({ level: "error", message });
  }
  warning(message: string): void {
    this.lines.push({ level: "warning", message });
  }
  info(message: string): void {
    this.lines.push({ level: "info", message });
  }
  debug(message: string): void {
    this.lines.push({ level: "debug", message });
  }
  close(): void {}
}

async function waitFor(what: string, condition: () => boolean, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

async function freeUdpPort(): Promise<number> {
  const socket = createSocket("udp4");
  await new Promise<void>((resolve) => socket.bind(0, "127.0.0.1", resolve));
  const { port } = socket.address();
  await new Promise<void>((resolve) => socket.close(resolve));
  return port;
}

/**
 * Sends datagrams from `from`, then listens `listenMs` for anything coming back. Returns how many
 * replies (or ICMP errors) arrived: the relay must stay silent.
 */
async function sendUdp(
  port: number,
  payloads: readonly (string | Buffer)[],
  from = "127.0.0.1",
  listenMs = 0,
): Promise<number> {
  const ipv6 = from.includes(":");
  const socket = createSocket(ipv6 ? "udp6" : "udp4");
  let replies = 0;
  socket.on("message", () => replies++);
  socket.on("error", () => replies++);
  await new Promise<void>((resolve) => socket.bind(0, from, resolve));
  for (const p of payloads) {
    await new Promise<void>((resolve, reject) =>
      socket.send(p, port, ipv6 ? "::1" : "127.0.0.1", (err) => (err ? reject(err) : resolve())),
    );
  }
  if (listenMs > 0) await new Promise((resolve) => setTimeout(resolve, listenMs));
  await new Promise<void>((resolve) => socket.close(resolve));
  return replies;
}

/**
 * Sends one packet with the real fwknop client: keys in a private 0600 rc file, HOME a private
 * temporary directory, nothing saved. Returns the SPA data it sent (from `-v`).
 */
async function fwknopKnock(port: number, allow: string[]): Promise<string> {
  const home = await mkdtemp(join(tmpdir(), "spk-lambda-fwknop-"));
  try {
    const rc = join(home, "fwknoprc");
    const rcText = [
      "[spaknock-relay]",
      `KEY_BASE64 ${KEY_BASE64}`,
      `HMAC_KEY_BASE64 ${HMAC_KEY_BASE64}`,
      "USE_HMAC Y",
      "",
    ];
    await writeFile(rc, rcText.join("\n"), { mode: 0o600 });
    const args = [
      "-A",
      "tcp/22",
      ...allow,
      "-D",
      "127.0.0.1",
      "-p",
      String(port),
      "--rc-file",
      rc,
      "-n",
      "spaknock-relay",
      "--no-save-args",
      "-v",
    ];
    const stdout = await new Promise<string>((resolve, reject) => {
      execFile(
        "fwknop",
        args,
        { env: { ...process.env, HOME: home }, cwd: home, timeout: 10_000 },
        (err, out, stderr) =>
          err ? reject(new Error(`fwknop: ${err.message} ${stderr}`)) : resolve(out),
      );
    });
    return parseFinalSpaData(stdout);
  } finally {
    await rm(home, { recursive: true, force: true });
  }
}

const mocks = mockAws();
let lambdaService: FakeLambdaService;
const lambdaClients: LambdaClient[] = [];
const savedEnv = new Map<string, string | undefined>();

function lambdaClient(): LambdaClient {
  const client = new LambdaClient(clientConfig(lambdaService.endpoint));
  lambdaClients.push(client);
  return client;
}

beforeAll(async () => {
  for (const [k, v] of Object.entries(DUMMY_AWS_ENV)) {
    savedEnv.set(k, process.env[k]);
    process.env[k] = v;
  }
  lambdaService = new FakeLambdaService();
  await lambdaService.start();
});

afterAll(async () => {
  for (const c of lambdaClients) c.destroy();
  await lambdaService.stop();
  restoreAws(mocks);
  for (const [k, v] of savedEnv) {
    if (v === undefined) delete process.env[k];
    else process.env[k] = v;
  }
});

beforeEach(() => {
  resetAws(mocks);
  for (const [i, groupId] of [SG_A, SG_B].entries()) {
    mocks.ec2.on(AuthorizeSecurityGroupIngressCommand, { GroupId: groupId }).resolves({
      Return: true,
      SecurityGroupRules: [{ SecurityGroupRuleId: `sgr-0${i}${i}${i}`, GroupId: groupId }],
    });
  }
  mocks.scheduler.on(CreateScheduleCommand).resolves({ ScheduleArn: "arn:aws:scheduler:x" });
  lambdaService.invocations.length = 0;
  lambdaService.log.entries.length = 0;
});

const authorized = () =>
  inputsOf(
    mocks.ec2,
    AuthorizeSecurityGroupIngressCommand,
  ) as AuthorizeSecurityGroupIngressCommandInput[];
const cidrs = () => authorized().map((a) => a.IpPermissions?.[0]?.IpRanges?.[0]?.CidrIp);

describe("relay (agent/relay.ts) on loopback", () => {
  let relay: Relay | null = null;
  afterEach(async () => {
    await relay?.stop();
    relay = null;
  });

  async function startRelay(nowMs?: () => number, listenAddress = "127.0.0.1") {
    const port = await freeUdpPort();
    const log = new RecordingAgentLog();
    relay = new Relay(
      lambdaClient(),
      new UdpSocketCapture(listenAddress, port),
      { ...RELAY_DEFAULTS, functionName: FUNCTION },
      log,
      nowMs,
    );
    await relay.start();
    return { relay, port, log };
  }

  it.skipIf(skipReason !== undefined)(
    "forwards a real fwknop packet through Lambda Invoke, and the knock function opens it",
    async () => {
      // Prepare
      const { relay, port, log } = await startRelay();

      // Act
      const sent = await fwknopKnock(port, ["-a", "198.18.0.2"]);
      await waitFor("the grant", () => authorized().length === 2);

      // Assess: the Invoke request as the real SDK made it.
      expect(lambdaService.invocations).toHaveLength(1);
      const [invocation] = lambdaService.invocations;
      expect(invocation).toMatchObject({
        method: "POST",
        path: `/2015-03-31/functions/${FUNCTION}/invocations`,
        functionName: FUNCTION,
        invocationType: "Event",
      });
      const event = JSON.parse(invocation?.body ?? "{}");
      expect(Object.keys(event).sort()).toEqual(["receivedAt", "sourceIp", "sourcePort", "spa"]);
      expect(event).toMatchObject({ spa: sent, sourceIp: "127.0.0.1" });
      expect(event.sourcePort).toBeGreaterThan(0);
      expect(Math.abs(event.receivedAt - Date.now())).toBeLessThan(10_000);
      // fwknop semantics: the rule is for the allow-IP the packet authenticates (-a).
      expect(authorized().map((a) => a.GroupId)).toEqual([SG_A, SG_B]);
      expect(cidrs()).toEqual(["198.18.0.2/32", "198.18.0.2/32"]);
      expect(authorized()[0]?.IpPermissions?.[0]).toMatchObject({
        IpProtocol: "tcp",
        FromPort: 22,
        ToPort: 22,
      });
      expect(lambdaService.log.entries.find((e) => e.message === "granted")?.extra).toMatchObject({
        via: "relay",
        sourceIp: "198.18.0.2",
      });
      await waitFor("the forwarded log line", () => log.lines.length === 1);
      expect(relay.stats).toEqual({ received: 1, forwarded: 1, dropped: 0, failed: 0 });
      expect(log.lines.map((l) => l.message)).toEqual([
        "forwarded 1 SPA packet to spaknock-knock in the last second, by source: 127.0.0.1 (1)",
      ]);
    },
  );

  it.skipIf(skipReason !== undefined)(
    "opens the relay event's sourceIp (127.0.0.1/32) when fwknop asks for its source address (-s)",
    async () => {
      const { port } = await startRelay();
      await fwknopKnock(port, ["-s"]);
      await waitFor("the grant", () => authorized().length === 2);
      expect(cidrs()).toEqual(["127.0.0.1/32", "127.0.0.1/32"]);
    },
  );

  it("never invokes the function for junk datagrams, and never answers", async () => {
    const { relay, port, log } = await startRelay();
    const junk = [
      "hello",
      Buffer.alloc(139, 0x41),
      "!".repeat(300),
      `U2FsdGVkX1${"A".repeat(200)}`,
      Buffer.alloc(1501, 0x41),
      Buffer.from(randomBytes(400)),
    ];
    // One SPA-shaped datagram after the junk: forwarded, and still not answered.
    const shaped = spaData();
    const replies = await sendUdp(port, [...junk, shaped], "127.0.0.1", 200);
    expect(replies).toBe(0);
    await waitFor("the datagrams", () => relay.stats.received === junk.length + 1);
    await waitFor("the forward", () => relay.stats.forwarded === 1);
    await waitFor("the forwarded log line", () => log.lines.some((l) => l.level === "info"));
    expect(relay.stats).toEqual({
      received: junk.length + 1,
      forwarded: 1,
      dropped: junk.length,
      failed: 0,
    });
    expect(lambdaService.invocations.map((i) => JSON.parse(i.body).spa)).toEqual([shaped]);
    expect(log.lines.filter((l) => l.level === "debug").map((l) => l.message)).toEqual([
      expect.stringMatching(/: SPA_SIZE$/),
      expect.stringMatching(/: SPA_SIZE$/),
      expect.stringMatching(/: SPA_CHARSET$/),
      expect.stringMatching(/: SPA_PREFIXED$/),
      expect.stringMatching(/: SPA_SIZE$/),
      expect.stringMatching(/: SPA_(CHARSET|SIZE)$/),
    ]);
    expect(log.lines.filter((l) => l.level !== "debug")).toEqual([
      {
        level: "info",
        message: expect.stringMatching(/^forwarded 1 SPA packet to .* 127\.0\.0\.1 \(1\)$/),
      },
    ]);
  });

  it("drops the 11th packet from one source in the window, and not another source's", async () => {
    // Prepare: a clock that stands still, so all packets fall in one 10 s window.
    const { relay, port, log } = await startRelay(() => 1_000_000);
    const packets = Array.from({ length: 11 }, () =>
      spaData({ timestamp: Math.floor(Date.now() / 1000) }),
    );

    // Act
    await sendUdp(port, packets);
    await waitFor("11 datagrams", () => relay.stats.received === 11);
    await sendUdp(port, [spaData({ timestamp: Math.floor(Date.now() / 1000) })], "127.0.0.2");
    await waitFor("12 datagrams", () => relay.stats.received === 12);
    await waitFor("11 invocations", () => lambdaService.events().length === 11);
    await Promise.all(lambdaService.handled);

    // Assess
    await waitFor("the forwards", () => relay.stats.forwarded === 11);
    expect(relay.stats).toEqual({ received: 12, forwarded: 11, dropped: 1, failed: 0 });
    expect(log.lines.filter((l) => l.level === "warning").map((l) => l.message)).toEqual([
      "dropping datagrams from 127.0.0.1: RATE_LIMITED",
    ]);
    // Eleven forwards make one log line (or two, should they straddle a second), not eleven.
    await relay.stop();
    const forwardLines = log.lines.filter((l) => l.message.startsWith("forwarded "));
    expect(forwardLines.length).toBeLessThanOrEqual(2);
    const counted = forwardLines.map((l) => Number(/^forwarded (\d+) /.exec(l.message)?.[1]));
    expect(counted.reduce((a, b) => a + b, 0)).toBe(11);
    const sources = lambdaService.events().map((i) => JSON.parse(i.body).sourceIp);
    expect(sources.filter((s) => s === "127.0.0.1")).toHaveLength(10);
    expect(sources.filter((s) => s === "127.0.0.2")).toHaveLength(1);
    // The packets that made it each opened once (fresh timestamps, distinct digests).
    expect(authorized()).toHaveLength(22);
  });

  it("listens dual-stack on ::, forwarding an IPv4 sender as plain IPv4 and an IPv6 one as IPv6", async () => {
    // Prepare
    const { relay, port } = await startRelay(undefined, "::");

    // Act
    await sendUdp(port, [spaData()], "127.0.0.1");
    await waitFor("the IPv4 forward", () => relay.stats.forwarded === 1);
    await sendUdp(port, [spaData()], "::1");
    await waitFor("the IPv6 forward", () => relay.stats.forwarded === 2);

    // Assess: the kernel reports the first as ::ffff:127.0.0.1; Lambda never sees that form.
    const sources = lambdaService.invocations.map((i) => JSON.parse(i.body).sourceIp);
    expect(sources).toEqual(["127.0.0.1", "::1"]);
  });

  it("counts IPv6 senders per /64 against the per-source limit", async () => {
    // Prepare: a clock that stands still, one window, a limit of two
    const port = await freeUdpPort();
    relay = new Relay(
      lambdaClient(),
      new UdpSocketCapture("::1", port),
      { ...RELAY_DEFAULTS, functionName: FUNCTION, perSourceLimit: 2 },
      new RecordingAgentLog(),
      () => 1_000_000,
    );
    const at = (sourceIp: string) => ({
      payload: Buffer.from(spaData()),
      sourceIp,
      sourcePort: 40000,
      destinationIp: null,
      receivedAt: 0,
    });

    // Act: three addresses of one /64, then one of another
    for (const ip of [
      "2001:db8:5a::2",
      "2001:db8:5a::3",
      "2001:db8:5a:0:ffff::9",
      "2001:db8:5b::2",
    ])
      relay.onDatagram(at(ip));
    await waitFor("the forwards", () => relay?.stats.forwarded === 3);

    // Assess
    expect(relay.stats).toMatchObject({ received: 4, forwarded: 3, dropped: 1 });
    expect(lambdaService.invocations.map((i) => JSON.parse(i.body).sourceIp)).toEqual([
      "2001:db8:5a::2",
      "2001:db8:5a::3",
      "2001:db8:5b::2",
    ]);
    expect(rateLimitKey("198.18.0.2")).toBe("198.18.0.2");
    expect(rateLimitKey("2001:db8:5a::2")).toBe(rateLimitKey("2001:db8:5a:0:ffff::9"));
    expect(rateLimitKey("2001:db8:5a::2")).not.toBe(rateLimitKey("2001:db8:5b::2"));
  });

  it("checkFunction makes a DryRun Invoke and passes for a function that exists", async () => {
    await expect(checkFunction(lambdaClient(), FUNCTION)).resolves.toBeUndefined();
    expect(lambdaService.invocations).toEqual([
      {
        method: "POST",
        path: `/2015-03-31/functions/${FUNCTION}/invocations`,
        functionName: FUNCTION,
        invocationType: "DryRun",
        body: "",
      },
    ]);
  });

  it("checkFunction says clearly that the function does not exist (ResourceNotFoundException)", async () => {
    await expect(checkFunction(lambdaClient(), "spaknock-missing")).rejects.toThrow(
      "relay cannot invoke the knock function: function spaknock-missing does not exist in this region",
    );
    expect(lambdaService.invocations.map((i) => i.invocationType)).toEqual(["DryRun"]);
  });
});

describe("spaknockd relay (built CLI, dist/spaknockd/main.js)", () => {
  const children: ChildProcess[] = [];
  afterAll(() => {
    for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill("SIGKILL");
  });

  function runRelayCli(functionName: string, port: number, extra: readonly string[] = []) {
    if (!existsSync(SPAKNOCKD))
      throw new Error(`${SPAKNOCKD} is missing: run \`npm run build\` first`);
    const child = spawn(
      process.execPath,
      [
        SPAKNOCKD,
        "relay",
        "--function",
        functionName,
        "--listen",
        `127.0.0.1:${port}`,
        "--endpoint",
        lambdaService.endpoint,
        "--region",
        "eu-west-1",
        "-f",
        ...extra,
      ],
      { env: { ...process.env, ...DUMMY_AWS_ENV }, stdio: ["ignore", "pipe", "pipe"] },
    );
    children.push(child);
    let stderr = "";
    child.stderr?.on("data", (d: Buffer) => {
      stderr += d.toString();
    });
    const exited = new Promise<number | null>((resolve) =>
      child.on("exit", (code) => resolve(code)),
    );
    return { child, exited, stderr: () => stderr };
  }

  it.skipIf(skipReason !== undefined)(
    "forwards a real fwknop packet, and exits 0 on SIGTERM",
    async () => {
      // Prepare
      const port = await freeUdpPort();
      const cli = runRelayCli(FUNCTION, port);
      await waitFor("spaknockd relay started", () =>
        cli.stderr().includes("spaknockd relay started"),
      );

      // Act
      await fwknopKnock(port, ["-a", "198.18.0.2"]);
      await waitFor("the grant", () => authorized().length === 2);

      // Assess
      expect(lambdaService.invocations.map((i) => i.invocationType)).toEqual(["DryRun", "Event"]);
      expect(cidrs()).toEqual(["198.18.0.2/32", "198.18.0.2/32"]);
      await waitFor("the forwarded log line", () => /forwarded 1 SPA packet/.test(cli.stderr()));
      expect(cli.stderr()).toContain(
        `spaknockd relay started: udp 127.0.0.1:${port} -> Lambda ${FUNCTION}`,
      );
      expect(cli.stderr()).not.toContain(KEY_BASE64);
      process.kill(cli.child.pid as number, "SIGTERM");
      await expect(cli.exited).resolves.toBe(0);
    },
  );

  // `--rate abc` once gave NaN, and `count <= NaN` silently dropped all but one packet per window.
  it("refuses a --rate that is not a positive whole number (exit 2)", async () => {
    const port = await freeUdpPort();
    const cli = runRelayCli(FUNCTION, port, ["--rate", "abc"]);
    const outcome = await Promise.race([
      cli.exited,
      waitFor("start", () => cli.stderr().includes("spaknockd relay started")).then(
        () => "started",
      ),
    ]);
    if (outcome === "started") process.kill(cli.child.pid as number, "SIGTERM");
    expect(outcome).toBe(2);
  });

  it("exits 1 with a clear message when the function does not exist", async () => {
    const port = await freeUdpPort();
    const cli = runRelayCli("spaknock-missing", port);
    await expect(cli.exited).resolves.toBe(1);
    expect(cli.stderr()).toContain(
      "relay cannot invoke the knock function: function spaknock-missing does not exist in this region",
    );
    expect(lambdaService.invocations.map((i) => i.invocationType)).toEqual(["DryRun"]);
  });
});

describe("spaknockd relay --listen", () => {
  it.each([
    ["0.0.0.0:62201", { address: "0.0.0.0", port: 62201 }],
    ["[::]:62201", { address: "::", port: 62201 }],
    ["[2001:DB8:5a:0::1]:40000", { address: "2001:db8:5a::1", port: 40000 }],
  ])("reads %s", (text, expected) => {
    expect(parseListen(text)).toEqual(expected);
  });

  it.each([
    ["an IPv6 address without brackets", "2001:db8::1:62201"],
    ["IPv4 in brackets", "[198.18.0.1]:62201"],
    ["an IPv4-mapped address (write the IPv4 one)", "[::ffff:198.18.0.1]:62201"],
    ["a zone id", "[fe80::1%eth0]:62201"],
    ["port 0", "[::]:0"],
    ["a port above 65535", "0.0.0.0:65536"],
    ["a name", "localhost:62201"],
  ])("refuses %s", (_name, text) => {
    expect(parseListen(text)).toBeNull();
  });
});

describe("SourceWindows: the relay's per-source limit in bounded memory", () => {
  it("a spoofed flood of new sources does not reset the limit of a source over it (issue 16.3)", () => {
    // Prepare: a limit of 3 per 10 s, room for 1,000 sources
    const windows = new SourceWindows(3, 10_000, 1_000);
    for (let i = 0; i < 5; i++) windows.count("198.18.0.2", 0);
    expect(windows.isOver(windows.count("198.18.0.2", 1))).toBe(true);

    // Act: 100,000 spoofed sources within the same window
    for (let i = 0; i < 100_000; i++)
      windows.count(`10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`, 2);

    // Assess: memory stayed bounded and the flooder is still over its limit
    expect(windows.size).toBeLessThanOrEqual(1_000);
    expect(windows.isOver(windows.count("198.18.0.2", 3))).toBe(true);
  });

  it("expired windows go first, and a source starts afresh once its window has passed", () => {
    const windows = new SourceWindows(1, 10_000, 10);
    for (let i = 0; i < 10; i++) windows.count(`old-${i}`, 0);
    windows.count("limited", 5_000);
    windows.count("limited", 5_000);
    expect(windows.size).toBe(10);
    // At 12 s the first ten windows have expired: they make room, "limited" stays.
    windows.count("new", 12_000);
    expect(windows.isOver(windows.count("limited", 12_000))).toBe(true);
    expect(windows.count("limited", 15_001)).toBe(1);
  });

  it("when every tracked source is over its limit, a new one passes untracked", () => {
    const windows = new SourceWindows(1, 10_000, 4);
    for (const s of ["a", "b", "c", "d"]) {
      windows.count(s, 0);
      windows.count(s, 0);
    }
    expect(windows.count("e", 1)).toBe(1);
    expect(windows.count("e", 1)).toBe(1);
    expect(windows.size).toBe(4);
    expect(windows.isOver(windows.count("a", 2))).toBe(true);
  });
});
