/**
 * `spaknock proxy HOST PORT`, for `ProxyCommand spaknock proxy %h %p -n NAME` in ~/.ssh/config:
 * knock, wait for the port to accept, then relay stdin to the connection and the connection to
 * stdout, as `nc` would. The connection that proved the port open is the one relayed.
 */
import type { Socket } from "node:net";
import { EXIT } from "../exit-codes.js";
import { hostPort } from "../server-address.js";
import { knockThenConnect } from "../wait-for-port.js";

export interface ProxyOptions {
  readonly host: string;
  readonly port: number;
  /** Sends the SPA packet; its errors propagate unchanged. */
  readonly knock: () => Promise<void>;
  /** How long to wait for the port to accept after the knock. */
  readonly waitTimeoutMs: number;
  readonly stdin: NodeJS.ReadableStream;
  readonly stdout: NodeJS.WritableStream;
  /** Progress (on a terminal only) and errors; never any relayed data. */
  readonly stderr: NodeJS.WritableStream;
}

/** Resolves with the exit code: 0 when the relay ended normally, 1 when it failed. */
export async function runProxy(opts: ProxyOptions): Promise<number> {
  const socket = await knockThenConnect(opts);
  if (socket === undefined) return EXIT.RUNTIME;
  return relay(socket, opts);
}

function relay(socket: Socket, opts: ProxyOptions): Promise<number> {
  const { stdin, stdout, stderr } = opts;
  const where = hostPort(opts.host, opts.port);
  return new Promise((resolve) => {
    let finished = false;
    const finish = (code: number, why?: string): void => {
      if (finished) return;
      finished = true;
      if (why !== undefined) stderr.write(`spaknock: ${why}\n`);
      // Stop reading stdin so that a caller still holding it open does not keep us running.
      stdin.unpipe(socket);
      stdin.pause();
      socket.destroy();
      resolve(code);
    };

    socket.on("error", (err) => finish(EXIT.RUNTIME, `connection to ${where}: ${err.message}`));
    socket.once("close", () => finish(EXIT.OK));
    stdin.once("error", (err: Error) => finish(EXIT.RUNTIME, `reading stdin: ${err.message}`));
    stdout.once("error", (err: NodeJS.ErrnoException) => {
      // EPIPE: whoever reads us (ssh) has gone away, which ends the session normally.
      if (err.code === "EPIPE") finish(EXIT.OK);
      else finish(EXIT.RUNTIME, `writing stdout: ${err.message}`);
    });
    // The server closed its side and all it sent is written. If stdin is still open, nothing
    // useful can follow: a process cannot show EOF on a stdout pipe it keeps (ssh would wait on
    // it forever), so the session ends here, as with nc and `ssh -W`.
    stdout.once("finish", () => {
      if (!socket.writableEnded) finish(EXIT.OK);
    });

    // stdin's EOF half-closes the connection (socket.end()), and the server's EOF ends stdout,
    // so each direction finishes on its own. (pipe() never ends process.stdout: end it here.)
    stdin.pipe(socket);
    socket.pipe(stdout, { end: false });
    socket.once("end", () => stdout.end());
  });
}
