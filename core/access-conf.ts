/**
 * access.conf, fwknop's format (docs/protocol.md section 8.1), parsed into access stanzas. Pure:
 * the agent reads the files (with their %include directives) and the Lambda reads a secret; both
 * hand the lines to this parser.
 */
import { ACCESS_DEFAULTS, type AccessStanza } from "./access.js";
import { type NetworkList, parseNetworkList } from "./address.js";
import { isBase64Text } from "./base64.js";
import {
  type ConfLine,
  confError,
  parseBoundedInt,
  parsePortListLine,
  parseYesNo,
  unknownKeyword,
} from "./conf-lines.js";
import { parseDigestType } from "./digest.js";
import { isSpaError } from "./errors.js";
import { assertHmacKey } from "./hmac.js";
import type { AuthorizedKeySet } from "./jose-keys.js";
import { assertUsableKeys, type SpaKeys } from "./packet.js";
import { assertRijndaelKey, parseEncryptionMode } from "./rijndael.js";

/** Keywords fwknopd knows that spaknock reads but does not act on: logged once, never fatal. */
export const IGNORED_ACCESS_KEYWORDS = new Set([
  "ENABLE_CMD_EXEC",
  "CMD_EXEC_USER",
  "CMD_EXEC_GROUP",
  "ENABLE_CMD_SUDO_EXEC",
  "CMD_SUDO_EXEC_USER",
  "CMD_SUDO_EXEC_GROUP",
  "CMD_CYCLE_OPEN",
  "CMD_CYCLE_CLOSE",
  "CMD_CYCLE_TIMER",
  "FORCE_NAT",
  "FORCE_SNAT",
  "FORCE_MASQUERADE",
  "DISABLE_DNAT",
  "FORWARD_ALL",
  "GPG_HOME_DIR",
  "GPG_EXE",
  "GPG_DECRYPT_ID",
  "GPG_DECRYPT_PW",
  "GPG_ALLOW_NO_PW",
  "GPG_REQUIRE_SIG",
  "GPG_DISABLE_SIG",
  "GPG_IGNORE_SIG_VERIFY_ERROR",
  "GPG_REMOTE_ID",
  "GPG_FINGERPRINT_ID",
]);

const KEY_KEYWORDS = new Set(["KEY", "KEY_BASE64", "HMAC_KEY", "HMAC_KEY_BASE64"]);

export interface AccessConfOptions {
  /** Accept the Lambda's SECURITY_GROUPS keyword. */
  readonly allowSecurityGroups: boolean;
  /** Called once per ignored keyword, with where it first appeared. */
  readonly ignored: (line: ConfLine) => void;
  /**
   * The key sets the AUTHORIZED_KEYS lines name, loaded by the caller (files for the agent, a
   * secret for the Lambda) by the value as written: see `authorizedKeysNames`.
   */
  readonly authorizedKeys?: ReadonlyMap<string, AuthorizedKeySet>;
}

/** The values of the AUTHORIZED_KEYS lines, for the caller to load before `parseAccessConf`. */
export function authorizedKeysNames(lines: readonly ConfLine[]): string[] {
  return [...new Set(lines.filter((l) => l.keyword === "AUTHORIZED_KEYS").map((l) => l.value))];
}

interface Draft {
  sourceLine: ConfLine;
  sources: NetworkList;
  values: Map<string, ConfLine>;
}

function keyBytes(l: ConfLine, base64: boolean): Buffer {
  if (!base64) return Buffer.from(l.value, "utf8");
  if (!isBase64Text(l.value)) throw confError(l, `${l.keyword} is not base64`);
  return Buffer.from(l.value, "base64");
}

/** `ACCESS_EXPIRE MM/DD/YYYY`: the stanza stops granting at the start of that day, local time. */
function parseExpireDate(l: ConfLine): number {
  const m = /^([0-9]{2})\/([0-9]{2})\/([0-9]{4})$/.exec(l.value);
  if (!m) throw confError(l, `ACCESS_EXPIRE must be MM/DD/YYYY, got "${l.value}"`);
  const [year, month, day] = [Number(m[3]), Number(m[1]), Number(m[2])];
  const date = new Date(year, month - 1, day);
  // Date rolls 31/12/2025 over to a day in 2027: a date that does not come back is no date.
  if (date.getFullYear() !== year || date.getMonth() !== month - 1 || date.getDate() !== day) {
    throw confError(l, `ACCESS_EXPIRE ${l.value} is not a calendar date (MM/DD/YYYY)`);
  }
  return Math.floor(date.getTime() / 1000);
}

