import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { parseCloudConfig } from "../../cdk/cloud-config.js";
import { parseWhen, resolveScope } from "../../cli/aws/operator-config.js";

const dir = mkdtempSync(join(tmpdir(), "spaknock-scope-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const SG = "sg-0123456789abcdef0";
const config = (body: unknown) => {
  const file = join(dir, `c${Math.random().toString(36).slice(2)}.json`);
  writeFileSync(file, JSON.stringify(body));
  return file;
};

describe("where the operator commands find the stack", () => {
  it("reads the guarded groups and regions of spaknock.cloud.json; flags win", () => {
    const file = config({
      stackName: "Spaknock",
      guardedSecurityGroupIds: [SG],
      regions: ["eu-west-1", "us-east-1"],
    });
    expect(resolveScope({ config: file })).toEqual({ groups: [SG], regions: [undefined] });
    expect(resolveScope({ config: file, allRegions: true }).regions).toEqual([
      "eu-west-1",
      "us-east-1",
    ]);
    expect(
      resolveScope({ config: file, region: ["eu-central-1"], group: ["sg-0fedcba9876543210"] }),
    ).toEqual({
      groups: ["sg-0fedcba9876543210"],
      regions: ["eu-central-1"],
    });
  });

  it("the same file is one the CDK app accepts (regions is part of its schema)", () => {
    expect(
      parseCloudConfig({ guardedSecurityGroupIds: [SG], regions: ["eu-west-1"] }, "x").regions,
    ).toEqual(["eu-west-1"]);
    expect(() => parseCloudConfig({ regions: ["Europe"] }, "x")).toThrow(/not a region name/);
  });

  it("refuses what is not a group, a region, or --all-regions without regions", () => {
    expect(() => resolveScope({ config: config({}), allRegions: true })).toThrow(/needs "regions"/);
    expect(() => resolveScope({ config: config({}), group: ["sg-1"] })).toThrow(
      /not a security group id/,
    );
    expect(() => resolveScope({ config: config({}), region: ["moon"] })).toThrow(
      /not a region name/,
    );
    expect(() => resolveScope({ config: config({ guardedSecurityGroupIds: ["x"] }) })).toThrow(
      /guardedSecurityGroupIds/,
    );
  });

  it("reads --since and --until as relative or absolute times", () => {
    const now = 1_800_000_000;
    expect(parseWhen("24h", now, "--since")).toBe(now - 86400);
    expect(parseWhen("90m", now, "--since")).toBe(now - 5400);
    expect(parseWhen("2026-11-01", now, "--since")).toBe(Date.UTC(2026, 10, 1) / 1000);
    expect(parseWhen("2026-11-01T10:00:00Z", now, "--since")).toBe(
      Date.UTC(2026, 10, 1, 10) / 1000,
    );
    expect(() => parseWhen("yesterday", now, "--since")).toThrow(/--since yesterday/);
  });
});
