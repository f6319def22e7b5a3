// `spaknock audit` against LookupEvents answers built from CloudTrail's documented event record
// (CloudTrailEvent is a JSON string: userIdentity with sessionContext.sourceIdentity,
// requestParameters, responseElements, errorCode), several pages per event name, through
// aws-sdk-client-mock. The story: alice's grant refreshed and closed by its schedule, bob's closed
// by the sweeper 5 minutes late, carol's rolled back by the knock, dave's revoked early by hand,
// an admin's rule opened outside spaknock, a failed authorize, and erin's still open past expiry.
import { CloudTrailClient, LookupEventsCommand } from "@aws-sdk/client-cloudtrail";
import { mockClient } from "aws-sdk-client-mock";
import { afterAll, beforeEach, describe, expect, it } from "vitest";
import type { AuditedGrant } from "../../cli/aws/trail-grants.js";
import { type AuditDeps, runAudit } from "../../cli/commands/audit.js";

const cloudTrail = mockClient(CloudTrailClient);
afterAll(() => cloudTrail.restore());

const ACCOUNT = "111122223333";
const SG = "sg-0123456789abcdef0";
const OTHER_SG = "sg-0fedcba9876543210";
const T0 = Date.UTC(2026, 10, 25, 12, 0, 0) / 1000;
const NOW = T0 + 3600;
const OPENER = `Spaknock-SpaKnockerOpenerRole1A2B3C-4D5E6F`;
const CLOSER = `Spaknock-SpaKnockerCloserRole7G8H9I-0J1K2L`;

const iso = (t: number) => new Date(t * 1000).toISOString().replace(/\.000Z$/, "Z");

function assumed(role: string, session: string, sourceIdentity: string) {
  return {
    type: "AssumedRole",
    principalId: `AROAEXAMPLE:${session}`,
    arn: `arn:aws:sts::${ACCOUNT}:assumed-role/${role}/${session}`,
    accountId: ACCOUNT,
    sessionContext: {
      sourceIdentity,
      sessionIssuer: {
        type: "Role",
        principalId: "AROAEXAMPLE",
        arn: `arn:aws:iam::${ACCOUNT}:role/${role}`,
        accountId: ACCOUNT,
        userName: role,
      },
      attributes: { creationDate: iso(T0), mfaAuthenticated: "false" },
    },
  };
}
const ADMIN = {
  type: "IAMUser",
  principalId: "AIDAEXAMPLE",
  arn: `arn:aws:iam::${ACCOUNT}:user/admin`,
  accountId: ACCOUNT,
  userName: "admin",
};

let seq = 0;
function record(
  eventName: string,
  time: number,
  userIdentity: object,
  requestParameters: object,
  responseElements: object | null,
  errorCode?: string,
) {
  const eventID = `00000000-0000-0000-0000-${String(++seq).padStart(12, "0")}`;
  return {
    EventId: eventID,
    EventName: eventName,
    EventTime: new Date(time * 1000),
    CloudTrailEvent: JSON.stringify({
      eventVersion: "1.09",
      userIdentity,
      eventTime: iso(time),
      eventSource: "ec2.amazonaws.com",
      eventName,
      awsRegion: "eu-west-1",
      sourceIPAddress: "lambda.amazonaws.com",
      userAgent: "aws-sdk-js/3",
      requestParameters,
      responseElements,
      ...(errorCode
        ? { errorCode, errorMessage: "You are not authorized to perform this operation." }
        : {}),
      requestID: "req",
      eventID,
      readOnly: false,
      eventType: "AwsApiCall",
      managementEvent: true,
      recipientAccountId: ACCOUNT,
      eventCategory: "Management",
    }),
  };
}