function withLine<T>(l: ConfLine, parse: () => T): T {
  try {
    return parse();
  } catch (err) {
    if (isSpaError(err) && !err.message.includes(`${l.file}:`)) {
      throw confError(l, `${l.keyword}: ${err.message}`);
    }
    throw err;
  }
}

function fwknopKeys(d: Draft, hasAuthorizedKeys: boolean): SpaKeys | null {
  const get = (k: string) => d.values.get(k);
  const keyLine = get("KEY_BASE64") ?? get("KEY");
  if (!keyLine) {
    const gpg = [...d.values.keys()].some((k) => k.startsWith("GPG_"));
    if (gpg) {
      throw confError(
        d.sourceLine,
        "stanza uses GPG, which spaknock does not support; give it KEY or KEY_BASE64, or AUTHORIZED_KEYS",
      );
    }
    const orphan = get("HMAC_KEY_BASE64") ?? get("HMAC_KEY");
    if (orphan) throw confError(orphan, `${orphan.keyword} without KEY or KEY_BASE64`);
    if (hasAuthorizedKeys) return null;
    throw confError(d.sourceLine, "stanza has no KEY or KEY_BASE64, and no AUTHORIZED_KEYS");
  }
  if (get("KEY") && get("KEY_BASE64")) throw confError(keyLine, "use KEY or KEY_BASE64, not both");
  const key = keyBytes(keyLine, keyLine.keyword === "KEY_BASE64");
  withLine(keyLine, () => assertRijndaelKey(key));
  const hmacLine = get("HMAC_KEY_BASE64") ?? get("HMAC_KEY");
  if (get("HMAC_KEY") && get("HMAC_KEY_BASE64")) {
    throw confError(hmacLine as ConfLine, "use HMAC_KEY or HMAC_KEY_BASE64, not both");
  }
  const hmacKey = hmacLine ? keyBytes(hmacLine, hmacLine.keyword === "HMAC_KEY_BASE64") : null;
  if (hmacLine && hmacKey) withLine(hmacLine, () => assertHmacKey(hmacKey));
  const digestLine = get("HMAC_DIGEST_TYPE");
  const modeLine = get("ENCRYPTION_MODE");
  const keys = {
    key,
    hmacKey,
    hmacType: digestLine ? withLine(digestLine, () => parseDigestType(digestLine.value)) : "sha256",
    mode: modeLine ? withLine(modeLine, () => parseEncryptionMode(modeLine.value)) : "cbc",
  } as const;
  withLine(hmacLine ?? keyLine, () => assertUsableKeys(keys));
  return keys;
}

function finishStanza(d: Draft, index: number, opts: AccessConfOptions): AccessStanza {
  const get = (k: string) => d.values.get(k);
  const authorizedLine = get("AUTHORIZED_KEYS");
  let authorizedKeys: AuthorizedKeySet | null = null;
  if (authorizedLine) {
    const set = opts.authorizedKeys?.get(authorizedLine.value);
    if (!set)
      throw confError(authorizedLine, `AUTHORIZED_KEYS ${authorizedLine.value} was not loaded`);
    authorizedKeys = set;
  }
  const keys = fwknopKeys(d, authorizedKeys !== null);

  const int = (k: string, min: number, max: number, dflt: number) => {
    const l = get(k);
    return l ? parseBoundedInt(l, min, max) : dflt;
  };
  const expireDate = get("ACCESS_EXPIRE");
  const expireEpochLine = get("ACCESS_EXPIRE_EPOCH");
  const openPorts = get("OPEN_PORTS");
  const restrictPorts = get("RESTRICT_PORTS");
  const destination = get("DESTINATION");
  const requireSource = get("REQUIRE_SOURCE_ADDRESS") ?? get("REQUIRE_SOURCE");
  const groups = get("SECURITY_GROUPS");
  return {
    index,
    origin: { file: d.sourceLine.file, line: d.sourceLine.line },
    sources: d.sources,
    destinations: destination
      ? withLine(destination, () => parseNetworkList(destination.value))
      : null,
    keys,
    authorizedKeys,
    openPorts: openPorts ? parsePortListLine(openPorts) : null,
    restrictPorts: restrictPorts ? parsePortListLine(restrictPorts) : [],
    fwAccessTimeout: int("FW_ACCESS_TIMEOUT", 1, 2 ** 31 - 1, ACCESS_DEFAULTS.fwAccessTimeout),
    maxFwTimeout: int("MAX_FW_TIMEOUT", 1, 2 ** 31 - 1, ACCESS_DEFAULTS.maxFwTimeout),
    requireUsername: get("REQUIRE_USERNAME")?.value ?? null,
    requireSourceAddress: requireSource ? parseYesNo(requireSource.value) : false,
    accessExpire: expireEpochLine
      ? parseBoundedInt(expireEpochLine, 0, 2 ** 53)
      : expireDate
        ? parseExpireDate(expireDate)
        : null,
    ...(groups
      ? {
          securityGroups: groups.value
            .split(",")
            .map((s) => s.trim())
            .filter((s) => {
              if (!/^sg-[0-9a-f]{8,17}$/.test(s))
                throw confError(groups, `"${s}" is not a security group id`);
              return true;
            }),
        }
      : {}),
  };
}

