// When the functions build their AWS clients (lambda/clients.ts: on first read, not at the cold
// start), how often the opener role is assumed (lambda/adapters/opener-role.ts: once per user
// and purpose until ten minutes before the session expires), and the log lines they write.
import { AuthorizeSecurityGroupIngressCommand, EC2Client } from "@aws-sdk/client-ec2";
import { AssumeRoleCommand, STSClient } from "@aws-sdk/client-sts";
import { afterAll, beforeEach, describe, expect, it } from "vitest";
import { ec2ClientFactory, SESSION_REUSE_MARGIN_MS } from "../../lambda/adapters/opener-role.js";
import { type AwsClients, createLogger, lazyClients } from "../../lambda/clients.js";
import { createKnockService } from "../../lambda/knock-service.js";
import {
  ARNS,
  awsClients,
  clientConfig,
  inputsOf,
  knockEnv,
  mockAws,
  NOW_MS,
  RecordingLog,
  relayEvent,
  resetAws,
  restoreAws,
  spaData,
  useDummyAwsEnvironment,
  WRONG_KEYS,
} from "../helpers/lambda-fixtures.js";

useDummyAwsEnvironment();
const mocks = mockAws();
afterAll(() => restoreAws(mocks));
beforeEach(() => {
  resetAws(mocks);
  mocks.ec2.on(AuthorizeSecurityGroupIngressCommand).callsFake(async () => ({
    SecurityGroupRules: [{ SecurityGroupRuleId: `sgr-${Math.random().toString(16).slice(2, 10)}` }],
  }));
});

/** Clients built on first read, with the names of those built so far. */
function countedClients() {
  const built: string[] = [];
  const instances = awsClients();
  const factories = Object.fromEntries(
    Object.entries(instances).map(([name, client]) => [
      name,
      () => {
        built.push(name);
        return client;
      },
    ]),
  ) as { [K in keyof AwsClients]: () => AwsClients[K] };
  return { clients: lazyClients<AwsClients>(factories), built };
}

describe("lazyClients", () => {
  it("builds a client on its first read, once", () => {
    const { clients, built } = countedClients();
    expect(built).toEqual([]);
    const first = clients.ec2;
    expect(clients.ec2).toBe(first);
    expect(built).toEqual(["ec2"]);
  });

  it("a knock function without opener role and topic never builds STS or SNS, even to grant", async () => {
    const { clients, built } = countedClients();
    const knock = createKnockService(knockEnv(), clients, new RecordingLog(), () => NOW_MS);
    await knock.handle(relayEvent(spaData({ keys: WRONG_KEYS })));
    expect(built).not.toContain("ec2");
    await knock.handle(relayEvent(spaData()));
    expect(inputsOf(mocks.ec2, AuthorizeSecurityGroupIngressCommand)).toHaveLength(2);
    expect(built.sort()).toEqual(["dynamodb", "ec2", "scheduler", "secrets"]);
  });
});