function authorize(
  who: object,
  user: string,
  cidr: string,
  ruleId: string | null,
  at: number,
  expires: number,
  group = SG,
  errorCode?: string,
) {
  const description = `spaknock user=${user} until=${iso(expires)}`;
  const v6 = cidr.includes(":");
  return record(
    "AuthorizeSecurityGroupIngress",
    at,
    who,
    {
      groupId: group,
      ipPermissions: {
        items: [
          {
            ipProtocol: "tcp",
            fromPort: 22,
            toPort: 22,
            groups: {},
            ipRanges: v6 ? {} : { items: [{ cidrIp: cidr, description }] },
            ipv6Ranges: v6 ? { items: [{ cidrIpv6: cidr, description }] } : {},
            prefixListIds: {},
          },
        ],
      },
      tagSpecificationSet: {
        items: [
          {
            resourceType: "security-group-rule",
            tags: [
              { key: "spaknock:managed", value: "true" },
              { key: "spaknock:user", value: user },
              { key: "spaknock:expires", value: String(expires) },
              { key: "spaknock:stanza", value: "1" },
            ],
          },
        ],
      },
    },
    ruleId === null
      ? null
      : {
          requestId: "req",
          _return: true,
          securityGroupRuleSet: {
            items: [
              {
                groupOwnerId: ACCOUNT,
                groupId: group,
                securityGroupRuleId: ruleId,
                isEgress: false,
                ipProtocol: "tcp",
                fromPort: 22,
                toPort: 22,
                ...(v6 ? { cidrIpv6: cidr } : { cidrIpv4: cidr }),
                description,
              },
            ],
          },
        },
    errorCode,
  );
}

function refresh(who: object, user: string, ruleId: string, at: number, expires: number) {
  return record(
    "ModifySecurityGroupRules",
    at,
    who,
    {
      ModifySecurityGroupRulesRequest: {
        GroupId: SG,
        SecurityGroupRule: {
          SecurityGroupRuleId: ruleId,
          SecurityGroupRule: {
            IpProtocol: "tcp",
            FromPort: 22,
            ToPort: 22,
            CidrIpv4: "203.0.113.7/32",
            Description: `spaknock user=${user} until=${iso(expires)}`,
          },
          tag: 1,
        },
      },
    },
    {
      ModifySecurityGroupRulesResponse: {
        xmlns: "http://ec2.amazonaws.com/doc/2016-11-15/",
        requestId: "req",
        return: true,
      },
    },
  );
}

function revoke(who: object, ruleId: string, at: number) {
  return record(
    "RevokeSecurityGroupIngress",
    at,
    who,
    { groupId: SG, securityGroupRuleIds: { items: [{ securityGroupRuleId: ruleId }] } },
    { requestId: "req", _return: true },
  );
}

const opener = (u: string) => assumed(OPENER, `spaknock-${u}`, u);
const closer = (purpose: "revoke" | "sweep", u: string) =>
  assumed(CLOSER, `spaknock-${purpose}-${u}`, u);

const EVENTS = {
  AuthorizeSecurityGroupIngress: [
    authorize(opener("alice"), "alice", "203.0.113.7/32", "sgr-0aaaaaaaaaaaaaaa1", T0, T0 + 30),
    authorize(opener("bob"), "bob", "2001:db8::9/128", "sgr-0bbbbbbbbbbbbbbb2", T0 + 60, T0 + 90),
    authorize(
      opener("carol"),
      "carol",
      "198.51.100.4/32",
      "sgr-0ccccccccccccccc3",
      T0 + 120,
      T0 + 150,
    ),
    authorize(
      opener("dave"),
      "dave",
      "198.51.100.5/32",
      "sgr-0ddddddddddddddd4",
      T0 + 180,
      T0 + 480,
    ),
    authorize(ADMIN, "admin", "192.0.2.10/32", "sgr-0eeeeeeeeeeeeeee5", T0 + 240, T0 + 100000),
    authorize(
      opener("frank"),
      "frank",
      "198.51.100.6/32",
      null,
      T0 + 300,
      T0 + 330,
      SG,
      "UnauthorizedOperation",
    ),
    authorize(
      opener("erin"),
      "erin",
      "198.51.100.7/32",
      "sgr-0fffffffffffffff6",
      T0 + 360,
      T0 + 390,
    ),
    authorize(
      opener("gus"),
      "gus",
      "198.51.100.8/32",
      "sgr-0999999999999999a",
      T0 + 400,
      T0 + 430,
      OTHER_SG,
    ),
  ],
  ModifySecurityGroupRules: [
    refresh(opener("alice"), "alice", "sgr-0aaaaaaaaaaaaaaa1", T0 + 20, T0 + 50),
  ],
  RevokeSecurityGroupIngress: [
    revoke(closer("revoke", "alice"), "sgr-0aaaaaaaaaaaaaaa1", T0 + 51),
    revoke(closer("sweep", "bob"), "sgr-0bbbbbbbbbbbbbbb2", T0 + 90 + 300),
    revoke(opener("carol"), "sgr-0ccccccccccccccc3", T0 + 121),
    revoke(ADMIN, "sgr-0ddddddddddddddd4", T0 + 200),
    revoke(closer("revoke", "gus"), "sgr-0999999999999999a", T0 + 431),
  ],
} as const;

