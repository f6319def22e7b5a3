/**
 * Running firewall tools: argv only (execFile, never a shell), a timeout, stderr kept for the
 * error. Building the commands is pure and tested separately; this is the one place that runs them.
 */
import { execFile } from "node:child_process";

export interface CommandResult {
  readonly stdout: string;
  readonly stderr: string;
}

export interface CommandRunner {
  run(argv: readonly string[], input?: string): Promise<CommandResult>;
}

export class CommandFailed extends Error {
  override readonly name = "CommandFailed";
  constructor(
    readonly argv: readonly string[],
    readonly stderr: string,
    readonly exitCode: number | null,
  ) {
    super(`${argv.join(" ")} failed (exit ${exitCode}): ${stderr.trim().split("\n")[0] ?? ""}`);
  }
}

export class ExecFileRunner implements CommandRunner {
  constructor(private readonly timeoutMs = 10_000) {}

  run(argv: readonly string[], input?: string): Promise<CommandResult> {
    const [file, ...args] = argv;
    if (!file) return Promise.reject(new TypeError("empty argv"));
    return new Promise((resolve, reject) => {
      const child = execFile(
        file,
        args,
        { timeout: this.timeoutMs, maxBuffer: 16 * 1024 * 1024, encoding: "utf8" },
        (err, stdout, stderr) => {
          if (err) {
            const code = typeof err.code === "number" ? err.code : null;
            reject(new CommandFailed(argv, stderr || err.message, code));
          } else resolve({ stdout, stderr });
        },
      );
      if (input !== undefined) child.stdin?.end(input);
    });
  }
}
