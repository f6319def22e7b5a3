/**
 * The two ways a packet reaches the knock function: the relay's asynchronous invocation
 * (`{"spa", "sourceIp", "sourcePort", "receivedAt"}`) and a Lambda function URL request (POST
 * body, or fwknop's HTTP form `GET /<data>` with `-`/`_` for `+`/`/`). Anything else is refused
 * before any crypto, by plain checks (a schema library was most of the bundle's weight).
 *
 * The sender may be IPv4 or IPv6 (function URLs are dual-stack, and so is a relay in a VPC with
 * IPv6). Its address is passed on in canonical text, an IPv4-mapped IPv6 address (what a
 * dual-stack socket reports for an IPv4 sender) as the IPv4 address it maps, so that the replay
 * record, the stanza's SOURCE match and the rule all see one spelling of one address.
 */
import { canonicalIp, MAX_SPA_DATA_SIZE } from "../core/index.js";

export interface KnockRequest {
  readonly via: "relay" | "url";
  readonly spa: string;
  readonly sourceIp: string;
  readonly sourcePort: number;
  readonly receivedAt: number;
}

type Fields = Readonly<Record<string, unknown>>;

/** A plain object (not null, not an array), whose members can be read. */
function isObject(value: unknown): value is Fields {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

const isString = (value: unknown, maxLength: number): value is string =>
  typeof value === "string" && value.length <= maxLength;

const isWholeNumber = (value: unknown, min: number, max: number): value is number =>
  Number.isSafeInteger(value) && (value as number) >= min && (value as number) <= max;

/** An IPv4 or IPv6 address as its canonical text, or null when it is none. */
function ipAddress(value: unknown): string | null {
  return isString(value, 64) ? canonicalIp(value) : null;
}

/** The relay's asynchronous invocation, or null when the event is not one. */
function relayRequest(event: Fields): KnockRequest | null {
  const { spa, sourceIp, sourcePort, receivedAt } = event;
  if (!isString(spa, MAX_SPA_DATA_SIZE) || spa.length === 0) return null;
  const ip = ipAddress(sourceIp);
  if (ip === null) return null;
  if (!isWholeNumber(sourcePort, 0, 65535)) return null;
  if (!isWholeNumber(receivedAt, 1, Number.MAX_SAFE_INTEGER)) return null;
  return { via: "relay", spa, sourceIp: ip, sourcePort, receivedAt };
}

/** The members of a function URL request the function reads, or null when it is not one. */
interface UrlFields {
  readonly rawPath: string | undefined;
  readonly body: string | undefined;
  readonly isBase64Encoded: boolean;
  readonly timeEpoch: number | undefined;
  readonly method: string;
  readonly sourceIp: string;
}

const optional = <T>(value: unknown, test: (v: unknown) => v is T): value is T | undefined =>
  value === undefined || test(value);

function urlFields(event: Fields): UrlFields | null {
  const { rawPath, body, isBase64Encoded, requestContext } = event;
  if (!optional(rawPath, (v): v is string => isString(v, 4096))) return null;
  if (!optional(body, (v): v is string => isString(v, 4 * MAX_SPA_DATA_SIZE))) return null;
  if (!optional(isBase64Encoded, (v): v is boolean => typeof v === "boolean")) return null;
  if (!isObject(requestContext) || !isObject(requestContext.http)) return null;
  const { timeEpoch } = requestContext;
  const { method, sourceIp } = requestContext.http;
  if (!optional(timeEpoch, (v): v is number => typeof v === "number" && Number.isFinite(v)))
    return null;
  if (typeof method !== "string" || !isString(sourceIp, 64)) return null;
  return { rawPath, body, isBase64Encoded: isBase64Encoded ?? false, timeEpoch, method, sourceIp };
}

/**
 * How long after the relay received a packet its event may reach the function. Asynchronous
 * invocations are normally delivered within a second; a throttled one is queued and retried for
 * up to the function's maximum event age. The packet's age was checked against the relay's clock,
 * so an event that waited in that queue would let a replayed copy outlive its replay record: it
 * is refused instead.
 */
export const MAX_EVENT_LAG_SEC = 10;

export interface EventRefusal {
  readonly code: "EVENT_INVALID" | "EVENT_STALE";
  readonly reason: string;
}

/** Returns the request, or why it is refused before any crypto. */
export function parseKnockEvent(event: unknown, nowMs: number): KnockRequest | EventRefusal {
  const request = parseRequest(event, nowMs);
  if ("code" in request) return request;
  const lagMs = nowMs - request.receivedAt;
  if (lagMs > MAX_EVENT_LAG_SEC * 1000) {
    return {
      code: "EVENT_STALE",
      reason: `received ${Math.round(lagMs / 1000)} s ago (more than ${MAX_EVENT_LAG_SEC} s)`,
    };
  }
  return request;
}

function parseRequest(event: unknown, nowMs: number): KnockRequest | EventRefusal {
  const invalid = (reason: string): EventRefusal => ({ code: "EVENT_INVALID", reason });
  if (!isObject(event)) return invalid("neither a relay event nor a function URL request");
  const relay = relayRequest(event);
  if (relay !== null) return relay;
  const url = urlFields(event);
  if (url === null) return invalid("neither a relay event nor a function URL request");
  const sourceIp = canonicalIp(url.sourceIp);
  if (sourceIp === null) return invalid("function URL request from no IP address");
  let spa: string;
  if (url.method === "GET") {
    const path = (url.rawPath ?? "").replace(/^\//, "");
    // fwknop's HTTP form maps base64's +/ to -_; a JOSE packet (dots, which fwknop data never
    // holds) is base64url already and travels as it is.
    spa = path.includes(".") ? path : path.replace(/-/g, "+").replace(/_/g, "/");
  } else if (url.method === "POST") {
    const body = url.body ?? "";
    spa = (url.isBase64Encoded ? Buffer.from(body, "base64").toString("latin1") : body).trim();
  } else return invalid(`HTTP ${url.method.slice(0, 10)}`);
  if (spa.length === 0 || spa.length > MAX_SPA_DATA_SIZE)
    return invalid(`SPA data of ${spa.length} characters`);
  return { via: "url", spa, sourceIp, sourcePort: 0, receivedAt: url.timeEpoch ?? nowMs };
}

/** Every function URL request gets this same answer: no oracle for whoever is probing. */
export const URL_RESPONSE = {
  statusCode: 200,
  headers: { "content-type": "text/plain" },
  body: "",
} as const;
