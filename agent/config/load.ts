/** Loads both config files from disk into what the daemon runs with. */
import { existsSync } from "node:fs";
import {
  type AccessStanza,
  type AuthorizedKeySet,
  authorizedKeysNames,
  type ConfLine,
  confError,
  importAuthorizedKeys,
  importPrivateJwk,
  isSpaError,
  type JosePrivateKey,
  type ProtoPort,
  parseAccessConf,
} from "../../core/index.js";
import { type DaemonSettings, parseDaemonConf } from "./daemon-conf.js";
import {
  type ConfWarning,
  checkKeyFileMode,
  checkPublicKeySetMode,
  type ReadOptions,
  readAccessFiles,
  readConfFile,
  readKeyText,
  resolveRelative,
} from "./read-files.js";

export const DEFAULT_CONF_FILE = "/etc/spaknock/fwknopd.conf";
export const DEFAULT_ACCESS_FILE = "/etc/spaknock/access.conf";

export interface LoadedConfig {
  readonly settings: DaemonSettings;
  readonly stanzas: readonly AccessStanza[];
  /** SERVER_KEY_FILE's key, or null: JOSE packets are refused. */
  readonly serverKey: JosePrivateKey | null;
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

/** Turns a key's own complaint (KEY_INVALID) into a config error that says which line named it. */
async function keyAt<T>(line: { file: string; line: number }, load: () => Promise<T>): Promise<T> {
  try {
    return await load();
  } catch (err) {
    if (isSpaError(err) && err.code === "KEY_INVALID") throw confError(line, err.message);
    throw err;
  }
}

async function loadServerKey(
  file: string | null,
  line: ConfLine | undefined,
  opts: ReadOptions,
): Promise<JosePrivateKey | null> {
  if (file === null) return null;
  const at = line ?? { file, line: 0 };
  const text = readKeyText(file, at);
  checkKeyFileMode(file, opts);
  return keyAt(at, () => importPrivateJwk(text, "X25519", file));
}

/** Each AUTHORIZED_KEYS file the stanzas name, read once (paths relative to the naming file). */
async function loadAuthorizedKeys(
  lines: readonly ConfLine[],
  opts: ReadOptions,
): Promise<Map<string, AuthorizedKeySet>> {
  const sets = new Map<string, AuthorizedKeySet>();
  for (const name of authorizedKeysNames(lines)) {
    const line = lines.find((l) => l.keyword === "AUTHORIZED_KEYS" && l.value === name) as ConfLine;
    const file = resolveRelative(line.file, name);
    const text = readKeyText(file, line);
    checkPublicKeySetMode(file, opts);
    sets.set(name, await keyAt(line, () => importAuthorizedKeys(text, file)));
  }
  return sets;
}

/** Throws SpaError CONFIG_INVALID with `file:line: what is wrong`; warnings are returned as notes. */
export async function loadConfig(opts: LoadOptions): Promise<LoadedConfig> {
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
  const serverKey = await loadServerKey(
    settings.serverKeyFile,
    confLines.find((l) => l.keyword === "SERVER_KEY_FILE"),
    readOpts,
  );
  const accessLines = readAccessFiles(accessFile, readOpts);
  const stanzas = parseAccessConf(accessLines, {
    allowSecurityGroups: false,
    ignored,
    authorizedKeys: await loadAuthorizedKeys(accessLines, readOpts),
  });
  for (const s of stanzas) {
    if (s.keys !== null && s.keys.hmacKey === null) {
      notes.push(
        `${where(s.origin)}: stanza #${s.index} has no HMAC key: its packets are not authenticated ` +
          "and can be altered in transit; add HMAC_KEY_BASE64",
      );
    }
    if (s.authorizedKeys !== null && serverKey === null) {
      notes.push(
        `${where(s.origin)}: stanza #${s.index} has AUTHORIZED_KEYS but fwknopd.conf has no ` +
          "SERVER_KEY_FILE: its JOSE packets cannot be decrypted; set SERVER_KEY_FILE",
      );
    }
  }
  return {
    settings,
    stanzas,
    serverKey,
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
