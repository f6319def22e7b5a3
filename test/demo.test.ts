// `npm run demo` (scripts/demo.sh) told from start to end: the steps of the story appear in
// order, each one checked by the demo itself, and nothing but the project's own output (no stack
// trace). Both capture modes. Needs root, nft, ip, ss and the fwknop client; under CI=true a
// missing one fails the run (test/helpers/peers.ts).

import { execFile, execFileSync } from "node:child_process";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { findExecutable } from "./helpers/netns.js";
import { type MissingPeer, peerSkipReason } from "./helpers/peers.js";
import { pcapSkipReason } from "./helpers/spaknockd.js";

const ROOT = fileURLToPath(new URL("..", import.meta.url));
const DEMO = fileURLToPath(new URL("../scripts/demo.sh", import.meta.url));
const DEMO_RUN_TIMEOUT_MS = 120_000;

function demoMissing(): MissingPeer | undefined {
  if (process.platform !== "linux" || process.getuid?.() !== 0)
    return { reason: "the demo needs root on Linux (run the tests as root)" };
  const tools: [string, string][] = [
    ["ip", "iproute2"],
    ["ss", "iproute2"],
    ["nft", "nftables"],
    ["fwknop", "fwknop-client"],
  ];
  for (const [tool, aptPackage] of tools) {
    if (findExecutable(tool) === undefined)
      return { reason: `the demo needs \`${tool}\` (apt-get install ${aptPackage})`, aptPackage };
  }
  return undefined;
}

interface DemoRun {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

function runDemo(args: readonly string[]): Promise<DemoRun> {
  return new Promise((resolve) => {
    execFile(
      "bash",
      [DEMO, ...args],
      { cwd: ROOT, timeout: DEMO_RUN_TIMEOUT_MS, maxBuffer: 8 * 1024 * 1024 },
      (err, stdout, stderr) => {
        const code = err === null ? 0 : typeof err.code === "number" ? err.code : null;
        resolve({ code, stdout, stderr });
      },
    );
  });
}

/** Asserts that each pattern matches `text`, each one after the previous match. */
function expectInOrder(text: string, patterns: readonly RegExp[]): void {
  let from = 0;
  for (const re of patterns) {
    const rest = text.slice(from);
    const m = re.exec(rest);
    expect(m, `${re} after: ${rest.slice(0, 400)}`).not.toBeNull();
    from += (m?.index ?? 0) + (m?.[0].length ?? 0);
  }
}

const CLIENT = "198\\.18\\.250\\.2";
const OTHER = "198\\.18\\.250\\.3";
const STORY: readonly RegExp[] = [
  new RegExp(`== 1\\. a scan[^\\n]*\\n\\s+tcp ${CLIENT} -> [^\\n]*: no answer \\(filtered\\)`),
  /== 2\. knock/,
  new RegExp(`add inet spaknockdemo ${CLIENT} -> `),
  new RegExp(`tcp ${CLIENT} -> [^\\n]*: CONNECTED`),
  new RegExp(`tcp ${OTHER} -> [^\\n]*: no answer \\(filtered\\)`),
  new RegExp(`Subject: \\[spaknockd [^\\]]+\\] opened ${CLIENT} for demo\\n`),
  /session exchange 1: /,
  /== 4\. the stock fwknop/,
  new RegExp(`tcp ${CLIENT} -> [^\\n]*: CONNECTED`),
  new RegExp(`removed inet spaknockdemo ${CLIENT} -> .*timeout exceeded`),
  new RegExp(`Subject: \\[spaknockd [^\\]]+\\] closed ${CLIENT} for `),
  new RegExp(`tcp ${CLIENT} -> [^\\n]*: no answer \\(filtered\\)`),
  /session exchange 2: sent "typed after the rule is gone", got "typed after the rule is gone" back/,
  /nothing left: no namespace, no process, no file of the demo/,
];

function expectNoStackTrace(run: DemoRun): void {
  const all = `${run.stdout}\n${run.stderr}`;
  expect(all).not.toMatch(/^\s+at .+:\d+:\d+\)?$/m);
  expect(all).not.toMatch(/ECONNRESET|Unhandled|FAILED/);
}

function demoNamespaces(): string[] {
  const out = execFileSync("ip", ["netns", "list"], { encoding: "utf8" });
  return out.split("\n").filter((l) => l.startsWith("spkdemo-"));
}

const skipReason = peerSkipReason(demoMissing());

describe.skipIf(skipReason !== undefined)(
  `npm run demo${skipReason === undefined ? "" : ` (skipped: ${skipReason})`}`,
  () => {
    it("tells the story in order: filtered, open for one address only, emails, session kept, closed", {
      timeout: DEMO_RUN_TIMEOUT_MS,
    }, async () => {
      // Act
      const run = await runDemo([]);
      // Assess
      expect(run.stderr).toBe("");
      expect(run.code).toBe(0);
      expectInOrder(run.stdout, STORY);
      expect(run.stdout.match(/^\s+\| Subject: /gm)).toHaveLength(3);
      expect(run.stdout).toMatch(/\| From: +spaknockd@server\.example\.test\n/);
      expect(run.stdout).toMatch(/\| user: +demo\n/);
      expectNoStackTrace(run);
      expect(demoNamespaces()).toEqual([]);
    });

    const pcapSkip = pcapSkipReason();
    it.skipIf(pcapSkip !== undefined)(
      "with --pcap: no socket on the SPA port, and the same story",
      { timeout: DEMO_RUN_TIMEOUT_MS },
      async () => {
        // Act
        const run = await runDemo(["--pcap"]);
        // Assess
        expect(run.stderr).toBe("");
        expect(run.code).toBe(0);
        expect(run.stdout).toMatch(/capture pcap on spkd\d+s/);
        expect(run.stdout).toContain("no socket on udp/62201");
        expectInOrder(run.stdout, STORY);
        expectNoStackTrace(run);
        expect(demoNamespaces()).toEqual([]);
      },
    );
  },
);

describe("demo errors", () => {
  it("an unknown option is one line of usage on stderr and exit 2", async () => {
    // Act
    const run = await runDemo(["--no-such-option"]);
    // Assess
    expect(run.code).toBe(2);
    expect(run.stdout).toBe("");
    expect(run.stderr).toBe("usage: bash scripts/demo.sh [--pcap] [--installed]\n");
  });
});
