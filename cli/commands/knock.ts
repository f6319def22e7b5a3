/**
 * The default command: one SPA packet from fwknop-compatible options, rc stanzas and keys, sent
 * over UDP, TCP or HTTP (or, with `-T`, printed). With a signing key the packet is a JOSE-profile
 * one (knock-jose.ts), otherwise fwknop's format. Building the request is pure (`planKnock`);
 * gathering keys may prompt; sending is one transport call.
 */
import { randomBytes } from "node:crypto";
import { writeFileSync } from "node:fs";
import { userInfo } from "node:os";
import {
  assertHmacKey,
  assertRijndaelKey,
  assertUsableKeys,
  buildSpaPacket,
  type MessageType,
  MIN_GNUPG_MSG_SIZE,
  parseDigestType,
  parseEncryptionMode,
  parseIpAddress,
  randomValueFromBytes,
  type SpaKeys,
  type SpaMessage,
  type SpaMessageInput,
} from "../../core/index.js";
import {
  applyRc,
  type ClientOptions,
  loadRcContext,
  rcValuesFor,
  saveRcStanza,
} from "../client-settings.js";
import { describeJosePacket, describePacket } from "../describe-packet.js";
import { UsageError } from "../exit-codes.js";
import { readServerPublicKey, readSigningKey } from "../jose-key-files.js";
import { decodeBase64Key, keyFromFd, keyFromFile, promptHidden } from "../key-sources.js";
import {
  asUsageError,
  chooseAllowIp,
  parseAccessOption,
  parseIntOption,
  parseServerPort,
  parseSourcePort,
  parseTransport,
  requireDestination,
  timeOffsetSeconds,
} from "../knock-options.js";
import { resolveExternalIp } from "../resolve-ip.js";
import { hostPort, resolveServer } from "../server-address.js";
import { randomServerPort, type SpaTransport, sendSpa } from "../transport.js";
import { buildJoseKnock, checkJoseOptions, planJoseKnock } from "./knock-jose.js";

export interface KnockPlan {
  readonly input: SpaMessageInput;
  readonly keys: SpaKeys;
  readonly server: string;
  readonly port: number;
  readonly transport: SpaTransport;
  readonly sourcePort: number | undefined;
}

export interface KnockEnvironment {
  readonly now: () => number;
  readonly randomBytes: (n: number) => Uint8Array;
  readonly defaultUsername: () => string;
}

function chooseMessageType(
  command: boolean,
  nat: "none" | "remote" | "local",
  timeout: number,
): MessageType {
  if (command) return 0;
  if (nat === "local") return timeout > 0 ? 6 : 5;
  if (nat === "remote") return timeout > 0 ? 4 : 2;
  return timeout > 0 ? 3 : 1;
}

/** An fwknop-format allow-IP: IPv4 only (fwknop 2.6.10 defines no other), said plainly. */
function fwknopAllowIp(given: string): string {
  const parsed = parseIpAddress(given);
  if (parsed?.family === 4) return parsed.text;
  if (parsed?.family === 6) {
    throw new UsageError(
      `-a "${given}": fwknop-format packets carry IPv4 addresses only; for an IPv6 address ` +
        "knock with a per-user key (--signing-key and --server-key, the JOSE profile)",
    );
  }
  throw new UsageError(`-a "${given}": not a dotted-quad IPv4 address`);
}

/**
 * Turns options (rc already applied, allow-IP resolved) and keys into a packet request, with
 * fwknop's rules for message types.
 */
export function planKnock(opts: ClientOptions, keys: SpaKeys, env: KnockEnvironment): KnockPlan {
  const destination = requireDestination(opts);
  const choice = chooseAllowIp(opts);
  const allowIp = choice === "source" ? "0.0.0.0" : fwknopAllowIp(choice);

  const command = opts.serverCmd !== undefined;
  if (command && opts.access) throw new UsageError("use either -A or -C, not both");
  if (!command && !opts.access)
    throw new UsageError("say what to open: -A proto/port[,...] (or ACCESS in the rc stanza)");
  const access = command ? undefined : parseAccessOption(opts.access as string);
  const timeout = opts.fwTimeout ? parseIntOption(opts.fwTimeout, "-f/--fw-timeout", 0, 65536) : 0;

  if (opts.natAccess && opts.natLocal)
    throw new UsageError("use either -N or --nat-local, not both");
  let natAccess: string | null = null;
  if (opts.natAccess) {
    const m = /^([^:,]+)[:,]([0-9]{1,5})$/.exec(opts.natAccess.trim());
    if (!m) throw new UsageError(`-N "${opts.natAccess}": expected host:port`);
    natAccess = `${m[1]},${parseIntOption(m[2] as string, "-N port", 1, 65535)}`;
  } else if (opts.natLocal) {
    if (!access) throw new UsageError("--nat-local needs -A");
    natAccess = `${destination},${access.firstPort}`;
  }
  const nat = opts.natAccess ? "remote" : opts.natLocal ? "local" : "none";
  const messageType = chooseMessageType(command, nat, timeout);
  const offset = timeOffsetSeconds(opts);

  const randomValue = randomValueFromBytes(env.randomBytes(8));
  const input: SpaMessageInput = {
    randomValue,
    username: opts.spoofUser ?? env.defaultUsername(),
    timestamp: Math.max(0, Math.floor(env.now() / 1000) + offset),
    messageType,
    message: command ? `${allowIp},${opts.serverCmd}` : `${allowIp},${access?.text}`,
    natAccess,
    clientTimeout: messageType === 3 || messageType === 4 || messageType === 6 ? timeout : 0,
    digestType: parseDigestType(opts.digestType ?? "sha256"),
  };
  return {
    input,
    keys,
    server: destination,
    port: opts.randPort ? randomServerPort(randomValue) : parseServerPort(opts),
    transport: parseTransport(opts.serverProto),
    sourcePort: parseSourcePort(opts),
  };
}

