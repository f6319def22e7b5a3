// In-memory streams for CLI command tests.

import { Writable } from "node:stream";

export interface CapturedStream {
  readonly stream: Writable & { isTTY?: boolean };
  /** Everything written so far, as UTF-8 text. */
  text(): string;
}

/** A writable that keeps what is written; `isTTY` makes it look like a terminal. */
export function captureStream(opts: { isTTY?: boolean } = {}): CapturedStream {
  const chunks: Buffer[] = [];
  const stream: Writable & { isTTY?: boolean } = new Writable({
    write(chunk: Buffer, _encoding, callback) {
      chunks.push(chunk);
      callback();
    },
  });
  if (opts.isTTY === true) stream.isTTY = true;
  return { stream, text: () => Buffer.concat(chunks).toString("utf8") };
}
