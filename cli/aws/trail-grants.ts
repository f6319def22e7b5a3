/**
 * CloudTrail records of security-group rule changes, paired into grants for `spaknock audit`.
 * Pure: the command pages LookupEvents and hands the records here.
 *
 * A grant is one rule: its AuthorizeSecurityGroupIngress (the rule id is in the response), the
 * ModifySecurityGroupRules that refreshed it (a second knock), and the RevokeSecurityGroupIngress
 * that closed it. Who closed it is read from the principal: spaknock's revoke and sweep
 * functions name their sessions `spaknock-revoke-<user>` and `spaknock-sweep-<user>` (or run as
 * their own roles, `…RevokeRole…`, `…SweepRole…`), a revoke by the knock side is a rollback, and
 * anyone else closed it by hand.
 *
 * CloudTrail writes EC2's request and response in its own JSON (lower-camel names, `items`
 * lists, newer APIs wrapped as `<Action>Request`): the readers below look for the members by
 * name wherever they sit, so both shapes read the same.
 */

export type CloseCause = "schedule" | "sweep" | "rollback" | "by hand";
export type GrantFlag =
  | "closed-late"
  | "open-past-expiry"
  | "opened-outside-spaknock"
  | "failed-calls";

export const TRAIL_EVENT_NAMES = [
  "AuthorizeSecurityGroupIngress",
  "ModifySecurityGroupRules",
  "RevokeSecurityGroupIngress",
] as const;
export type TrailEventName = (typeof TRAIL_EVENT_NAMES)[number];

/** What LookupEvents returns for one event (the fields this reads). */
export interface LookupEventRecord {
  readonly EventId?: string;
  readonly EventName?: string;
  readonly EventTime?: Date;
  readonly CloudTrailEvent?: string;
}

export interface Principal {
  /** SourceIdentity, else the role session name, else the IAM user or ARN. */
  readonly user: string;
  readonly arn: string;
  readonly roleName: string | null;
  readonly sessionName: string | null;
  readonly sourceIdentity: string | null;
}

export interface TrailEvent {
  readonly id: string;
  readonly name: TrailEventName;
  /** Epoch seconds. */
  readonly time: number;
  readonly region: string;
  readonly principal: Principal;
  readonly errorCode: string | null;
  readonly request: unknown;
  readonly response: unknown;
}

export interface FailedCall {
  readonly event: TrailEventName;
  /** Epoch seconds. */
  readonly time: number;
  readonly errorCode: string;
  readonly by: string;
}

export interface AuditedGrant {
  readonly region: string;
  /** null for a failed authorize that made no rule. */
  readonly ruleId: string | null;
  readonly group: string;
  readonly user: string;
  /** `a.b.c.d/32` or `…/128`. */
  readonly source: string;
  readonly proto: string;
  readonly port: number | null;
  /** Epoch seconds; null when the opening is before the range looked at. */
  readonly openedAt: number | null;
  readonly openedBy: string | null;
  /** From the rule's `spaknock:expires` tag or `until=` description; the latest refresh wins. */
  readonly expiresAt: number | null;
  readonly refreshes: number;
  readonly closedAt: number | null;
  readonly closedBy: CloseCause | null;
  readonly closer: string | null;
  /** Seconds the rule was open (to now, while it still is). */
  readonly durationSec: number | null;
  readonly failedCalls: readonly FailedCall[];
  readonly flags: readonly GrantFlag[];
}

