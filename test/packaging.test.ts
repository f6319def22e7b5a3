// What the Debian package ships beside the bundles, checked against the built commands: every
// command's --help ends with an example, the bash completion offers every long option that
// --help lists (and completes subcommands and values), and each man page names every long option.
// scripts/ci-package.sh builds, installs, uses and purges the package itself.

import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { SPAKNOCK_CLI, spaknockCliMissingReason } from "./helpers/interop-spaknock-cli.js";
import { peerSkipReason } from "./helpers/peers.js";
import { SPAKNOCKD_MAIN } from "./helpers/spaknockd.js";

const COMPLETION_DIR = fileURLToPath(new URL("../packaging/bash-completion/", import.meta.url));
const MAN_DIR = fileURLToPath(new URL("../packaging/man/", import.meta.url));

const SPAKNOCK_COMMANDS = [
  "",
  "ssh",
  "proxy",
  "doctor",
  "decode",
  "keygen",
  "audit",
  "grants",
  "revoke",
] as const;
const SPAKNOCKD_COMMANDS = ["", "relay"] as const;

function help(main: string, command: string): string {
  const args = command === "" ? ["--help"] : [command, "--help"];
  return execFileSync(process.execPath, [main, ...args], { encoding: "utf8" });
}

/** The long options a --help lists, e.g. --rc-file. */
function longOptions(helpText: string): string[] {
  const options = helpText.split(/\n(?:Commands|Examples?):/)[0] ?? "";
  return [...new Set([...options.matchAll(/^ {2}(?:-\w, )?(--[a-z0-9-]+)/gm)].map((m) => m[1]))]
    .filter((o): o is string => o !== undefined)
    .sort();
}

/** What the completion function offers for the words typed so far (the last one is completed). */
function complete(tool: "spaknock" | "spaknockd", words: readonly string[]): string[] {
  const script = [
    `source '${COMPLETION_DIR}${tool}'`,
    'COMP_WORDS=("$@"); COMP_CWORD=$(($# - 1)); COMPREPLY=()',
    `_${tool}`,
    // biome-ignore lint/suspicious/noTemplateCurlyInString: a bash array expansion, not a template
    'printf "%s\\n" "${COMPREPLY[@]}"',
  ].join("\n");
  const out = execFileSync("bash", ["-c", script, "bash", tool, ...words], { encoding: "utf8" });
  return out.split("\n").filter((l) => l !== "");
}

const skipReason = peerSkipReason(
  spaknockCliMissingReason() === undefined
    ? undefined
    : { reason: "dist/ is missing: run `npm run build` first" },
);

describe.skipIf(skipReason !== undefined)("--help, bash completion and man pages", () => {
  const cases = [
    ...SPAKNOCK_COMMANDS.map((c) => ["spaknock", c, SPAKNOCK_CLI] as const),
    ...SPAKNOCKD_COMMANDS.map((c) => ["spaknockd", c, SPAKNOCKD_MAIN] as const),
  ];

  it.each(cases)("%s %s --help ends with an example of its own command", (tool, command, main) => {
    // Act
    const text = help(main, command);
    // Assess
    const example = /\nExamples?:\n((?: {2}.+\n)+)\n*$/.exec(text);
    expect(example, text).not.toBeNull();
    expect(example?.[1]).toMatch(new RegExp(`(^| )${tool}${command === "" ? "" : ` ${command}`} `));
  });

  it.each(cases)("bash completion offers every long option of %s %s", (tool, command, main) => {
    // Prepare
    const prefix = command === "" ? [] : [command];
    // Act
    const offered = new Set(complete(tool, [...prefix, "--"]));
    // Assess
    const missing = longOptions(help(main, command)).filter((o) => !offered.has(o));
    expect(missing).toEqual([]);
  });

  it("bash completion offers the subcommands and option values", () => {
    expect(complete("spaknock", ["do"])).toEqual(["doctor"]);
    expect(complete("spaknock", [""])).toEqual(
      [...SPAKNOCK_COMMANDS.slice(1)].sort(
        (a, b) => SPAKNOCK_COMMANDS.indexOf(a) - SPAKNOCK_COMMANDS.indexOf(b),
      ),
    );
    expect(complete("spaknock", ["-P", ""])).toEqual(["udp", "tcp", "http"]);
    expect(complete("spaknockd", ["--firewall", "n"])).toEqual(["nftables"]);
    expect(complete("spaknockd", ["rel"])).toEqual(["relay"]);
  });

  it.each([
    ["spaknock.1", SPAKNOCK_CLI],
    ["spaknockd.8", SPAKNOCKD_MAIN],
  ] as const)("the man page %s names every long option of its command", (page, main) => {
    // Prepare
    const roff = readFileSync(`${MAN_DIR}${page}`, "utf8").replaceAll("\\-", "-");
    // Act
    const missing = longOptions(help(main, "")).filter((o) => !roff.includes(o));
    // Assess
    expect(missing).toEqual([]);
  });
});
