// Runs the real fwknopd (2.6.x) inside the server namespace of a test net.
//
// Everything fwknopd reads or writes lives in a private 0700 directory: fwknopd.conf, access.conf
// (0600, the only place keys are written), the PID file, the run dir and the digest cache. The
// system's /etc/fwknop and /run/fwknop are never used. fwknopd sniffs the server veth with pcap,
// so it only ever sees traffic inside the test net.

import type { ChildProcess } from "node:child_process";
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import { findExecutable, type TestNet, terminate } from "./netns.js";
import { peerSkipReason } from "./peers.js";
import { ProcessLog } from "./process-log.js";

export interface FwknopdStanza {
  /** `ANY` or a comma list of addresses/networks; default `ANY`. */
  readonly source?: string;
  readonly destination?: string;
  readonly key?: string;
  readonly keyBase64?: string;
  readonly hmacKey?: string;
  readonly hmacKeyBase64?: string;
  /** md5, sha1, sha256, sha384, sha512, sha3_256, sha3_512. */
  readonly hmacDigestType?: string;
  /** CBC, CTR, CFB, OFB, ECB, legacy. */
  readonly encryptionMode?: string;
  /** e.g. "tcp/22, udp/53". */
  readonly openPorts?: string;
  readonly restrictPorts?: string;
  readonly fwAccessTimeout?: number;
  readonly maxFwTimeout?: number;
  readonly requireUsername?: string;
  readonly requireSourceAddress?: boolean;
  /** Raw `KEYWORD value` lines appended to the stanza. */
  readonly extraLines?: readonly string[];
}

export interface FwknopdOptions {
  /** access.conf stanzas in file order (fwknopd tries them in this order). */
  readonly stanzas: readonly FwknopdStanza[];
  /** BPF filter; fwknopd's default is `udp port 62201`. */
  readonly pcapFilter?: string;
  /** Raw `KEYWORD value` lines appended to fwknopd.conf (e.g. `ENABLE_SPA_PACKET_AGING N`). */
  readonly extraConfLines?: readonly string[];
  /** Pass `-v` so DEBUG lines (iptables commands, decoded fields) are logged; default true. */
  readonly verbose?: boolean;
  /** Pass `-t`: process packets but never touch the firewall. */
  readonly testMode?: boolean;
  /** How long to wait for "Starting fwknopd main event loop."; default 15 s. */
  readonly startTimeoutMs?: number;
}

export interface Fwknopd {
  readonly pid: number;
  /** The private directory holding the configs, PID file and digest cache. */
  readonly dir: string;
  readonly confPath: string;
  readonly accessPath: string;
  readonly digestPath: string;
  /** Every stdout/stderr line so far (fwknopd -f logs to stderr). */
  readonly lines: readonly string[];
  /** Number of lines so far; pass it to waitForLog to ignore what was logged before. */
  mark(): number;
  /** Resolves with the first line at index >= `fromLine` matching `re`. */
  waitForLog(re: RegExp, timeoutMs?: number, fromLine?: number): Promise<string>;
  /** True while fwknopd has not exited. */
  isRunning(): boolean;
  /** SIGTERM (fwknopd then flushes its chains), SIGKILL after a grace period. Idempotent. */
  stop(): Promise<void>;
}

const READY_LINE = /Starting fwknopd main event loop/;
const DEFAULT_START_TIMEOUT_MS = 15_000;
const DEFAULT_WAIT_TIMEOUT_MS = 10_000;
// fwknopd runs `iptables -F/-X` on SIGTERM before exiting.
const STOP_GRACE_MS = 5_000;

/** Why fwknopd tests cannot run on this host, or undefined when they can. */
export function fwknopdSkipReason(): string | undefined {
  return findExecutable("fwknopd") === undefined
    ? peerSkipReason({
        reason: "fwknopd is not installed (apt-get install fwknop-server)",
        aptPackage: "fwknop-server",
      })
    : undefined;
}

export async function startFwknopd(net: TestNet, options: FwknopdOptions): Promise<Fwknopd> {
  if (options.stanzas.length === 0) throw new TypeError("fwknopd needs at least one access stanza");
  const dir = net.makeTempDir("fwknopd");
  const confPath = join(dir, "fwknopd.conf");
  const accessPath = join(dir, "access.conf");
  const digestPath = join(dir, "digest.cache");
  const pidPath = join(dir, "fwknopd.pid");

  await writeFile(
    confPath,
    renderFwknopdConf(net.server.iface, dir, pidPath, digestPath, options),
    { mode: 0o600, flag: "wx" },
  );
  await writeFile(accessPath, renderAccessConf(options.stanzas), { mode: 0o600, flag: "wx" });

  // -c/-a keep fwknopd away from /etc/fwknop; -r/-p/-d (also set in the conf) keep it away from
  // /run/fwknop. -f logs to stderr instead of syslog. No key ever appears on this command line.
  const argv = [
    findExecutable("fwknopd") ?? "fwknopd",
    "-f",
    "-c",
    confPath,
    "-a",
    accessPath,
    "-i",
    net.server.iface,
    "-r",
    dir,
    "-p",
    pidPath,
    "-d",
    digestPath,
  ];
  if (options.verbose ?? true) argv.push("-v");
  if (options.testMode === true) argv.push("-t");

  const child = net.spawn(net.server.ns, argv, { cwd: dir });
  const pid = child.pid;
  if (pid === undefined) throw new Error("fwknopd did not start");
  const daemon = new FwknopdProcess(child, pid, dir, confPath, accessPath, digestPath);
  net.addCleanup(() => daemon.stop());

  try {
    await daemon.waitForLog(READY_LINE, options.startTimeoutMs ?? DEFAULT_START_TIMEOUT_MS);
  } catch (err) {
    await daemon.stop();
    throw err;
  }
  return daemon;
}

