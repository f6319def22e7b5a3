/** Reading config files from disk: permission checks and `%include` expansion. */
import { readdirSync, readFileSync, statSync } from "node:fs";
import { dirname, isAbsolute, join, resolve } from "node:path";
import { type ConfLine, confError, parseConfText } from "../../core/index.js";

export interface ConfWarning {
  readonly file: string;
  readonly line: number;
  readonly message: string;
}

export interface ReadOptions {
  /** Refuse (instead of warn about) key files readable by group or others. */
  readonly strictPermissions: boolean;
  readonly warn: (w: ConfWarning) => void;
}

const MAX_INCLUDE_DEPTH = 8;

export function readConfFile(file: string, opts: ReadOptions, keysInside: boolean): ConfLine[] {
  let text: string;
  try {
    text = readFileSync(file, "utf8");
  } catch (err) {
    const reason = (err as NodeJS.ErrnoException).code ?? String(err);
    throw confError({ file, line: 0 }, `cannot read (${reason})`);
  }
  if (keysInside) checkKeyFileMode(file, opts);
  return parseConfText(text, file);
}

/** Key files must be 0600 (or stricter): fwknopd warns, `--strict-permissions` refuses. */
export function checkKeyFileMode(file: string, opts: ReadOptions): void {
  const mode = statSync(file).mode & 0o777;
  if ((mode & 0o077) === 0) return;
  const message = `permissions ${mode.toString(8).padStart(4, "0")} let others read keys; use chmod 600`;
  if (opts.strictPermissions) throw confError({ file, line: 0 }, message);
  opts.warn({ file, line: 0, message });
}

/**
 * An authorized key set holds public keys: others may read it (0644 is fine), but whoever can
 * write it can add a key that opens the door, so it must be writable by its owner alone.
 */
export function checkPublicKeySetMode(file: string, opts: ReadOptions): void {
  const mode = statSync(file).mode & 0o777;
  if ((mode & 0o022) === 0) return;
  const message =
    `permissions ${mode.toString(8).padStart(4, "0")} let others write authorized keys (add a key ` +
    "that opens the door); use chmod 644 (public keys may be read by anyone)";
  if (opts.strictPermissions) throw confError({ file, line: 0 }, message);
  opts.warn({ file, line: 0, message });
}

/** Reads a key file's text (a JWK or a JWK Set); the caller checks its mode. */
export function readKeyText(file: string, line: { file: string; line: number }): string {
  try {
    return readFileSync(file, "utf8");
  } catch (err) {
    const reason = (err as NodeJS.ErrnoException).code ?? String(err);
    throw confError(line, `cannot read ${file} (${reason})`);
  }
}

export function resolveRelative(from: string, target: string): string {
  return isAbsolute(target) ? target : resolve(dirname(from), target);
}

/**
 * Reads access.conf with its `%include`, `%include_folder` and `%include_keys` directives
 * expanded in place. `%include_keys` lines are marked so the stanza parser only takes key
 * keywords from them.
 */
export function readAccessFiles(
  file: string,
  opts: ReadOptions,
  depth = 0,
): (ConfLine & { fromKeysFile?: boolean })[] {
  if (depth > MAX_INCLUDE_DEPTH) throw confError({ file, line: 0 }, "%include nested too deeply");
  const out: (ConfLine & { fromKeysFile?: boolean })[] = [];
  for (const l of readConfFile(file, opts, true)) {
    if (l.keyword === "%include") {
      out.push(...readAccessFiles(resolveRelative(file, l.value), opts, depth + 1));
    } else if (l.keyword === "%include_folder") {
      const dir = resolveRelative(file, l.value);
      let names: string[];
      try {
        names = readdirSync(dir)
          .filter((n) => n.endsWith(".conf"))
          .sort();
      } catch {
        throw confError(l, `%include_folder: cannot read directory "${l.value}"`);
      }
      for (const n of names) out.push(...readAccessFiles(join(dir, n), opts, depth + 1));
    } else if (l.keyword === "%include_keys") {
      const keysFile = resolveRelative(file, l.value);
      for (const k of readConfFile(keysFile, opts, true)) out.push({ ...k, fromKeysFile: true });
    } else {
      out.push(l);
    }
  }
  return out;
}