const ACTED_ON = new Set([
  "DESTINATION",
  "AUTHORIZED_KEYS",
  "KEY",
  "KEY_BASE64",
  "HMAC_KEY",
  "HMAC_KEY_BASE64",
  "HMAC_DIGEST_TYPE",
  "ENCRYPTION_MODE",
  "OPEN_PORTS",
  "RESTRICT_PORTS",
  "FW_ACCESS_TIMEOUT",
  "MAX_FW_TIMEOUT",
  "REQUIRE_USERNAME",
  "REQUIRE_SOURCE_ADDRESS",
  "REQUIRE_SOURCE",
  "ACCESS_EXPIRE",
  "ACCESS_EXPIRE_EPOCH",
]);

/** Turns access.conf lines (includes already expanded) into stanzas in file order. */
export function parseAccessConf(
  lines: readonly (ConfLine & { readonly fromKeysFile?: boolean })[],
  opts: AccessConfOptions,
): AccessStanza[] {
  const stanzas: AccessStanza[] = [];
  const reportedIgnored = new Set<string>();
  let draft: Draft | null = null;
  for (const l of lines) {
    if (l.value === "__CHANGEME__")
      throw confError(l, `${l.keyword} still has the placeholder __CHANGEME__`);
    if (l.fromKeysFile && !KEY_KEYWORDS.has(l.keyword) && l.keyword !== "HMAC_DIGEST_TYPE") {
      throw confError(l, `%include_keys files may only hold key lines, not ${l.keyword}`);
    }
    if (l.keyword === "SOURCE") {
      if (draft) stanzas.push(finishStanza(draft, stanzas.length + 1, opts));
      if (l.value === "") throw confError(l, "SOURCE needs a value (ANY or an address list)");
      draft = {
        sourceLine: l,
        sources: withLine(l, () => parseNetworkList(l.value)),
        values: new Map(),
      };
      continue;
    }
    const known =
      ACTED_ON.has(l.keyword) ||
      IGNORED_ACCESS_KEYWORDS.has(l.keyword) ||
      (l.keyword === "SECURITY_GROUPS" && opts.allowSecurityGroups);
    if (l.keyword === "SECURITY_GROUPS" && !known)
      throw confError(l, "SECURITY_GROUPS is read only by the AWS knock function");
    if (!known)
      throw unknownKeyword(l, [
        ...ACTED_ON,
        ...IGNORED_ACCESS_KEYWORDS,
        ...(opts.allowSecurityGroups ? ["SECURITY_GROUPS"] : []),
      ]);
    if (!draft) throw confError(l, `${l.keyword} before the first SOURCE line`);
    if (IGNORED_ACCESS_KEYWORDS.has(l.keyword)) {
      if (!reportedIgnored.has(l.keyword)) opts.ignored(l);
      reportedIgnored.add(l.keyword);
      draft.values.set(l.keyword, l);
      continue;
    }
    if (l.value === "") throw confError(l, `${l.keyword} needs a value`);
    if (draft.values.has(l.keyword)) throw confError(l, `${l.keyword} given twice in one stanza`);
    draft.values.set(l.keyword, l);
  }
  if (draft) stanzas.push(finishStanza(draft, stanzas.length + 1, opts));
  if (stanzas.length === 0) {
    throw confError({ file: lines[0]?.file ?? "access.conf", line: 0 }, "no SOURCE stanza");
  }
  return stanzas;
}
