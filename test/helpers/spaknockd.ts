// Runs the built spaknockd (dist/spaknockd/main.js, the bundle the .deb ships too) inside the server namespace of a test net, and the
// built spaknock client inside the client namespace.
//
// Everything spaknockd reads or writes lives in a private 0700 directory: fwknopd.conf and
// access.conf (0600, the only place keys are written), the PID file, the run dir and the digest
// cache. The nftables table and iptables chain get names unique to the run, and they only ever
// exist inside the server namespace, which is deleted with the test net.

import type { ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import { existsSync, readFileSync } from "node:fs";
import { readFile, writeFile } from "node:fs/promises";
import { createRequire } from "node:module";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { type FwknopdStanza, renderAccessConf } from "./fwknopd.js";
import { authorizedKeysText, type TestJwkPair } from "./jose-packets.js";
import { type ExecResult, findExecutable, type TestNet, terminate } from "./netns.js";
import { peerSkipReason } from "./peers.js";
import { ProcessLog } from "./process-log.js";

/** The built daemon and client; `npm run build` creates them. */
export const SPAKNOCKD_MAIN = fileURLToPath(
  new URL("../../dist/spaknockd/main.js", import.meta.url),
);

/**
 * The node flags the daemon's interpreter line names (`#!/usr/bin/env -S node --flag`), so the
 * tests run it as it runs when started by its path.
 */
export function spaknockdNodeFlags(): string[] {
  const first = readFileSync(SPAKNOCKD_MAIN, "utf8").split("\n", 1)[0] ?? "";
  const m = /^#!\/usr\/bin\/env -S node(.*)$/.exec(first);
  if (m === null) throw new Error(`${SPAKNOCKD_MAIN}: unexpected interpreter line ${first}`);
  return (m[1] ?? "")
    .trim()
    .split(" ")
    .filter((f) => f !== "");
}
export const SPAKNOCK_MAIN = fileURLToPath(new URL("../../dist/cli/main.js", import.meta.url));

export type FirewallBackend = "nftables" | "iptables";
export type CaptureMode = "udp" | "pcap";

/** An access.conf stanza: the same fields the fwknopd harness writes, in the same format. */
export type SpaknockdStanza = FwknopdStanza;

export interface SpaknockdOptions {
  readonly backend: FirewallBackend;
  /** `udp`: the silent UDP socket; `pcap`: libpcap on the server veth (`-i <iface>`). */
  readonly capture: CaptureMode;
  /** access.conf stanzas in file order. */
  readonly stanzas: readonly SpaknockdStanza[];
  /** Raw `KEYWORD value` lines appended to fwknopd.conf. */
  readonly extraConfLines?: readonly string[];
  /** NFT_TABLE; default a name unique to this daemon. */
  readonly table?: string;
  /** IPT_CHAIN; default a name unique to this daemon. */
  readonly chain?: string;
  /** Pass `-v`; default false. */
  readonly verbose?: boolean;
  /** How long to wait for `spaknockd started`; default 15 s. */
  readonly startTimeoutMs?: number;
}

/** One grant as the firewall holds it, whichever backend. */
export interface SpaknockdRule {
  readonly sourceIp: string;
  readonly proto: "tcp" | "udp";
  readonly port: number;
  /** Epoch seconds (nftables: now + the element's `expires`); null if unknown. */
  readonly expiresAt: number | null;
}

export interface Spaknockd {
  /** PID of the current daemon process (changes on restart()). */
  readonly pid: number;
  readonly backend: FirewallBackend;
  readonly capture: CaptureMode;
  readonly dir: string;
  readonly confPath: string;
  readonly accessPath: string;
  readonly digestPath: string;
  readonly table: string;
  readonly chain: string;
  /** Every stdout/stderr line of every run so far (restart() appends, never clears). */
  readonly lines: readonly string[];
  /** Number of lines so far; pass it to waitForLog to ignore what was logged before. */
  mark(): number;
  /** Resolves with the first line at index >= `fromLine` matching `re`. */
  waitForLog(re: RegExp, timeoutMs?: number, fromLine?: number): Promise<string>;
  /** Lines at index >= `fromLine` matching `re`. */
  linesMatching(re: RegExp, fromLine?: number): string[];
  /** True while the current daemon process has not exited. */
  isRunning(): boolean;
  /** SIGTERM (the daemon removes its grants), SIGKILL after a grace period. Idempotent. */
  stop(): Promise<void>;
  /** SIGKILL: the daemon gets no chance to clean up. Resolves once it has exited. */
  kill9(): Promise<void>;
  /** Sends SIGHUP (reload). */
  sighup(): void;
  /** Starts the daemon again with the same files (config, access.conf, digest cache). */
  restart(): Promise<void>;
  /** The grants spaknock's table/chain holds right now. */
  listRules(): Promise<SpaknockdRule[]>;
  /** `spaknockd --fw-list [args]` (e.g. `--json`) with the daemon's config. */
  fwList(args?: readonly string[]): Promise<ExecResult>;
  /** `spaknockd --fw-revoke <target> [args]` with the daemon's config. */
  fwRevoke(target: string, args?: readonly string[]): Promise<ExecResult>;
  /** `spaknockd --fw-flush` with the daemon's config. */
  fwFlush(): Promise<ExecResult>;
  /** VmRSS of the daemon process in kB, from /proc/<pid>/status. */
  rssKb(): Promise<number>;
}

const READY_LINE = /spaknockd started: /;
const DEFAULT_START_TIMEOUT_MS = 15_000;
const DEFAULT_WAIT_TIMEOUT_MS = 10_000;
const STOP_GRACE_MS = 5_000;

/** Why spaknockd e2e tests cannot run on this host (beyond netnsSkipReason), or undefined. */
export function spaknockdSkipReason(backend?: FirewallBackend): string | undefined {
  if (!existsSync(SPAKNOCKD_MAIN) || !existsSync(SPAKNOCK_MAIN)) {
    return peerSkipReason({
      reason: "dist/spaknockd/main.js or dist/cli/main.js is missing: run `npm run build` first",
    });
  }
  if (backend === "nftables" && findExecutable("nft") === undefined) {
    return peerSkipReason({
      reason: "`nft` is not installed (apt-get install nftables)",
      aptPackage: "nftables",
    });
  }
  if (backend === "iptables" && findExecutable("iptables-restore") === undefined) {
    return peerSkipReason({
      reason: "`iptables-restore` is not installed (apt-get install iptables)",
      aptPackage: "iptables",
    });
  }
  return undefined;
}

/** Why pcap capture cannot be tested here (the optional `cap` module), or undefined. */
export function pcapSkipReason(): string | undefined {
  try {
    createRequire(import.meta.url)("cap");
    return undefined;
  } catch (err) {
    return peerSkipReason({
      reason: `the optional 'cap' module does not load (apt-get install libpcap-dev, then npm ci): ${err instanceof Error ? err.message.split("\n")[0] : String(err)}`,
      aptPackage: "libpcap-dev",
    });
  }
}

let nameCounter = 0;

/** A firewall object name that no other daemon of this run uses: letters, digits, `_`. */
function uniqueName(prefix: string): string {
  return `${prefix}${process.pid.toString(36)}_${(nameCounter++).toString(36)}_${randomBytes(2).toString("hex")}`;
}

export async function startSpaknockd(net: TestNet, options: SpaknockdOptions): Promise<Spaknockd> {
  if (options.stanzas.length === 0)
    throw new TypeError("spaknockd needs at least one access stanza");
  const dir = net.makeTempDir("spaknockd");
  const table = options.table ?? uniqueName("spk_");
  const chain = options.chain ?? uniqueName("SPK_").toUpperCase();
  const files = {
    dir,
    confPath: join(dir, "fwknopd.conf"),
    accessPath: join(dir, "access.conf"),
    digestPath: join(dir, "digest.cache"),
    pidPath: join(dir, "spaknockd.pid"),
  };
  const conf = [
    `FIREWALL_BACKEND ${options.backend}`,
    `NFT_TABLE ${table}`,
    `IPT_CHAIN ${chain}`,
    `DIGEST_FILE ${files.digestPath}`,
    `FWKNOP_RUN_DIR ${dir}`,
    `FWKNOP_PID_FILE ${files.pidPath}`,
    `ENABLE_UDP_SERVER ${options.capture === "udp" ? "Y" : "N"}`,
    `PCAP_INTF ${net.server.iface}`,
    ...(options.extraConfLines ?? []),
  ];
  await writeFile(files.confPath, `${conf.join("\n")}\n`, { mode: 0o600, flag: "wx" });
  await writeFile(files.accessPath, renderAccessConf(options.stanzas), {
    mode: 0o600,
    flag: "wx",
  });

  // No key ever appears on this command line: they are in the 0600 access.conf.
  const argv = [
    process.execPath,
    ...spaknockdNodeFlags(),
    SPAKNOCKD_MAIN,
    "-f",
    "-c",
    files.confPath,
    "-a",
    files.accessPath,
    "--firewall",
    options.backend,
  ];
  if (options.capture === "pcap") argv.push("-i", net.server.iface);
  if (options.verbose === true) argv.push("-v");

  const daemon = new SpaknockdProcess(net, options, files, table, chain, argv);
  net.addCleanup(() => daemon.stop());
  await daemon.launch(options.startTimeoutMs ?? DEFAULT_START_TIMEOUT_MS);
  return daemon;
}

interface DaemonFiles {
  readonly dir: string;
  readonly confPath: string;
  readonly accessPath: string;
  readonly digestPath: string;
}

class SpaknockdProcess implements Spaknockd {
  private readonly log = new ProcessLog("spaknockd", DEFAULT_WAIT_TIMEOUT_MS);
  readonly backend: FirewallBackend;
  readonly capture: CaptureMode;
  readonly dir: string;
  readonly confPath: string;
  readonly accessPath: string;
  readonly digestPath: string;
  private child: ChildProcess | undefined;
  private currentPid = 0;
  private stopping: Promise<void> | undefined;

  constructor(
    private readonly net: TestNet,
    private readonly options: SpaknockdOptions,
    files: DaemonFiles,
    readonly table: string,
    readonly chain: string,
    private readonly argv: readonly string[],
  ) {
    this.backend = options.backend;
    this.capture = options.capture;
    this.dir = files.dir;
    this.confPath = files.confPath;
    this.accessPath = files.accessPath;
    this.digestPath = files.digestPath;
  }

  get pid(): number {
    return this.currentPid;
  }

  async launch(startTimeoutMs: number): Promise<void> {
    const from = this.log.mark();
    const child = this.net.spawn(this.net.server.ns, this.argv, { cwd: this.dir });
    if (child.pid === undefined) throw new Error("spaknockd did not start");
    this.child = child;
    this.currentPid = child.pid;
    this.stopping = undefined;
    this.log.follow(child);
    try {
      await this.waitForLog(READY_LINE, startTimeoutMs, from);
    } catch (err) {
      await this.stop();
      throw err;
    }
  }

  get lines(): readonly string[] {
    return this.log.lines;
  }

  mark(): number {
    return this.log.mark();
  }

  linesMatching(re: RegExp, fromLine = 0): string[] {
    return this.log.lines.slice(fromLine).filter((l) => re.test(l));
  }

  isRunning(): boolean {
    return this.log.running;
  }

  waitForLog(re: RegExp, timeoutMs?: number, fromLine?: number): Promise<string> {
    return this.log.waitForLog(re, timeoutMs, fromLine);
  }

  stop(): Promise<void> {
    const child = this.child;
    if (child === undefined) return Promise.resolve();
    this.stopping ??= terminate(child, STOP_GRACE_MS);
    return this.stopping;
  }

  async kill9(): Promise<void> {
    const child = this.child;
    if (child === undefined || child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
    process.kill(this.currentPid, "SIGKILL");
    await exited;
  }

  sighup(): void {
    if (!this.log.running) throw new Error("spaknockd is not running");
    process.kill(this.currentPid, "SIGHUP");
  }

  async restart(): Promise<void> {
    await this.stop();
    await this.launch(this.options.startTimeoutMs ?? DEFAULT_START_TIMEOUT_MS);
  }

  async listRules(): Promise<SpaknockdRule[]> {
    if (this.backend === "nftables") {
      const result = await this.net.exec(this.net.server.ns, [
        "nft",
        "-j",
        "list",
        "table",
        "inet",
        this.table,
      ]);
      if (result.code !== 0) return [];
      return parseNftAllowSets(result.stdout, Math.floor(Date.now() / 1000));
    }
    const rules: SpaknockdRule[] = [];
    for (const tool of ["iptables", "ip6tables"]) {
      const result = await this.net.exec(this.net.server.ns, [tool, "-w", "-S", this.chain]);
      if (result.code === 0) rules.push(...parseIptablesGrants(result.stdout, this.chain));
    }
    return rules;
  }

  fwList(args: readonly string[] = []): Promise<ExecResult> {
    return this.runOnce(["--fw-list", ...args]);
  }

  fwRevoke(target: string, args: readonly string[] = []): Promise<ExecResult> {
    return this.runOnce(["--fw-revoke", target, ...args]);
  }

  fwFlush(): Promise<ExecResult> {
    return this.runOnce(["--fw-flush"]);
  }

  async rssKb(): Promise<number> {
    const status = await readFile(`/proc/${this.currentPid}/status`, "utf8");
    const kb = /^VmRSS:\s+(\d+) kB$/m.exec(status)?.[1];
    if (kb === undefined) throw new Error(`no VmRSS in /proc/${this.currentPid}/status`);
    return Number(kb);
  }

  private runOnce(args: readonly string[]): Promise<ExecResult> {
    return runSpaknockd(this.net, [
      "-c",
      this.confPath,
      "-a",
      this.accessPath,
      "--firewall",
      this.backend,
      ...args,
    ]);
  }
}

/** Runs `spaknockd <args>` to completion in the server namespace (for one-shot commands). */
export function runSpaknockd(
  net: TestNet,
  args: readonly string[],
  timeoutMs = 15_000,
): Promise<ExecResult> {
  return net.exec(net.server.ns, [process.execPath, SPAKNOCKD_MAIN, ...args], { timeoutMs });
}

interface NftJsonItem {
  set?: {
    name?: string;
    elem?: { elem?: { val?: { concat?: [string, number] }; expires?: number } }[];
  };
}

const NFT_ALLOW_SETS: Readonly<Record<string, "tcp" | "udp">> = {
  allow_tcp: "tcp",
  allow_udp: "udp",
  allow6_tcp: "tcp",
  allow6_udp: "udp",
};

/** The elements of allow_tcp/allow_udp (IPv4) and allow6_* (IPv6) in `nft -j list table` output. */
export function parseNftAllowSets(json: string, nowSec: number): SpaknockdRule[] {
  const doc = JSON.parse(json) as { nftables?: NftJsonItem[] };
  const rules: SpaknockdRule[] = [];
  for (const item of doc.nftables ?? []) {
    const proto = NFT_ALLOW_SETS[item.set?.name ?? ""];
    if (proto === undefined) continue;
    for (const e of item.set?.elem ?? []) {
      const concat = e.elem?.val?.concat;
      if (concat === undefined) continue;
      const expires = e.elem?.expires;
      rules.push({
        sourceIp: concat[0],
        proto,
        port: concat[1],
        expiresAt: expires === undefined ? null : nowSec + expires,
      });
    }
  }
  return rules;
}

const IPTABLES_GRANT =
  /^-A (\S+) -s (\d+\.\d+\.\d+\.\d+(?=\/32)|[0-9a-f:]+(?=\/128))\/(?:32|128) -p (tcp|udp) -m (?:tcp|udp) --dport (\d+) -m comment --comment "?_exp_(\d+)"? -j ACCEPT$/;

/** The `_exp_` ACCEPT rules of `chain` in `iptables -S <chain>` (or `ip6tables -S`) output. */
export function parseIptablesGrants(output: string, chain: string): SpaknockdRule[] {
  const rules: SpaknockdRule[] = [];
  for (const line of output.split("\n")) {
    const m = IPTABLES_GRANT.exec(line.trim());
    if (m === null || m[1] !== chain) continue;
    rules.push({
      sourceIp: m[2] as string,
      proto: m[3] as "tcp" | "udp",
      port: Number(m[4]),
      expiresAt: Number(m[5]),
    });
  }
  return rules;
}

/** Test keys for one access stanza, as base64 of random bytes. */
export interface SpaknockKeys {
  readonly keyBase64: string;
  readonly hmacKeyBase64: string;
}

export function randomSpaKeys(): SpaknockKeys {
  return {
    keyBase64: randomBytes(32).toString("base64"),
    hmacKeyBase64: randomBytes(64).toString("base64"),
  };
}

/** The JOSE profile's key files, for `SERVER_KEY_FILE` and a stanza's `AUTHORIZED_KEYS`. */
export interface JoseKeyFiles {
  /** The server's private X25519 JWK, 0600. */
  readonly serverKeyFile: string;
  /** The users' public keys as a JWK Set, 0644 (public keys may be read by anyone). */
  readonly authorizedKeysFile: string;
}

/** Writes `server.jwk` and `team.jwks` into `dir`, with the modes spaknockd expects. */
export async function writeJoseKeyFiles(
  dir: string,
  server: TestJwkPair,
  users: readonly { key: TestJwkPair; name: string }[],
): Promise<JoseKeyFiles> {
  const files = {
    serverKeyFile: join(dir, "server.jwk"),
    authorizedKeysFile: join(dir, "team.jwks"),
  };
  await writeFile(files.serverKeyFile, JSON.stringify(server.privateJwk), { mode: 0o600 });
  await writeFile(files.authorizedKeysFile, authorizedKeysText(users), { mode: 0o644 });
  return files;
}

export interface KnockRequest {
  readonly keys: SpaknockKeys;
  /** e.g. "tcp/22". */
  readonly access: string;
  /** The `-a` address. */
  readonly allowIp: string;
  readonly server: string;
  /** `-f`: ask for this many seconds. */
  readonly fwTimeout?: number;
  readonly user?: string;
}

function spaknockArgs(req: KnockRequest): string[] {
  const args = [
    "-A",
    req.access,
    "-a",
    req.allowIp,
    "-D",
    req.server,
    "-U",
    req.user ?? "alice",
    `--key-base64-rijndael=${req.keys.keyBase64}`,
    `--key-base64-hmac=${req.keys.hmacKeyBase64}`,
  ];
  if (req.fwTimeout !== undefined) args.push("-f", String(req.fwTimeout));
  return args;
}

/** `spaknock` sends one knock from the client namespace; throws if it exits non-zero. */
export async function spaknockKnock(net: TestNet, req: KnockRequest): Promise<void> {
  const result = await net.exec(net.client.ns, [
    process.execPath,
    SPAKNOCK_MAIN,
    ...spaknockArgs(req),
  ]);
  if (result.code !== 0) {
    throw new Error(`spaknock exited with ${result.code}: ${result.stderr.trim()}`);
  }
}

/** `spaknock -T`: the exact wire string of a knock, built in the client namespace, never sent. */
export async function spaknockWire(net: TestNet, req: KnockRequest): Promise<string> {
  const result = await net.exec(net.client.ns, [
    process.execPath,
    SPAKNOCK_MAIN,
    ...spaknockArgs(req),
    "-T",
  ]);
  const wire = result.stdout.trimEnd().split("\n").at(-1)?.trim() ?? "";
  if (result.code !== 0 || !/^[A-Za-z0-9+/]+$/.test(wire)) {
    throw new Error(`spaknock -T exited with ${result.code}: ${result.stderr.trim()}`);
  }
  return wire;
}

export interface HeldConnection {
  /** Writes `text` and resolves with what the echo server sends back. */
  echo(text: string, timeoutMs?: number): Promise<string>;
  close(): Promise<void>;
}

// Runs as `node -e SCRIPT host port`: one TCP connection kept open; stdin lines go out, replies
// come back on stdout prefixed with "ECHO ".
const HOLD_SCRIPT = `
const net = require("node:net");
const [host, port] = process.argv.slice(1);
const socket = net.connect({ host, port: Number(port) });
socket.setEncoding("utf8");
socket.on("connect", () => process.stdout.write("CONNECTED\\n"));
socket.on("data", (d) => process.stdout.write("ECHO " + d));
socket.on("error", (e) => { process.stdout.write("ERROR " + e.code + "\\n"); process.exit(1); });
socket.on("close", () => process.exit(0));
process.stdin.setEncoding("utf8").on("data", (d) => socket.write(d));
`;

/** Opens one TCP connection from `ns` and keeps it open until close() or destroy(). */
export async function holdConnection(
  net: TestNet,
  ns: string,
  ip: string,
  port: number,
  timeoutMs = 3_000,
): Promise<HeldConnection> {
  const child = net.spawn(ns, [process.execPath, "-e", HOLD_SCRIPT, ip, String(port)], {
    stdio: ["pipe", "pipe", "pipe"],
  });
  let out = "";
  const waiters = new Set<() => void>();
  child.stdout?.setEncoding("utf8").on("data", (chunk: string) => {
    out += chunk;
    for (const w of [...waiters]) w();
  });
  child.once("exit", () => {
    out += "EXITED\n";
    for (const w of [...waiters]) w();
  });
  const waitFor = (re: RegExp, ms: number): Promise<string> =>
    new Promise((resolve, reject) => {
      const check = (): void => {
        const m = re.exec(out);
        if (m !== null) {
          finish();
          resolve(m[1] ?? m[0]);
        } else if (out.includes("EXITED") || out.includes("ERROR")) {
          finish();
          reject(new Error(`held connection ended: ${out.trim()}`));
        }
      };
      const timer = setTimeout(() => {
        finish();
        reject(new Error(`held connection: no ${re} within ${ms} ms: ${out.trim()}`));
      }, ms);
      const finish = (): void => {
        clearTimeout(timer);
        waiters.delete(check);
      };
      waiters.add(check);
      check();
    });
  await waitFor(/CONNECTED/, timeoutMs);
  return {
    async echo(text, ms = 3_000) {
      if (/\n/.test(text)) throw new TypeError("echo text must be one line");
      const from = out.length;
      child.stdin?.write(`${text}\n`);
      return new Promise((resolve, reject) => {
        const check = (): void => {
          const at = out.indexOf("ECHO ", from);
          const end = at === -1 ? -1 : out.indexOf("\n", at);
          if (end !== -1) {
            finish();
            resolve(out.slice(at + 5, end));
          } else if (out.includes("EXITED")) {
            finish();
            reject(new Error(`held connection ended before the echo: ${out.trim()}`));
          }
        };
        const timer = setTimeout(() => {
          finish();
          reject(new Error(`held connection: no echo within ${ms} ms: ${out.trim()}`));
        }, ms);
        const finish = (): void => {
          clearTimeout(timer);
          waiters.delete(check);
        };
        waiters.add(check);
        check();
      });
    },
    close: () => terminate(child),
  };
}

export function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}

export const sleep = (ms: number): Promise<void> =>
  new Promise((resolve) => setTimeout(resolve, Math.max(0, ms)));
