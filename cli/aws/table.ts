/** Plain-text tables and CSV for the operator and auditor commands. */

export function renderTable(
  header: readonly string[],
  rows: readonly (readonly string[])[],
): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? "").length)));
  const line = (cells: readonly string[]) =>
    cells
      .map((c, i) => c.padEnd(widths[i] ?? 0))
      .join("  ")
      .trimEnd();
  return [line(header), line(widths.map((w) => "-".repeat(w))), ...rows.map(line)].join("\n");
}

/** RFC 4180: quote a field holding a comma, quote or line break; double the quotes. */
export function renderCsv(header: readonly string[], rows: readonly (readonly string[])[]): string {
  const field = (v: string) => (/[",\r\n]/.test(v) ? `"${v.replace(/"/g, '""')}"` : v);
  return [header, ...rows].map((r) => r.map(field).join(",")).join("\r\n");
}

/** `2026-11-25T12:00:30Z`, or "" for null. */
export function isoTime(epochSec: number | null): string {
  return epochSec === null ? "" : new Date(epochSec * 1000).toISOString().replace(/\.000Z$/, "Z");
}

/** `1h02m`, `45s`, or "" for null. */
export function duration(sec: number | null): string {
  if (sec === null) return "";
  const s = Math.max(0, Math.round(sec));
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, "0")}s`;
  return `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, "0")}m`;
}
