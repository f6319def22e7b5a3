/**
 * The two ways a packet reaches the knock function: the relay's asynchronous invocation
 * (`{"spa", "sourceIp", "sourcePort", "receivedAt"}`) and a Lambda function URL request (POST
 * body, or fwknop's HTTP form `GET /<data>` with `-`/`_` for `+`/`/`). Parsed with zod; anything
 * else is refused before any crypto.
 */
import { z } from "zod";
import { isValidIpv4, MAX_SPA_DATA_SIZE } from "../core/index.js";

export interface KnockRequest {
  readonly via: "relay" | "url";
  readonly spa: string;
  readonly sourceIp: string;
  readonly sourcePort: number;
  readonly receivedAt: number;
}

const ipv4 = z.string().refine(isValidIpv4, "not an IPv4 address");

const relayEvent = z.object({
  spa: z.string().min(1).max(MAX_SPA_DATA_SIZE),
  sourceIp: ipv4,
  sourcePort: z.number().int().min(0).max(65535),
  receivedAt: z.number().int().positive(),
});

const urlEvent = z.object({
  rawPath: z.string().max(4096).optional(),
  body: z
    .string()
    .max(4 * MAX_SPA_DATA_SIZE)
    .optional(),
  isBase64Encoded: z.boolean().optional(),
  requestContext: z.object({
    timeEpoch: z.number().optional(),
    http: z.object({ method: z.string(), sourceIp: z.string() }),
  }),
});

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
  const relay = relayEvent.safeParse(event);
  if (relay.success) return { via: "relay", ...relay.data };
  const url = urlEvent.safeParse(event);
  if (!url.success) return invalid("neither a relay event nor a function URL request");
  const { http } = url.data.requestContext;
  if (!isValidIpv4(http.sourceIp)) return invalid("function URL request from a non-IPv4 address");
  let spa: string;
  if (http.method === "GET") {
    spa = (url.data.rawPath ?? "").replace(/^\//, "").replace(/-/g, "+").replace(/_/g, "/");
  } else if (http.method === "POST") {
    const body = url.data.body ?? "";
    spa = (url.data.isBase64Encoded ? Buffer.from(body, "base64").toString("latin1") : body).trim();
  } else return invalid(`HTTP ${http.method.slice(0, 10)}`);
  if (spa.length === 0 || spa.length > MAX_SPA_DATA_SIZE)
    return invalid(`SPA data of ${spa.length} characters`);
  return {
    via: "url",
    spa,
    sourceIp: http.sourceIp,
    sourcePort: 0,
    receivedAt: url.data.requestContext.timeEpoch ?? nowMs,
  };
}

/** Every function URL request gets this same answer: no oracle for whoever is probing. */
export const URL_RESPONSE = {
  statusCode: 200,
  headers: { "content-type": "text/plain" },
  body: "",
} as const;
