/**
 * The log of a daemon a test runs (spaknockd, fwknopd): its stdout and stderr, line by line, and
 * a way to wait for a line. One child is followed at a time; a restarted daemon appends to the
 * same lines, and only the current child's exit ends a wait.
 */
import type { ChildProcess } from "node:child_process";

export class ProcessLog {
  readonly lines: string[] = [];
  private readonly waiters = new Set<() => void>();
  private current: ChildProcess | undefined;
  private exited = true;

  constructor(
    /** For messages: "spaknockd", "fwknopd". */
    private readonly name: string,
    private readonly defaultTimeoutMs: number,
  ) {}

  /** True while the followed child has not exited. */
  get running(): boolean {
    return !this.exited;
  }

  /** Collects the child's output from now on; its exit is logged as a `[harness]` line. */
  follow(child: ChildProcess): void {
    this.current = child;
    this.exited = false;
    const partial = { stdout: "", stderr: "" };
    for (const stream of ["stdout", "stderr"] as const) {
      child[stream]?.setEncoding("utf8").on("data", (chunk: string) => {
        const parts = (partial[stream] + chunk).split("\n");
        partial[stream] = parts.pop() ?? "";
        this.lines.push(...parts);
        this.notify();
      });
    }
    child.once("close", (code, signal) => {
      for (const stream of ["stdout", "stderr"] as const) {
        if (partial[stream] !== "") this.lines.push(partial[stream]);
      }
      this.lines.push(`[harness] ${this.name} exited (code ${code}, signal ${signal})`);
      if (this.current === child) this.exited = true;
      this.notify();
    });
  }

  /** Number of lines so far; pass it to waitForLog to ignore what was logged before. */
  mark(): number {
    return this.lines.length;
  }

  waitForLog(re: RegExp, timeoutMs = this.defaultTimeoutMs, fromLine = 0): Promise<string> {
    return new Promise((resolve, reject) => {
      const check = (): void => {
        const line = this.lines.slice(fromLine).find((l) => re.test(l));
        if (line !== undefined) {
          done();
          resolve(line);
        } else if (this.exited) {
          done();
          reject(new Error(`${this.name} exited before logging ${re}:\n${this.tail()}`));
        }
      };
      const timer = setTimeout(() => {
        done();
        reject(new Error(`${this.name} did not log ${re} within ${timeoutMs} ms:\n${this.tail()}`));
      }, timeoutMs);
      const done = (): void => {
        clearTimeout(timer);
        this.waiters.delete(check);
      };
      this.waiters.add(check);
      check();
    });
  }

  tail(count = 40): string {
    return this.lines.slice(-count).join("\n");
  }

  private notify(): void {
    for (const check of [...this.waiters]) check();
  }
}
