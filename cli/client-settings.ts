/**
 * The client's effective settings: command-line options over the rc stanza over `[default]`,
 * as fwknop combines them, plus writing a stanza back (`--save-rc-stanza`).
 */
import { existsSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from "node:fs";
import { homedir } from "node:os";
import { join, resolve } from "node:path";
import { isKeywordShaped } from "../core/index.js";
import { UsageError } from "./exit-codes.js";
import {
  parseRcFile,
  RC_KEYWORDS,
  RcError,
  renderRcFile,
  resolveStanza,
  withStanza,
} from "./rc-file.js";

/** Every option of the knock command, as commander hands them over. */
export interface ClientOptions {
  namedConfig?: string;
  rcFile?: string | false;
  saveRcStanza?: boolean;
  forceStanza?: boolean;
  stanzaList?: boolean;
  access?: string;
  allowIp?: string;
  sourceIp?: boolean;
  resolveIp?: boolean;
  resolveUrl?: string;
  destination?: string;
  serverPort?: string;
  serverProto?: string;
  sourcePort?: string;
  randPort?: boolean;
  spoofUser?: string;
  fwTimeout?: string;
  natAccess?: string;
  natLocal?: boolean;
  serverCmd?: string;
  digestType?: string;
  encryptionMode?: string;
  hmacDigestType?: string;
  useHmac?: boolean;
  keyRijndael?: string;
  keyBase64Rijndael?: string;
  keyHmac?: string;
  keyBase64Hmac?: string;
  getKey?: string;
  getHmacKey?: string;
  /** JOSE profile: the user's Ed25519 private JWK file. */
  signingKey?: string;
  /** JOSE profile: the server's X25519 public JWK file. */
  serverKey?: string;
  stdin?: boolean;
  fd?: string;
  timeOffsetPlus?: string;
  timeOffsetMinus?: string;
  savePacket?: string;
  userAgent?: string;
  test?: boolean;
  verbose?: boolean;
}

export interface RcContext {
  /** null: no rc file in use. */
  readonly file: string | null;
  readonly values: Map<string, string>;
  readonly warnings: string[];
}

export function defaultRcPath(): string {
  return join(process.env.HOME ?? homedir(), ".fwknoprc");
}

function modeOf(file: string): number {
  return statSync(file).mode & 0o777;
}

/** Reads the rc file (if any) and resolves `-n NAME` over `[default]`. */
export function loadRcContext(opts: ClientOptions): RcContext {
  const warnings: string[] = [];
  if (opts.rcFile === false) {
    if (opts.namedConfig) throw new UsageError("-n needs an rc file, but --no-rc-file was given");
    return { file: null, values: new Map(), warnings };
  }
  const file = opts.rcFile ?? defaultRcPath();
  if (!existsSync(file)) {
    if (opts.rcFile !== undefined && !opts.saveRcStanza)
      throw new UsageError(`rc file ${file} does not exist`);
    if (opts.namedConfig && !opts.saveRcStanza) {
      throw new UsageError(`-n ${opts.namedConfig}: there is no rc file ${file}`);
    }
    return { file, values: new Map(), warnings };
  }
  if ((modeOf(file) & 0o077) !== 0) {
    warnings.push(
      `${file} is readable by others (mode ${modeOf(file).toString(8)}); run chmod 600 ${file}`,
    );
  }
  try {
    const rc = parseRcFile(readFileSync(file, "utf8"), file);
    const name = opts.saveRcStanza ? undefined : opts.namedConfig;
    const values = resolveStanza(rc, name, file);
    for (const k of values.keys()) {
      if (RC_KEYWORDS.has(k)) continue;
      // A key wrapped onto a second line reads as a keyword: show only what looks like one.
      warnings.push(
        isKeywordShaped(k)
          ? `${file}: unknown keyword ${k} ignored`
          : `${file}: a line that is not \`KEYWORD value\` was ignored (not shown: it may be key material)`,
      );
    }
    return { file, values, warnings };
  } catch (err) {
    if (err instanceof RcError) throw new UsageError(err.message);
    throw err;
  }
}

const yes = (v: string | undefined) => v !== undefined && /^[Yy]/.test(v);

/** Fills options the command line left unset from the rc stanza. */
export function applyRc(cli: ClientOptions, rc: Map<string, string>): ClientOptions {
  const o: ClientOptions = { ...cli };
  const take = <K extends keyof ClientOptions>(
    key: K,
    rcKey: string,
    map: (v: string) => ClientOptions[K],
  ) => {
    const v = rc.get(rcKey);
    if (v !== undefined && o[key] === undefined) o[key] = map(v);
  };
  const text = (v: string) => v;
  take("destination", "SPA_SERVER", text);
  take("serverPort", "SPA_SERVER_PORT", text);
  take("serverProto", "SPA_SERVER_PROTO", text);
  take("sourcePort", "SPA_SOURCE_PORT", text);
  take("access", "ACCESS", text);
  take("fwTimeout", "FW_TIMEOUT", text);
  take("natAccess", "NAT_ACCESS", text);
  take("natLocal", "NAT_LOCAL", yes);
  take("randPort", "RAND_PORT", yes);
  take("spoofUser", "SPOOF_USER", text);
  take("digestType", "DIGEST_TYPE", text);
  take("encryptionMode", "ENCRYPTION_MODE", text);
  take("hmacDigestType", "HMAC_DIGEST_TYPE", text);
  take("resolveUrl", "RESOLVE_URL", text);
  take("userAgent", "HTTP_USER_AGENT", text);
  take("verbose", "VERBOSE", yes);
  take("signingKey", "SIGNING_KEY_FILE", text);
  take("serverKey", "SERVER_KEY_FILE", text);
  if (o.useHmac === undefined && yes(rc.get("USE_HMAC"))) o.useHmac = true;
  const allow = rc.get("ALLOW_IP");
  if (allow !== undefined && o.allowIp === undefined && !o.sourceIp && !o.resolveIp) {
    if (allow.toLowerCase() === "source") o.sourceIp = true;
    else if (allow.toLowerCase() === "resolve") o.resolveIp = true;
    else o.allowIp = allow;
  }
  // A key given on the command line (in any form) wins over every rc key line.
  const cliKey =
    o.keyRijndael ?? o.keyBase64Rijndael ?? o.getKey ?? (o.stdin || o.fd ? "given" : undefined);
  if (cliKey === undefined) {
    take("keyBase64Rijndael", "KEY_BASE64", text);
    if (o.keyBase64Rijndael === undefined) take("keyRijndael", "KEY", text);
    if (o.keyBase64Rijndael === undefined && o.keyRijndael === undefined)
      take("getKey", "KEY_FILE", text);
  }
  const cliHmac = o.keyHmac ?? o.keyBase64Hmac ?? o.getHmacKey;
  if (cliHmac === undefined) {
    take("keyBase64Hmac", "HMAC_KEY_BASE64", text);
    if (o.keyBase64Hmac === undefined) take("keyHmac", "HMAC_KEY", text);
    if (o.keyBase64Hmac === undefined && o.keyHmac === undefined)
      take("getHmacKey", "HMAC_KEY_FILE", text);
  }
  return o;
}

/** The rc lines `--save-rc-stanza` writes for these options (keys only as given in options). */
export function rcValuesFor(o: ClientOptions): Map<string, string> {
  const v = new Map<string, string>();
  const put = (k: string, value: string | undefined) => {
    if (value !== undefined && value !== "") v.set(k, value);
  };
  put("ALLOW_IP", o.sourceIp ? "source" : o.resolveIp ? "resolve" : o.allowIp);
  put("ACCESS", o.access);
  put("SPA_SERVER", o.destination);
  put("SPA_SERVER_PORT", o.serverPort);
  put("SPA_SERVER_PROTO", o.serverProto);
  put("SPA_SOURCE_PORT", o.sourcePort);
  put("FW_TIMEOUT", o.fwTimeout);
  put("NAT_ACCESS", o.natAccess);
  if (o.natLocal) put("NAT_LOCAL", "Y");
  if (o.randPort) put("RAND_PORT", "Y");
  put("SPOOF_USER", o.spoofUser);
  put("DIGEST_TYPE", o.digestType);
  put("ENCRYPTION_MODE", o.encryptionMode);
  put("RESOLVE_URL", o.resolveUrl);
  put("KEY_BASE64", o.keyBase64Rijndael);
  put("KEY", o.keyRijndael);
  put("KEY_FILE", o.getKey);
  put("HMAC_KEY_BASE64", o.keyBase64Hmac);
  put("HMAC_KEY", o.keyHmac);
  put("HMAC_KEY_FILE", o.getHmacKey);
  put("HMAC_DIGEST_TYPE", o.hmacDigestType);
  // Absolute, so that the stanza works from any directory (the files are named, never copied).
  put("SIGNING_KEY_FILE", o.signingKey === undefined ? undefined : resolve(o.signingKey));
  put("SERVER_KEY_FILE", o.serverKey === undefined ? undefined : resolve(o.serverKey));
  if (o.useHmac || o.keyHmac || o.keyBase64Hmac || o.getHmacKey || o.hmacDigestType)
    put("USE_HMAC", "Y");
  return v;
}

const KEY_LINES = new Set(["KEY", "KEY_BASE64", "HMAC_KEY", "HMAC_KEY_BASE64"]);

/**
 * Writes stanza `name` into the rc file: merged into an existing stanza, or replacing it with
 * `force`. Creates the file 0600; refuses to write keys into a file others can read.
 */
export function saveRcStanza(
  file: string,
  name: string,
  values: Map<string, string>,
  force: boolean,
): void {
  if (name === "default") throw new UsageError("--save-rc-stanza needs -n NAME (not [default])");
  const exists = existsSync(file);
  const holdsKeys = [...values.keys()].some((k) => KEY_LINES.has(k));
  if (exists && holdsKeys && (modeOf(file) & 0o077) !== 0) {
    throw new UsageError(
      `refusing to write keys into ${file}: others can read it (run chmod 600 ${file})`,
    );
  }
  const rc = exists ? parseRcFile(readFileSync(file, "utf8"), file) : { stanzas: [] };
  const merged = new Map(force ? [] : (rc.stanzas.find((s) => s.name === name)?.values ?? []));
  for (const [k, v] of values) merged.set(k, v);
  const tmp = `${file}.spaknock-tmp`;
  // A fresh file, never a leftover (or planted) one whose mode or symlink target would carry over.
  rmSync(tmp, { force: true });
  writeFileSync(tmp, renderRcFile(withStanza(rc, name, merged)), { mode: 0o600, flag: "wx" });
  renameSync(tmp, file);
}

export function stanzaNames(file: string): string[] {
  const rc = parseRcFile(readFileSync(file, "utf8"), file);
  return rc.stanzas.map((s) => s.name).filter((n) => n !== "default");
}
