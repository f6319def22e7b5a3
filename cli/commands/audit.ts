/**
 * `spaknock audit`: what spaknock opened and closed, read from CloudTrail (LookupEvents) and
 * paired into one row per grant (cli/aws/trail-grants.ts): who, from where, which group and port,
 * when it opened, until when, when and by what it closed, and what looks wrong.
 *
 * LookupEvents takes one attribute per call, so each event name is paged separately (50 events a
 * page); its limit of 2 requests per second per account and region is left to the SDK's retry with
 * backoff (ThrottlingException is retryable), plus a pause between pages so that a long range does
 * not lean on it.
 */
import { CloudTrailClient, type Event, LookupEventsCommand } from "@aws-sdk/client-cloudtrail";
import {
  awsErrorText,
  parseWhen,
  resolveScope,
  type ScopeOptions,
} from "../aws/operator-config.js";
import { duration, isoTime, renderCsv, renderTable } from "../aws/table.js";
import {
  type AuditedGrant,
  pairTrailGrants,
  parseTrailEvent,
  TRAIL_EVENT_NAMES,
  type TrailEvent,
} from "../aws/trail-grants.js";
import { UsageError } from "../exit-codes.js";

export interface AuditOptions extends ScopeOptions {
  since?: string;
  until?: string;
  user?: string;
  json?: boolean;
  csv?: boolean;
  /** Seconds after its expiry a close still counts as on time. */
  lateAfter?: string;
}

export interface AuditDeps {
  readonly cloudTrailFor: (region: string | undefined) => CloudTrailClient;
  readonly nowSec: () => number;
  /** Between pages; tests pass a no-op. */
  readonly pause: (ms: number) => Promise<void>;
  readonly progress: (line: string) => void;
}

export const defaultAuditDeps: AuditDeps = {
  cloudTrailFor: (region) => new CloudTrailClient(region ? { region } : {}),
  nowSec: () => Math.floor(Date.now() / 1000),
  pause: (ms) => new Promise((resolve) => setTimeout(resolve, ms)),
  progress: (line) => process.stderr.write(`\r${line}\x1b[K`),
};

/** A page every 0.5 s at most: LookupEvents allows 2 per second. */
const PAGE_INTERVAL_MS = 500;
/** The promise the README makes: the sweeper closes a missed grant within two minutes. */
const DEFAULT_LATE_AFTER_SEC = 180;

async function lookUp(
  client: CloudTrailClient,
  eventName: string,
  start: number,
  end: number,
  deps: AuditDeps,
  counted: { pages: number; events: number },
): Promise<Event[]> {
  const events: Event[] = [];
  let token: string | undefined;
  do {
    if (counted.pages > 0) await deps.pause(PAGE_INTERVAL_MS);
    const out = await client.send(
      new LookupEventsCommand({
        LookupAttributes: [{ AttributeKey: "EventName", AttributeValue: eventName }],
        StartTime: new Date(start * 1000),
        EndTime: new Date(end * 1000),
        MaxResults: 50,
        NextToken: token,
      }),
    );
    events.push(...(out.Events ?? []));
    counted.pages++;
    counted.events += out.Events?.length ?? 0;
    deps.progress(`spaknock audit: ${counted.pages} page(s), ${counted.events} event(s)`);
    token = out.NextToken;
  } while (token);
  return events;
}

export async function auditGrants(opts: AuditOptions, deps: AuditDeps): Promise<AuditedGrant[]> {
  const now = deps.nowSec();
  const start = opts.since ? parseWhen(opts.since, now, "--since") : now - 86400;
  const end = opts.until ? parseWhen(opts.until, now, "--until") : now;
  if (start >= end) throw new UsageError("--since must be before --until");
  const lateAfterSec =
    opts.lateAfter === undefined ? DEFAULT_LATE_AFTER_SEC : Number(opts.lateAfter);
  if (!Number.isInteger(lateAfterSec) || lateAfterSec < 0) {
    throw new UsageError("--late-after: seconds, 0 or more");
  }
  const { groups, regions } = resolveScope(opts);
  const trail: TrailEvent[] = [];
  const counted = { pages: 0, events: 0 };
  for (const region of regions) {
    const client = deps.cloudTrailFor(region);
    for (const name of TRAIL_EVENT_NAMES) {
      let records: Event[];
      try {
        records = await lookUp(client, name, start, end, deps, counted);
      } catch (err) {
        throw new Error(awsErrorText(err, "cloudtrail:LookupEvents"));
      }
      for (const r of records) {
        const e = parseTrailEvent(r);
        if (e !== null) trail.push(e);
      }
    }
  }
  if (counted.pages > 0) deps.progress("");
  // Pair on everything, then narrow: a close belongs to its grant whoever made it.
  return pairTrailGrants(trail, { nowSec: now, lateAfterSec }).filter(
    (g) =>
      (groups.length === 0 || groups.includes(g.group)) &&
      (opts.user === undefined || g.user === opts.user),
  );
}

const HEADER = [
  "user",
  "source",
  "group",
  "port",
  "opened",
  "expires",
  "closed",
  "closed by",
  "open for",
  "refreshes",
  "flags",
] as const;

function row(g: AuditedGrant): string[] {
  return [
    g.user,
    g.source,
    g.group,
    g.port === null ? "?" : `${g.proto}/${g.port}`,
    g.openedAt === null
      ? g.ruleId === null
        ? "(not opened)"
        : "(before range)"
      : isoTime(g.openedAt),
    isoTime(g.expiresAt),
    g.closedAt === null ? (g.ruleId === null ? "" : "still open") : isoTime(g.closedAt),
    g.closedBy ?? "",
    duration(g.durationSec),
    String(g.refreshes),
    [...g.flags, ...g.failedCalls.map((f) => `${f.event}:${f.errorCode}`)].join(" "),
  ];
}

export async function runAudit(
  opts: AuditOptions,
  out: (line: string) => void,
  deps: AuditDeps = defaultAuditDeps,
): Promise<AuditedGrant[]> {
  if (opts.json && opts.csv) throw new UsageError("--json or --csv, not both");
  const grants = await auditGrants(opts, deps);
  if (opts.json) for (const g of grants) out(JSON.stringify(g));
  else if (opts.csv)
    out(
      renderCsv(
        [...HEADER, "region", "rule"],
        grants.map((g) => [...row(g), g.region, g.ruleId ?? ""]),
      ),
    );
  else if (grants.length === 0) out("no spaknock grant in that range");
  else {
    out(renderTable(HEADER, grants.map(row)));
    const flagged = grants.filter((g) => g.flags.length > 0).length;
    out(`${grants.length} grant(s), ${flagged} flagged`);
  }
  return grants;
}