/** Gathers the keys from options, files, descriptors or the terminal (in that order). */
export async function gatherKeys(o: ClientOptions): Promise<SpaKeys> {
  const given = [o.keyRijndael, o.keyBase64Rijndael, o.getKey, o.stdin, o.fd].filter(
    (v) => v !== undefined && v !== false,
  );
  if (given.length > 1) {
    throw new UsageError(
      "give the encryption key one way: --key-rijndael, --key-base64-rijndael, -G, --stdin or --fd",
    );
  }
  if (o.keyHmac !== undefined && o.keyBase64Hmac !== undefined) {
    throw new UsageError("use either --key-hmac or --key-base64-hmac, not both");
  }
  let key: Buffer;
  if (o.keyBase64Rijndael !== undefined)
    key = decodeBase64Key(o.keyBase64Rijndael, "--key-base64-rijndael");
  else if (o.keyRijndael !== undefined) key = Buffer.from(o.keyRijndael, "utf8");
  else if (o.stdin) key = Buffer.from(keyFromFd(0, "--stdin"), "utf8");
  else if (o.fd !== undefined)
    key = Buffer.from(keyFromFd(parseIntOption(o.fd, "--fd", 0, 1024), "--fd"), "utf8");
  else if (o.getKey !== undefined)
    key = Buffer.from(keyFromFile(o.getKey, o.destination, "-G"), "utf8");
  else key = Buffer.from(await promptHidden("Enter encryption key: "), "utf8");
  assertRijndaelKey(key);

  let hmacKey: Buffer | null = null;
  if (o.keyBase64Hmac !== undefined)
    hmacKey = decodeBase64Key(o.keyBase64Hmac, "--key-base64-hmac");
  else if (o.keyHmac !== undefined) hmacKey = Buffer.from(o.keyHmac, "utf8");
  else if (o.getHmacKey !== undefined)
    hmacKey = Buffer.from(keyFromFile(o.getHmacKey, o.destination, "--get-hmac-key"), "utf8");
  else if (o.useHmac || o.hmacDigestType !== undefined) {
    hmacKey = Buffer.from(await promptHidden("Enter HMAC key: "), "utf8");
  }
  if (hmacKey) assertHmacKey(hmacKey);
  const keys: SpaKeys = {
    key,
    mode: parseEncryptionMode(o.encryptionMode ?? "cbc"),
    hmacKey,
    hmacType: parseDigestType(o.hmacDigestType ?? "sha256"),
  };
  assertUsableKeys(keys);
  return keys;
}

export const systemKnockEnvironment: KnockEnvironment = {
  now: () => Date.now(),
  randomBytes: (n) => randomBytes(n),
  defaultUsername: () => {
    const fromEnv = process.env.SPOOF_USER ?? process.env.LOGNAME ?? process.env.USER;
    if (fromEnv) return fromEnv;
    try {
      return userInfo().username;
    } catch {
      return "spaknock";
    }
  },
};

export interface KnockResult {
  readonly profile: "fwknop" | "jose";
  readonly server: string;
  readonly port: number;
  readonly transport: SpaTransport;
  readonly wire: string;
}

interface Delivery {
  readonly server: string;
  readonly port: number;
  readonly transport: SpaTransport;
  readonly sourcePort: number | undefined;
}

