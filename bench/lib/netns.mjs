// A pair of network namespaces (server, client) joined by one veth pair, for the bench.
//
// Only 198.18.0.0/15 addresses are used and nothing is attached to the host namespace, so no
// bench traffic can leave the pair. Processes are started through `ip netns exec` (which execs in
// place, so the child's PID is the command's PID) and are killed by that PID, never by name.
// Namespaces are deleted at the end, also on error, SIGINT and SIGTERM; a namespace left behind by
// a bench process that no longer exists (e.g. after a SIGKILL) is swept at the next start.

import { execFile, execFileSync, spawn } from "node:child_process";
import { accessSync, constants, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { delimiter, join } from "node:path";

const NS_PREFIX = "spkb-";
const STALE_NAMESPACE = /^spkb-(\d+)-\d+-(?:srv|cli)$/;
const EXEC_TIMEOUT_MS = 15_000;
const KILL_GRACE_MS = 3_000;

/** @type {Set<BenchNet>} */
const liveNets = new Set();
let netCounter = 0;
let safetyNetsInstalled = false;

/** Absolute path of an executable on PATH or in the sbin directories, if any. */
export function findExecutable(name) {
  const dirs = [...(process.env.PATH ?? "").split(delimiter), "/usr/local/sbin", "/usr/sbin"];
  for (const dir of dirs) {
    if (dir === "") continue;
    const candidate = join(dir, name);
    try {
      accessSync(candidate, constants.X_OK);
      return candidate;
    } catch {
      // not here
    }
  }
  return undefined;
}

/** Runs `ip args...` in the host namespace; rejects with ip's stderr. */
export function runIp(args, input) {
  return new Promise((resolve, reject) => {
    const child = execFile(
      "ip",
      args,
      { timeout: EXEC_TIMEOUT_MS, encoding: "utf8" },
      (err, stdout, stderr) => {
        if (err === null) resolve(stdout);
        else reject(new Error(`ip ${args.join(" ")} failed: ${stderr.trim() || err.message}`));
      },
    );
    // ip may exit without reading its stdin (a failed command): ignore the EPIPE.
    child.stdin?.on("error", () => {});
    child.stdin?.end(input ?? "");
  });
}

/**
 * Creates a fresh namespace pair. `label` only names things; the /24 is 198.19.<n>.0/24 with
 * the server at .1 and the client's primary address at .2.
 */
export async function createBenchNet(label) {
  installSafetyNets();
  const n = netCounter++;
  const id = `${process.pid}-${n}`;
  const subnet = `198.19.${(process.pid * 4 + n) % 256}`;
  const net = new BenchNet(id, label, subnet);
  liveNets.add(net);
  try {
    await runIp(["netns", "add", net.server.ns]);
    net.namespaces.push(net.server.ns);
    await runIp(["netns", "add", net.client.ns]);
    net.namespaces.push(net.client.ns);
    // Both veth ends are created inside their namespaces: the names never exist on the host.
    await runIp([
      "link",
      "add",
      "name",
      net.server.iface,
      "netns",
      net.server.ns,
      "type",
      "veth",
      "peer",
      "name",
      net.client.iface,
      "netns",
      net.client.ns,
    ]);
    for (const end of [net.server, net.client]) {
      await runIp(
        ["-n", end.ns, "-batch", "-"],
        [
          "link set lo up",
          `addr add ${end.ip}/24 dev ${end.iface}`,
          `link set ${end.iface} up`,
          "",
        ].join("\n"),
      );
    }
  } catch (err) {
    await net.destroy();
    throw err;
  }
  return net;
}

class BenchNet {
  constructor(id, label, subnet) {
    this.id = id;
    this.label = label;
    this.subnet = subnet;
    // The veth names only exist inside their own namespaces, so they cannot collide.
    this.server = { ns: `${NS_PREFIX}${id}-srv`, ip: `${subnet}.1`, iface: "spkbs" };
    this.client = { ns: `${NS_PREFIX}${id}-cli`, ip: `${subnet}.2`, iface: "spkbc" };
    /** @type {string[]} */
    this.namespaces = [];
    /** @type {Map<number, import("node:child_process").ChildProcess>} */
    this.children = new Map();
    /** @type {string[]} */
    this.tempDirs = [];
    this.nextHost = 3;
    /** @type {Promise<void> | undefined} */
    this.destroying = undefined;
  }

  /** Adds `count` addresses from the /24 to the client veth and returns them. */
  async addClientAddresses(count) {
    if (this.nextHost + count - 1 > 254) throw new Error(`${this.label}: no client addresses left`);
    const ips = [];
    for (let i = 0; i < count; i++) ips.push(`${this.subnet}.${this.nextHost++}`);
    const script = ips.map((ip) => `addr add ${ip}/24 dev ${this.client.iface}`).join("\n");
    await runIp(["-n", this.client.ns, "-batch", "-"], `${script}\n`);
    return ips;
  }

  /**
   * Makes every address of `cidr` local to the client (a `local` route on its loopback, so it can
   * bind to and send from any of them), and routes `cidr` back through the veth on the server,
   * so datagrams from those addresses pass reverse-path checks there. For junk from many sources.
   */
  async allowClientSourcesFrom(cidr) {
    await runIp(["-n", this.client.ns, "route", "add", "local", cidr, "dev", "lo"]);
    await runIp(["-n", this.server.ns, "route", "add", cidr, "dev", this.server.iface]);
  }

  /** Runs a command to completion inside `ns` (no shell); rejects unless it exits 0. */
  exec(ns, argv, input) {
    this.assertUsable(ns);
    return new Promise((resolve, reject) => {
      const child = execFile(
        "ip",
        ["netns", "exec", ns, ...argv],
        { timeout: EXEC_TIMEOUT_MS, killSignal: "SIGKILL", encoding: "utf8" },
        (err, stdout, stderr) => {
          if (child.pid !== undefined) this.children.delete(child.pid);
          if (err === null) resolve(stdout);
          else reject(new Error(`${argv.join(" ")} in ${ns} failed: ${stderr.trim() || err}`));
        },
      );
      if (child.pid !== undefined) this.children.set(child.pid, child);
      child.stdin?.on("error", () => {});
      child.stdin?.end(input ?? "");
    });
  }

  /** Starts a long-running command inside `ns`; it is killed by PID on destroy(). */
  spawn(ns, argv, options = {}) {
    this.assertUsable(ns);
    const child = spawn("ip", ["netns", "exec", ns, ...withParentDeathSignal(argv)], {
      stdio: ["pipe", "pipe", "pipe"],
      ...options,
    });
    const pid = child.pid;
    if (pid !== undefined) {
      this.children.set(pid, child);
      child.once("exit", () => this.children.delete(pid));
    }
    child.on("error", () => {});
    child.stdin?.on("error", () => {});
    return child;
  }

  /** A fresh 0700 directory, removed on destroy(). */
  makeTempDir(label) {
    const dir = mkdtempSync(join(tmpdir(), `${NS_PREFIX}${this.id}-${label}-`));
    this.tempDirs.push(dir);
    return dir;
  }

  destroy() {
    this.destroying ??= this.teardown();
    return this.destroying;
  }

  async teardown() {
    await Promise.all([...this.children.values()].map((child) => terminate(child)));
    for (const ns of this.namespaces) {
      // Descendants of our processes (an iptables run by fwknopd, an nft run by spaknockd).
      for (const pid of namespacePids(ns)) killQuietly(pid, "SIGKILL");
      await runIp(["netns", "del", ns]).catch(() => {});
    }
    for (const dir of this.tempDirs) rmSync(dir, { recursive: true, force: true });
    liveNets.delete(this);
  }

  /** Last resort on process exit: SIGKILL by PID, delete namespaces, synchronously. */
  destroySync() {
    for (const pid of this.children.keys()) killQuietly(pid, "SIGKILL");
    for (const ns of this.namespaces) {
      for (const pid of namespacePids(ns)) killQuietly(pid, "SIGKILL");
      try {
        execFileSync("ip", ["netns", "del", ns], { stdio: "ignore" });
      } catch {
        // already gone
      }
    }
    for (const dir of this.tempDirs) rmSync(dir, { recursive: true, force: true });
  }

  assertUsable(ns) {
    if (this.destroying !== undefined) throw new Error(`${this.label}: namespaces already deleted`);
    if (!this.namespaces.includes(ns)) throw new Error(`${ns} is not part of ${this.label}`);
  }
}

/** SIGTERM, then SIGKILL after a grace period; resolves once the child has exited. */
export async function terminate(child, graceMs = KILL_GRACE_MS) {
  const pid = child.pid;
  if (pid === undefined || child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((resolve) => child.once("exit", resolve));
  killQuietly(pid, "SIGTERM");
  const timer = setTimeout(() => killQuietly(pid, "SIGKILL"), graceMs);
  await exited;
  clearTimeout(timer);
}

function killQuietly(pid, signal) {
  try {
    process.kill(pid, signal);
  } catch {
    // already exited
  }
}

function namespacePids(ns) {
  try {
    return execFileSync("ip", ["netns", "pids", ns], { encoding: "utf8" })
      .split(/\s+/)
      .filter((s) => /^\d+$/.test(s))
      .map(Number)
      .filter((pid) => pid !== process.pid);
  } catch {
    return [];
  }
}

let setprivPath;

// If the bench dies without running its exit hook (SIGKILL), the kernel still kills the daemons:
// setpriv sets PR_SET_PDEATHSIG and then execs the command (same PID).
function withParentDeathSignal(argv) {
  if (setprivPath === undefined) setprivPath = findExecutable("setpriv") ?? null;
  return setprivPath === null ? argv : [setprivPath, "--pdeathsig", "KILL", "--", ...argv];
}

function installSafetyNets() {
  if (safetyNetsInstalled) return;
  safetyNetsInstalled = true;
  sweepStaleNamespaces();
  process.on("exit", destroyAllSync);
  for (const signal of ["SIGINT", "SIGTERM"]) {
    process.once(signal, () => {
      process.stderr.write(`\nbench: ${signal}, removing namespaces\n`);
      destroyAllSync();
      process.exit(130);
    });
  }
}

function destroyAllSync() {
  for (const net of liveNets) net.destroySync();
  liveNets.clear();
}

function sweepStaleNamespaces() {
  let list = "";
  try {
    list = execFileSync("ip", ["netns", "list"], { encoding: "utf8" });
  } catch {
    return;
  }
  for (const line of list.split("\n")) {
    const ns = line.split(" ")[0] ?? "";
    const owner = STALE_NAMESPACE.exec(ns)?.[1];
    if (owner === undefined || isAlive(Number(owner))) continue;
    for (const pid of namespacePids(ns)) killQuietly(pid, "SIGKILL");
    try {
      execFileSync("ip", ["netns", "del", ns], { stdio: "ignore" });
    } catch {
      // raced with another sweeper
    }
  }
}

function isAlive(pid) {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return err.code === "EPERM";
  }
}
