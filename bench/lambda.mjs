// The cloud knock's own cost, from the real artifacts `cdk synth` writes (cdk.out): for each
// function of the stack, its bundle's size and its cold init — a fresh process of the Node.js the
// template deploys it to (nodejs24.x → Node 24, the official binaries from the npm registry)
// importing the bundle as Lambda's runtime does, timed inside that process, median of --runs.
//
//   npm run bench:lambda [-- --runs 10] [--json]
//
// It fails only when a bundle is missing or does not import; it never fails on a figure.
// Not measured yet: the warm CPU of one invocation against local AWS-like endpoints.
import { execFile } from "node:child_process";
import { readdirSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { parseArgs, promisify } from "node:util";
import { formatNumber, machineInfo, percentile } from "./lib/report.mjs";

const execFileAsync = promisify(execFile);
const REPO = fileURLToPath(new URL("..", import.meta.url));
const OUT = join(REPO, "cdk.out");

const { values: args } = parseArgs({
  options: { runs: { type: "string", default: "10" }, json: { type: "boolean", default: false } },
});
const runs = Number(args.runs);
if (!Number.isInteger(runs) || runs < 1) throw new Error("--runs: a whole number, 1 or more");

function functionsOf(template) {
  return Object.entries(template.Resources)
    .filter(([, r]) => r.Type === "AWS::Lambda::Function" && r.Properties?.Code?.S3Key)
    .map(([id, r]) => {
      const hash = r.Properties.Code.S3Key.replace(/\.zip$/, "");
      return {
        name: id.replace(/^SpaKnocker/, "").replace(/[0-9A-F]{8}$/, ""),
        runtime: r.Properties.Runtime,
        bundle: join(OUT, `asset.${hash}`, "index.mjs"),
      };
    })
    .filter((f) => /^nodejs/.test(f.runtime ?? ""));
}

// Timed inside the child: from before the import to after it, plus the child's resident memory.
const PROBE = `
const t = performance.now();
await import(process.argv[1]);
const ms = performance.now() - t;
console.log(JSON.stringify({ ms, rssMiB: process.memoryUsage().rss / 1048576, node: process.version }));
`;

async function coldInit(nodePackage, bundle) {
  const samples = [];
  let node = "";
  for (let i = 0; i < runs; i++) {
    const { stdout } = await execFileAsync(
      "npx",
      [
        "--yes",
        "--prefer-offline",
        `--package=${nodePackage}`,
        "--",
        "node",
        "--input-type=module",
        "-e",
        PROBE,
        pathToFileURL(bundle).href,
      ],
      {
        // What Lambda sets, so module-level code that reads them finds them; no call is made.
        env: { ...process.env, AWS_REGION: "eu-west-1", AWS_LAMBDA_FUNCTION_NAME: "bench" },
        timeout: 120_000,
      },
    );
    const sample = JSON.parse(stdout.trim().split("\n").at(-1));
    node = sample.node;
    samples.push(sample);
  }
  return {
    node,
    initMs: percentile(
      samples.map((s) => s.ms),
      50,
    ),
    rssMiB: percentile(
      samples.map((s) => s.rssMiB),
      50,
    ),
  };
}

async function main() {
  const templates = readdirSync(OUT).filter((f) => f.endsWith(".template.json"));
  if (templates.length === 0) throw new Error("no template in cdk.out: run `npm run synth` first");
  const template = JSON.parse(readFileSync(join(OUT, templates[0]), "utf8"));
  const rows = [];
  for (const f of functionsOf(template)) {
    const major = /^nodejs([0-9]+)/.exec(f.runtime)?.[1];
    const nodePackage = `node-${process.platform}-${process.arch}@${major}`;
    const sizeKiB = statSync(f.bundle).size / 1024;
    process.stderr.write(`bench:lambda: ${f.name} on ${f.runtime}, ${runs} cold imports\n`);
    rows.push({ ...f, sizeKiB, ...(await coldInit(nodePackage, f.bundle)) });
  }
  if (args.json) {
    process.stdout.write(`${JSON.stringify({ machine: machineInfo(), runs, rows }, null, 2)}\n`);
    return;
  }
  const m = machineInfo();
  const lines = [
    `machine: ${m.cpu}, ${m.cores} cores, Linux ${m.kernel}; ${runs} cold imports per function`,
    "",
    "function   runtime      node       bundle (KiB)   cold init median (ms)   RSS after init (MiB)",
    ...rows.map(
      (r) =>
        `${r.name.padEnd(10)} ${r.runtime.padEnd(12)} ${r.node.padEnd(10)} ${formatNumber(r.sizeKiB, 0).padStart(12)}   ${formatNumber(r.initMs, 0).padStart(21)}   ${formatNumber(r.rssMiB, 1).padStart(20)}`,
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
