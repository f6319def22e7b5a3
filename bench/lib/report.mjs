// Figures and the printed report: percentiles, the comparison table, the machine it ran on.
import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { availableParallelism, loadavg, release } from "node:os";

/** Nearest-rank percentile of the non-null values (p in 0..100); NaN if there are none. */
export function percentile(values, p) {
  const sorted = values.filter((v) => v !== null && Number.isFinite(v)).sort((a, b) => a - b);
  if (sorted.length === 0) return Number.NaN;
  const rank = Math.max(1, Math.ceil((p / 100) * sorted.length));
  return sorted[rank - 1];
}

export function formatNumber(value, digits = 1) {
  if (value === undefined || value === null) return "—";
  if (typeof value === "string") return value;
  if (!Number.isFinite(value)) return "n/a";
  return value.toLocaleString("en-US", {
    minimumFractionDigits: digits,
    maximumFractionDigits: digits,
  });
}

/**
 * How many times better spaknockd is than fwknopd on this row (>1: better, <1: worse), or
 * undefined when the two figures cannot be compared.
 */
export function advantage(row) {
  const { fwknopd, spaknockd, better } = row;
  if (typeof fwknopd !== "number" || typeof spaknockd !== "number") return undefined;
  if (!Number.isFinite(fwknopd) || !Number.isFinite(spaknockd)) return undefined;
  if (better === "lower") return spaknockd === 0 ? undefined : fwknopd / spaknockd;
  if (better === "higher") return fwknopd === 0 ? undefined : spaknockd / fwknopd;
  return undefined;
}

/** rows: { metric, fwknopd, spaknockd, better: "lower" | "higher" | undefined, digits } */
export function renderTable(rows) {
  const header = ["metric", "fwknopd", "spaknockd", "ratio"];
  const body = rows.map((row) => {
    const ratio = advantage(row);
    return [
      row.metric,
      formatNumber(row.fwknopd, row.digits),
      formatNumber(row.spaknockd, row.digits),
      ratio === undefined ? "—" : `${formatNumber(ratio, ratio < 10 ? 2 : 1)}x`,
    ];
  });
  const widths = header.map((h, i) => Math.max(h.length, ...body.map((cells) => cells[i].length)));
  const line = (cells) =>
    cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]) : c.padStart(widths[i]))).join("   ");
  return [line(header), line(widths.map((w) => "-".repeat(w))), ...body.map(line)].join("\n");
}

function commandVersion(argv) {
  try {
    const [file, ...args] = argv;
    const out = execFileSync(file, args, {
      encoding: "utf8",
      stdio: ["ignore", "pipe", "pipe"],
      timeout: 5_000,
    });
    return out.trim().split("\n")[0];
  } catch {
    return "unknown";
  }
}

/**
 * Resident memory of a bare `node -e` of the same binary that runs spaknockd, in MiB (VmHWM,
 * RssAnon, RssFile from its own /proc/self/status): the floor of any Node process here.
 */
export function bareNodeMemory() {
  try {
    const status = execFileSync(
      process.execPath,
      ["-e", 'process.stdout.write(require("node:fs").readFileSync("/proc/self/status", "utf8"))'],
      { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"], timeout: 10_000 },
    );
    const mib = (field) => {
      const kb = new RegExp(`^${field}:\\s+(\\d+) kB`, "m").exec(status)?.[1];
      return kb === undefined ? Number.NaN : Number(kb) / 1024;
    };
    return { vmHwm: mib("VmHWM"), rssAnon: mib("RssAnon"), rssFile: mib("RssFile") };
  } catch {
    return { vmHwm: Number.NaN, rssAnon: Number.NaN, rssFile: Number.NaN };
  }
}

/** The 1-minute load average, to tell a quiet machine from a busy one. */
export function loadAverage() {
  return loadavg()[0] ?? Number.NaN;
}

export function machineInfo() {
  const cpuinfo = readFileSync("/proc/cpuinfo", "utf8");
  const model = /^model name\s*:\s*(.+)$/m.exec(cpuinfo)?.[1] ?? "unknown CPU";
  return {
    cpu: model.trim(),
    cores: availableParallelism(),
    kernel: release(),
    node: process.version,
    fwknopd: commandVersion(["fwknopd", "--version"]),
    nft: commandVersion(["nft", "--version"]),
    bareNode: bareNodeMemory(),
  };
}
