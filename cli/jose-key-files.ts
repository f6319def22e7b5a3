/**
 * The JOSE profile's key files as the client reads them: the user's Ed25519 signing key (private,
 * 0600), the server's X25519 key (public for knocks; private for `decode`) and an authorized key
 * set (for `decode`). spaknock reads them itself, so no key is ever on a command line; errors
 * name the file and the problem, never the key.
 */
import { closeSync, fstatSync, openSync, readFileSync } from "node:fs";
import {
  type AuthorizedKeySet,
  importAuthorizedKeys,
  importPrivateJwk,
  importPublicJwk,
  type JoseCurve,
  type JosePrivateKey,
  type JosePublicKey,
} from "../core/index.js";
import { UsageError } from "./exit-codes.js";
import { unreadableKeyFile } from "./key-sources.js";

// A JWK is about 150 bytes and a team's key set a few KiB: anything far larger is the wrong file.
const MAX_KEY_FILE_BYTES = 256 * 1024;

export interface KeyFileText {
  readonly text: string;
  /** Permission bits, for the 0600 rule of private keys. */
  readonly mode: number;
}

/** The file's text and mode, from one open (so the mode is the mode of what was read). */
export function readKeyFile(file: string, origin: string): KeyFileText {
  let fd: number;
  try {
    fd = openSync(file, "r");
  } catch (err) {
    throw unreadableKeyFile(origin, file, err);
  }
  try {
    const stat = fstatSync(fd);
    if (!stat.isFile()) throw new UsageError(`${origin}: ${file} is not a regular file`);
    if (stat.size > MAX_KEY_FILE_BYTES) {
      throw new UsageError(`${origin}: ${file} is ${stat.size} bytes, too large for a key file`);
    }
    return { text: readFileSync(fd, "utf8"), mode: stat.mode & 0o777 };
  } finally {
    closeSync(fd);
  }
}

/** The warning for a private key file others may read or write, or null when it is 0600 or stricter. */
export function privateKeyModeProblem(file: string, mode: number): string | null {
  if ((mode & 0o077) === 0) return null;
  return `${file} is readable by others (mode ${mode.toString(8).padStart(3, "0")}); run chmod 600 ${file}`;
}

async function readPrivateKey(
  file: string,
  curve: JoseCurve,
  origin: string,
  warn: (line: string) => void,
): Promise<JosePrivateKey> {
  const { text, mode } = readKeyFile(file, origin);
  const problem = privateKeyModeProblem(file, mode);
  if (problem !== null) warn(problem);
  return importPrivateJwk(text, curve, `${origin} ${file}`);
}

/** `--signing-key FILE` / SIGNING_KEY_FILE: the user's Ed25519 private JWK. */
export function readSigningKey(
  file: string,
  warn: (line: string) => void,
): Promise<JosePrivateKey> {
  return readPrivateKey(file, "Ed25519", "--signing-key", warn);
}

/** `--server-key FILE` / SERVER_KEY_FILE of a knock: the server's X25519 public JWK. */
export function readServerPublicKey(file: string): Promise<JosePublicKey> {
  return importPublicJwk(readKeyFile(file, "--server-key").text, "X25519", `--server-key ${file}`);
}

/** `decode --server-key FILE`: the server's X25519 private JWK, as spaknockd holds it. */
export function readServerPrivateKey(
  file: string,
  warn: (line: string) => void,
): Promise<JosePrivateKey> {
  return readPrivateKey(file, "X25519", "--server-key", warn);
}

/** `decode --authorized-keys FILE`: a JWK Set of Ed25519 public keys, each with kid and name. */
export function readAuthorizedKeySet(file: string): Promise<AuthorizedKeySet> {
  return importAuthorizedKeys(readKeyFile(file, "--authorized-keys").text, file);
}
