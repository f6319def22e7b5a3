// The functions' environment (lambda/environment.ts): read once per container, with defaults
// where the template may leave a variable out, and one error naming every bad variable.
import { describe, expect, it } from "vitest";
import { knockEnvironment, revokeEnvironment } from "../../lambda/environment.js";
import { ARNS, SG_A, SG_B } from "../helpers/lambda-fixtures.js";

const KNOCK = {
  REPLAY_TABLE: "spaknock-replay",
  ACCESS_CONFIG_SECRET: "spaknock/access.conf",
  SCHEDULE_GROUP: "spaknock",
  REVOKE_FUNCTION_ARN: ARNS.revokeFunction,
  SCHEDULER_ROLE_ARN: ARNS.schedulerRole,
  MANAGED_GROUPS: `${SG_A},${SG_B}`,
};

describe("knockEnvironment", () => {
  it("reads the template's variables, with the packet age and secret TTL defaults", () => {
    const env = knockEnvironment.parse({ ...KNOCK, PATH: "/usr/bin" });
    expect(env).toEqual({
      ...KNOCK,
      MANAGED_GROUPS: [SG_A, SG_B],
      SCHEDULE_DLQ_ARN: undefined,
      OPENER_ROLE_ARN: undefined,
      NOTIFY_TOPIC_ARN: undefined,
      MAX_SPA_PACKET_AGE: 120,
      ACCESS_CONFIG_TTL: 300,
    });
  });

  it("reads numbers and a spaced group list as CDK writes them", () => {
    const env = knockEnvironment.parse({
      ...KNOCK,
      MANAGED_GROUPS: ` ${SG_A} , ,${SG_B},`,
      MAX_SPA_PACKET_AGE: "60",
      ACCESS_CONFIG_TTL: "0",
      OPENER_ROLE_ARN: ARNS.openerRole,
    });
    expect(env.MANAGED_GROUPS).toEqual([SG_A, SG_B]);
    expect(env.MAX_SPA_PACKET_AGE).toBe(60);
    expect(env.ACCESS_CONFIG_TTL).toBe(0);
    expect(env.OPENER_ROLE_ARN).toBe(ARNS.openerRole);
  });

  it("names every bad variable in one message", () => {
    const parse = () =>
      knockEnvironment.parse({
        ...KNOCK,
        REPLAY_TABLE: undefined,
        REVOKE_FUNCTION_ARN: "spaknock-revoke",
        MANAGED_GROUPS: `${SG_A},default`,
        MAX_SPA_PACKET_AGE: "0",
        ACCESS_CONFIG_TTL: "1.5",
        NOTIFY_TOPIC_ARN: "",
      });
    expect(parse).toThrow(
      "spaknock Lambda misconfigured: REPLAY_TABLE: missing; REVOKE_FUNCTION_ARN: not an ARN; " +
        'MANAGED_GROUPS: "default" is not a security group id; NOTIFY_TOPIC_ARN: not an ARN; ' +
        "MAX_SPA_PACKET_AGE: not a whole number from 1 to 100000; " +
        "ACCESS_CONFIG_TTL: not a whole number from 0 to 3600",
    );
  });

  it.each([
    ["an empty group list", { MANAGED_GROUPS: " , " }, "MANAGED_GROUPS: no security group id"],
    ["a blank number", { ACCESS_CONFIG_TTL: " " }, "ACCESS_CONFIG_TTL: not a whole number"],
    ["a number with junk", { MAX_SPA_PACKET_AGE: "120s" }, "MAX_SPA_PACKET_AGE: not a whole"],
    ["a number too large", { MAX_SPA_PACKET_AGE: "100001" }, "MAX_SPA_PACKET_AGE: not a whole"],
    ["a short group id", { MANAGED_GROUPS: "sg-0123" }, '"sg-0123" is not a security group id'],
  ])("refuses %s", (_, overrides, message) => {
    expect(() => knockEnvironment.parse({ ...KNOCK, ...overrides })).toThrow(message);
  });
});

describe("revokeEnvironment", () => {
  it("reads the groups and the optional role and topic", () => {
    expect(revokeEnvironment.parse({ MANAGED_GROUPS: SG_A, NOTIFY_TOPIC_ARN: ARNS.topic })).toEqual(
      { MANAGED_GROUPS: [SG_A], OPENER_ROLE_ARN: undefined, NOTIFY_TOPIC_ARN: ARNS.topic },
    );
  });

  it("refuses a function without its groups", () => {
    expect(() => revokeEnvironment.parse({})).toThrow(
      "spaknock Lambda misconfigured: MANAGED_GROUPS: no security group id",
    );
  });
});
