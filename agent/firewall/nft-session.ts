/**
 * A long-lived `nft -e -i` process for grant transactions. Spawning `nft -f -` costs several
 * milliseconds per knock; writing one line to an interactive nft costs well under one. Each line
 * is one transaction (all or nothing): success echoes `# new generation N`, failure writes an
 * error to stderr and changes nothing. If the session breaks, the caller falls back to spawning.
 */
import { type ChildProcessWithoutNullStreams, spawn } from "node:child_process";

interface Pending {
  /** The process the transaction was written to: only its answer settles it. */
  readonly child: ChildProcessWithoutNullStreams;
  readonly resolve: () => void;
  readonly reject: (err: Error) => void;
  readonly timer: NodeJS.Timeout;
}

export class NftSession {
  private child: ChildProcessWithoutNullStreams | null = null;
  private stdoutBuffer = "";
  private pending: Pending | null = null;
  private queue: Promise<void> = Promise.resolve();

  constructor(
    private readonly nftPath = "nft",
    private readonly timeoutMs = 5_000,
  ) {}

  private ensureChild(): ChildProcessWithoutNullStreams {
    if (this.child) return this.child;
    const child = spawn(this.nftPath, ["-e", "-i"], { stdio: ["pipe", "pipe", "pipe"] });
    child.stdout.setEncoding("utf8");
    child.stderr.setEncoding("utf8");
    child.stdout.on("data", (chunk: string) => {
      this.stdoutBuffer += chunk;
      if (/^# new generation \d+/m.test(this.stdoutBuffer)) {
        this.stdoutBuffer = "";
        this.settle(child, null);
      } else if (this.stdoutBuffer.length > 1 << 20) this.stdoutBuffer = "";
    });
    child.stderr.on("data", (chunk: string) => {
      this.settle(child, new Error(`nft: ${chunk.trim().split("\n")[0] ?? "error"}`));
    });
    const broken = (why: string) => {
      if (this.child === child) this.child = null;
      this.settle(child, new Error(`nft session ended: ${why}`));
    };
    child.on("error", (err) => broken(err.message));
    child.on("exit", (code, signal) => broken(`exit ${code ?? signal}`));
    child.stdin.on("error", () => {});
    this.child = child;
    return child;
  }

  /**
   * Settles the pending transaction with `from`'s answer. A session that was given up on (timed
   * out, then killed) still reports its exit later; that must not fail the next transaction,
   * which was written to its replacement.
   */
  private settle(from: ChildProcessWithoutNullStreams, err: Error | null): void {
    const p = this.pending;
    if (!p || p.child !== from) return;
    this.pending = null;
    clearTimeout(p.timer);
    if (err) p.reject(err);
    else p.resolve();
  }

  /** Starts nft now, so the first knock does not wait for it. */
  warm(): void {
    this.ensureChild();
  }

  /** Applies the script's lines as one transaction; serialised with other calls. */
  apply(script: string): Promise<void> {
    const line = `${script
      .split("\n")
      .map((l) => l.trim())
      .filter((l) => l.length > 0)
      .join("; ")}\n`;
    const run = () =>
      new Promise<void>((resolve, reject) => {
        const child = this.ensureChild();
        const timer = setTimeout(() => {
          this.pending = null;
          this.close();
          reject(new Error("nft session timed out"));
        }, this.timeoutMs);
        this.pending = { child, resolve, reject, timer };
        this.stdoutBuffer = "";
        child.stdin.write(line);
      });
    const result = this.queue.then(run, run);
    this.queue = result.catch(() => {});
    return result;
  }

  close(): void {
    const child = this.child;
    this.child = null;
    if (child) {
      child.stdin.end();
      child.kill("SIGTERM");
    }
  }
}
