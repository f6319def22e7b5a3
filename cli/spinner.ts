/**
 * A one-line progress indicator (`knocked, waiting for host:22 ⠋ 1.2s`) redrawn in place on a
 * terminal. When the stream is not a terminal (a pipe, a log file, ssh's ProxyCommand stderr
 * redirected) nothing at all is written, so scripts and logs see no control characters.
 */

const FRAMES = ["⠋", "⠙", "⠹", "⠸", "⠼", "⠴", "⠦", "⠧", "⠇", "⠏"];
const DEFAULT_INTERVAL_MS = 80;
// Carriage return plus "erase to end of line": redraw or clear the line in place.
const CLEAR_LINE = "\r\x1b[K";

export interface Spinner {
  /** Clears the line (on a terminal) and stops redrawing; idempotent. */
  stop(): void;
}

export interface SpinnerOptions {
  readonly intervalMs?: number;
  /** Clock for the elapsed time shown; default Date.now. */
  readonly now?: () => number;
}

export function startSpinner(
  stream: NodeJS.WritableStream,
  text: string,
  opts: SpinnerOptions = {},
): Spinner {
  if ((stream as { isTTY?: boolean }).isTTY !== true) return { stop: () => {} };
  const now = opts.now ?? Date.now;
  const started = now();
  let frame = 0;
  const draw = (): void => {
    const elapsed = ((now() - started) / 1000).toFixed(1);
    stream.write(`${CLEAR_LINE}${text} ${FRAMES[frame % FRAMES.length]} ${elapsed}s`);
    frame += 1;
  };
  draw();
  const timer = setInterval(draw, opts.intervalMs ?? DEFAULT_INTERVAL_MS);
  // The spinner only decorates other work; it must never keep the process alive.
  timer.unref();
  let stopped = false;
  return {
    stop: () => {
      if (stopped) return;
      stopped = true;
      clearInterval(timer);
      stream.write(CLEAR_LINE);
    },
  };
}
