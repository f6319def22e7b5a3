/** Loads both config files from disk into what the daemon runs with. */
import { existsSync } from "node:fs";
import {
  type AccessStanza,
  type ConfLine,
  type ProtoPort,
  parseAccessConf,
} from "../../core/index.js";
import { type DaemonSettings, parseDaemonConf } from "./daemon-conf.js";
import { type ConfWarning, readAccessFiles, readConfFile } from "./read-files.js";

export const DEFAULT_CONF_FILE = "/etc/spaknock/fwknopd.conf";
export const DEFAULT_ACCESS_FILE = "/etc/spaknock/access.conf";

export interface LoadedConfig {
  readonly settings: DaemonSettings;
  readonly stanzas: readonly AccessStanza[];
  readonly accessFile: string;
  /** Ports the nftables backend keeps closed. */
  readonly guardPorts: readonly ProtoPort[];
  readonly notes: readonly string[];
}

export interface LoadOptions {
  readonly confFile: string | undefined;
  readonly accessFile: string | undefined;
  readonly strictPermissions: boolean;
}

const where = (l: { file: string; line: number }) => (l.line > 0 ? `${l.file}:${l.line}` : l.file);

/** Throws SpaError CONFIG_INVALID with `file:line: what is wrong`; warnings are returned as notes. */
export function loadConfig(opts: LoadOptions): LoadedConfig {
  const notes: string[] = [];
  const warn = (w: ConfWarning) => notes.push(`${where(w)}: ${w.message}`);
  const ignored = (l: ConfLine) =>
    notes.push(`${where(l)}: ${l.keyword} is a fwknop keyword spaknockd ignores`);
  const readOpts = { strictPermissions: opts.strictPermissions, warn };

  let confLines: ConfLine[] = [];
  const confFile = opts.confFile ?? DEFAULT_CONF_FILE;
  if (opts.confFile !== undefined || existsSync(confFile)) {
    confLines = readConfFile(confFile, readOpts, false);
  } else {
    notes.push(`${confFile} not found: using built-in defaults`);
  }
  const settings = parseDaemonConf(confLines, ignored);
  const accessFile = opts.accessFile ?? settings.accessFile ?? DEFAULT_ACCESS_FILE;
  const stanzas = parseAccessConf(readAccessFiles(accessFile, readOpts), {
    allowSecurityGroups: false,
    ignored,
  });
  for (const s of stanzas) {
    if (s.keys !== null && s.keys.hmacKey === null) {
      notes.push(
        `${where(s.origin)}: stanza #${s.index} has no HMAC key: its packets are not authenticated ` +
          "and can be altered in transit; add HMAC_KEY_BASE64",
      );
    }
  }
  return {
    settings,
    stanzas,
    accessFile,
    guardPorts: guardPortsOf(settings, stanzas, notes),
    notes,
  };
}

function guardPortsOf(
  settings: DaemonSettings,
  stanzas: readonly AccessStanza[],
  notes: string[],
): ProtoPort[] {
  if (settings.guardPorts) return [...settings.guardPorts];
  const seen = new Map<string, ProtoPort>();
  for (const s of stanzas) for (const p of s.openPorts ?? []) seen.set(`${p.proto}/${p.port}`, p);
  const open = stanzas.filter((s) => s.openPorts === null);
  if (open.length > 0) {
    notes.push(
      `stanza(s) ${open.map((s) => `#${s.index} (${where(s.origin)})`).join(", ")} have no OPEN_PORTS: ` +
        "with nftables spaknock only closes the ports listed in GUARD_PORTS or some stanza's OPEN_PORTS",
    );
  }
  return [...seen.values()];
}
