/**
 * `spaknock doctor [-n NAME]`: checks a stanza and says, in words, what is wrong and what to do.
 * Looks only at the stanza, local files and (optionally) the resolve URL; it sends no SPA packet.
 * A JOSE stanza (SIGNING_KEY_FILE) gets its key files checked and a packet built as `-T` would,
 * to show its size against the limit.
 */
import {
  importPrivateJwk,
  importPublicJwk,
  isBase64Text,
  type JosePrivateKey,
  type JosePublicKey,
  MAX_HMAC_KEY_SIZE,
  MAX_JOSE_SEND_SIZE,
  MAX_RIJNDAEL_KEY_SIZE,
  parseDigestType,
  parseEncryptionMode,
} from "../../core/index.js";
import { applyRc, type ClientOptions, loadRcContext } from "../client-settings.js";
import { privateKeyModeProblem, readKeyFile } from "../jose-key-files.js";
import { parseAccessOption } from "../knock-options.js";
import { fetchExternalIp } from "../resolve-ip.js";
import { resolveServer } from "../server-address.js";
import { systemKnockEnvironment } from "./knock.js";
import { buildJoseKnock, checkJoseOptions, planJoseKnock } from "./knock-jose.js";

export interface Check {
  readonly name: string;
  readonly ok: boolean;
  readonly detail: string;
}

function keyLength(
  text: string | undefined,
  base64: string | undefined,
): number | "bad-base64" | null {
  if (base64 !== undefined)
    return isBase64Text(base64.trim()) ? Buffer.from(base64.trim(), "base64").length : "bad-base64";
  if (text !== undefined) return Buffer.byteLength(text, "utf8");
  return null;
}

const messageOf = (err: unknown) => (err instanceof Error ? err.message : String(err));

type AddCheck = (name: string, ok: boolean, detail: string) => void;

/** The signing key file: there, 0600 or stricter, an Ed25519 private JWK. */
async function checkSigningKey(file: string, add: AddCheck): Promise<JosePrivateKey | null> {
  let text: string;
  try {
    const read = readKeyFile(file, "SIGNING_KEY_FILE");
    text = read.text;
    const problem = privateKeyModeProblem(file, read.mode);
    add("signing key mode", problem === null, problem ?? `${file} is 0600 or stricter`);
  } catch (err) {
    add("signing key", false, messageOf(err));
    return null;
  }
  try {
    const key = await importPrivateJwk(text, "Ed25519", file);
    add("signing key", true, `${file}: Ed25519 private JWK, key id ${key.kid}`);
    return key;
  } catch (err) {
    add("signing key", false, messageOf(err));
    return null;
  }
}

/** The server key file: there, an X25519 public JWK (a private one is a key in the wrong place). */
async function checkServerKey(file: string, add: AddCheck): Promise<JosePublicKey | null> {
  try {
    const key = await importPublicJwk(readKeyFile(file, "SERVER_KEY_FILE").text, "X25519", file);
    add("server key", true, `${file}: X25519 public JWK, key id ${key.kid}`);
    return key;
  } catch (err) {
    add("server key", false, messageOf(err));
    return null;
  }
}

/** Builds the packet this stanza would send (as `-T` does) and reports its size. */
async function checkPacketSize(
  opts: ClientOptions,
  keys: { signingKey: JosePrivateKey; serverKey: JosePublicKey },
  externalIp: string | null,
  serverFamily: 4 | 6,
  add: AddCheck,
): Promise<void> {
  const sized: ClientOptions = { ...opts, test: true };
  if (sized.resolveIp) {
    // Without an answer from the resolve URL, the longest IPv6 text gives the largest packet.
    sized.allowIp = externalIp ?? "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff";
    sized.resolveIp = false;
  }
  try {
    const wire = await buildJoseKnock(
      planJoseKnock(sized, keys, serverFamily, systemKnockEnvironment),
    );
    add(
      "packet size",
      wire.length <= MAX_JOSE_SEND_SIZE,
      `${wire.length} bytes (at most ${MAX_JOSE_SEND_SIZE})`,
    );
  } catch (err) {
    add("packet size", false, messageOf(err));
  }
}

