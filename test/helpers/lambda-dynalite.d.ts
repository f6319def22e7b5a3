/**
 * Types for dynalite 4 (an in-memory DynamoDB-compatible server; the package ships none), just
 * the part the replay-table tests use.
 */
declare module "dynalite" {
  import type { Server } from "node:http";

  interface DynaliteOptions {
    /** Milliseconds a new table stays CREATING; default 500. */
    readonly createTableMs?: number;
    readonly deleteTableMs?: number;
    readonly updateTableMs?: number;
    /** LevelDB directory; in memory when absent. */
    readonly path?: string;
  }

  function dynalite(options?: DynaliteOptions): Server;
  export default dynalite;
}
