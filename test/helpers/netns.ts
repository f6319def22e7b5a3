// Network-namespace harness for the e2e and interop tests and for the bench (`npm run bench`
// compiles this file with tsconfig.harness.json, so both run the same code).
//
// Every test net is a pair of fresh namespaces (server, client) joined by one veth pair, with
// addresses from 198.18.0.0/15 (RFC 2544 benchmarking space) and, where the kernel has IPv6, from
// 2001:db8::/32 (RFC 3849 documentation space) only. Nothing is attached to the host namespace, so
// traffic sent inside a test net cannot leave it.
//
// Processes are started through `ip netns exec` (which execs in place, so the child PID is the
// command's PID) and are killed by that PID, never by name.

import { type ChildProcess, execFile, execFileSync, spawn } from "node:child_process";
import { accessSync, constants, existsSync, mkdtempSync, rmSync } from "node:fs";
import { rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { delimiter, join } from "node:path";
import { threadId } from "node:worker_threads";
import { type MissingPeer, peerSkipReason } from "./peers.js";

export interface NetnsEndpoint {
  /** Namespace name, for `ip netns exec`. */
  readonly ns: string;
  /** Primary IPv4 address of `iface` (no prefix length). */
  readonly ip: string;
  /** IPv6 address of `iface` (no prefix length); null when the kernel has no IPv6. */
  readonly ip6: string | null;
  /** The veth end inside this namespace. */
  readonly iface: string;
}

export interface ExecOptions {
  /** Kill the command (SIGKILL) after this long; default 10 s. */
  readonly timeoutMs?: number;
  /** Written to the command's stdin, which is then closed. */
  readonly input?: string;
  /** Environment for the command; default the test process environment. */
  readonly env?: NodeJS.ProcessEnv;
  readonly cwd?: string;
  /** Throw when the command does not exit with status 0. */
  readonly check?: boolean;
}

export interface ExecResult {
  /** Exit status, or null when the command was killed by a signal. */
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
  readonly stdout: string;
  readonly stderr: string;
}

export interface SpawnOptions {
  readonly env?: NodeJS.ProcessEnv;
  readonly cwd?: string;
  /** Default: stdin ignored, stdout and stderr piped. */
  readonly stdio?: "pipe" | ["ignore" | "pipe", "pipe" | "ignore", "pipe" | "ignore"];
}

export type Cleanup = () => void | Promise<void>;

export interface TestNet {
  /** Unique per test net: `<pid>-<threadId>-<n>`. */
  readonly id: string;
  /** `198.18.X` or `198.19.X`: the /24 both veth ends live in. */
  readonly subnetPrefix: string;
  /** `2001:db8:5a:X:`: the IPv6 /64 both veth ends live in (append `:1`); null without IPv6. */
  readonly subnet6Prefix: string | null;
  readonly server: NetnsEndpoint;
  readonly client: NetnsEndpoint;
  /** Run a command to completion inside `ns` (no shell). Never throws unless `check` is set. */
  exec(ns: string, argv: readonly string[], opts?: ExecOptions): Promise<ExecResult>;
  /** Start a long-running command inside `ns`; it is killed by PID on destroy(). */
  spawn(ns: string, argv: readonly string[], opts?: SpawnOptions): ChildProcess;
  /** Add another address from the same /24 to the client veth and return it. */
  addClientAddress(): Promise<string>;
  /** Add another IPv6 address from the /64 to the client veth and return it. */
  addClientIpv6Address(): Promise<string>;
  /** Add `count` more addresses from the /24 to the client veth, in one `ip` call. */
  addClientAddresses(count: number): Promise<string[]>;
  /**
   * Make every address of `cidr` local to the client (a `local` route on its loopback, so it can
   * bind to and send from any of them) and route `cidr` back through the veth on the server, so
   * datagrams from those addresses pass reverse-path checks there: many senders from one process.
   */
  allowClientSourcesFrom(cidr: string): Promise<void>;
  /** Make `ip` the source address the client namespace picks for traffic to the server. */
  setClientSourceAddress(ip: string): Promise<void>;
  /** A fresh 0700 directory removed on destroy() (and on process exit). */
  makeTempDir(label: string): string;
  /** Run `fn` at the start of destroy(), before processes are killed (last added runs first). */
  addCleanup(fn: Cleanup): void;
  /** Idempotent: runs cleanups, kills every process started here by PID, deletes the namespaces. */
  destroy(): Promise<void>;
}

const DEFAULT_EXEC_TIMEOUT_MS = 10_000;
const KILL_GRACE_MS = 2_000;
const MAX_OUTPUT_BYTES = 32 * 1024 * 1024;
const NS_PREFIX = "spk-";
// 198.18.0.0/15 holds 512 /24 subnets.
const SUBNET_COUNT = 512;
const FIRST_EXTRA_CLIENT_HOST = 3;
const LAST_HOST = 254;

let netCounter = 0;
const liveNets = new Set<TestNetImpl>();
let safetyNetsInstalled = false;

/** Absolute path of an executable found on PATH or in the sbin directories, if any. */
export function findExecutable(name: string): string | undefined {
  const dirs = [
    ...(process.env.PATH ?? "").split(delimiter),
    "/usr/local/sbin",
    "/usr/sbin",
    "/sbin",
  ];
  for (const dir of dirs) {
    if (dir === "") continue;
    const candidate = join(dir, name);
    try {
      accessSync(candidate, constants.X_OK);
      return candidate;
    } catch {
      // not here; keep looking
    }
  }
  return undefined;
}

const kernelHasIpv6 = (): boolean => existsSync("/proc/sys/net/ipv6");

/** Why IPv6 tests cannot run in a test net, or undefined when they can (netnsSkipReason first). */
export function ipv6SkipReason(): string | undefined {
  if (!kernelHasIpv6()) return peerSkipReason({ reason: "the kernel has no IPv6" });
  if (findExecutable("ip6tables") === undefined)
    return peerSkipReason({ reason: "`ip6tables` is not installed", aptPackage: "iptables" });
  return undefined;
}

/** Why network-namespace tests cannot run on this host, or undefined when they can. */
export function netnsSkipReason(): string | undefined {
  return peerSkipReason(netnsMissing());
}

function netnsMissing(): MissingPeer | undefined {
  if (process.platform !== "linux") return { reason: "network namespaces need Linux" };
  if (process.getuid?.() !== 0)
    return { reason: "network namespaces need root (run the tests as root)" };
  if (findExecutable("ip") === undefined)
    return { reason: "iproute2 `ip` is not installed", aptPackage: "iproute2" };
  if (findExecutable("iptables") === undefined)
    return { reason: "`iptables` is not installed", aptPackage: "iptables" };
  return undefined;
}

export async function createTestNet(): Promise<TestNet> {
  const missing = netnsMissing();
  if (missing !== undefined) throw new Error(`cannot create a test net: ${missing.reason}`);
  installSafetyNets();

  const n = netCounter++;
  const id = `${process.pid}-${threadId}-${n}`;
  // Each pair is isolated, so equal subnets in two nets would still work; distinct ones just keep
  // logs and rules from concurrent runs (other pids, worker threads) easy to tell apart.
  const subnetIndex = (process.pid * 16 + threadId * 4 + n) % SUBNET_COUNT;
  const subnetPrefix = `198.${18 + Math.floor(subnetIndex / 256)}.${subnetIndex % 256}`;
  // The fourth group is never 0: `2001:db8:5a:0::2` is not RFC 5952 text (that is
  // `2001:db8:5a::2`), and tests compare these addresses with what the daemon logs.
  const subnet6Prefix = kernelHasIpv6() ? `2001:db8:5a:${(subnetIndex + 1).toString(16)}:` : null;
  const server: NetnsEndpoint = {
    ns: `${NS_PREFIX}${id}-srv`,
    ip: `${subnetPrefix}.1`,
    ip6: subnet6Prefix === null ? null : `${subnet6Prefix}:1`,
    // The veth ends are created directly inside their namespaces, so these short names never
    // exist in the host namespace and cannot collide with another test net.
    iface: `spk${n}s`,
  };
  const client: NetnsEndpoint = {
    ns: `${NS_PREFIX}${id}-cli`,
    ip: `${subnetPrefix}.2`,
    ip6: subnet6Prefix === null ? null : `${subnet6Prefix}:2`,
    iface: `spk${n}c`,
  };

  const net = new TestNetImpl(id, subnetPrefix, subnet6Prefix, server, client);
  liveNets.add(net);
  try {
    await runIp(["netns", "add", server.ns]);
    net.namespaces.push(server.ns);
    await runIp(["netns", "add", client.ns]);
    net.namespaces.push(client.ns);
    await runIp([
      "link",
      "add",
      "name",
      server.iface,
      "netns",
      server.ns,
      "type",
      "veth",
      "peer",
      "name",
      client.iface,
      "netns",
      client.ns,
    ]);
    for (const end of [server, client]) {
      await runIp(["-n", end.ns, "link", "set", "lo", "up"]);
      await runIp(["-n", end.ns, "addr", "add", `${end.ip}/24`, "dev", end.iface]);
      // nodad: usable at once, not "tentative" for a second of duplicate detection.
      if (end.ip6 !== null)
        await runIp(["-n", end.ns, "addr", "add", `${end.ip6}/64`, "dev", end.iface, "nodad"]);
      await runIp(["-n", end.ns, "link", "set", end.iface, "up"]);
    }
  } catch (err) {
    await net.destroy();
    throw err;
  }
  return net;
}

class TestNetImpl implements TestNet {
  readonly namespaces: string[] = [];
  private readonly children = new Map<number, ChildProcess>();
  private readonly tempDirs = new Set<string>();
  private readonly cleanups: Cleanup[] = [];
  private nextClientHost = FIRST_EXTRA_CLIENT_HOST;
  private nextClientIpv6Host = FIRST_EXTRA_CLIENT_HOST;
  private destroying: Promise<void> | undefined;

  constructor(
    readonly id: string,
    readonly subnetPrefix: string,
    readonly subnet6Prefix: string | null,
    readonly server: NetnsEndpoint,
    readonly client: NetnsEndpoint,
  ) {}

  exec(ns: string, argv: readonly string[], opts: ExecOptions = {}): Promise<ExecResult> {
    this.assertUsable(ns, argv);
    const timeout = opts.timeoutMs ?? DEFAULT_EXEC_TIMEOUT_MS;
    return new Promise((resolve, reject) => {
      const child = execFile(
        "ip",
        ["netns", "exec", ns, ...argv],
        {
          timeout,
          killSignal: "SIGKILL",
          maxBuffer: MAX_OUTPUT_BYTES,
          env: opts.env ?? process.env,
          cwd: opts.cwd,
          encoding: "utf8",
        },
        (err, stdout, stderr) => {
          if (child.pid !== undefined) this.children.delete(child.pid);
          const result: ExecResult = {
            code: child.exitCode,
            signal: child.signalCode,
            stdout,
            stderr,
          };
          if (err !== null && typeof err.code === "string") {
            // spawn failure (ENOENT, E2BIG, ...): there is no exit status to report
            reject(err);
            return;
          }
          if (opts.check === true && result.code !== 0) {
            reject(new Error(describeFailure(["ip", "netns", "exec", ns, ...argv], result)));
            return;
          }
          resolve(result);
        },
      );
      if (child.pid !== undefined) this.children.set(child.pid, child);
      // A command that exits without reading stdin makes the write fail with EPIPE.
      child.stdin?.on("error", () => {});
      child.stdin?.end(opts.input ?? "");
    });
  }

  spawn(ns: string, argv: readonly string[], opts: SpawnOptions = {}): ChildProcess {
    this.assertUsable(ns, argv);
    const child = spawn("ip", ["netns", "exec", ns, ...withParentDeathSignal(argv)], {
      stdio: opts.stdio ?? ["ignore", "pipe", "pipe"],
      env: opts.env ?? process.env,
      cwd: opts.cwd,
    });
    const pid = child.pid;
    if (pid !== undefined) {
      this.children.set(pid, child);
      child.once("exit", () => this.children.delete(pid));
    }
    // Without a listener an ENOENT would crash the test process; exit/close still fire.
    child.on("error", () => {});
    return child;
  }

  async addClientAddress(): Promise<string> {
    const [ip] = await this.addClientAddresses(1);
    if (ip === undefined) throw new Error(`test net ${this.id}: no client address added`);
    return ip;
  }

  async addClientIpv6Address(): Promise<string> {
    if (this.subnet6Prefix === null) throw new Error(`test net ${this.id}: the kernel has no IPv6`);
    const ip = `${this.subnet6Prefix}:${(this.nextClientIpv6Host++).toString(16)}`;
    await runIp([
      "-n",
      this.client.ns,
      "addr",
      "add",
      `${ip}/64`,
      "dev",
      this.client.iface,
      "nodad",
    ]);
    return ip;
  }

  async addClientAddresses(count: number): Promise<string[]> {
    if (this.nextClientHost + count - 1 > LAST_HOST)
      throw new Error(`test net ${this.id}: no client addresses left for ${count} more`);
    const ips: string[] = [];
    for (let i = 0; i < count; i++) ips.push(`${this.subnetPrefix}.${this.nextClientHost++}`);
    const script = ips.map((ip) => `addr add ${ip}/24 dev ${this.client.iface}\n`).join("");
    await runIp(["-n", this.client.ns, "-batch", "-"], script);
    return ips;
  }

  async allowClientSourcesFrom(cidr: string): Promise<void> {
    await runIp(["-n", this.client.ns, "route", "add", "local", cidr, "dev", "lo"]);
    await runIp(["-n", this.server.ns, "route", "add", cidr, "dev", this.server.iface]);
  }

  async setClientSourceAddress(ip: string): Promise<void> {
    await runIp([
      "-n",
      this.client.ns,
      "route",
      "replace",
      `${this.subnetPrefix}.0/24`,
      "dev",
      this.client.iface,
      "proto",
      "kernel",
      "scope",
      "link",
      "src",
      ip,
    ]);
  }

  makeTempDir(label: string): string {
    const dir = mkdtempSync(join(tmpdir(), `spk-${this.id}-${label}-`));
    this.tempDirs.add(dir);
    return dir;
  }

  addCleanup(fn: Cleanup): void {
    this.cleanups.push(fn);
  }

  destroy(): Promise<void> {
    this.destroying ??= this.teardown();
    return this.destroying;
  }

  /** Synchronous last resort for process 'exit': no graceful stops, just SIGKILL and delete. */
  destroySync(): void {
    for (const pid of this.children.keys()) killQuietly(pid, "SIGKILL");
    for (const ns of this.namespaces) {
      for (const pid of namespacePidsSync(ns)) killQuietly(pid, "SIGKILL");
      try {
        execFileSync("ip", ["netns", "del", ns], { stdio: "ignore" });
      } catch {
        // already gone
      }
    }
    for (const dir of this.tempDirs) rmSync(dir, { recursive: true, force: true });
  }

  private async teardown(): Promise<void> {
    const errors: unknown[] = [];
    for (const fn of this.cleanups.splice(0).reverse()) {
      try {
        await fn();
      } catch (err) {
        errors.push(err);
      }
    }
    await Promise.all([...this.children.values()].map((child) => terminate(child)));
    for (const ns of this.namespaces) {
      // Descendants of our processes (e.g. an iptables run by fwknopd) live only in our namespaces.
      for (const pid of await namespacePids(ns)) killQuietly(pid, "SIGKILL");
      try {
        await runIp(["netns", "del", ns]);
      } catch (err) {
        errors.push(err);
      }
    }
    for (const dir of this.tempDirs) await rm(dir, { recursive: true, force: true });
    liveNets.delete(this);
    if (errors.length > 0) throw new AggregateError(errors, `test net ${this.id}: teardown failed`);
  }

  private assertUsable(ns: string, argv: readonly string[]): void {
    if (this.destroying !== undefined) throw new Error(`test net ${this.id} is destroyed`);
    if (!this.namespaces.includes(ns))
      throw new Error(`namespace ${ns} is not part of test net ${this.id}`);
    if (argv.length === 0) throw new TypeError("argv must name a command");
  }
}

/**
 * The admin's own rule that closes the guarded TCP ports in the server namespace, appended to
 * INPUT after whatever the daemon under test put first: `ports` is iptables' `--dport` (a port or
 * `from:to`; all ports when omitted), `how` a silent DROP or a REJECT with a TCP reset (a closed
 * port then answers at once, so a test need not wait out a timeout). `families` [4, 6] closes
 * them to IPv6 too, with the same rule in ip6tables.
 */
export async function closeServerTcp(
  net: TestNet,
  how: "drop" | "reset",
  ports?: string,
  families: readonly (4 | 6)[] = [4],
): Promise<void> {
  for (const family of families) {
    await net.exec(
      net.server.ns,
      [
        family === 4 ? "iptables" : "ip6tables",
        "-w",
        "-A",
        "INPUT",
        "-p",
        "tcp",
        ...(ports === undefined ? [] : ["--dport", ports]),
        ...(how === "drop" ? ["-j", "DROP"] : ["-j", "REJECT", "--reject-with", "tcp-reset"]),
      ],
      { check: true },
    );
  }
}

export interface SourceOptions {
  /** Bind the socket to this local address (e.g. one from addClientAddress()). */
  readonly sourceIp?: string;
}

// Runs inside the namespace as `node -e SCRIPT host port timeoutMs [sourceIp]`.
const TCP_CONNECT_SCRIPT = `
const net = require("node:net");
const [host, port, ms, localAddress] = process.argv.slice(1);
const socket = net.connect({ host, port: Number(port), localAddress: localAddress || undefined });
setTimeout(() => process.exit(2), Number(ms));
socket.on("connect", () => { socket.destroy(); process.exit(0); });
socket.on("error", () => process.exit(1));
`;

/** True when a TCP handshake from `fromNs` to `toIp:port` completes within `timeoutMs`. */
export async function tcpConnect(
  net: TestNet,
  fromNs: string,
  toIp: string,
  port: number,
  timeoutMs = 1_500,
  opts: SourceOptions = {},
): Promise<boolean> {
  const argv = [process.execPath, "-e", TCP_CONNECT_SCRIPT, toIp, String(port), String(timeoutMs)];
  if (opts.sourceIp !== undefined) argv.push(opts.sourceIp);
  const result = await net.exec(fromNs, argv, { timeoutMs: timeoutMs + 5_000 });
  return result.code === 0;
}

// Runs inside the namespace as `node -e SCRIPT host port payloadBase64 [sourceIp]`.
const UDP_SEND_SCRIPT = `
const dgram = require("node:dgram");
const [host, port, payload, localAddress] = process.argv.slice(1);
const socket = dgram.createSocket(host.includes(":") ? "udp6" : "udp4");
const send = () => socket.send(Buffer.from(payload, "base64"), Number(port), host, (err) => {
  socket.close();
  process.exit(err ? 1 : 0);
});
if (localAddress) socket.bind({ address: localAddress }, send); else send();
`;

/** Send one UDP datagram with exactly `payload` (a string is sent as its UTF-8 bytes). */
export async function sendUdp(
  net: TestNet,
  fromNs: string,
  toIp: string,
  port: number,
  payload: string | Uint8Array,
  opts: SourceOptions = {},
): Promise<void> {
  const bytes = typeof payload === "string" ? Buffer.from(payload, "utf8") : Buffer.from(payload);
  const argv = [
    process.execPath,
    "-e",
    UDP_SEND_SCRIPT,
    toIp,
    String(port),
    bytes.toString("base64"),
  ];
  if (opts.sourceIp !== undefined) argv.push(opts.sourceIp);
  await net.exec(fromNs, argv, { check: true });
}

export interface TcpListener {
  readonly pid: number;
  readonly port: number;
  stop(): Promise<void>;
}

// Runs inside the namespace as `node -e SCRIPT host port`; echoes whatever it receives.
const TCP_ECHO_SCRIPT = `
const net = require("node:net");
const [host, port] = process.argv.slice(1);
const server = net.createServer((socket) => { socket.on("error", () => {}); socket.pipe(socket); });
server.listen(Number(port), host, () => process.stdout.write("LISTENING " + server.address().port + "\\n"));
`;

/** Start a TCP echo server in `ns` (port 0 picks a free one); it is killed on destroy(). */
export async function startTcpListener(
  net: TestNet,
  ns: string,
  port: number,
  host = "0.0.0.0",
  timeoutMs = 5_000,
): Promise<TcpListener> {
  const child = net.spawn(ns, [process.execPath, "-e", TCP_ECHO_SCRIPT, host, String(port)]);
  const pid = child.pid;
  if (pid === undefined) throw new Error(`could not start a TCP listener in ${ns}`);
  let stderr = "";
  child.stderr?.setEncoding("utf8").on("data", (chunk: string) => {
    stderr += chunk;
  });
  const boundPort = await new Promise<number>((resolve, reject) => {
    let stdout = "";
    const fail = (why: string): void => {
      clearTimeout(timer);
      child.off("exit", onExit);
      killQuietly(pid, "SIGKILL");
      reject(new Error(`TCP listener in ${ns} on port ${port}: ${why}: ${stderr.trim()}`));
    };
    const onExit = (code: number | null): void => fail(`exited early (code ${code})`);
    const timer = setTimeout(() => fail(`no LISTENING line after ${timeoutMs} ms`), timeoutMs);
    child.once("exit", onExit);
    child.stdout?.setEncoding("utf8").on("data", (chunk: string) => {
      stdout += chunk;
      const match = /LISTENING (\d+)/.exec(stdout);
      if (match?.[1] !== undefined) {
        clearTimeout(timer);
        child.off("exit", onExit);
        resolve(Number(match[1]));
      }
    });
  });
  return { pid, port: boundPort, stop: () => terminate(child) };
}

/** `ip args...` in the host namespace, with `input` on its stdin (for `-batch -`). */
async function runIp(args: readonly string[], input = ""): Promise<void> {
  await new Promise<void>((resolve, reject) => {
    const child = execFile(
      "ip",
      args,
      { timeout: DEFAULT_EXEC_TIMEOUT_MS, encoding: "utf8" },
      (err, _stdout, stderr) => {
        if (err === null) resolve();
        else reject(new Error(`ip ${args.join(" ")} failed: ${stderr.trim() || err.message}`));
      },
    );
    // ip may exit without reading its stdin (a failed command): ignore the EPIPE.
    child.stdin?.on("error", () => {});
    child.stdin?.end(input);
  });
}

async function namespacePids(ns: string): Promise<number[]> {
  return new Promise((resolve) => {
    execFile("ip", ["netns", "pids", ns], { encoding: "utf8" }, (err, stdout) => {
      resolve(err === null ? parsePids(stdout) : []);
    });
  });
}

function namespacePidsSync(ns: string): number[] {
  try {
    return parsePids(execFileSync("ip", ["netns", "pids", ns], { encoding: "utf8" }));
  } catch {
    return [];
  }
}

function parsePids(text: string): number[] {
  return text
    .split(/\s+/)
    .filter((s) => /^\d+$/.test(s))
    .map(Number)
    .filter((pid) => pid !== process.pid);
}

/** SIGTERM, then SIGKILL after a grace period; resolves once the child has exited. */
export async function terminate(child: ChildProcess, graceMs = KILL_GRACE_MS): Promise<void> {
  const pid = child.pid;
  if (pid === undefined || child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  killQuietly(pid, "SIGTERM");
  const timer = setTimeout(() => killQuietly(pid, "SIGKILL"), graceMs);
  await exited;
  clearTimeout(timer);
}

function killQuietly(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(pid, signal);
  } catch {
    // already exited
  }
}

let setprivPath: string | null | undefined;

// If the test process dies without running its exit hook (SIGKILL, a crashed worker), the kernel
// still kills long-running children: setpriv sets PR_SET_PDEATHSIG and then execs the command.
function withParentDeathSignal(argv: readonly string[]): readonly string[] {
  if (setprivPath === undefined) setprivPath = findExecutable("setpriv") ?? null;
  return setprivPath === null ? argv : [setprivPath, "--pdeathsig", "KILL", "--", ...argv];
}

// Three layers, so an aborted run leaves no namespaces behind:
// 1. process 'exit' and SIGTERM/SIGINT (vitest stops its forks with SIGTERM): synchronous teardown;
// 2. a detached watchdog that notices this process is gone (its stdin pipe closes, even after a
//    SIGKILL) and deletes every `spk-<our pid>-*` namespace and temporary directory;
// 3. at the next run, namespaces of harness processes that no longer exist are swept.
function installSafetyNets(): void {
  if (safetyNetsInstalled) return;
  safetyNetsInstalled = true;
  process.on("exit", destroyAllSync);
  for (const signal of ["SIGTERM", "SIGINT"] as const) {
    process.once(signal, () => {
      destroyAllSync();
      // Re-raise so the default action (terminate) still happens, unless someone else handles it.
      if (process.listenerCount(signal) === 0) process.kill(process.pid, signal);
    });
  }
  const watchdog = spawn(process.execPath, ["-e", WATCHDOG_SCRIPT, String(process.pid), tmpdir()], {
    stdio: ["pipe", "ignore", "ignore"],
    detached: true,
  });
  watchdog.on("error", () => {});
  watchdog.unref();
  (watchdog.stdin as unknown as { unref?: () => void } | null)?.unref?.();
  sweepStaleNamespaces();
}

function destroyAllSync(): void {
  for (const net of liveNets) net.destroySync();
  liveNets.clear();
}

// Runs as `node -e SCRIPT <pid> <tmpdir>`; waits for EOF on stdin, i.e. for <pid> to be gone.
const WATCHDOG_SCRIPT = `
const { execFileSync } = require("node:child_process");
const fs = require("node:fs");
const path = require("node:path");
const [pid, tmp] = process.argv.slice(1);
const prefix = "${NS_PREFIX}" + pid + "-";
const run = (args) => { try { return execFileSync("ip", args, { encoding: "utf8" }); } catch { return ""; } };
function cleanup() {
  for (const line of run(["netns", "list"]).split("\\n")) {
    const ns = line.split(" ")[0];
    if (!ns || !ns.startsWith(prefix)) continue;
    for (const p of run(["netns", "pids", ns]).split(/\\s+/)) {
      if (/^\\d+$/.test(p)) { try { process.kill(Number(p), "SIGKILL"); } catch {} }
    }
    run(["netns", "del", ns]);
  }
  for (const name of fs.readdirSync(tmp)) {
    if (name.startsWith(prefix)) fs.rmSync(path.join(tmp, name), { recursive: true, force: true });
  }
  process.exit(0);
}
process.stdin.on("end", cleanup);
process.stdin.on("error", cleanup);
process.stdin.resume();
`;

const HARNESS_NAMESPACE = /^spk-(\d+)-\d+-\d+-(?:srv|cli)$/;

function sweepStaleNamespaces(): void {
  let list = "";
  try {
    list = execFileSync("ip", ["netns", "list"], { encoding: "utf8" });
  } catch {
    return;
  }
  for (const line of list.split("\n")) {
    const ns = line.split(" ")[0] ?? "";
    const owner = HARNESS_NAMESPACE.exec(ns)?.[1];
    if (owner === undefined || isAlive(Number(owner))) continue;
    for (const pid of namespacePidsSync(ns)) killQuietly(pid, "SIGKILL");
    try {
      execFileSync("ip", ["netns", "del", ns], { stdio: "ignore" });
    } catch {
      // raced with another sweeper
    }
  }
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === "EPERM";
  }
}

function describeFailure(argv: readonly string[], result: ExecResult): string {
  const status = result.code === null ? `signal ${result.signal}` : `status ${result.code}`;
  return `${argv.join(" ")} exited with ${status}: ${result.stderr.trim() || result.stdout.trim()}`;
}