/** Pages of two events, newest first as LookupEvents returns them. */
function answerInPages(): void {
  cloudTrail.on(LookupEventsCommand).callsFake((input) => {
    const name = input.LookupAttributes?.[0]?.AttributeValue as keyof typeof EVENTS;
    const all = [...(EVENTS[name] ?? [])].reverse();
    const page = Number(input.NextToken ?? "0");
    const next = page + 2 < all.length ? String(page + 2) : undefined;
    return { Events: all.slice(page, page + 2), ...(next ? { NextToken: next } : {}) };
  });
}

const deps = (progress: string[] = []): AuditDeps => ({
  cloudTrailFor: () =>
    new CloudTrailClient({
      region: "eu-west-1",
      credentials: { accessKeyId: "a", secretAccessKey: "b" },
    }),
  nowSec: () => NOW,
  pause: async () => {},
  progress: (line) => progress.push(line),
});

beforeEach(() => {
  cloudTrail.reset();
  answerInPages();
});

async function audit(opts: Parameters<typeof runAudit>[0] = {}) {
  const lines: string[] = [];
  const progress: string[] = [];
  const grants = await runAudit(
    { since: "2026-11-25", group: [SG], ...opts },
    (l) => lines.push(l),
    deps(progress),
  );
  return { grants, lines, progress };
}

const byUser = (grants: readonly AuditedGrant[], user: string) =>
  grants.find((g) => g.user === user);

