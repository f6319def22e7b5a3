/** `spaknockd relay`: forward SPA datagrams to the knock Lambda (agent/relay.ts) until SIGTERM. */
import { EXIT, parseIpAddress } from "../../core/index.js";
import { UdpSocketCapture } from "../capture/udp-socket.js";
import { stderrLog, syslogLog } from "../log.js";
import { checkFunction, RELAY_DEFAULTS, Relay } from "../relay.js";

export interface RelayCliOptions {
  function: string;
  listen: string;
  region?: string;
  endpoint?: string;
  rate: string;
  foreground?: boolean;
  verbose?: boolean;
}

/**
 * `198.18.0.1:62201` or `[2001:db8::1]:62201` (brackets, as in a URL, because the colons of an
 * IPv6 address would swallow the port); `[::]:PORT` listens dual-stack.
 */
export function parseListen(text: string): { address: string; port: number } | null {
  const m = /^(?:(\d+\.\d+\.\d+\.\d+)|\[([0-9A-Fa-f:.]+)\]):(\d{1,5})$/.exec(text);
  if (!m) return null;
  const ip = parseIpAddress((m[1] ?? m[2]) as string);
  const port = Number(m[3]);
  // `[1.2.3.4]` and `::ffff:…` are not written for IPv4: refuse them rather than guess.
  if (ip === null || port < 1 || port > 65535) return null;
  if ((m[2] !== undefined) !== (ip.family === 6)) return null;
  return { address: ip.text, port };
}

export async function runRelay(opts: RelayCliOptions): Promise<number> {
  const listen = parseListen(opts.listen);
  if (!listen) {
    process.stderr.write(
      `spaknockd relay: --listen "${opts.listen}": expected IPV4:PORT or [IPV6]:PORT\n`,
    );
    return EXIT.USAGE;
  }
  const rate = Number(opts.rate);
  if (!Number.isInteger(rate) || rate < 1 || rate > 10_000) {
    process.stderr.write(
      `spaknockd relay: --rate "${opts.rate}": expected a whole number in 1..10000\n`,
    );
    return EXIT.USAGE;
  }
  const log = opts.foreground
    ? stderrLog(opts.verbose === true)
    : syslogLog("spaknockd-relay", "LOG_DAEMON", opts.verbose === true);
  const { LambdaClient } = await import("@aws-sdk/client-lambda");
  const lambda = new LambdaClient({
    ...(opts.region ? { region: opts.region } : {}),
    ...(opts.endpoint ? { endpoint: opts.endpoint } : {}),
  });
  try {
    await checkFunction(lambda, opts.function);
  } catch (err) {
    log.error(err instanceof Error ? err.message : String(err));
    log.close();
    return EXIT.RUNTIME;
  }
  const relay = new Relay(
    lambda,
    new UdpSocketCapture(listen.address, listen.port),
    {
      ...RELAY_DEFAULTS,
      functionName: opts.function,
      perSourceLimit: rate,
    },
    log,
  );
  await relay.start();
  log.info(`spaknockd relay started: udp ${opts.listen} -> Lambda ${opts.function}`);
  return new Promise((resolve) => {
    const stop = () => {
      void relay.stop().finally(() => {
        log.close();
        resolve(EXIT.OK);
      });
    };
    process.once("SIGTERM", stop);
    process.once("SIGINT", stop);
  });
}
