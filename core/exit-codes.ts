/** The documented exit codes of both executables, `spaknock` and `spaknockd`
 * alike; each program decides its exit in one place (its main.ts). */
export const EXIT = {
  OK: 0,
  /** The packet did not verify, a send failed, the server did not answer... */
  RUNTIME: 1,
  /** Bad or missing command-line arguments. */
  USAGE: 2,
  /** A configuration file is missing, unreadable or invalid. */
  CONFIG: 3,
} as const;
