/**
 * Sending SPA data to a server the three ways fwknop's client does without root: one UDP
 * datagram, one TCP connection carrying the wire string, or that connection carrying an HTTP GET
 * (docs/protocol.md section 6). fwknopd only sniffs these packets, so each must carry the whole
 * SPA data in one datagram or one TCP segment.
 */
import { createSocket } from "node:dgram";
import { connect, isIP } from "node:net";
import { RAND_VAL_SIZE } from "../core/index.js";
import { hostPort } from "./server-address.js";

export const SPA_TRANSPORTS = ["udp", "tcp", "http"] as const;
export type SpaTransport = (typeof SPA_TRANSPORTS)[number];

/** fwknop 2.6.10's default `User-Agent`; fwknopd only takes an HTTP SPA whose UA starts `Fwknop`. */
export const DEFAULT_HTTP_USER_AGENT = "Fwknop/2.6.10";
/** How long a TCP or HTTP send may take, connect included, unless the caller says otherwise. */
export const DEFAULT_SEND_TIMEOUT_MS = 5_000;

// fwknop's get_rand_port(): MIN_HIGH_PORT + (first MAX_PORT_STR_LEN digits % (MAX_PORT - MIN_HIGH_PORT)).
const RANDOM_PORT_MIN = 10_000;
const MAX_PORT = 65_535;
const PORT_DIGITS = 5;

export interface SendOptions {
  /** Bind the sending socket to this local port (fwknop's `-S`); default: OS-assigned. */
  readonly sourcePort?: number;
  /** HTTP only; default `Fwknop/2.6.10`. */
  readonly userAgent?: string;
  /** TCP/HTTP: give up after this long (connect included); default 5 s. */
  readonly timeoutMs?: number;
  /**
   * The server's address, already resolved from `host` (which HTTP still names in `Host`), so
   * that the packet goes to the address family it was built for. Default: resolve `host`.
   */
  readonly address?: string;
}

/** Sends `wire` (the SPA data string) to `host:port` over `proto`; resolves once it is sent. */
export function sendSpa(
  proto: SpaTransport,
  host: string,
  port: number,
  wire: string,
  opts: SendOptions = {},
): Promise<void> {
  const target = { host, address: opts.address ?? host };
  switch (proto) {
    case "udp":
      return sendDatagram(target, port, Buffer.from(wire, "latin1"), opts.sourcePort);
    case "tcp":
      return sendOverTcp("tcp", target, port, Buffer.from(wire, "latin1"), opts);
    case "http":
      return sendOverTcp(
        "http",
        target,
        port,
        Buffer.from(
          httpRequestFor(wire, host, opts.userAgent ?? DEFAULT_HTTP_USER_AGENT),
          "latin1",
        ),
        opts,
      );
    default:
      throw new TypeError(`unknown SPA transport "${String(proto)}"`);
  }
}

/**
 * The request fwknop's `-P http` sends, byte for byte: base64 `+` and `/` become the URL-safe `-`
 * and `_` (fwknopd maps them back), and `Host` is the server as the user named it.
 */
export function httpRequestFor(wire: string, host: string, userAgent: string): string {
  for (const [name, value] of [
    ["host", host],
    ["user agent", userAgent],
  ] as const) {
    // Printable ASCII only: a CR or LF would end the header early or inject another one.
    if (!/^[ -~]+$/.test(value)) {
      throw new TypeError(`HTTP ${name} must be non-empty printable ASCII`);
    }
  }
  const path = wire.replaceAll("+", "-").replaceAll("/", "_");
  return (
    `GET /${path} HTTP/1.0\r\n` +
    `User-Agent: ${userAgent}\r\n` +
    "Accept: */*\r\n" +
    `Host: ${host}\r\n` +
    "Connection: close\r\n" +
    "\r\n"
  );
}

/**
 * fwknop's `-r`: a destination port in 10000..65534 from the first five digits of the packet's
 * 16-digit random value.
 */
