/** `spaknockd relay`: forward SPA datagrams to the knock Lambda (agent/relay.ts) until SIGTERM. */
import { EXIT } from "../../core/index.js";
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

export async function runRelay(opts: RelayCliOptions): Promise<number> {
  const m = /^(\d+\.\d+\.\d+\.\d+):(\d{1,5})$/.exec(opts.listen);
  if (!m) {
    process.stderr.write(`spaknockd relay: --listen "${opts.listen}": expected ADDRESS:PORT\n`);
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
    new UdpSocketCapture(m[1] as string, Number(m[2])),
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
