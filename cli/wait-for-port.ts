/**
 * Waiting for a knocked port to open. Right after a knock the server's rule is usually not in
 * place yet, so the first SYN is refused or dropped, and the kernel would retransmit a dropped SYN
 * only after 1 s. Fresh connection attempts are therefore started every `retryIntervalMs`; each
 * may live for `attemptTimeoutMs`, so a link slower than the retry interval still connects.
 */
import { type Socket, connect as tcpConnect } from "node:net";
import { hostPort, resolveServer } from "./server-address.js";
import { startSpinner } from "./spinner.js";

export const DEFAULT_RETRY_INTERVAL_MS = 250;
export const DEFAULT_ATTEMPT_TIMEOUT_MS = 2_000;

export interface WaitForPortOptions {
  /** Give up after this long. */
  readonly timeoutMs: number;
  /** How long one connection attempt may wait for its handshake; default 2 s. */
  readonly attemptTimeoutMs?: number;
  /** Start a fresh attempt this often while none has connected; default 250 ms. */
  readonly retryIntervalMs?: number;
  /** Called as each attempt starts (1-based), with the time waited so far. */
  readonly onAttempt?: (attempt: number, elapsedMs: number) => void;
}

/**
 * Resolves true as soon as a TCP handshake with `host:port` completes (that connection is closed
 * at once), false when none has within `timeoutMs`. Rejects only when `host` does not resolve.
 */
export async function waitForTcpPort(
  host: string,
  port: number,
  opts: WaitForPortOptions,
): Promise<boolean> {
  const socket = await connectWhenOpen(host, port, opts);
  socket?.destroy();
  return socket !== undefined;
}

/**
 * Like waitForTcpPort, but hands over the first connection that completes (created with
 * `allowHalfOpen`, so each direction can be closed on its own), or undefined at the timeout.
 */
export async function connectWhenOpen(
  host: string,
  port: number,
  opts: WaitForPortOptions,
): Promise<Socket | undefined> {
  const started = Date.now();
  // Resolve once, so every attempt goes to the address that was knocked for (the knock resolves
  // the same way: IPv4 first, IPv6 for a name that has only AAAA).
  const { address } = await resolveServer(host);
  const remainingMs = opts.timeoutMs - (Date.now() - started);
  if (remainingMs <= 0) return undefined;
  const attemptTimeoutMs = opts.attemptTimeoutMs ?? DEFAULT_ATTEMPT_TIMEOUT_MS;
  const retryIntervalMs = opts.retryIntervalMs ?? DEFAULT_RETRY_INTERVAL_MS;

  return new Promise((resolve) => {
    // Each attempt in flight, with the function that abandons it.
    const live = new Map<Socket, () => void>();
    let attempts = 0;
    let done = false;
    const finish = (winner: Socket | undefined): void => {
      if (done) return;
      done = true;
      clearTimeout(deadline);
      clearInterval(retry);
      for (const abandon of [...live.values()]) abandon();
      resolve(winner);
    };
    const attempt = (): void => {
      attempts += 1;
      opts.onAttempt?.(attempts, Date.now() - started);
      const socket = tcpConnect({ host: address, port, allowHalfOpen: true });
      const release = (): void => {
        clearTimeout(giveUp);
        live.delete(socket);
        socket.off("error", abandon);
      };
      const abandon = (): void => {
        release();
        socket.destroy();
      };
      const giveUp = setTimeout(abandon, attemptTimeoutMs);
      live.set(socket, abandon);
      // Refused, unreachable, reset: the rule is not in place yet; a later attempt tries again.
      socket.once("error", abandon);
      socket.once("connect", () => {
        release();
        finish(socket);
      });
    };
    const deadline = setTimeout(() => finish(undefined), remainingMs);
    const retry = setInterval(attempt, retryIntervalMs);
    attempt();
  });
}

/** The line printed when the port stays closed after a knock. */
export function portDidNotOpenMessage(host: string, port: number, timeoutMs: number): string {
  const seconds = Number((timeoutMs / 1000).toFixed(1));
  return (
    `spaknock: ${hostPort(host, port)} did not open within ${seconds} s after the knock; ` +
    "check the server's OPEN_PORTS and that spaknockd/fwknopd is running"
  );
}

export interface KnockThenConnectOptions {
  readonly host: string;
  readonly port: number;
  /** Sends the SPA packet; its errors propagate unchanged. */
  readonly knock: () => Promise<void>;
  readonly waitTimeoutMs: number;
  /** Gets the progress line (on a terminal only) and the timeout message. */
  readonly stderr: NodeJS.WritableStream;
}

/**
 * Knocks, then waits for `host:port` to accept, showing progress on a terminal. Resolves with the
 * connection, or undefined (after saying so on `stderr`) when the port stays closed.
 */
export async function knockThenConnect(opts: KnockThenConnectOptions): Promise<Socket | undefined> {
  await opts.knock();
  const spinner = startSpinner(
    opts.stderr,
    `knocked, waiting for ${hostPort(opts.host, opts.port)}`,
  );
  let socket: Socket | undefined;
  try {
    socket = await connectWhenOpen(opts.host, opts.port, { timeoutMs: opts.waitTimeoutMs });
  } finally {
    spinner.stop();
  }
  if (socket === undefined) {
    opts.stderr.write(`${portDidNotOpenMessage(opts.host, opts.port, opts.waitTimeoutMs)}\n`);
  }
  return socket;
}
