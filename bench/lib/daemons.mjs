// The two daemons under test, started by the same helpers the e2e and interop tests use
// (test/helpers/fwknopd.ts and spaknockd.ts, compiled to build/harness/ by `npm run bench`), and
// their CPU time, memory and UDP counters read from /proc (memory also sampled every 200 ms while
// the daemon runs, for the peak of its private memory).
//
// Each daemon gets its own 0700 directory for configs (0600, the only place keys are written), PID
// file, run dir and digest cache; no key is ever put on a command line.

import { readdirSync, readFileSync } from "node:fs";

const fwknopdHelper = await import("../../build/harness/fwknopd.js");
const spaknockdHelper = await import("../../build/harness/spaknockd.js");

const START_TIMEOUT_MS = 20_000;
const CLOCK_TICKS_PER_SEC = 100; // USER_HZ on Linux
const MEMORY_SAMPLE_MS = 200;
/** The /proc/<pid>/status fields sampled, each in kB. */
const MEMORY_FIELDS = ["RssAnon", "RssFile", "RssShmem", "VmRSS"].map((field) => ({
  field,
  re: new RegExp(`^${field}:\\s+(\\d+) kB`, "m"),
}));
/** spaknockd's own nftables table in the bench (`inet <name>`). */
export const NFT_TABLE = "spaknockbench";

const stanza = (keys, tcpPort, timeoutSec, extraLines = []) => ({
  keyBase64: keys.key,
  hmacKeyBase64: keys.hmacKey,
  openPorts: `tcp/${tcpPort}`,
  fwAccessTimeout: timeoutSec,
  extraLines,
});

/** A running daemon (a helper's handle) and what the bench reads of it from /proc. */
class Daemon {
  constructor(name, handle) {
    this.name = name;
    this.handle = handle;
    this.pid = handle.pid;
    // Highest value seen of each /proc/<pid>/status field, in kB.
    this.memoryPeaks = Object.fromEntries(MEMORY_FIELDS.map(({ field }) => [field, 0]));
    this.memorySamples = 0;
    this.sampleMemory();
    this.sampler = setInterval(() => this.sampleMemory(), MEMORY_SAMPLE_MS);
    this.sampler.unref();
  }

  /** One reading of the daemon's resident memory by kind; keeps the highest of each. */
  sampleMemory() {
    let status;
    try {
      status = readFileSync(`/proc/${this.pid}/status`, "utf8");
    } catch {
      return; // the daemon has ended; assertAlive says so
    }
    for (const { field, re } of MEMORY_FIELDS) {
      const kb = re.exec(status)?.[1];
      if (kb !== undefined) this.memoryPeaks[field] = Math.max(this.memoryPeaks[field], Number(kb));
    }
    this.memorySamples++;
  }

  /**
   * The highest of each resident-memory figure over the samples so far, in MiB: rssAnon (private
   * pages: heap, stacks, anonymous maps), rssFile (file-backed pages: the executable and its
   * libraries, shared with every process that maps them), rssShmem, vmRss.
   */
  memoryPeaksMiB() {
    this.sampleMemory();
    const mib = (kb) => kb / 1024;
    return {
      rssAnon: mib(this.memoryPeaks.RssAnon),
      rssFile: mib(this.memoryPeaks.RssFile),
      rssShmem: mib(this.memoryPeaks.RssShmem),
      vmRss: mib(this.memoryPeaks.VmRSS),
      samples: this.memorySamples,
      everyMs: MEMORY_SAMPLE_MS,
    };
  }

  assertAlive() {
    if (!this.handle.isRunning())
      throw new Error(
        `${this.name} is no longer running:\n${this.handle.lines.slice(-30).join("\n")}`,
      );
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
    clearInterval(this.sampler);
    return this.handle.stop();
  }
}

/**
 * fwknopd 2.6.x as the interop tests run it: pcap on the server veth, `-f -c -a -i -r -p -d`,
 * its own FWKNOP_INPUT chain jumped to from INPUT 1. The guarded port is then dropped by an
 * admin rule appended to INPUT, as in fwknopd's documented setup; udp/62201 is dropped too (pcap
 * sees the datagrams before netfilter), so junk does not make the kernel answer with ICMP.
 */
export async function startFwknopd(net, { keys, tcpPort, timeoutSec, spaPort, verbose }) {
  const skip = fwknopdHelper.fwknopdSkipReason();
  if (skip !== undefined) throw new Error(skip);
  const handle = await fwknopdHelper.startFwknopd(net, {
    stanzas: [stanza(keys, tcpPort, timeoutSec)],
    verbose,
    startTimeoutMs: START_TIMEOUT_MS,
  });
  const ipt = async (...args) =>
    (await net.exec(net.server.ns, ["iptables", "-w", ...args], { check: true })).stdout;
  await ipt("-A", "INPUT", "-p", "tcp", "--dport", String(tcpPort), "-j", "DROP");
  await ipt("-A", "INPUT", "-p", "udp", "--dport", String(spaPort), "-j", "DROP");
  const input = await ipt("-S", "INPUT");
  const first = input.split("\n").find((line) => line.startsWith("-A INPUT"));
  if (first !== "-A INPUT -j FWKNOP_INPUT") {
    throw new Error(`fwknopd's jump is not the first INPUT rule:\n${input}`);
  }
  return new Daemon("fwknopd", handle);
}

/**
 * spaknockd from dist/ as the e2e tests run it: nftables backend with its own table (which itself
 * drops the guarded port), UDP socket capture (the default), everything else in a private
 * directory.
 */
/**
 * spaknockd with one stanza that takes fwknop packets (keys) and, when `jose` names the files,
 * JOSE packets too (`jose.serverKeyFile`, `jose.authorizedKeysFile`): the same stanza, so the two
 * formats are measured on the same daemon.
 */
export async function startSpaknockd(net, { keys, tcpPort, timeoutSec, verbose, jose }) {
  const skip = spaknockdHelper.spaknockdSkipReason("nftables");
  if (skip !== undefined) throw new Error(skip);
  const handle = await spaknockdHelper.startSpaknockd(net, {
    backend: "nftables",
    capture: "udp",
    stanzas: [
      stanza(keys, tcpPort, timeoutSec, jose ? [`AUTHORIZED_KEYS ${jose.authorizedKeysFile}`] : []),
    ],
    extraConfLines: jose ? [`SERVER_KEY_FILE ${jose.serverKeyFile}`] : [],
    table: NFT_TABLE,
    verbose,
    startTimeoutMs: START_TIMEOUT_MS,
  });
  return new Daemon("spaknockd", handle);
}
