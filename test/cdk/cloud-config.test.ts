/**
 * spaknock.cloud.json: defaults, one clear line per bad field, where the file is looked for, and
 * the real `cdk synth` failing on a bad file with those lines and no stack trace.
 */
import { execFile } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { App } from "aws-cdk-lib";
import { afterAll, describe, expect, it } from "vitest";
import {
  CONFIG_CONTEXT_KEY,
  CONFIG_ENV,
  DEFAULT_CONFIG_FILE,
  EXAMPLE_CONFIG_FILE,
  resolveConfigPath,
} from "../../cdk/app.js";
import { CloudConfigError, loadCloudConfig, parseCloudConfig } from "../../cdk/cloud-config.js";
import { findSourceRoot } from "../../cdk/source-root.js";
import { writeConfig } from "./synthesize.js";

const ROOT = findSourceRoot();
const dir = mkdtempSync(join(tmpdir(), "spaknock-config-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** The problems a config produces, or [] when it is valid. */
function problems(json: unknown): readonly string[] {
  try {
    parseCloudConfig(json, "spaknock.cloud.json");
    return [];
  } catch (err) {
    if (err instanceof CloudConfigError) return err.problems;
    throw err;
  }
}

describe("a valid config", () => {
  it("fills every default in from an empty object", () => {
    expect(parseCloudConfig({}, "c.json")).toEqual({
      stackName: "Spaknock",
      guardedSecurityGroupIds: [],
      ipv6: false,
      relay: { mode: "eip", instanceType: "t4g.nano", port: 62201 },
      functionUrl: false,
      notificationEmails: [],
      openerRole: true,
      maxSpaPacketAgeSeconds: 120,
      knockTimeoutSeconds: 15,
      accessConfigTtlSeconds: 300,
      reservedConcurrency: { knock: 10, revoke: 5, sweep: 1 },
      logRetentionDays: 90,
      clientAccess: "tcp/22",
      tags: {},
    });
  });

  it("includes the shipped example", () => {
    const example = loadCloudConfig(join(ROOT, EXAMPLE_CONFIG_FILE));
    expect(example.stackName).toBe("Spaknock");
    expect(example.relay.mode).toBe("eip");
  });

  it("accepts 8- and 17-digit group ids and Graviton types of every family", () => {
    expect(
      problems({
        guardedSecurityGroupIds: ["sg-0123abcd", "sg-0123456789abcdef0"],
        relay: { mode: "nlb", instanceType: "c7gn.large" },
      }),
    ).toEqual([]);
  });
});

describe("a bad config", () => {
  it("names an unknown field, at the top level or nested", () => {
    expect(problems({ colour: "blue" })).toEqual(["colour: unknown field"]);
    expect(problems({ relay: { mode: "eip", size: 2 } })).toEqual(["relay.size: unknown field"]);
  });

  it("names a group id that is not sg-…", () => {
    expect(
      problems({ guardedSecurityGroupIds: ["sg-0123456789abcdef0", "0123456789abcdef0"] }),
    ).toEqual([
      'guardedSecurityGroupIds.1: not a security group id ("sg-" and 8 or 17 hex digits)',
    ]);
    expect(problems({ guardedSecurityGroupIds: ["sg-0123abcd", "sg-0123abcd"] })).toEqual([
      "guardedSecurityGroupIds: lists a group twice",
    ]);
  });

  it("names a timeout out of range, or not a whole number", () => {
    expect(problems({ knockTimeoutSeconds: 900 })).toEqual([
      "knockTimeoutSeconds: must be between 3 and 60 seconds",
    ]);
    expect(problems({ maxSpaPacketAgeSeconds: 0 })).toEqual([
      "maxSpaPacketAgeSeconds: must be between 10 and 3600 seconds",
    ]);
    expect(problems({ accessConfigTtlSeconds: 1.5 })).toEqual([
      "accessConfigTtlSeconds: expected a whole number of seconds",
    ]);
    expect(problems({ knockTimeoutSeconds: "15" })).toEqual([
      "knockTimeoutSeconds: expected a whole number of seconds",
    ]);
  });

  it("names a relay that cannot work", () => {
    expect(problems({ relay: { mode: "udp" } })).toEqual([
      'relay.mode: expected one of "eip", "nlb", "none"',
    ]);
    expect(problems({ relay: { mode: "none" } })).toEqual([
      'relay.mode: "none" needs "functionUrl": true, or nothing could reach the knock function',
    ]);
    expect(problems({ relay: { instanceType: "t3.nano" } })).toEqual([
      "relay.instanceType: expected a Graviton (arm64) instance type such as t4g.nano",
    ]);
    expect(problems({ relay: { port: 53 } })).toEqual([
      "relay.port: must be between 1024 and 65535 (a port number)",
    ]);
    expect(problems({ ipv6: true, relay: { mode: "nlb" } })).toEqual([
      'ipv6: needs relay mode "eip" or "none": a dual-stack Network Load Balancer cannot forward UDP to instances',
    ]);
    expect(problems({ ipv6: "yes" })).toHaveLength(1);
    expect(problems({ ipv6: true })).toEqual([]);
  });

  it("names an existing VPC that does not fit", () => {
    expect(
      problems({
        relay: { mode: "nlb" },
        vpc: {
          vpcId: "vpc-0123456789abcdef0",
          vpcCidrBlock: "10.0.0.0/16",
          availabilityZones: ["eu-west-1a"],
          publicSubnetIds: ["subnet-0123456789abcdef0", "subnet-0123456789abcdef1"],
        },
      }),
    ).toEqual([
      "vpc.publicSubnetIds: needs one subnet per availability zone, in the same order",
      'vpc.availabilityZones: relay mode "nlb" spans two zones: name at least two',
    ]);
  });

  it("names other bad values: retention, email, access list, stack name", () => {
    expect(problems({ logRetentionDays: 10 })[0]).toMatch(
      /^logRetentionDays: expected one of CloudWatch's retention periods: 1, 3, 5/,
    );
    expect(problems({ notificationEmails: ["ops"] })).toEqual([
      "notificationEmails.0: not an email address",
    ]);
    expect(problems({ clientAccess: "ssh" })).toEqual([
      'clientAccess: expected fwknop ACCESS syntax such as "tcp/22" or "tcp/22,tcp/443"',
    ]);
    expect(problems({ stackName: "1st" })).toEqual([
      "stackName: expected a CloudFormation stack name (letters, digits, hyphens)",
    ]);
  });

  it("gives one line per bad field, each prefixed with the file", () => {
    const file = writeConfig(
      dir,
      { colour: 1, knockTimeoutSeconds: 0, relay: { mode: "x" } },
      "bad.json",
    );
    let error: unknown;
    try {
      loadCloudConfig(file);
    } catch (err) {
      error = err;
    }
    expect(error).toBeInstanceOf(CloudConfigError);
    expect((error as Error).message.split("\n").sort()).toEqual([
      `${file}: colour: unknown field`,
      `${file}: knockTimeoutSeconds: must be between 3 and 60 seconds`,
      `${file}: relay.mode: expected one of "eip", "nlb", "none"`,
    ]);
  });

  it("says so when the file is missing or not JSON", () => {
    expect(() => loadCloudConfig(join(dir, "absent.json"))).toThrow(
      /absent\.json: cannot read the file \(ENOENT\)/,
    );
    const broken = join(dir, "broken.json");
    writeFileSync(broken, '{ "stackName": "Spaknock", }');
    expect(() => loadCloudConfig(broken)).toThrow(/broken\.json: not valid JSON: /);
  });
});

describe("which file", () => {
  it("prefers the option, then -c spaknockConfig, then $SPAKNOCK_CLOUD_CONFIG, then the default", () => {
    const app = new App({ context: { [CONFIG_CONTEXT_KEY]: "from-context.json" } });
    const env = { [CONFIG_ENV]: "from-env.json" };
    expect(resolveConfigPath(app, { cwd: dir, configPath: "opt.json" }, env)).toBe(
      join(dir, "opt.json"),
    );
    expect(resolveConfigPath(app, { cwd: dir }, env)).toBe(join(dir, "from-context.json"));
    expect(resolveConfigPath(new App(), { cwd: dir }, env)).toBe(join(dir, "from-env.json"));
    writeConfig(dir, {}, DEFAULT_CONFIG_FILE);
    expect(resolveConfigPath(new App(), { cwd: dir }, {})).toBe(join(dir, DEFAULT_CONFIG_FILE));
  });

  it("falls back to the example, saying so, when there is no config yet", () => {
    const notes: string[] = [];
    const fresh = mkdtempSync(join(dir, "fresh-"));
    expect(resolveConfigPath(new App(), { cwd: fresh, note: (m) => notes.push(m) }, {})).toBe(
      join(fresh, EXAMPLE_CONFIG_FILE),
    );
    expect(notes).toEqual([expect.stringContaining(`no ${DEFAULT_CONFIG_FILE}`)]);
  });
});

describe("cdk synth", () => {
  it("fails on a bad config with one line per bad field and no stack trace", async () => {
    // Prepare
    const file = writeConfig(
      dir,
      { guardedSecurityGroupIds: ["sg-nothex"], knockTimeoutSeconds: 61, extra: true },
      "cli.json",
    );
    const env = { ...process.env, AWS_ACCESS_KEY_ID: "", AWS_SECRET_ACCESS_KEY: "", CI: "true" };
    // Act
    const result = await promisify(execFile)(
      "npx",
      ["cdk", "synth", "--quiet", "--no-notices", "-c", `${CONFIG_CONTEXT_KEY}=${file}`],
      { cwd: ROOT, env, timeout: 60_000 },
    ).then(
      () => ({ code: 0, stderr: "" }),
      (err: { code: number; stderr: string }) => err,
    );
    // Assess
    expect(result.code).not.toBe(0);
    const ours = result.stderr.split("\n").filter((l) => l.startsWith(file));
    expect(ours.sort()).toEqual(
      [
        `${file}: extra: unknown field`,
        `${file}: guardedSecurityGroupIds.0: not a security group id ("sg-" and 8 or 17 hex digits)`,
        `${file}: knockTimeoutSeconds: must be between 3 and 60 seconds`,
      ].sort(),
    );
    expect(result.stderr).not.toMatch(/^\s+at /m);
    expect(readFileSync(file, "utf8")).toContain("sg-nothex");
  }, 90_000);
});