class FwknopdProcess implements Fwknopd {
  private readonly log = new ProcessLog("fwknopd", DEFAULT_WAIT_TIMEOUT_MS);
  private stopping: Promise<void> | undefined;

  constructor(
    private readonly child: ChildProcess,
    readonly pid: number,
    readonly dir: string,
    readonly confPath: string,
    readonly accessPath: string,
    readonly digestPath: string,
  ) {
    this.log.follow(child);
  }

  get lines(): readonly string[] {
    return this.log.lines;
  }

  mark(): number {
    return this.log.mark();
  }

  waitForLog(re: RegExp, timeoutMs?: number, fromLine?: number): Promise<string> {
    return this.log.waitForLog(re, timeoutMs, fromLine);
  }

  isRunning(): boolean {
    return this.log.running;
  }

  stop(): Promise<void> {
    this.stopping ??= terminate(this.child, STOP_GRACE_MS);
    return this.stopping;
  }
}

function renderFwknopdConf(
  iface: string,
  dir: string,
  pidPath: string,
  digestPath: string,
  options: FwknopdOptions,
): string {
  const lines = [
    `PCAP_INTF ${iface}`,
    `FWKNOP_RUN_DIR ${dir}`,
    `FWKNOP_PID_FILE ${pidPath}`,
    `DIGEST_FILE ${digestPath}`,
  ];
  if (options.pcapFilter !== undefined) lines.push(`PCAP_FILTER ${options.pcapFilter}`);
  lines.push(...(options.extraConfLines ?? []));
  return `${lines.map(assertConfLine).join("\n")}\n`;
}

/** The access.conf text for `stanzas` (exported for tests that want to inspect it). */
export function renderAccessConf(stanzas: readonly FwknopdStanza[]): string {
  const blocks = stanzas.map((s) => {
    const lines = [`SOURCE ${s.source ?? "ANY"}`];
    const add = (keyword: string, value: string | number | undefined): void => {
      if (value !== undefined) lines.push(`${keyword} ${value}`);
    };
    add("DESTINATION", s.destination);
    add("KEY", s.key);
    add("KEY_BASE64", s.keyBase64);
    add("HMAC_KEY", s.hmacKey);
    add("HMAC_KEY_BASE64", s.hmacKeyBase64);
    add("HMAC_DIGEST_TYPE", s.hmacDigestType);
    add("ENCRYPTION_MODE", s.encryptionMode);
    add("OPEN_PORTS", s.openPorts);
    add("RESTRICT_PORTS", s.restrictPorts);
    add("FW_ACCESS_TIMEOUT", s.fwAccessTimeout);
    add("MAX_FW_TIMEOUT", s.maxFwTimeout);
    add("REQUIRE_USERNAME", s.requireUsername);
    if (s.requireSourceAddress !== undefined) {
      add("REQUIRE_SOURCE_ADDRESS", s.requireSourceAddress ? "Y" : "N");
    }
    lines.push(...(s.extraLines ?? []));
    return lines.map(assertConfLine).join("\n");
  });
  return `${blocks.join("\n\n")}\n`;
}

// fwknopd ends a value at `;` and a line at a newline: a key containing one would be silently
// truncated (or inject a keyword), so refuse it rather than debug a baffling HMAC failure.
function assertConfLine(line: string): string {
  if (/[\n\r;]/.test(line)) {
    throw new TypeError("fwknopd config lines must not contain a newline or ';'");
  }
  return line;
}

export interface FwknopRule {
  /** The `iptables -S` line. */
  readonly raw: string;
  readonly source: string | undefined;
  readonly proto: string | undefined;
  readonly dport: number | undefined;
  readonly target: string | undefined;
  /** Epoch seconds from the `_exp_<epoch>` comment. */
  readonly expiresAt: number | undefined;
}

/** The `-A` lines of `chain` (default FWKNOP_INPUT) in the server namespace; [] if no chain. */
export async function listFwknopRules(net: TestNet, chain = "FWKNOP_INPUT"): Promise<string[]> {
  const result = await net.exec(net.server.ns, ["iptables", "-w", "-S", chain]);
  if (result.code !== 0) return [];
  return result.stdout.split("\n").filter((line) => line.startsWith("-A "));
}

export function parseFwknopRule(raw: string): FwknopRule {
  const field = (re: RegExp): string | undefined => re.exec(raw)?.[1];
  const dport = field(/--dport (\d+)/);
  const expiresAt = field(/--comment "?_exp_(\d+)/);
  return {
    raw,
    source: field(/-s (\S+)/),
    proto: field(/-p (\S+)/),
    dport: dport === undefined ? undefined : Number(dport),
    target: field(/-j (\S+)/),
    expiresAt: expiresAt === undefined ? undefined : Number(expiresAt),
  };
}
