/**
 * The default command: build one SPA packet from fwknop-compatible options and send it (or, with
 * `-T`, print it). Building is pure; sending is one small transport call.
 */
import { randomBytes } from "node:crypto";
import { userInfo } from "node:os";
import {
  buildSpaPacket,
  DEFAULT_SPA_PORT,
  isValidIpv4,
  type MessageType,
  MIN_GNUPG_MSG_SIZE,
  parseDigestType,
  parseProtoPort,
  randomValueFromBytes,
  SpaError,
  type SpaKeys,
  type SpaMessage,
  type SpaMessageInput,
} from "../../core/index.js";
import { describePacket } from "../describe-packet.js";
import { UsageError } from "../exit-codes.js";
import { type KeyOptions, keysFromOptions } from "../key-options.js";
import { sendUdp } from "../transport.js";

export interface KnockOptions extends KeyOptions {
  access?: string;
  allowIp?: string;
  sourceIp?: boolean;
  destination?: string;
  serverPort?: string;
  spoofUser?: string;
  fwTimeout?: string;
  natAccess?: string;
  natLocal?: boolean;
  digestType?: string;
  serverCmd?: string;
  test?: boolean;
  verbose?: boolean;
}

export interface KnockPlan {
  readonly input: SpaMessageInput;
  readonly keys: SpaKeys;
  readonly server: string;
  readonly port: number;
}

function parseIntOption(value: string, option: string, min: number, max: number): number {
  if (!/^[0-9]+$/.test(value) || Number(value) < min || Number(value) > max) {
    throw new UsageError(`${option}: expected a whole number in ${min}..${max}, got "${value}"`);
  }
  return Number(value);
}

/** Checks `-A tcp/22,udp/53` and returns it normalised. */
export function parseAccessOption(access: string): { text: string; firstPort: number } {
  const items = access.split(",").map((s) => s.trim());
  try {
    const ports = items.map(parseProtoPort);
    return { text: items.join(","), firstPort: (ports[0] as { port: number }).port };
  } catch {
    throw new UsageError(
      `-A "${access}": expected proto/port[,proto/port...] with proto tcp or udp and port 1..65535`,
    );
  }
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

export interface KnockEnvironment {
  readonly now: () => number;
  readonly randomBytes: (n: number) => Uint8Array;
  readonly defaultUsername: () => string;
}

/** Turns parsed options into a packet request, with fwknop's rules for message types. */
export function planKnock(opts: KnockOptions, env: KnockEnvironment): KnockPlan {
  if (!opts.destination) throw new UsageError("a server is required: -D <host>");
  const choices = [opts.allowIp !== undefined, opts.sourceIp === true].filter(Boolean).length;
  if (choices === 0) throw new UsageError("say which address to open for: -a <ip> or -s");
  if (choices > 1) throw new UsageError("use either -a or -s, not both");
  const allowIp = opts.sourceIp ? "0.0.0.0" : (opts.allowIp as string);
  if (!isValidIpv4(allowIp))
    throw new UsageError(`-a "${allowIp}": not a dotted-quad IPv4 address`);

  const command = opts.serverCmd !== undefined;
  if (command && opts.access) throw new UsageError("use either -A or -C, not both");
  if (!command && !opts.access) throw new UsageError("say what to open: -A proto/port[,...]");
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
    natAccess = `${opts.destination},${access.firstPort}`;
  }
  const nat = opts.natAccess ? "remote" : opts.natLocal ? "local" : "none";
  const messageType = chooseMessageType(command, nat, timeout);

  const input: SpaMessageInput = {
    randomValue: randomValueFromBytes(env.randomBytes(8)),
    username: opts.spoofUser ?? env.defaultUsername(),
    timestamp: Math.floor(env.now() / 1000),
    messageType,
    message: command ? `${allowIp},${opts.serverCmd}` : `${allowIp},${access?.text}`,
    natAccess,
    clientTimeout: messageType === 3 || messageType === 4 || messageType === 6 ? timeout : 0,
    digestType: parseDigestType(opts.digestType ?? "sha256"),
  };
  const port = opts.serverPort ? parseIntOption(opts.serverPort, "-p", 1, 65535) : DEFAULT_SPA_PORT;
  return { input, keys: keysFromOptions(opts), server: opts.destination, port };
}

export const systemKnockEnvironment: KnockEnvironment = {
  now: () => Date.now(),
  randomBytes: (n) => randomBytes(n),
  defaultUsername: () => {
    try {
      return userInfo().username;
    } catch {
      return "spaknock";
    }
  },
};

export async function runKnock(opts: KnockOptions, out: (line: string) => void): Promise<void> {
  const plan = planKnock(opts, systemKnockEnvironment);
  let built: ReturnType<typeof buildSpaPacket>;
  try {
    built = buildSpaPacket(plan.input, plan.keys, randomBytes(8));
  } catch (err) {
    // A field fwknopd would refuse (username, message too long...) is the user's to fix.
    if (err instanceof SpaError && err.code !== "KEY_INVALID") throw new UsageError(err.message);
    throw err;
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
    out("");
    out(`Generating SPA packet:\n    protocol: udp\n    destination: ${plan.server}:${plan.port}`);
  }
  if (opts.test) {
    out("test mode enabled, SPA packet not actually sent.");
    out(built.wire);
    return;
  }
  await sendUdp(plan.server, plan.port, built.wire);
  if (opts.verbose) out(`sent ${built.wire.length} bytes`);
}
