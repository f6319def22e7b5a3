/**
 * The relay's defaults, apart from agent/relay.ts so that spaknockd's option parsing can show them
 * without loading the AWS SDK, which only relay mode uses.
 */
export const RELAY_DEFAULTS = {
  perSourceLimit: 10,
  windowMs: 10_000,
  maxInFlight: 64,
  maxTrackedSources: 100_000,
} as const;
