/**
 * Knock options read the same way for both packet formats: numbers, durations, `-A`, `-P`, `-p`,
 * `-S`, and which address the server should open for. Each parser says which option was wrong and
 * why.
 */
import { DEFAULT_SPA_PORT, type ProtoPort, parseProtoPort, SpaError } from "../core/index.js";
import type { ClientOptions } from "./client-settings.js";
import { UsageError } from "./exit-codes.js";
import { SPA_TRANSPORTS, type SpaTransport } from "./transport.js";

export function parseIntOption(value: string, option: string, min: number, max: number): number {
  if (!/^[0-9]+$/.test(value) || Number(value) < min || Number(value) > max) {
    throw new UsageError(`${option}: expected a whole number in ${min}..${max}, got "${value}"`);
  }
  return Number(value);
}

/** `--time-offset-plus 90`, `90s`, `5m`, `2h`, `1d` → seconds. */
export function parseTimeOffset(value: string, option: string): number {
  const m = /^([0-9]{1,9})([smhd]?)$/i.exec(value.trim());
  if (!m)
    throw new UsageError(
      `${option}: expected a duration like 60, 60s, 5m, 2h or 1d, got "${value}"`,
    );
  const unit = { "": 1, s: 1, m: 60, h: 3600, d: 86400 }[(m[2] as string).toLowerCase()] ?? 1;
  return Number(m[1]) * unit;
}

/** The seconds `--time-offset-plus` and `--time-offset-minus` add to the packet's timestamp. */
export function timeOffsetSeconds(opts: ClientOptions): number {
  return (
    (opts.timeOffsetPlus ? parseTimeOffset(opts.timeOffsetPlus, "--time-offset-plus") : 0) -
    (opts.timeOffsetMinus ? parseTimeOffset(opts.timeOffsetMinus, "--time-offset-minus") : 0)
  );
}

export interface AccessOption {
  /** Normalised `proto/port[,proto/port...]`. */
  readonly text: string;
  readonly ports: readonly ProtoPort[];
  readonly firstPort: number;
}

/** Checks `-A tcp/22,udp/53` and returns it normalised. */
export function parseAccessOption(access: string): AccessOption {
  const items = access.split(",").map((s) => s.trim());
  try {
    const ports = items.map(parseProtoPort);
    return { text: items.join(","), ports, firstPort: (ports[0] as ProtoPort).port };
  } catch {
    throw new UsageError(
      `-A "${access}": expected proto/port[,proto/port...] with proto tcp or udp and port 1..65535`,
    );
  }
}

export function parseTransport(value: string | undefined): SpaTransport {
  const v = (value ?? "udp").toLowerCase();
  const transport = SPA_TRANSPORTS.find((t) => t === v);
  if (transport !== undefined) return transport;
  throw new UsageError(
    `-P "${value}": spaknock sends over udp, tcp or http (raw modes need root tools)`,
  );
}

/**
 * `-a IP` or `-s` (`-R` has been turned into `-a` by then): exactly one. Returns the address as
 * given, or "source" for "let the server use the packet's source address".
 */
export function chooseAllowIp(opts: ClientOptions): string | "source" {
  const choices = [opts.allowIp !== undefined, opts.sourceIp === true].filter(Boolean).length;
  if (choices === 0) throw new UsageError("say which address to open for: -a <ip>, -s or -R");
  if (choices > 1) throw new UsageError("use one of -a, -s and -R");
  return opts.sourceIp ? "source" : (opts.allowIp as string);
}

/** `-p PORT`, else the port fwknopd listens on by default. */
export function parseServerPort(opts: ClientOptions): number {
  return opts.serverPort ? parseIntOption(opts.serverPort, "-p", 1, 65535) : DEFAULT_SPA_PORT;
}

/** `-S PORT`, or undefined for any source port. */
export function parseSourcePort(opts: ClientOptions): number | undefined {
  return opts.sourcePort ? parseIntOption(opts.sourcePort, "-S", 1, 65535) : undefined;
}

/**
 * For an error from building a packet: a field the receiver would refuse (username, size...) is
 * the user's to fix, so it becomes a usage error; a bad key stays what it is.
 */
export function asUsageError(err: unknown): unknown {
  return err instanceof SpaError && err.code !== "KEY_INVALID" ? new UsageError(err.message) : err;
}

export function requireDestination(opts: ClientOptions): string {
  if (!opts.destination)
    throw new UsageError("a server is required: -D <host> (or SPA_SERVER in the rc stanza)");
  return opts.destination;
}
