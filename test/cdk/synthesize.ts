/**
 * Shared setup for the CDK tests: write a spaknock.cloud.json into a temporary folder and
 * synthesize the repository's app from it, once per test file (bundling three functions and the
 * relay takes seconds).
 */
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Template } from "aws-cdk-lib/assertions";
import { createApp, type SpaknockApp } from "../../cdk/app.js";

export interface Synthesized extends SpaknockApp {
  readonly template: Template;
  /** The cloud assembly folder (cdk.out), with the bundled assets. */
  readonly outdir: string;
  /** The folder holding spaknock.cloud.json. */
  readonly workdir: string;
  cleanUp(): void;
}

export function writeConfig(dir: string, config: unknown, name = "spaknock.cloud.json"): string {
  const file = join(dir, name);
  writeFileSync(file, `${JSON.stringify(config, null, 2)}\n`);
  return file;
}

/** Synthesizes the app from `config`; `bundle: false` skips esbuild (placeholder assets). */
export function synthesize(config: unknown, { bundle = true } = {}): Synthesized {
  const workdir = mkdtempSync(join(tmpdir(), "spaknock-cdk-"));
  const outdir = join(workdir, "cdk.out");
  const configPath = writeConfig(workdir, config);
  const built = createApp({
    configPath,
    outdir,
    cwd: workdir,
    ...(bundle ? {} : { context: { "aws:cdk:bundling-stacks": [] } }),
  });
  built.app.synth();
  const template = Template.fromJSON(
    JSON.parse(readFileSync(join(outdir, `${built.stack.stackName}.template.json`), "utf8")),
  );
  return {
    ...built,
    template,
    outdir,
    workdir,
    cleanUp: () => rmSync(workdir, { recursive: true, force: true }),
  };
}

/** Every file under `dir`, recursively. */
export function filesUnder(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    return statSync(path).isDirectory() ? filesUnder(path) : [path];
  });
}

type Resources = Record<string, { Type: string; Properties?: Record<string, unknown> }>;

/** The one resource of `type` whose logical id starts with `prefix`. */
export function resourceNamed(
  template: Template,
  type: string,
  prefix: string,
): { id: string; Properties: Record<string, unknown> } {
  const hits = Object.entries(template.findResources(type) as Resources).filter(([id]) =>
    id.startsWith(prefix),
  );
  if (hits.length !== 1) {
    throw new Error(`expected one ${type} named ${prefix}*, found ${hits.map(([id]) => id)}`);
  }
  const [id, resource] = hits[0] as [string, Resources[string]];
  return { id, Properties: resource.Properties ?? {} };
}

interface Statement {
  Sid?: string;
  Effect: string;
  Action: string | string[];
  Resource?: unknown;
  Condition?: Record<string, Record<string, unknown>>;
  Principal?: unknown;
}

/** The statements of the default policy attached to the role whose logical id starts `prefix`. */
export function policyOf(template: Template, rolePrefix: string): Statement[] {
  const role = resourceNamed(template, "AWS::IAM::Role", rolePrefix).id;
  const policies = Object.values(template.findResources("AWS::IAM::Policy") as Resources).filter(
    (p) => JSON.stringify(p.Properties?.Roles) === JSON.stringify([{ Ref: role }]),
  );
  return policies.flatMap(
    (p) =>
      (p.Properties?.PolicyDocument as { Statement: Statement[] } | undefined)?.Statement ?? [],
  );
}

export function actionsOf(statements: readonly Statement[]): string[] {
  return [...new Set(statements.flatMap((s) => [s.Action].flat()))].sort();
}

export function statement(statements: readonly Statement[], sid: string): Statement {
  const hit = statements.find((s) => s.Sid === sid);
  if (!hit) throw new Error(`no statement ${sid} among ${statements.map((s) => s.Sid)}`);
  return hit;
}