export async function runChecks(cli: ClientOptions): Promise<Check[]> {
  const checks: Check[] = [];
  const add = (name: string, ok: boolean, detail: string) => checks.push({ name, ok, detail });
  let opts: ClientOptions = cli;
  try {
    const rc = loadRcContext(cli);
    add(
      "rc file",
      rc.warnings.length === 0,
      rc.file ? `${rc.file}${rc.warnings.length ? `: ${rc.warnings.join("; ")}` : ""}` : "none",
    );
    opts = applyRc(cli, rc.values);
  } catch (err) {
    add("rc file", false, messageOf(err));
    return checks;
  }
  const jose = opts.signingKey !== undefined || opts.serverKey !== undefined;
  let joseKeys: { signingKey: JosePrivateKey; serverKey: JosePublicKey } | null = null;
  if (jose) {
    try {
      checkJoseOptions(cli, opts);
      add("profile", true, "jose (per-user signing key)");
    } catch (err) {
      add("profile", false, messageOf(err));
    }
    const signingKey = opts.signingKey ? await checkSigningKey(opts.signingKey, add) : null;
    const serverKey = opts.serverKey ? await checkServerKey(opts.serverKey, add) : null;
    if (signingKey && serverKey) joseKeys = { signingKey, serverKey };
  } else {
    checkFwknopKeys(opts, add);
  }
  for (const [name, parse, value] of [
    ["digest type", parseDigestType, opts.digestType],
    ["HMAC digest type", parseDigestType, opts.hmacDigestType],
    ["encryption mode", parseEncryptionMode, opts.encryptionMode],
  ] as const) {
    if (value === undefined) continue;
    try {
      parse(value);
      add(name, true, value);
    } catch (err) {
      add(name, false, messageOf(err));
    }
  }
  if (opts.access) {
    try {
      add("access", true, parseAccessOption(opts.access).text);
    } catch (err) {
      add("access", false, messageOf(err));
    }
  } else add("access", false, "no ACCESS (e.g. tcp/22): add it to the stanza or pass -A");
  let serverFamily: 4 | 6 = 4;
  if (opts.destination) {
    try {
      const { address, family } = await resolveServer(opts.destination);
      serverFamily = family;
      add("server", true, `${opts.destination} → ${address}`);
    } catch {
      add("server", false, `${opts.destination} does not resolve to an IPv4 or IPv6 address`);
    }
  } else add("server", false, "no SPA_SERVER: add it to the stanza or pass -D");
  let externalIp: string | null = null;
  if (opts.resolveUrl) {
    try {
      const r = await fetchExternalIp(opts.resolveUrl);
      externalIp = r.ip;
      add("external address", true, `${r.ip} (from ${opts.resolveUrl})`);
      if (r.serverDate) {
        const skew = Math.round((Date.now() - r.serverDate.getTime()) / 1000);
        add(
          "clock",
          Math.abs(skew) < 60,
          `${skew >= 0 ? "+" : ""}${skew} s against ${opts.resolveUrl}'s Date header${Math.abs(skew) >= 60 ? ": servers refuse packets older than 120 s by default; fix your clock (NTP)" : ""}`,
        );
      }
    } catch (err) {
      add("external address", false, `${opts.resolveUrl}: ${messageOf(err)}`);
    }
  }
  if (joseKeys !== null) await checkPacketSize(opts, joseKeys, externalIp, serverFamily, add);
  return checks;
}

function checkFwknopKeys(opts: ClientOptions, add: AddCheck): void {
  const key = keyLength(opts.keyRijndael, opts.keyBase64Rijndael);
  if (key === null)
    add(
      "encryption key",
      opts.getKey !== undefined,
      opts.getKey
        ? `from file ${opts.getKey}`
        : "none: you will be asked for it at every knock; add KEY_BASE64 (spaknock -k makes one)",
    );
  else if (key === "bad-base64") add("encryption key", false, "KEY_BASE64 is not valid base64");
  else
    add(
      "encryption key",
      key >= 1 && key <= MAX_RIJNDAEL_KEY_SIZE,
      `${key} bytes${key > MAX_RIJNDAEL_KEY_SIZE ? ` (at most ${MAX_RIJNDAEL_KEY_SIZE})` : ""}`,
    );
  const hmac = keyLength(opts.keyHmac, opts.keyBase64Hmac);
  if (hmac === null)
    add(
      "HMAC key",
      false,
      "none: packets are not authenticated; add HMAC_KEY_BASE64 and USE_HMAC Y (spaknock -k makes one)",
    );
  else if (hmac === "bad-base64") add("HMAC key", false, "HMAC_KEY_BASE64 is not valid base64");
  else add("HMAC key", hmac >= 1 && hmac <= MAX_HMAC_KEY_SIZE, `${hmac} bytes`);
  if (key !== null && hmac !== null && key !== "bad-base64" && hmac !== "bad-base64") {
    const a = opts.keyBase64Rijndael
      ? Buffer.from(opts.keyBase64Rijndael, "base64")
      : Buffer.from(opts.keyRijndael ?? "");
    const b = opts.keyBase64Hmac
      ? Buffer.from(opts.keyBase64Hmac, "base64")
      : Buffer.from(opts.keyHmac ?? "");
    add(
      "keys differ",
      !a.equals(b),
      a.equals(b) ? "the HMAC key equals the encryption key: servers refuse that" : "yes",
    );
  }
}

export function renderChecks(checks: readonly Check[]): string {
  return checks
    .map((c) => `${c.ok ? "ok     " : "PROBLEM"}  ${c.name.padEnd(18)} ${c.detail}`)
    .join("\n");
}
