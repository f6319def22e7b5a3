// Runs the built spaknock CLI (dist/cli/main.js) for interop tests, either directly or inside a
// test net namespace, and turns one set of test keys into both fwknop rc settings and spaknock
// key options so that each side of an interop test is configured from the same values.

import { execFile } from "node:child_process";
import { existsSync } from "node:fs";
import { fileURLToPath } from "node:url";
import type { ExecResult, TestNet } from "./netns.js";
import { peerSkipReason } from "./peers.js";

/** Absolute path of the built CLI; `npm run build` creates it. */
export const SPAKNOCK_CLI = fileURLToPath(new URL("../../dist/cli/main.js", import.meta.url));

const DEFAULT_TIMEOUT_MS = 10_000;
// fwknop's rc parser ends a value at `;`, `#` starts a comment and whitespace separates tokens, so
// text keys are drawn from printable characters that survive its rc file unchanged.
const TEXT_KEY_ALPHABET =
  "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.!@%^&*()+=/~,?[]{}<>|$`'\"\\";

/** The fields of `spaknock decode --json`. */
export interface DecodedSpa {
  readonly randomValue: string;
  readonly username: string;
  readonly timestamp: number;
  readonly version: string;
  readonly messageType: number;
  readonly message: string;
  readonly natAccess: string | null;
  readonly serverAuth: string | null;
  readonly clientTimeout: number | null;
  readonly digestType: string;
  readonly digest: string;
}

/** One side's key material, as base64 of random bytes or as text. */
export interface InteropKeys {
  readonly kind: "base64" | "text";
  readonly key: string;
  /** null: no HMAC. */
  readonly hmacKey: string | null;
  /** --hmac-digest-type; omitted means the default (sha256). */
  readonly hmacDigestType?: string;
  /** -M; omitted means CBC. */
  readonly encryptionMode?: string;
}

/** Why the CLI cannot be run, or undefined when dist/ has been built. */
export function spaknockCliMissingReason(): string | undefined {
  return existsSync(SPAKNOCK_CLI)
    ? undefined
    : peerSkipReason({ reason: `${SPAKNOCK_CLI} does not exist: run \`npm run build\` first` });
}

/** A text key of `length` random characters that fwknop's rc file keeps as they are. */
export function randomTextKey(length: number, randomBytes: (n: number) => Buffer): string {
  const bytes = randomBytes(length);
  let key = "";
  for (const byte of bytes) key += TEXT_KEY_ALPHABET[byte % TEXT_KEY_ALPHABET.length];
  return key;
}

/** fwknop rc settings carrying the keys of `keys`, so they stay off the fwknop command line. */
export function fwknopRcSettings(keys: InteropKeys): Record<string, string> {
  const base64 = keys.kind === "base64";
  const settings: Record<string, string> = { [base64 ? "KEY_BASE64" : "KEY"]: keys.key };
  if (keys.hmacKey !== null) {
    settings[base64 ? "HMAC_KEY_BASE64" : "HMAC_KEY"] = keys.hmacKey;
    settings.USE_HMAC = "Y";
  }
  return settings;
}

/** fwknop's `-M` and `--hmac-digest-type` options for `keys` (they are not secret). */
export function fwknopModeArgs(keys: InteropKeys): string[] {
  const args: string[] = [];
  if (keys.encryptionMode !== undefined) args.push("-M", keys.encryptionMode);
  if (keys.hmacKey !== null && keys.hmacDigestType !== undefined) {
    args.push("--hmac-digest-type", keys.hmacDigestType);
  }
  return args;
}

/**
 * spaknock key options for `keys`. The `--option=value` form keeps a text key that starts with
 * `-` from being read as an option.
 */
export function spaknockKeyArgs(keys: InteropKeys): string[] {
  const base64 = keys.kind === "base64";
  const args = [`${base64 ? "--key-base64-rijndael" : "--key-rijndael"}=${keys.key}`];
  if (keys.hmacKey !== null) {
    args.push(`${base64 ? "--key-base64-hmac" : "--key-hmac"}=${keys.hmacKey}`);
    if (keys.hmacDigestType !== undefined) {
      args.push(`--hmac-digest-type=${keys.hmacDigestType}`);
    }
  }
  if (keys.encryptionMode !== undefined) args.push(`--encryption-mode=${keys.encryptionMode}`);
  return args;
}

/** Run `spaknock <args>` (outside any namespace). Never throws for a non-zero exit. */
export function runSpaknock(
  args: readonly string[],
  timeoutMs = DEFAULT_TIMEOUT_MS,
): Promise<ExecResult> {
  return new Promise((resolve, reject) => {
    const child = execFile(
      process.execPath,
      [SPAKNOCK_CLI, ...args],
      { timeout: timeoutMs, killSignal: "SIGKILL", encoding: "utf8" },
      (err, stdout, stderr) => {
        if (err !== null && typeof err.code === "string") reject(err);
        else resolve({ code: child.exitCode, signal: child.signalCode, stdout, stderr });
      },
    );
  });
}

/** Run `spaknock <args>` inside `ns` of `net` (so its own UDP sending uses that namespace). */
export function runSpaknockIn(
  net: TestNet,
  ns: string,
  args: readonly string[],
  timeoutMs = DEFAULT_TIMEOUT_MS,
): Promise<ExecResult> {
  return net.exec(ns, [process.execPath, SPAKNOCK_CLI, ...args], { timeoutMs });
}

/** `spaknock decode <wire> <keys> --json`, parsed; throws with spaknock's stderr on failure. */
export async function spaknockDecode(wire: string, keys: InteropKeys): Promise<DecodedSpa> {
  const result = await runSpaknock(["decode", wire, ...spaknockKeyArgs(keys), "--json"]);
  if (result.code !== 0) {
    throw new Error(`spaknock decode exited with ${result.code}: ${result.stderr.trim()}`);
  }
  return JSON.parse(result.stdout) as DecodedSpa;
}

/** The wire string `spaknock -T` prints as the last line of stdout. */
export async function spaknockTestPacket(args: readonly string[]): Promise<string> {
  const result = await runSpaknock([...args, "-T"]);
  if (result.code !== 0) {
    throw new Error(`spaknock -T exited with ${result.code}: ${result.stderr.trim()}`);
  }
  const wire = result.stdout.trimEnd().split("\n").at(-1)?.trim();
  if (wire === undefined || !/^[A-Za-z0-9+/]+$/.test(wire)) {
    throw new Error(`spaknock -T printed no wire string as its last line:\n${result.stdout}`);
  }
  return wire;
}
