/**
 * Where a client's keys come from, in fwknop's order of precedence: a key option, `--stdin`,
 * `--fd N`, `-G FILE`, the rc stanza (KEY, KEY_BASE64, KEY_FILE), and finally a prompt on the
 * terminal without echo. Keys are never echoed, logged or put in an error message.
 */
import { openSync, readFileSync, readSync } from "node:fs";
import * as tty from "node:tty";
import { isBase64Text } from "../core/index.js";
import { UsageError } from "./exit-codes.js";

export type KeyMaterial = { readonly bytes: Buffer; readonly origin: string };

export function decodeBase64Key(text: string, origin: string): Buffer {
  const t = text.trim();
  if (t === "" || !isBase64Text(t)) throw new UsageError(`${origin}: the value is not base64`);
  return Buffer.from(t, "base64");
}

/** The error for a key file that cannot be opened: the option, the file and the errno code. */
export function unreadableKeyFile(origin: string, file: string, err: unknown): UsageError {
  return new UsageError(
    `${origin}: cannot read ${file} (${(err as NodeJS.ErrnoException).code ?? err})`,
  );
}

/**
 * A key file as fwknop's `-G` reads it: either a line `<server>: <key>` for this server, or a
 * file holding just the key.
 */
export function keyFromFile(file: string, server: string | undefined, origin: string): string {
  let text: string;
  try {
    text = readFileSync(file, "utf8");
  } catch (err) {
    throw unreadableKeyFile(origin, file, err);
  }
  const lines = text
    .split(/\r?\n/)
    .map((l) => l.trim())
    .filter((l) => l !== "" && !l.startsWith("#"));
  for (const line of lines) {
    const m = /^(\S+?):\s*(.+)$/.exec(line);
    if (m && server !== undefined && (m[1] === server || m[1] === "*")) return m[2] as string;
  }
  if (lines.length === 1 && !/^\S+:\s/.test(lines[0] as string)) return lines[0] as string;
  throw new UsageError(`${origin}: ${file} has no key for ${server ?? "this server"}`);
}

/** One line from a file descriptor (`--stdin` is fd 0), without its newline. */
export function keyFromFd(fd: number, origin: string): string {
  const chunks: Buffer[] = [];
  const buf = Buffer.alloc(1);
  for (;;) {
    let n = 0;
    try {
      n = readSync(fd, buf, 0, 1, null);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === "EAGAIN") continue;
      throw new UsageError(`${origin}: cannot read file descriptor ${fd} (${code ?? err})`);
    }
    if (n === 0 || buf[0] === 0x0a) break;
    chunks.push(Buffer.from(buf));
    if (chunks.length > 4096) throw new UsageError(`${origin}: key line too long`);
  }
  const key = Buffer.concat(chunks).toString("utf8").replace(/\r$/, "");
  if (key === "") throw new UsageError(`${origin}: no key read`);
  return key;
}

/**
 * The terminal to ask on: stdin when it is one, else the controlling terminal (/dev/tty), as
 * under ssh's ProxyCommand where stdin and stdout carry the ssh connection itself.
 */
function openTerminal(): { input: tty.ReadStream; close: () => void } | null {
  if (process.stdin.isTTY)
    return { input: process.stdin as tty.ReadStream, close: () => process.stdin.pause() };
  try {
    const fd = openSync("/dev/tty", "r");
    const input = new tty.ReadStream(fd);
    return { input, close: () => input.destroy() };
  } catch {
    return null;
  }
}

/** Reads a line from the terminal with echo off. Rejects when there is no terminal. */
export function promptHidden(prompt: string): Promise<string> {
  const terminal = openTerminal();
  if (!terminal) {
    return Promise.reject(
      new UsageError(
        "no key given and no terminal to ask for one: use --key-rijndael/--key-base64-rijndael, " +
          "-G FILE, --stdin, or a KEY_BASE64 line in the rc stanza",
      ),
    );
  }
  const { input } = terminal;
  return new Promise((resolve, reject) => {
    // Echo goes off before the prompt appears: a fast typist (or script) must never be echoed.
    input.setRawMode(true);
    process.stderr.write(prompt);
    input.resume();
    let value = "";
    const done = (err: Error | null) => {
      input.setRawMode(false);
      input.removeListener("data", onData);
      terminal.close();
      process.stderr.write("\n");
      if (err) reject(err);
      else resolve(value);
    };
    const onData = (chunk: Buffer) => {
      for (const ch of chunk.toString("utf8")) {
        if (ch === "\r" || ch === "\n") return done(null);
        if (ch === "\u0003") return done(new UsageError("interrupted"));
        if (ch === "\u007f" || ch === "\b") value = value.slice(0, -1);
        else value += ch;
      }
    };
    input.on("data", onData);
  });
}
