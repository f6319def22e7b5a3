/**
 * NOTIFY_EXEC: runs a program on open and close with the event as JSON on stdin
 * (`{"event":"open"|"close","grant":{...}}`). execFile, no shell, bounded time.
 */
import { execFile } from "node:child_process";
import type { Grant, Notifier } from "../../core/index.js";

export class ExecHookNotifier implements Notifier {
  constructor(
    private readonly program: string,
    private readonly timeoutMs = 10_000,
  ) {}

  private run(event: "open" | "close", grant: Grant): Promise<void> {
    return new Promise((resolve, reject) => {
      const child = execFile(
        this.program,
        [event],
        { timeout: this.timeoutMs },
        (err, _out, stderr) => {
          if (err) reject(new Error(`${this.program} ${event}: ${stderr.trim() || err.message}`));
          else resolve();
        },
      );
      child.stdin?.on("error", () => {});
      child.stdin?.end(`${JSON.stringify({ event, grant })}\n`);
    });
  }

  opened(grant: Grant): Promise<void> {
    return this.run("open", grant);
  }

  closed(grant: Grant): Promise<void> {
    return this.run("close", grant);
  }
}
