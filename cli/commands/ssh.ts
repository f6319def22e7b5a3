/**
 * `spaknock ssh [ssh args...]`: knock, wait until the SSH port accepts, then run `ssh` with the
 * user's arguments on this terminal. ssh is executed directly (no shell), and spaknock adds
 * nothing to its command line: keys stay in spaknock's own configuration.
 */
import { spawn } from "node:child_process";
import { constants } from "node:os";
import { EXIT } from "../exit-codes.js";
import { knockThenConnect } from "../wait-for-port.js";

export interface SshOptions {
  /** Where to wait for the port to open (the server ssh will connect to). */
  readonly host: string;
  readonly port: number;
  /** Sends the SPA packet; its errors propagate unchanged. */
  readonly knock: () => Promise<void>;
  /** How long to wait for the port to accept after the knock. */
  readonly waitTimeoutMs: number;
  /** Passed to ssh exactly as given. */
  readonly sshArgs: readonly string[];
  /** Default: `ssh` from PATH. */
  readonly sshPath?: string;
  /** Progress (on a terminal only) and errors; default process.stderr. */
  readonly stderr?: NodeJS.WritableStream;
}

// Signals a terminal sends to its whole foreground group reach ssh directly; spaknock only has
// to outlive them so that it can report ssh's exit status. Signals aimed at spaknock alone are
// passed on.
const TERMINAL_SIGNALS = ["SIGINT", "SIGQUIT"] as const;
const FORWARDED_SIGNALS = ["SIGTERM", "SIGHUP"] as const;

/** Resolves with ssh's exit status (128 + signal number if a signal ended it), or 1. */
export async function runSsh(opts: SshOptions): Promise<number> {
  const stderr = opts.stderr ?? process.stderr;
  const probe = await knockThenConnect({ ...opts, stderr });
  if (probe === undefined) return EXIT.RUNTIME;
  probe.destroy();
  return runInForeground(opts.sshPath ?? "ssh", opts.sshArgs, stderr);
}

function runInForeground(
  file: string,
  args: readonly string[],
  stderr: NodeJS.WritableStream,
): Promise<number> {
  return new Promise((resolve) => {
    const child = spawn(file, [...args], { stdio: "inherit" });
    const ignore = (): void => {};
    const forward = (signal: NodeJS.Signals): void => {
      child.kill(signal);
    };
    for (const signal of TERMINAL_SIGNALS) process.on(signal, ignore);
    for (const signal of FORWARDED_SIGNALS) process.on(signal, forward);
    const cleanUp = (): void => {
      for (const signal of TERMINAL_SIGNALS) process.off(signal, ignore);
      for (const signal of FORWARDED_SIGNALS) process.off(signal, forward);
    };
    child.once("error", (err: NodeJS.ErrnoException) => {
      cleanUp();
      stderr.write(
        err.code === "ENOENT"
          ? `spaknock: cannot run "${file}": not found (install openssh-client)\n`
          : `spaknock: cannot run "${file}": ${err.message}\n`,
      );
      resolve(EXIT.RUNTIME);
    });
    child.once("exit", (code, signal) => {
      cleanUp();
      resolve(code ?? 128 + (signal === null ? 0 : (constants.signals[signal] ?? 0)));
    });
  });
}