describe("spaknock audit", () => {
  it("pairs each opening with its refreshes and its close, and says by what it closed", async () => {
    const { grants } = await audit();
    expect(byUser(grants, "alice")).toMatchObject({
      ruleId: "sgr-0aaaaaaaaaaaaaaa1",
      source: "203.0.113.7/32",
      group: SG,
      proto: "tcp",
      port: 22,
      openedAt: T0,
      expiresAt: T0 + 50, // the refresh moved it
      refreshes: 1,
      closedAt: T0 + 51,
      closedBy: "schedule",
      durationSec: 51,
      flags: [],
    });
    expect(byUser(grants, "bob")).toMatchObject({
      source: "2001:db8::9/128",
      closedBy: "sweep",
      closedAt: T0 + 390,
      flags: ["closed-late"],
    });
    expect(byUser(grants, "carol")).toMatchObject({ closedBy: "rollback", flags: [] });
    expect(byUser(grants, "dave")).toMatchObject({
      closedBy: "by hand",
      closedAt: T0 + 200,
      flags: [],
    });
    expect(byUser(grants, "admin")).toMatchObject({
      closedAt: null,
      flags: ["opened-outside-spaknock"],
    });
    expect(byUser(grants, "frank")).toMatchObject({
      ruleId: null,
      flags: ["failed-calls"],
      failedCalls: [
        { event: "AuthorizeSecurityGroupIngress", errorCode: "UnauthorizedOperation", by: "frank" },
      ],
    });
    expect(byUser(grants, "erin")).toMatchObject({
      closedAt: null,
      durationSec: NOW - (T0 + 360),
      flags: ["open-past-expiry"],
    });
    // --group narrows to the guarded group: gus's grant in another group is not listed.
    expect(byUser(grants, "gus")).toBeUndefined();
    expect(grants).toHaveLength(7);
  });

  it("pages through every event name within the range, with a progress line", async () => {
    const { progress } = await audit();
    const calls = cloudTrail.commandCalls(LookupEventsCommand).map((c) => c.args[0].input);
    // 8 authorize events in 4 pages, 1 modify in 1, 5 revokes in 3.
    expect(calls).toHaveLength(8);
    // --since 2026-11-25 is that day's midnight, UTC.
    const midnight = Date.UTC(2026, 10, 25);
    expect(calls.map((c) => [c.MaxResults, c.StartTime?.getTime()])).toEqual(
      calls.map(() => [50, midnight]),
    );
    expect(calls.every((c) => c.EndTime?.getTime() === NOW * 1000)).toBe(true);
    expect(progress.at(-2)).toBe("spaknock audit: 8 page(s), 14 event(s)");
  });

  it("--user keeps one engineer's grants", async () => {
    const { grants } = await audit({ user: "bob" });
    expect(grants.map((g) => g.user)).toEqual(["bob"]);
  });

  it("prints a table for people, one JSON object per grant, and CSV", async () => {
    const table = await audit();
    expect(table.lines[0]).toMatch(
      /^user\s+source\s+group\s+port\s+opened\s+expires\s+closed\s+closed by/,
    );
    expect(table.lines.join("\n")).toMatch(/bob\s+2001:db8::9\/128 .* sweep .* closed-late/);
    expect(table.lines.at(-1)).toBe("7 grant(s), 4 flagged");

    const json = await audit({ json: true });
    expect(json.lines).toHaveLength(7);
    expect(JSON.parse(json.lines[0] as string)).toMatchObject({
      user: "alice",
      closedBy: "schedule",
    });

    const csv = await audit({ csv: true });
    const rows = (csv.lines[0] as string).split("\r\n");
    expect(rows[0]).toBe(
      "user,source,group,port,opened,expires,closed,closed by,open for,refreshes,flags,region,rule",
    );
    expect(rows).toHaveLength(8);
    expect(rows[1]).toBe(
      `alice,203.0.113.7/32,${SG},tcp/22,2026-11-25T12:00:00Z,2026-11-25T12:00:50Z,2026-11-25T12:00:51Z,schedule,51s,1,,eu-west-1,sgr-0aaaaaaaaaaaaaaa1`,
    );
  });

  it("says what is missing when CloudTrail refuses", async () => {
    cloudTrail.reset();
    cloudTrail.on(LookupEventsCommand).rejects(
      Object.assign(new Error("User is not authorized to perform: cloudtrail:LookupEvents"), {
        name: "AccessDeniedException",
      }),
    );
    await expect(audit()).rejects.toThrow(
      /not allowed to call cloudtrail:LookupEvents: attach the stack's AuditorPolicy/,
    );
  });

  it("says so when there are no credentials", async () => {
    cloudTrail.reset();
    cloudTrail.on(LookupEventsCommand).rejects(
      Object.assign(new Error("Could not load credentials from any providers"), {
        name: "CredentialsProviderError",
      }),
    );
    await expect(audit()).rejects.toThrow(/no AWS credentials: set AWS_PROFILE/);
  });

  it("refuses a range that ends before it starts, and --json with --csv", async () => {
    await expect(audit({ since: "2026-11-25", until: "2026-11-24" })).rejects.toThrow(
      /--since must be before --until/,
    );
    await expect(audit({ json: true, csv: true })).rejects.toThrow(/not both/);
  });
});