export interface PairOptions {
  /** Epoch seconds. */
  readonly nowSec: number;
  /** How long after its expiry a close still counts as on time (the sweeper's bound). */
  readonly lateAfterSec: number;
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

/** Every value of a member named `key` (case-insensitive) anywhere inside `v`. */
function findAll(v: unknown, key: string, out: unknown[] = []): unknown[] {
  const wanted = key.toLowerCase();
  if (Array.isArray(v)) for (const x of v) findAll(x, key, out);
  else if (isObject(v)) {
    for (const [k, x] of Object.entries(v)) {
      if (k.toLowerCase() === wanted) out.push(x);
      findAll(x, key, out);
    }
  }
  return out;
}

function firstString(v: unknown, key: string): string | null {
  const hit = findAll(v, key).find((x) => typeof x === "string");
  return typeof hit === "string" ? hit : null;
}

function firstNumber(v: unknown, key: string): number | null {
  const hit = findAll(v, key).find((x) => typeof x === "number" || /^[0-9]+$/.test(String(x)));
  return hit === undefined ? null : Number(hit);
}

function principalOf(identity: unknown): Principal {
  const id = isObject(identity) ? identity : {};
  const arn = typeof id.arn === "string" ? id.arn : "unknown";
  const ctx = isObject(id.sessionContext) ? id.sessionContext : {};
  const sourceIdentity = typeof ctx.sourceIdentity === "string" ? ctx.sourceIdentity : null;
  const issuer = isObject(ctx.sessionIssuer) ? ctx.sessionIssuer : {};
  const assumed = /:assumed-role\/([^/]+)\/(.+)$/.exec(arn);
  const roleName = typeof issuer.userName === "string" ? issuer.userName : (assumed?.[1] ?? null);
  const sessionName = assumed?.[2] ?? null;
  const user =
    sourceIdentity ??
    sessionName?.replace(/^spaknock-(revoke-|sweep-)?/, "") ??
    (typeof id.userName === "string" ? id.userName : arn);
  return { user, arn, roleName, sessionName, sourceIdentity };
}

/** One LookupEvents record, or null when it is not one of the three events or not JSON. */
export function parseTrailEvent(record: LookupEventRecord): TrailEvent | null {
  const name = TRAIL_EVENT_NAMES.find((n) => n === record.EventName);
  if (name === undefined || record.CloudTrailEvent === undefined) return null;
  let body: unknown;
  try {
    body = JSON.parse(record.CloudTrailEvent);
  } catch {
    return null;
  }
  if (!isObject(body)) return null;
  const when = typeof body.eventTime === "string" ? Date.parse(body.eventTime) : Number.NaN;
  const time = Number.isNaN(when) ? (record.EventTime?.getTime() ?? 0) : when;
  return {
    id: record.EventId ?? (typeof body.eventID === "string" ? body.eventID : ""),
    name,
    time: Math.floor(time / 1000),
    region: typeof body.awsRegion === "string" ? body.awsRegion : "unknown",
    principal: principalOf(body.userIdentity),
    errorCode: typeof body.errorCode === "string" ? body.errorCode : null,
    request: body.requestParameters ?? null,
    response: body.responseElements ?? null,
  };
}

/** spaknock's knock side: the opener role, or the knock function's own role. */
function isSpaknockOpener(p: Principal): boolean {
  return /OpenerRole|KnockRole/.test(p.roleName ?? "");
}

function closeCauseOf(p: Principal): CloseCause {
  const session = p.sessionName ?? "";
  const role = p.roleName ?? "";
  if (session.startsWith("spaknock-sweep-") || /SweepRole/.test(role)) return "sweep";
  if (session.startsWith("spaknock-revoke-") || /RevokeRole/.test(role)) return "schedule";
  if (isSpaknockOpener(p)) return "rollback";
  return "by hand";
}

/** `until=2026-11-25T12:00:30Z` in a spaknock rule description, as epoch seconds. */
function untilOf(description: string | null): number | null {
  const m = /until=([0-9T:-]+Z)/.exec(description ?? "");
  const t = m ? Date.parse(m[1] as string) : Number.NaN;
  return Number.isNaN(t) ? null : Math.floor(t / 1000);
}

/** The value of tag `key` anywhere in a request (`{"key": …, "value": …}` items). */
function tagValue(v: unknown, key: string): string | null {
  if (Array.isArray(v)) {
    for (const x of v) {
      const hit = tagValue(x, key);
      if (hit !== null) return hit;
    }
  } else if (isObject(v)) {
    if ((v.key ?? v.Key) === key) return String(v.value ?? v.Value ?? "");
    for (const x of Object.values(v)) {
      const hit = tagValue(x, key);
      if (hit !== null) return hit;
    }
  }
  return null;
}

function expiresTagOf(request: unknown): number | null {
  const value = tagValue(request, "spaknock:expires");
  return value !== null && /^[0-9]+$/.test(value) ? Number(value) : null;
}

function ruleIdsOf(v: unknown): string[] {
  return [
    ...new Set(findAll(v, "securityGroupRuleId").filter((x): x is string => typeof x === "string")),
  ];
}

interface Draft {
  region: string;
  ruleId: string | null;
  group: string;
  user: string;
  source: string;
  proto: string;
  port: number | null;
  openedAt: number | null;
  openedBy: string | null;
  opener: Principal | null;
  expiresAt: number | null;
  refreshes: number;
  closedAt: number | null;
  closedBy: CloseCause | null;
  closer: string | null;
  failedCalls: FailedCall[];
}

function failed(e: TrailEvent): FailedCall {
  return { event: e.name, time: e.time, errorCode: e.errorCode as string, by: e.principal.user };
}

/** What the event a draft starts from tells about the rule; the rest starts empty. */
type DraftStart = Omit<
  Draft,
  "region" | "ruleId" | "refreshes" | "closedAt" | "closedBy" | "closer" | "failedCalls"
>;

function newDraft(e: TrailEvent, ruleId: string | null, start: DraftStart): Draft {
  return {
    region: e.region,
    ruleId,
    ...start,
    refreshes: 0,
    closedAt: null,
    closedBy: null,
    closer: null,
    failedCalls: [],
  };
}

function draftFromAuthorize(e: TrailEvent, ruleId: string | null, rule: unknown): Draft {
  const source =
    firstString(rule, "cidrIpv4") ??
    firstString(rule, "cidrIpv6") ??
    firstString(e.request, "cidrIp") ??
    firstString(e.request, "cidrIpv6") ??
    "unknown";
  const description = firstString(rule, "description") ?? firstString(e.request, "description");
  const taggedUser = /user=(\S+)/.exec(description ?? "")?.[1] ?? null;
  return newDraft(e, ruleId, {
    group: firstString(rule, "groupId") ?? firstString(e.request, "groupId") ?? "unknown",
    user: e.principal.sourceIdentity ?? taggedUser ?? e.principal.user,
    source,
    proto: firstString(rule, "ipProtocol") ?? firstString(e.request, "ipProtocol") ?? "?",
    port: firstNumber(rule, "fromPort") ?? firstNumber(e.request, "fromPort"),
    openedAt: e.time,
    openedBy: e.principal.arn,
    opener: e.principal,
    expiresAt: expiresTagOf(e.request) ?? untilOf(description),
  });
}

/** Pairs the events (any order) into grants, in order of opening. */
export function pairTrailGrants(events: readonly TrailEvent[], opts: PairOptions): AuditedGrant[] {
  const sorted = [...events].sort((a, b) => a.time - b.time || a.id.localeCompare(b.id));
  const byRule = new Map<string, Draft>();
  const drafts: Draft[] = [];
  const orphan = (e: TrailEvent, ruleId: string): Draft => {
    // A refresh or close of a rule opened before the range looked at.
    const d = newDraft(e, ruleId, {
      group: firstString(e.request, "groupId") ?? "unknown",
      user: e.principal.sourceIdentity ?? e.principal.user,
      source: firstString(e.request, "cidrIpv4") ?? firstString(e.request, "cidrIpv6") ?? "unknown",
      proto: firstString(e.request, "ipProtocol") ?? "?",
      port: firstNumber(e.request, "fromPort"),
      openedAt: null,
      openedBy: null,
      opener: null,
      expiresAt: null,
    });
    byRule.set(ruleId, d);
    drafts.push(d);
    return d;
  };
  for (const e of sorted) {
    if (e.name === "AuthorizeSecurityGroupIngress") {
      if (e.errorCode !== null) {
        const d = draftFromAuthorize(e, null, null);
        d.openedAt = null;
        d.failedCalls.push(failed(e));
        drafts.push(d);
        continue;
      }
      const rules = findAll(e.response, "securityGroupRuleSet").flatMap((s) =>
        findAll(s, "items").flat(),
      );
      if (rules.length === 0) {
        drafts.push(draftFromAuthorize(e, null, null));
        continue;
      }
      for (const rule of rules) {
        const ruleId = firstString(rule, "securityGroupRuleId");
        const d = draftFromAuthorize(e, ruleId, rule);
        if (ruleId !== null) byRule.set(ruleId, d);
        drafts.push(d);
      }
      continue;
    }
    for (const ruleId of ruleIdsOf(e.request)) {
      const d = byRule.get(ruleId) ?? orphan(e, ruleId);
      if (e.errorCode !== null) {
        d.failedCalls.push(failed(e));
        continue;
      }
      if (e.name === "ModifySecurityGroupRules") {
        d.refreshes++;
        d.expiresAt = untilOf(firstString(e.request, "description")) ?? d.expiresAt;
      } else if (d.closedAt === null) {
        d.closedAt = e.time;
        d.closedBy = closeCauseOf(e.principal);
        d.closer = e.principal.arn;
      }
    }
  }
  return drafts.map((d) => finish(d, opts));
}

function finish(d: Draft, { nowSec, lateAfterSec }: PairOptions): AuditedGrant {
  const flags: GrantFlag[] = [];
  if (d.closedAt !== null && d.expiresAt !== null && d.closedAt - d.expiresAt > lateAfterSec) {
    flags.push("closed-late");
  }
  if (
    d.closedAt === null &&
    d.ruleId !== null &&
    d.expiresAt !== null &&
    nowSec - d.expiresAt > lateAfterSec
  ) {
    flags.push("open-past-expiry");
  }
  if (d.opener !== null && !isSpaknockOpener(d.opener)) flags.push("opened-outside-spaknock");
  if (d.failedCalls.length > 0) flags.push("failed-calls");
  const end = d.closedAt ?? (d.ruleId !== null ? nowSec : null);
  const { opener: _opener, ...rest } = d;
  return {
    ...rest,
    durationSec: d.openedAt !== null && end !== null ? end - d.openedAt : null,
    flags,
  };
}
