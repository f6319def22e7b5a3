/** The documented exit codes of both executables, decided in one place (main.ts). */
export const EXIT = {
  OK: 0,
  /** The packet did not verify, a send failed, the server did not answer... */
  RUNTIME: 1,
  /** Bad or missing command-line arguments. */
  USAGE: 2,
  /** A configuration file is missing, unreadable or invalid. */
  CONFIG: 3,
} as const;

/** A command-line mistake: printed as one line and mapped to exit code 2. */
export class UsageError extends Error {
  override readonly name = "UsageError";
}
