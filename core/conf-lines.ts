/**
 * The line syntax shared by fwknopd.conf and access.conf (docs/protocol.md section 8):
 * `KEYWORD<whitespace>value`, the value running to `;` or the end of the line, `#` comments,
 * keywords case-sensitive (a trailing `:` tolerated). Errors carry `file:line`.
 */

import { type ProtoPort, parseProtoPort } from "./access-message.js";
import { SpaError } from "./errors.js";

export interface ConfLine {
  readonly file: string;
  readonly line: number;
  readonly keyword: string;
  readonly value: string;
}

export function confError(where: { file: string; line: number }, what: string): SpaError {
  return new SpaError("CONFIG_INVALID", `${where.file}:${where.line}: ${what}`);
}

/** Levenshtein distance; `limit + 1` at once when the lengths alone differ by more than `limit`. */
function editDistance(a: string, b: string, limit: number): number {
  if (Math.abs(a.length - b.length) > limit) return limit + 1;
  let previous = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const row = [i];
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      row.push(
        Math.min(
          (previous[j] as number) + 1,
          (row[j - 1] as number) + 1,
          (previous[j - 1] as number) + cost,
        ),
      );
    }
    previous = row;
  }
  return previous[b.length] as number;
}

/**
 * Whether a token is plainly a keyword, safe to echo: upper case, digits and at least one `_`.
 * No base64 or hex key contains `_`, so no piece of a key wrapped onto its own line matches.
 */
export function isKeywordShaped(token: string): boolean {
  return /^[A-Z][A-Z0-9]*(?:_[A-Z0-9]+)+$/.test(token) && token.length <= 64;
}

/**
 * The message for a keyword nobody knows. A key wrapped onto a second line arrives here as its
 * "keyword", and this message goes to stderr, syslog and CloudWatch: so the token is shown only
 * when it is keyword-shaped or within two edits of a known keyword (a misspelling).
 */
export function unknownKeyword(l: ConfLine, known: Iterable<string>): SpaError {
  let best: string | null = null;
  if (/^[A-Z][A-Z0-9_]{1,63}$/.test(l.keyword)) {
    let bestDistance = 3;
    for (const k of known) {
      const d = editDistance(l.keyword, k, 2);
      if (d < bestDistance) [best, bestDistance] = [k, d];
    }
  }
  if (best !== null) return confError(l, `unknown keyword ${l.keyword} (did you mean ${best}?)`);
  if (isKeywordShaped(l.keyword)) return confError(l, `unknown keyword ${l.keyword}`);
  return confError(
    l,
    "not a known keyword; expected `KEYWORD value` (the line is not shown: it may be key material, such as a key wrapped onto a second line)",
  );
}

/** Parses one file's text into keyword/value lines; blank and comment lines are dropped. */
export function parseConfText(text: string, file: string): ConfLine[] {
  const out: ConfLine[] = [];
  text.split(/\r?\n/).forEach((raw, i) => {
    const trimmed = raw.trim();
    if (trimmed === "" || trimmed.startsWith("#") || trimmed.startsWith(";")) return;
    const m = /^(\S+)(?:\s+([^;]*))?/.exec(trimmed);
    const keyword = (m?.[1] ?? "").replace(/:$/, "");
    const value = (m?.[2] ?? "").trim();
    out.push({ file, line: i + 1, keyword, value });
  });
  return out;
}

/** fwknop's booleans: true iff the value starts with Y or y. */
export function parseYesNo(value: string): boolean {
  return /^[Yy]/.test(value);
}

export function parseBoundedInt(l: ConfLine, min: number, max: number): number {
  if (!/^[0-9]+$/.test(l.value) || Number(l.value) < min || Number(l.value) > max) {
    throw confError(l, `${l.keyword} must be a whole number in ${min}..${max}, got "${l.value}"`);
  }
  return Number(l.value);
}

/** `tcp/22, udp/53` (case-insensitive, as fwknopd reads OPEN_PORTS and RESTRICT_PORTS). */
export function parsePortListLine(l: ConfLine): ProtoPort[] {
  try {
    return l.value
      .split(",")
      .map((s) => s.trim())
      .filter((s) => s.length > 0)
      .map((s) => parseProtoPort(s.toLowerCase()));
  } catch {
    throw confError(l, `${l.keyword} must be a list of tcp/PORT or udp/PORT, got "${l.value}"`);
  }
}
