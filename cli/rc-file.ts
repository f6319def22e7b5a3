/**
 * `~/.fwknoprc`, fwknop's client rc format (docs/protocol.md section 8.3): `[default]` plus named
 * stanzas; `KEYWORD value` lines (space, tab or `=` between); `#` comments. Read and written so
 * that a file made by the real fwknop works here and one made here works with fwknop.
 */

export interface RcStanza {
  readonly name: string;
  /** Keyword → value, in file order. */
  readonly values: Map<string, string>;
}

export interface RcFile {
  readonly stanzas: RcStanza[];
}

export class RcError extends Error {
  override readonly name = "RcError";
}

/** Every keyword fwknop 2.6.10 reads from an rc file, and spaknock's JOSE-profile key files. */
export const RC_KEYWORDS = new Set(
  (
    "SIGNING_KEY_FILE SERVER_KEY_FILE " +
    "SPA_SERVER SPA_SERVER_PORT SPA_SERVER_PROTO SPA_SOURCE_PORT ACCESS ALLOW_IP KEY KEY_BASE64 KEY_FILE " +
    "HMAC_KEY HMAC_KEY_BASE64 HMAC_KEY_FILE HMAC_DIGEST_TYPE USE_HMAC DIGEST_TYPE ENCRYPTION_MODE FW_TIMEOUT " +
    "NAT_ACCESS NAT_LOCAL NAT_PORT NAT_RAND_PORT RAND_PORT SPOOF_USER SPOOF_SOURCE_IP TIME_OFFSET " +
    "HTTP_USER_AGENT RESOLVE_URL RESOLVE_IP_HTTP RESOLVE_IP_HTTPS RESOLVE_HTTP_ONLY WGET_CMD USE_WGET_USER_AGENT " +
    "SERVER_RESOLVE_IPV4 USE_GPG USE_GPG_AGENT GPG_RECIPIENT GPG_SIGNER GPG_HOMEDIR GPG_EXE GPG_SIGNING_PW " +
    "GPG_SIGNING_PW_BASE64 GPG_NO_SIGNING_PW VERBOSE NO_SAVE_ARGS SPA_ICMP_TYPE SPA_ICMP_CODE"
  ).split(" "),
);

// fwknop reads `sscanf(line, "%s %[^ ;\t\n\r#]")`: the keyword (a trailing `:` dropped), then a
// value that ends at the first space, tab, `;` or `#`. `=` is tolerated as a separator too.
const LINE = /^([A-Za-z0-9_]+):?(?:\s*=\s*|\s+)([^ ;\t#]*)/;

export function parseRcFile(text: string, file: string): RcFile {
  const stanzas: RcStanza[] = [];
  let current: RcStanza | null = null;
  text.split(/\r?\n/).forEach((raw, i) => {
    const line = raw.trim();
    if (line === "" || line.startsWith("#")) return;
    const header = /^\[([^\]]+)\]$/.exec(line);
    if (header) {
      current = { name: (header[1] as string).trim(), values: new Map() };
      stanzas.push(current);
      return;
    }
    const m = LINE.exec(line);
    if (!m) throw new RcError(`${file}:${i + 1}: cannot read this line`);
    if (!current) throw new RcError(`${file}:${i + 1}: ${m[1]} before any [stanza] header`);
    (current as RcStanza).values.set(m[1] as string, m[2] as string);
  });
  return { stanzas };
}

/** `[default]` values overlaid by the named stanza's; unknown stanza names are an error. */
export function resolveStanza(
  rc: RcFile,
  name: string | undefined,
  file: string,
): Map<string, string> {
  const merged = new Map<string, string>();
  for (const [k, v] of rc.stanzas.find((s) => s.name === "default")?.values ?? []) merged.set(k, v);
  if (name === undefined || name === "default") return merged;
  const named = rc.stanzas.find((s) => s.name === name);
  if (!named) {
    const known = rc.stanzas.map((s) => s.name).filter((n) => n !== "default");
    throw new RcError(`no stanza [${name}] in ${file} (it has: ${known.join(", ") || "none"})`);
  }
  for (const [k, v] of named.values) merged.set(k, v);
  return merged;
}

/** Renders the file back, stanza by stanza, with aligned values as fwknop writes them. */
export function renderRcFile(rc: RcFile): string {
  const blocks = rc.stanzas.map((s) => {
    const lines = [...s.values].map(([k, v]) => `${k.padEnd(28)}${v}`);
    return [`[${s.name}]`, ...lines].join("\n");
  });
  return `${blocks.join("\n\n")}\n`;
}

/** Sets (or replaces) one stanza's values, keeping the other stanzas as they were. */
export function withStanza(rc: RcFile, name: string, values: Map<string, string>): RcFile {
  const others = rc.stanzas.filter((s) => s.name !== name);
  const hasDefault = others.some((s) => s.name === "default");
  const stanzas = hasDefault ? others : [{ name: "default", values: new Map() }, ...others];
  return { stanzas: [...stanzas, { name, values }] };
}
