// Runs the real fwknop client (2.6.x), either inside a test net's client namespace or, with -T,
// outside any namespace to generate packets without sending them.
//
// The client never touches the user's home: it always gets --no-save-args, either --no-rc-file or
// a private 0600 rc file, and HOME pointing at a private temporary directory. Keys belong in the rc
// file (KEY_BASE64, HMAC_KEY_BASE64, ...) so they stay off the command line.

import { execFile } from "node:child_process";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { isIP } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type ExecResult, findExecutable, type TestNet } from "./netns.js";
import { peerSkipReason } from "./peers.js";

export interface FwknopRc {
  /** Stanza name selected with `-n`; default "spaknock-test". */
  readonly stanza?: string;
  /** `KEYWORD value` pairs, e.g. { KEY_BASE64: "...", HMAC_KEY_BASE64: "...", USE_HMAC: "Y" }. */
  readonly settings: Readonly<Record<string, string>>;
}

export interface FwknopRunOptions {
  /** Namespace to run in; default the client namespace. */
  readonly ns?: string;
  readonly timeoutMs?: number;
}

const DEFAULT_STANZA = "spaknock-test";
const DEFAULT_TIMEOUT_MS = 10_000;
// The first dump is of the packet as built; the second, after a decode round trip, prints the
// Final SPA Data without its HMAC, so only the first occurrence is the wire string.
const FINAL_SPA_DATA = /^\s*Final SPA Data: (\S+)\s*$/m;
// Options that make the client fetch its own address from the internet.
const RESOLVE_OPTIONS = ["-R", "--resolve-ip-https", "--resolve-http-only", "--resolve-url"];

/** Why fwknop client tests cannot run on this host, or undefined when they can. */
export function fwknopClientSkipReason(): string | undefined {
  return findExecutable("fwknop") === undefined
    ? peerSkipReason({
        reason: "the fwknop client is not installed (apt-get install fwknop-client)",
        aptPackage: "fwknop-client",
      })
    : undefined;
}

/**
 * Run `fwknop <args>` in the client namespace (or `opts.ns`). With `rc`, the settings are written
 * to a 0600 rc file passed as `--rc-file <file> -n <stanza>`; without, `--no-rc-file` is used.
 */
export async function runFwknopClient(
  net: TestNet,
  args: readonly string[],
  rc?: FwknopRc,
  opts: FwknopRunOptions = {},
): Promise<ExecResult> {
  const home = net.makeTempDir("fwknop");
  const argv = [fwknopPath(), ...(await rcArgs(home, rc)), "--no-save-args", ...args];
  return net.exec(opts.ns ?? net.client.ns, argv, {
    env: { ...process.env, HOME: home },
    cwd: home,
    timeoutMs: opts.timeoutMs ?? DEFAULT_TIMEOUT_MS,
  });
}

/**
 * Build an SPA packet with `fwknop -T -v <args>` (nothing is sent) and return its exact wire string.
 * `-D` must be an IP literal so that not even a DNS query leaves the host.
 */
export async function fwknopTestPacket(args: readonly string[], rc?: FwknopRc): Promise<string> {
  assertOffline(args, rc);
  const home = await mkdtemp(join(tmpdir(), `spk-${process.pid}-fwknop-T-`));
  try {
    const argv = [...(await rcArgs(home, rc)), "--no-save-args", "-T", "-v", ...args];
    const result = await new Promise<ExecResult>((resolve, reject) => {
      const child = execFile(
        fwknopPath(),
        argv,
        { env: { ...process.env, HOME: home }, cwd: home, timeout: DEFAULT_TIMEOUT_MS },
        (err, stdout, stderr) => {
          if (err !== null && typeof err.code === "string") reject(err);
          else resolve({ code: child.exitCode, signal: child.signalCode, stdout, stderr });
        },
      );
    });
    if (result.code !== 0) {
      throw new Error(`fwknop -T exited with ${result.code}: ${result.stderr.trim()}`);
    }
    return parseFinalSpaData(result.stdout);
  } finally {
    await rm(home, { recursive: true, force: true });
  }
}

/** The wire string from the first ` Final SPA Data: ` line of `fwknop -v` output. */
export function parseFinalSpaData(output: string): string {
  const wire = FINAL_SPA_DATA.exec(output)?.[1];
  if (wire === undefined) throw new Error("no 'Final SPA Data' line in fwknop output");
  return wire;
}

async function rcArgs(dir: string, rc: FwknopRc | undefined): Promise<string[]> {
  if (rc === undefined) return ["--no-rc-file"];
  const stanza = rc.stanza ?? DEFAULT_STANZA;
  const lines = [`[${stanza}]`];
  for (const [keyword, value] of Object.entries(rc.settings)) {
    if (/[\n\r]/.test(keyword + value))
      throw new TypeError(`rc setting ${keyword} contains a newline`);
    lines.push(`${keyword} ${value}`);
  }
  const path = join(dir, "fwknoprc");
  await writeFile(path, `${lines.join("\n")}\n`, { mode: 0o600, flag: "wx" });
  return ["--rc-file", path, "-n", stanza];
}

function assertOffline(args: readonly string[], rc: FwknopRc | undefined): void {
  for (const [i, arg] of args.entries()) {
    if (RESOLVE_OPTIONS.some((opt) => arg === opt || arg.startsWith(`${opt}=`))) {
      throw new TypeError(`fwknopTestPacket: ${arg} would contact the internet`);
    }
    let destination: string | undefined;
    if (arg === "-D" || arg === "--destination") destination = args[i + 1];
    else if (arg.startsWith("--destination=")) destination = arg.slice("--destination=".length);
    else if (arg.startsWith("-D")) destination = arg.slice(2);
    if (destination !== undefined && isIP(destination) === 0) {
      throw new TypeError(`fwknopTestPacket: -D must be an IP literal, got ${destination}`);
    }
  }
  for (const [keyword, value] of Object.entries(rc?.settings ?? {})) {
    const upper = keyword.toUpperCase();
    const resolves =
      upper.startsWith("RESOLVE_") ||
      (upper === "ALLOW_IP" && value.trim().toLowerCase() === "resolve") ||
      (upper === "SPA_SERVER" && isIP(value.trim()) === 0);
    if (resolves) throw new TypeError(`fwknopTestPacket: rc ${keyword} ${value} needs the network`);
  }
}

function fwknopPath(): string {
  return findExecutable("fwknop") ?? "fwknop";
}
