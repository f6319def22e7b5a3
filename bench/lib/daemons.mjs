// Starting the two daemons under test inside a bench net's server namespace, and reading their
// CPU time and memory from /proc.
//
// Each daemon gets its own 0700 directory for configs (0600, the only place keys are written), PID
// file, run dir and digest cache; no key is ever put on a command line.

import { readdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { findExecutable, terminate } from "./netns.mjs";

const REPO = fileURLToPath(new URL("../..", import.meta.url));
const START_TIMEOUT_MS = 20_000;
const CLOCK_TICKS_PER_SEC = 100; // USER_HZ on Linux
/** spaknockd's own nftables table in the bench (`inet <name>`). */
export const NFT_TABLE = "spaknockbench";

function accessStanza(keys, tcpPort, timeoutSec) {
  return [
    "SOURCE ANY",
    `KEY_BASE64 ${keys.key}`,
    `HMAC_KEY_BASE64 ${keys.hmacKey}`,
    `OPEN_PORTS tcp/${tcpPort}`,
    `FW_ACCESS_TIMEOUT ${timeoutSec}`,
    "",
  ].join("\n");
}

/** A running daemon: its PID (the real process, `ip netns exec` execs in place) and log lines. */
class Daemon {
  constructor(name, child, readyLine) {
    this.name = name;
    this.child = child;
    this.pid = child.pid;
    /** @type {string[]} */
    this.lines = [];
    this.exited = false;
    const partial = { stdout: "", stderr: "" };
    const waiters = new Set();
    this.waiters = waiters;
    for (const stream of ["stdout", "stderr"]) {
      child[stream].setEncoding("utf8").on("data", (chunk) => {
        const parts = (partial[stream] + chunk).split("\n");
        partial[stream] = parts.pop() ?? "";
        this.lines.push(...parts);
        for (const w of [...waiters]) w();
      });
    }
    child.once("exit", (code, signal) => {
      this.exited = true;
      this.lines.push(`[bench] ${name} exited (code ${code}, signal ${signal})`);
      for (const w of [...waiters]) w();
    });
    this.ready = this.waitForLog(readyLine, START_TIMEOUT_MS);
  }

  waitForLog(re, timeoutMs, fromLine = 0) {
    return new Promise((resolve, reject) => {
      const check = () => {
        const line = this.lines.slice(fromLine).find((l) => re.test(l));
        if (line !== undefined) {
          done();
          resolve(line);
        } else if (this.exited) {
          done();
          reject(new Error(`${this.name} exited before logging ${re}:\n${this.tail()}`));
        }
      };
      const timer = setTimeout(() => {
        done();
        reject(new Error(`${this.name} did not log ${re} within ${timeoutMs} ms:\n${this.tail()}`));
      }, timeoutMs);
      const done = () => {
        clearTimeout(timer);
        this.waiters.delete(check);
      };
      this.waiters.add(check);
      check();
    });
  }

  tail(count = 30) {
    return this.lines.slice(-count).join("\n");
  }

  assertAlive() {
    if (this.exited) throw new Error(`${this.name} is no longer running:\n${this.tail()}`);
  }

  /** CPU time so far, all threads: utime+stime from /proc/<pid>/stat, in seconds. */
  cpuSeconds() {
    const stat = readFileSync(`/proc/${this.pid}/stat`, "utf8");
    // Fields after the command name, which is in parentheses and may contain spaces.
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    return (Number(fields[11]) + Number(fields[12])) / CLOCK_TICKS_PER_SEC;
  }

  /** CPU time so far with ns resolution: the sum over live threads of /proc/<pid>/task/N/schedstat. */
  cpuSecondsPrecise() {
    let ns = 0;
    for (const tid of readdirSync(`/proc/${this.pid}/task`)) {
      try {
        ns += Number(readFileSync(`/proc/${this.pid}/task/${tid}/schedstat`, "utf8").split(" ")[0]);
      } catch {
        // the thread ended
      }
    }
    return ns / 1e9;
  }

  /**
   * UDP counters of the daemon's network namespace (/proc/<pid>/net is the namespace of <pid>):
   * datagrams delivered to a socket, and datagrams dropped because a socket buffer was full.
   */
  udpCounters() {
    const lines = readFileSync(`/proc/${this.pid}/net/snmp`, "utf8")
      .split("\n")
      .filter((line) => line.startsWith("Udp:"));
    const names = (lines[0] ?? "").split(/\s+/);
    const values = (lines[1] ?? "").split(/\s+/);
    const get = (name) => Number(values[names.indexOf(name)]);
    return { delivered: get("InDatagrams"), bufferFull: get("RcvbufErrors") };
  }

  /** Peak resident set size (VmHWM) in MiB. */
  peakRssMiB() {
    const status = readFileSync(`/proc/${this.pid}/status`, "utf8");
    const kb = /^VmHWM:\s+(\d+) kB/m.exec(status)?.[1];
    return kb === undefined ? Number.NaN : Number(kb) / 1024;
  }

  stop() {
    return terminate(this.child, 5_000);
  }
}

/**
 * fwknopd 2.6.x as the test harness runs it: pcap on the server veth, `-f -c -a -i -r -p -d`,
 * its own FWKNOP_INPUT chain jumped to from INPUT 1. The guarded port is then dropped by an
 * admin rule appended to INPUT, as in fwknopd's documented setup; udp/62201 is dropped too (pcap
 * sees the datagrams before netfilter), so junk does not make the kernel answer with ICMP.
 */
export async function startFwknopd(net, { keys, tcpPort, timeoutSec, spaPort, verbose }) {
  const exe = findExecutable("fwknopd");
  if (exe === undefined)
    throw new Error("fwknopd is not installed (apt-get install fwknop-server)");
  const dir = net.makeTempDir("fwknopd");
  const confPath = join(dir, "fwknopd.conf");
  const accessPath = join(dir, "access.conf");
  const digestPath = join(dir, "digest.cache");
  const pidPath = join(dir, "fwknopd.pid");
  const conf = [
    `PCAP_INTF ${net.server.iface}`,
    `FWKNOP_RUN_DIR ${dir}`,
    `FWKNOP_PID_FILE ${pidPath}`,
    `DIGEST_FILE ${digestPath}`,
    "",
  ].join("\n");
  writeFileSync(confPath, conf, { mode: 0o600, flag: "wx" });
  writeFileSync(accessPath, accessStanza(keys, tcpPort, timeoutSec), { mode: 0o600, flag: "wx" });
  const argv = [
    exe,
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
  if (verbose) argv.push("-v");
  const child = net.spawn(net.server.ns, argv, { cwd: dir });
  const daemon = new Daemon("fwknopd", child, /Starting fwknopd main event loop/);
  await daemon.ready;
  const ipt = (...args) => net.exec(net.server.ns, ["iptables", "-w", ...args]);
  await ipt("-A", "INPUT", "-p", "tcp", "--dport", String(tcpPort), "-j", "DROP");
  await ipt("-A", "INPUT", "-p", "udp", "--dport", String(spaPort), "-j", "DROP");
  const input = await ipt("-S", "INPUT");
  const first = input.split("\n").find((line) => line.startsWith("-A INPUT"));
  if (first !== "-A INPUT -j FWKNOP_INPUT") {
    throw new Error(`fwknopd's jump is not the first INPUT rule:\n${input}`);
  }
  return daemon;
}

/**
 * spaknockd from dist/: nftables backend with its own table (which itself drops the guarded
 * port), UDP socket capture (the default), everything else in a private directory.
 */
export async function startSpaknockd(net, { keys, tcpPort, timeoutSec, verbose }) {
  const dir = net.makeTempDir("spaknockd");
  const confPath = join(dir, "fwknopd.conf");
  const accessPath = join(dir, "access.conf");
  const conf = [
    "FIREWALL_BACKEND nftables",
    `NFT_TABLE ${NFT_TABLE}`,
    `DIGEST_FILE ${join(dir, "digest.cache")}`,
    `FWKNOP_RUN_DIR ${dir}`,
    `FWKNOP_PID_FILE ${join(dir, "spaknockd.pid")}`,
    "",
  ].join("\n");
  writeFileSync(confPath, conf, { mode: 0o600, flag: "wx" });
  writeFileSync(accessPath, accessStanza(keys, tcpPort, timeoutSec), { mode: 0o600, flag: "wx" });
  const argv = [
    process.execPath,
    join(REPO, "dist/agent/main.js"),
    "-f",
    "-c",
    confPath,
    "-a",
    accessPath,
  ];
  if (verbose) argv.push("-v");
  const child = net.spawn(net.server.ns, argv, { cwd: dir });
  const daemon = new Daemon("spaknockd", child, /spaknockd started/);
  await daemon.ready;
  return daemon;
}