/** `-B`, `-T` or the send itself: the same for both packet formats. */
async function deliver(
  profile: KnockResult["profile"],
  plan: Delivery,
  wire: string,
  opts: ClientOptions,
  address: string | undefined,
  out: (line: string) => void,
): Promise<KnockResult> {
  if (opts.verbose) {
    out("");
    out(
      `Generating SPA packet:\n    protocol: ${plan.transport}\n    destination: ${hostPort(plan.server, plan.port)}`,
    );
  }
  if (opts.savePacket) writeFileSync(opts.savePacket, `${wire}\n`, { mode: 0o600 });
  const result = { profile, server: plan.server, port: plan.port, transport: plan.transport, wire };
  if (opts.test) {
    out("test mode enabled, SPA packet not actually sent.");
    out(wire);
    return result;
  }
  await sendSpa(plan.transport, plan.server, plan.port, wire, {
    address: address ?? (await resolveServer(plan.server)).address,
    ...(plan.sourcePort !== undefined ? { sourcePort: plan.sourcePort } : {}),
    ...(opts.userAgent !== undefined ? { userAgent: opts.userAgent } : {}),
  });
  if (opts.verbose) out(`sent ${wire.length} bytes over ${plan.transport}`);
  return result;
}

/**
 * Everything up to a sent (or printed) packet. Used by the default command and by `ssh` and
 * `proxy`, which knock first.
 */
export async function knockWithOptions(
  cli: ClientOptions,
  out: (line: string) => void,
  warn: (line: string) => void,
): Promise<KnockResult> {
  const rc = loadRcContext(cli);
  for (const w of rc.warnings) warn(w);
  if (cli.saveRcStanza) {
    if (!cli.namedConfig) throw new UsageError("--save-rc-stanza needs -n NAME");
    if (!rc.file) throw new UsageError("--save-rc-stanza needs an rc file (not --no-rc-file)");
    saveRcStanza(rc.file, cli.namedConfig, rcValuesFor(cli), cli.forceStanza === true);
    warn(`saved stanza [${cli.namedConfig}] in ${rc.file}`);
  }
  const opts = applyRc(cli, rc.values);
  const jose = opts.signingKey !== undefined || opts.serverKey !== undefined;
  // Refused before -R fetches anything: an ambiguous command line should cost nothing.
  if (jose) checkJoseOptions(cli, opts);
  if (opts.resolveIp) {
    if (!opts.resolveUrl) {
      throw new UsageError(
        "-R needs --resolve-url URL (or RESOLVE_URL in the rc stanza): spaknock has no default resolver",
      );
    }
    opts.allowIp = await resolveExternalIp(opts.resolveUrl);
    opts.resolveIp = false;
  }
  return jose ? knockJose(opts, out, warn) : knockFwknop(opts, out);
}

async function knockJose(
  opts: ClientOptions,
  out: (line: string) => void,
  warn: (line: string) => void,
): Promise<KnockResult> {
  const keys = {
    signingKey: await readSigningKey(opts.signingKey as string, warn),
    serverKey: await readServerPublicKey(opts.serverKey as string),
  };
  // -s sends "::" on an IPv6 connection, so the address is needed before the packet; -T with
  // -a needs none (and then looks nothing up).
  const destination = requireDestination(opts);
  const needsAddress = !opts.test || (opts.sourceIp === true && opts.allowIp === undefined);
  const server = needsAddress ? await resolveServer(destination) : undefined;
  const plan = planJoseKnock(opts, keys, server?.family ?? 4, systemKnockEnvironment);
  const wire = await buildJoseKnock(plan);
  if (opts.verbose) {
    out(
      describeJosePacket({
        signerKid: keys.signingKey.kid,
        serverKid: keys.serverKey.kid,
        request: { ...plan.request, jti: Buffer.from(plan.jtiBytes).toString("base64url") },
        wire,
      }),
    );
  }
  return deliver("jose", plan, wire, opts, server?.address, out);
}

async function knockFwknop(opts: ClientOptions, out: (line: string) => void): Promise<KnockResult> {
  const keys = await gatherKeys(opts);
  const plan = planKnock(opts, keys, systemKnockEnvironment);
  let built: ReturnType<typeof buildSpaPacket>;
  try {
    built = buildSpaPacket(plan.input, plan.keys, randomBytes(8));
  } catch (err) {
    throw asUsageError(err);
  }
  if (built.wire.length >= MIN_GNUPG_MSG_SIZE) {
    // Receivers (fwknopd included) classify 400+ characters as GPG and refuse it as Rijndael.
    throw new UsageError(
      `the packet would be ${built.wire.length} characters; servers treat ${MIN_GNUPG_MSG_SIZE}+ as GPG. ` +
        "Ask for fewer ports or use a shorter digest (-m sha256, --hmac-digest-type sha256)",
    );
  }
  if (opts.verbose) {
    const message: SpaMessage = {
      ...plan.input,
      version: "3.0.0",
      serverAuth: null,
      digest: built.digest,
    };
    out(
      describePacket({
        message,
        hmacType: plan.keys.hmacKey ? plan.keys.hmacType : null,
        mode: plan.keys.mode,
        encoded: built.encoded,
        hmac: built.hmac,
        wire: built.wire,
      }),
    );
  }
  return deliver("fwknop", plan, built.wire, opts, undefined, out);
}