export function randomServerPort(randomValue: string): number {
  if (!new RegExp(`^[0-9]{${RAND_VAL_SIZE}}$`).test(randomValue)) {
    throw new TypeError(`random value must be ${RAND_VAL_SIZE} decimal digits`);
  }
  return (
    RANDOM_PORT_MIN + (Number(randomValue.slice(0, PORT_DIGITS)) % (MAX_PORT - RANDOM_PORT_MIN))
  );
}

/** Where to send: the host as the user named it (for messages) and the address to use. */
interface SendTarget {
  readonly host: string;
  readonly address: string;
}

function sendDatagram(
  target: SendTarget,
  port: number,
  payload: Buffer,
  sourcePort: number | undefined,
): Promise<void> {
  return new Promise((resolve, reject) => {
    // A name (no address given) keeps fwknop's IPv4 lookup; a literal picks its own family.
    const socket = createSocket(isIP(target.address) === 6 ? "udp6" : "udp4");
    const fail = (err: Error): void => {
      socket.close();
      reject(describeSendError(err, "udp", target.host, port, sourcePort));
    };
    socket.once("error", fail);
    const send = (): void => {
      socket.send(payload, port, target.address, (err) => {
        if (err) {
          fail(err);
          return;
        }
        socket.close();
        resolve();
      });
    };
    if (sourcePort === undefined) send();
    else socket.bind({ port: sourcePort }, send);
  });
}

function sendOverTcp(
  proto: "tcp" | "http",
  target: SendTarget,
  port: number,
  payload: Buffer,
  opts: SendOptions,
): Promise<void> {
  const timeoutMs = opts.timeoutMs ?? DEFAULT_SEND_TIMEOUT_MS;
  const { host } = target;
  return new Promise((resolve, reject) => {
    const family = isIP(target.address);
    const socket = connect({
      host: target.address,
      port,
      family: family === 0 ? 4 : family,
      ...(opts.sourcePort === undefined ? {} : { localPort: opts.sourcePort }),
    });
    let settled = false;
    const timer = setTimeout(() => {
      fail(new Error(`no answer within ${timeoutMs} ms`), "ETIMEDOUT");
    }, timeoutMs);
    const fail = (err: Error, code?: string): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      socket.destroy();
      reject(describeSendError(err, proto, host, port, opts.sourcePort, code));
    };
    socket.once("error", (err) => fail(err));
    socket.once("connect", () => {
      // One write: fwknopd sniffs single segments, so the SPA data must not be split.
      socket.end(payload, () => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        resolve();
        // Like fwknop's close() after send(): the kernel delivers what is queued. Reading what the
        // peer sends back (an HTTP response) keeps an unread buffer from turning the close into a
        // reset, and unref() lets the process exit without waiting for the peer's FIN.
        socket.on("error", () => {});
        socket.resume();
        socket.unref();
        setTimeout(() => socket.destroy(), timeoutMs).unref();
      });
    });
  });
}

function describeSendError(
  err: Error,
  proto: SpaTransport,
  host: string,
  port: number,
  sourcePort: number | undefined,
  code = (err as NodeJS.ErrnoException).code,
): Error {
  const where = `${proto.toUpperCase()} ${hostPort(host, port)}`;
  switch (code) {
    case "ECONNREFUSED":
      return new Error(
        `sending the SPA packet over ${where}: connection refused. TCP and HTTP knocks need ` +
          "something that accepts on that port (fwknopd ENABLE_TCP_SERVER, or a web server for " +
          "-P http -p 80); or send over UDP",
        { cause: err },
      );
    case "ETIMEDOUT":
      return new Error(
        `sending the SPA packet over ${where}: ${err.message}; a firewall may be dropping it`,
        { cause: err },
      );
    case "EADDRINUSE":
      return new Error(
        `sending the SPA packet over ${where}: source port ${sourcePort} is already in use (-S)`,
        { cause: err },
      );
    case "ENOTFOUND":
    case "EAI_AGAIN":
      return new Error(`sending the SPA packet: cannot resolve "${host}" to an address`, {
        cause: err,
      });
    default:
      return new Error(`sending the SPA packet over ${where}: ${err.message}`, { cause: err });
  }
}
