export { EXIT } from "../core/exit-codes.js";

/** A command-line mistake: printed as one line and mapped to exit code 2. */
export class UsageError extends Error {
  override readonly name = "UsageError";
}