describe("ec2ClientFactory with an opener role", () => {
  const credentials = (expiresAtMs: number | undefined) => ({
    Credentials: {
      AccessKeyId: "ASIAOPENER",
      SecretAccessKey: "secret",
      SessionToken: "token",
      Expiration: expiresAtMs === undefined ? undefined : new Date(expiresAtMs),
    },
  });
  const base = () => ({ ec2: new EC2Client(clientConfig()), sts: new STSClient(clientConfig()) });

  it("reuses a user's session until ten minutes before it expires, then assumes the role again", async () => {
    // Prepare
    mocks.sts.on(AssumeRoleCommand).resolves(credentials(NOW_MS + 900_000));
    let now = NOW_MS;
    const clients = base();
    const ec2For = ec2ClientFactory(clients, ARNS.openerRole, () => now);

    // Act
    const first = await ec2For("alice");
    const again = await ec2For("alice");
    now = NOW_MS + 900_000 - SESSION_REUSE_MARGIN_MS;
    const renewed = await ec2For("alice");

    // Assess
    expect(again).toBe(first);
    expect(renewed).not.toBe(first);
    expect(inputsOf(mocks.sts, AssumeRoleCommand).map((i) => i.RoleSessionName)).toEqual([
      "spaknock-alice",
      "spaknock-alice",
    ]);
    // The assumed clients use the function's connection pool.
    expect(first.config.requestHandler).toBe(clients.ec2.config.requestHandler);
  });

  it("keeps one session per user and purpose", async () => {
    mocks.sts.on(AssumeRoleCommand).resolves(credentials(NOW_MS + 900_000));
    const ec2For = ec2ClientFactory(base(), ARNS.openerRole, () => NOW_MS);
    const alice = await ec2For("alice");
    expect(await ec2For("bob")).not.toBe(alice);
    expect(await ec2For("alice", "revoke")).not.toBe(alice);
    expect(await ec2For("alice")).toBe(alice);
    expect(inputsOf(mocks.sts, AssumeRoleCommand).map((i) => i.RoleSessionName)).toEqual([
      "spaknock-alice",
      "spaknock-bob",
      "spaknock-revoke-alice",
    ]);
  });

  it("does not reuse a session whose expiry STS did not say", async () => {
    mocks.sts.on(AssumeRoleCommand).resolves(credentials(undefined));
    const ec2For = ec2ClientFactory(base(), ARNS.openerRole, () => NOW_MS);
    await ec2For("alice");
    await ec2For("alice");
    expect(inputsOf(mocks.sts, AssumeRoleCommand)).toHaveLength(2);
  });

  it("without an opener role, acts with the function's own client and never reads STS", async () => {
    const ec2 = new EC2Client(clientConfig());
    const clients = lazyClients<{ ec2: EC2Client; sts: STSClient }>({
      ec2: () => ec2,
      sts: () => {
        throw new Error("STS read");
      },
    });
    await expect(ec2ClientFactory(clients, undefined)("alice")).resolves.toBe(ec2);
  });
});

describe("createLogger", () => {
  const logged = (env: Record<string, string> = {}) => {
    const lines: string[] = [];
    const log = createLogger("spaknock-test", env, (line) => lines.push(line));
    return {
      log,
      lines,
      objects: () => lines.map((l) => JSON.parse(l) as Record<string, unknown>),
    };
  };

  it("writes one JSON object per line: level, message, timestamp, service, then the fields", () => {
    const { log, lines, objects } = logged();
    log.warn("refused", { code: "SPA_HMAC_MISMATCH", sourceIp: "198.51.100.4" });
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(
      /^\{"level":"WARN","message":"refused","timestamp":"[^"]+Z","service":"spaknock-test",/,
    );
    expect(lines[0]?.endsWith("}\n")).toBe(true);
    expect(objects()[0]).toMatchObject({ code: "SPA_HMAC_MISMATCH", sourceIp: "198.51.100.4" });
  });

  it("keeps its own fields over a field of the same name, and writes errors and bigints", () => {
    const { log, objects } = logged();
    log.error("revoke failed", {
      code: "FIREWALL_FAILED",
      level: "INFO",
      error: new RangeError("boom"),
      n: 5n,
    });
    expect(objects()[0]).toMatchObject({
      level: "ERROR",
      message: "revoke failed",
      error: { name: "RangeError", message: "boom" },
      n: "5",
    });
  });

  it("writes nothing below AWS_LAMBDA_LOG_LEVEL", () => {
    const { log, objects } = logged({ AWS_LAMBDA_LOG_LEVEL: "WARN" });
    log.info("granted");
    log.warn("refused");
    log.error("refused");
    expect(objects().map((o) => o.level)).toEqual(["WARN", "ERROR"]);
  });

  it("still writes a line when a field cannot be serialized", () => {
    const { log, objects } = logged();
    const cycle: Record<string, unknown> = {};
    cycle.self = cycle;
    log.info("granted", { cycle });
    expect(objects()[0]).toMatchObject({ level: "INFO", message: "granted" });
    expect(String(objects()[0]?.logError)).toMatch(/circular/i);
  });
});
