/**
 * spaknockd's log: one line per event. With `-f`, plain lines on stderr; otherwise syslog through
 * one long-lived `logger` process (Node has no datagram Unix sockets), which journald also reads.
 */
import { type ChildProcess, spawn } from "node:child_process";
import type { ProtoPort } from "../core/index.js";

export type LogLevel = "error" | "warning" | "info" | "debug";

export interface Log {
  error(message: string): void;
  warning(message: string): void;
  info(message: string): void;
  debug(message: string): void;
  close(): void;
}

const SYSLOG_SEVERITY: Record<LogLevel, number> = { error: 3, warning: 4, info: 6, debug: 7 };
const FACILITY: Record<string, number> = {
  LOG_USER: 1,
  LOG_DAEMON: 3,
  LOG_AUTH: 4,
  LOG_AUTHPRIV: 10,
  ...Object.fromEntries(Array.from({ length: 8 }, (_, i) => [`LOG_LOCAL${i}`, 16 + i])),
};

function makeLog(
  write: (level: LogLevel, message: string) => void,
  verbose: boolean,
  close: () => void,
): Log {
  return {
    error: (m) => write("error", m),
    warning: (m) => write("warning", m),
    info: (m) => write("info", m),
    debug: (m) => {
      if (verbose) write("debug", m);
    },
    close,
  };
}

export function stderrLog(verbose: boolean, stream: NodeJS.WritableStream = process.stderr): Log {
  return makeLog(
    (level, message) => {
      const prefix = level === "info" ? "" : `[${level}] `;
      stream.write(`${new Date().toISOString()} ${prefix}${message}\n`);
    },
    verbose,
    () => {},
  );
}

export function syslogLog(identity: string, facility: string, verbose: boolean): Log {
  const fac = FACILITY[facility] ?? 3;
  let logger: ChildProcess | null = spawn("logger", ["--prio-prefix", "-t", identity], {
    stdio: ["pipe", "ignore", "inherit"],
  });
  logger.on("error", () => {
    logger = null;
  });
  return makeLog(
    (level, message) => {
      const line = `<${fac * 8 + SYSLOG_SEVERITY[level]}>${message.replace(/\n/g, " ")}\n`;
      if (logger?.stdin?.writable) logger.stdin.write(line);
      else process.stderr.write(line);
    },
    verbose,
    () => logger?.stdin?.end(),
  );
}

/**
 * Counts of like events, written as one line per second instead of one line per event: a flood
 * must not become a log flood. The first event of a quiet second arms a one-shot timer, so an
 * idle process keeps no timer running.
 */
export class SecondSums {
  private readonly counts = new Map<string, number>();
  private timer: NodeJS.Timeout | null = null;

  constructor(
    private readonly write: (counts: ReadonlyMap<string, number>, total: number) => void,
  ) {}

  add(key: string): void {
    this.counts.set(key, (this.counts.get(key) ?? 0) + 1);
    if (this.timer === null) {
      this.timer = setTimeout(() => this.flush(), 1_000);
      this.timer.unref();
    }
  }

  /** Writes what was counted (at the end of the second, and at shutdown). */
  flush(): void {
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = null;
    if (this.counts.size === 0) return;
    const counts = new Map(this.counts);
    this.counts.clear();
    let total = 0;
    for (const n of counts.values()) total += n;
    this.write(counts, total);
  }
}

/** `a (3), b (1)`, the largest first, at most `limit` entries and how many more. */
export function describeCounts(counts: ReadonlyMap<string, number>, limit = 10): string {
  const sorted = [...counts].sort((a, b) => b[1] - a[1]);
  const shown = sorted.slice(0, limit).map(([k, n]) => `${k} (${n})`);
  const rest = sorted.length - shown.length;
  return rest > 0 ? `${shown.join(", ")} and ${rest} more` : shown.join(", ");
}

/**
 * A grant's rule as fwknopd's log lines name it, `198.18.0.2 -> 0.0.0.0/0(tcp/22)`; an IPv6
 * grant's destination is `::/0`.
 */
export function ruleText(sourceIp: string, port: ProtoPort): string {
  const anyAddress = sourceIp.includes(":") ? "::/0" : "0.0.0.0/0";
  return `${sourceIp} -> ${anyAddress}(${port.proto}/${port.port})`;
}
