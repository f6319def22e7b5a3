/**
 * A grant's whole life after the packet, the same in spaknockd and in the knock Lambda:
 *
 *   knock (decision → claim → open) → schedule the close (Expiry) → notify (Notifier)
 *
 * The receivers only receive, call this, log the outcome and answer (or not). Closing at expiry is
 * the Expiry adapter's job; notifications never block or undo a grant.
 */
import type { Expiry, Notifier } from "./adapters.js";
import {
  type KnockInput,
  type KnockOutcome,
  type KnockPorts,
  type KnockSettings,
  knock,
  type Screening,
} from "./knock.js";

export interface GrantParts extends KnockPorts {
  /** null: the firewall expires rules by itself and nothing needs to be told. */
  readonly expiry: Expiry | null;
  readonly notifiers: readonly Notifier[];
}

export type GrantOutcome =
  | Extract<KnockOutcome, { granted: false }>
  | (Extract<KnockOutcome, { granted: true }> & {
      /** What Expiry named (a schedule), or null. */
      readonly schedule: string | null;
      /** Why the close could not be scheduled (the grant stands; a backstop closes it), or null. */
      readonly scheduleError: string | null;
      /** Settles when every notifier has answered; lists the ones that failed. */
      readonly notified: Promise<readonly string[]>;
    });

export async function grantAccess(
  input: KnockInput,
  parts: GrantParts,
  settings: KnockSettings,
  screening?: Screening,
): Promise<GrantOutcome> {
  const outcome = await knock(input, parts, settings, screening);
  if (!outcome.granted) return outcome;
  const { grant, rules } = outcome;
  let schedule: string | null = null;
  let scheduleError: string | null = null;
  // Nothing of spaknock's to close when only someone else's rules hold the door.
  if (parts.expiry && rules.length > 0) {
    try {
      schedule = await parts.expiry.scheduleClose(grant, rules);
    } catch (err) {
      scheduleError = err instanceof Error ? err.message : String(err);
    }
  }
  const notified = Promise.all(
    parts.notifiers.map((n) =>
      n.opened(grant, rules).then(
        () => null,
        (err: unknown) => (err instanceof Error ? err.message : String(err)),
      ),
    ),
  ).then((results) => results.filter((r): r is string => r !== null));
  return { ...outcome, schedule, scheduleError, notified };
}
