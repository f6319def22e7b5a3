/**
 * A knock in the JOSE profile (SPA-JOSE.md): the request signed with the user's Ed25519 key and
 * encrypted to the server's X25519 key, both read from files named by `--signing-key` and
 * `--server-key` (or SIGNING_KEY_FILE and SERVER_KEY_FILE). Planning is pure; the packet itself
 * is core's `buildJosePacket`.
 */
import {
  buildJosePacket,
  type JosePrivateKey,
  type JosePublicKey,
  type JoseRequest,
  MAX_CLIENT_TIMEOUT,
  parseIpAddress,
} from "../../core/index.js";
import type { ClientOptions } from "../client-settings.js";
import { UsageError } from "../exit-codes.js";
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
import type { KnockEnvironment } from "./knock.js";

export interface JoseKeys {
  readonly signingKey: JosePrivateKey;
  readonly serverKey: JosePublicKey;
}

export interface JoseKnockPlan {
  readonly request: Omit<JoseRequest, "jti">;
  /** 16 bytes from the CSPRNG: the packet's `jti`, its replay key with the signer's kid. */
  readonly jtiBytes: Uint8Array;
  readonly keys: JoseKeys;
  readonly server: string;
  readonly port: number;
  readonly transport: "udp" | "tcp";
  readonly sourcePort: number | undefined;
}

// Options that only mean something for an fwknop-format packet, with the names a user would
// recognise from the command line and the rc file.
const FWKNOP_KEY_OPTIONS: readonly [keyof ClientOptions, string][] = [
  ["keyRijndael", "--key-rijndael (KEY)"],
  ["keyBase64Rijndael", "--key-base64-rijndael (KEY_BASE64)"],
  ["getKey", "-G (KEY_FILE)"],
  ["stdin", "--stdin"],
  ["fd", "--fd"],
  ["keyHmac", "--key-hmac (HMAC_KEY)"],
  ["keyBase64Hmac", "--key-base64-hmac (HMAC_KEY_BASE64)"],
  ["getHmacKey", "--get-hmac-key (HMAC_KEY_FILE)"],
];
const FWKNOP_FORMAT_OPTIONS: readonly [keyof ClientOptions, string][] = [
  ["useHmac", "--use-hmac"],
  ["hmacDigestType", "--hmac-digest-type"],
  ["encryptionMode", "-M/--encryption-mode"],
  ["digestType", "-m/--digest-type"],
];

const given = (o: ClientOptions, key: keyof ClientOptions) =>
  o[key] !== undefined && o[key] !== false;

/**
 * Refuses what makes a JOSE knock ambiguous or meaningless. `cli` is the command line alone and
 * `opts` the effective settings: an rc `[default]` may set DIGEST_TYPE for the fwknop stanzas
 * without making a JOSE stanza ambiguous, but a key beside a signing key is always one too many.
 */
export function checkJoseOptions(cli: ClientOptions, opts: ClientOptions): void {
  if (opts.signingKey === undefined) {
    throw new UsageError(
      "--server-key (SERVER_KEY_FILE) is for JOSE-profile packets: add --signing-key FILE " +
        "(your Ed25519 key, from `spaknock keygen --ed25519 -o FILE`)",
    );
  }
  if (opts.serverKey === undefined) {
    throw new UsageError(
      "--signing-key needs --server-key FILE (or SERVER_KEY_FILE in the stanza): the server's " +
        "public X25519 JWK, from its operator",
    );
  }
  const conflicting = [
    ...FWKNOP_KEY_OPTIONS.filter(([k]) => given(opts, k)),
    ...FWKNOP_FORMAT_OPTIONS.filter(([k]) => given(cli, k)),
  ].map(([, label]) => label);
  if (conflicting.length > 0) {
    throw new UsageError(
      `ambiguous: a signing key (JOSE profile) and ${conflicting.join(", ")} (fwknop format); ` +
        "give one or the other",
    );
  }
  if (opts.serverCmd !== undefined)
    throw new UsageError("-C: JOSE-profile packets carry no server command, only ports to open");
  if (opts.natAccess !== undefined || opts.natLocal)
    throw new UsageError("-N/--nat-local: JOSE-profile packets ask for no NAT forwarding");
  if (opts.randPort)
    throw new UsageError(
      "-r: the random port comes from the fwknop packet's random value; a JOSE packet has none (use -p)",
    );
}

/** The packet request and where it goes. `serverFamily` decides what `-s` sends. */
export function planJoseKnock(
  opts: ClientOptions,
  keys: JoseKeys,
  serverFamily: 4 | 6,
  env: KnockEnvironment,
): JoseKnockPlan {
  const server = requireDestination(opts);
  const choice = chooseAllowIp(opts);
  let allowIp: string;
  if (choice === "source") {
    allowIp = serverFamily === 6 ? "::" : "0.0.0.0";
  } else {
    const parsed = parseIpAddress(choice);
    if (parsed === null) throw new UsageError(`-a "${choice}": not an IPv4 or IPv6 address`);
    allowIp = parsed.text;
  }
  if (opts.access === undefined)
    throw new UsageError("say what to open: -A proto/port[,...] (or ACCESS in the rc stanza)");
  const access = parseAccessOption(opts.access);
  const clientTimeout = opts.fwTimeout
    ? parseIntOption(opts.fwTimeout, "-f/--fw-timeout", 0, MAX_CLIENT_TIMEOUT)
    : 0;
  const transport = parseTransport(opts.serverProto);
  if (transport === "http") {
    throw new UsageError(
      "-P http sends fwknop's HTTP GET form, which only fwknopd reads: send JOSE packets over udp or tcp",
    );
  }
  return {
    request: {
      username: opts.spoofUser ?? env.defaultUsername(),
      timestamp: Math.max(0, Math.floor(env.now() / 1000) + timeOffsetSeconds(opts)),
      allowIp,
      ports: access.ports,
      clientTimeout,
    },
    jtiBytes: env.randomBytes(16),
    keys,
    server,
    port: parseServerPort(opts),
    transport,
    sourcePort: parseSourcePort(opts),
  };
}

/** The datagram text; a field the profile refuses (username, size) is the user's to fix. */
export async function buildJoseKnock(plan: JoseKnockPlan): Promise<string> {
  try {
    return await buildJosePacket(
      plan.request,
      plan.jtiBytes,
      plan.keys.signingKey,
      plan.keys.serverKey,
    );
  } catch (err) {
    throw asUsageError(err);
  }
}
