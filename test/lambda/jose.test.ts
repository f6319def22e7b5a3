// The JOSE profile in AWS (issue 10): the server key and the authorized key sets come from the
// access-config secret (one JSON bundle), and a JOSE packet from an IPv6 sender opens a /128
// Ipv6Ranges rule through the relay and through the function URL. Packets are built with `jose`
// directly, not through the project's encoder.
import { PutItemCommand } from "@aws-sdk/client-dynamodb";
import { AuthorizeSecurityGroupIngressCommand } from "@aws-sdk/client-ec2";
import { CreateScheduleCommand } from "@aws-sdk/client-scheduler";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import {
  authorizedKeysText,
  buildWithJose,
  type TestJwkPair,
  testKeyPair,
} from "../helpers/jose-packets.js";
import {
  inputsOf,
  KEY_BASE64,
  knockService,
  mockAws,
  NOW_SEC,
  relayEvent,
  resetAws,
  restoreAws,
  SG_A,
  urlEvent,
  useDummyAwsEnvironment,
} from "../helpers/lambda-fixtures.js";

useDummyAwsEnvironment();
const mocks = mockAws();
afterAll(() => restoreAws(mocks));

const SENDER = "2001:db8:5a::2";
let alice: TestJwkPair;
let bob: TestJwkPair;
let server: TestJwkPair;

beforeAll(async () => {
  [alice, bob, server] = await Promise.all([
    testKeyPair("Ed25519"),
    testKeyPair("Ed25519"),
    testKeyPair("X25519"),
  ]);
});

function bundle(overrides: Record<string, unknown> = {}): string {
  return JSON.stringify({
    accessConf: `SOURCE ANY\nAUTHORIZED_KEYS team\nSECURITY_GROUPS ${SG_A}\nOPEN_PORTS tcp/22\n`,
    authorizedKeys: { team: JSON.parse(authorizedKeysText([{ key: alice, name: "alice" }])) },
    serverKey: server.privateJwk,
    ...overrides,
  });
}

const packet = (signer = alice, ip = "::") =>
  buildWithJose({ signer, server, username: "alice", now: NOW_SEC, ip });

beforeEach(() => {
  resetAws(mocks, bundle());
  mocks.ec2.on(AuthorizeSecurityGroupIngressCommand).resolves({
    Return: true,
    SecurityGroupRules: [{ SecurityGroupRuleId: "sgr-0a6a6a6a6a6a6a6a6", GroupId: SG_A }],
  });
  mocks.scheduler.on(CreateScheduleCommand).resolves({ ScheduleArn: "arn:aws:scheduler:x" });
});

describe("a JOSE knock in AWS", () => {
  it.each([
    ["the relay", (spa: string) => relayEvent(spa, SENDER)],
    ["a function URL POST", (spa: string) => urlEvent("POST", { body: spa, sourceIp: SENDER })],
    // A JOSE packet is base64url already: the GET form carries it as it is.
    [
      "a function URL GET",
      (spa: string) => urlEvent("GET", { rawPath: `/${spa}`, sourceIp: SENDER }),
    ],
  ])("through %s opens a /128 rule for the IPv6 sender", async (_via, event) => {
    const { knock, log } = knockService();
    await knock.handle(event(await packet()));
    const [authorize] = inputsOf(mocks.ec2, AuthorizeSecurityGroupIngressCommand);
    expect(authorize?.IpPermissions?.[0]).toMatchObject({
      IpProtocol: "tcp",
      FromPort: 22,
      Ipv6Ranges: [{ CidrIpv6: `${SENDER}/128` }],
    });
    expect(authorize?.IpPermissions?.[0]?.IpRanges).toBeUndefined();
    expect(log.entries).toContainEqual(
      expect.objectContaining({
        message: "granted",
        extra: expect.objectContaining({ user: "alice" }),
      }),
    );
    expect(inputsOf(mocks.scheduler, CreateScheduleCommand)).toHaveLength(1);
  });

  it("a key that is not in the set opens nothing, and says so with its code", async () => {
    const { knock, log } = knockService();
    await knock.handle(relayEvent(await packet(bob), SENDER));
    expect(inputsOf(mocks.ec2, AuthorizeSecurityGroupIngressCommand)).toEqual([]);
    expect(inputsOf(mocks.dynamodb, PutItemCommand)).toEqual([]);
    expect(log.codes()).toEqual(["JOSE_KEY_UNKNOWN"]);
  });

  it("a secret without a server key refuses JOSE packets and still takes fwknop stanzas", async () => {
    resetAws(
      mocks,
      JSON.stringify({
        accessConf: `SOURCE ANY\nKEY_BASE64 ${KEY_BASE64}\nSECURITY_GROUPS ${SG_A}\n`,
      }),
    );
    const { knock, log } = knockService();
    await knock.handle(relayEvent(await packet(), SENDER));
    expect(log.codes()).toEqual(["JOSE_NOT_CONFIGURED"]);
  });

  it.each([
    [
      "an AUTHORIZED_KEYS name the bundle lacks",
      { authorizedKeys: {} },
      /AUTHORIZED_KEYS team is not in authorizedKeys/,
    ],
    [
      "a public key as the server key",
      { serverKey: { kty: "OKP", crv: "X25519", x: "A".repeat(43) } },
      /holds no private key/,
    ],
    ["an unknown member", { extra: 1 }, /unexpected member "extra"/],
  ])(
    "a bundle with %s is a configuration error, and nothing opens",
    async (_name, overrides, message) => {
      resetAws(mocks, bundle(overrides as Record<string, unknown>));
      const { knock, log } = knockService();
      await expect(knock.handle(relayEvent(await packet(), SENDER))).rejects.toThrow(message);
      expect(log.entries).toContainEqual(
        expect.objectContaining({
          message: "refused: cannot read the access stanzas",
          extra: expect.objectContaining({ code: "CONFIG_INVALID" }),
        }),
      );
      expect(inputsOf(mocks.ec2, AuthorizeSecurityGroupIngressCommand)).toEqual([]);
    },
  );
});
