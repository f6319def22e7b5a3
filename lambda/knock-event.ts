/**
 * The two ways a packet reaches the knock function: the relay's asynchronous invocation
 * (`{"spa", "sourceIp", "sourcePort", "receivedAt"}`) and a Lambda function URL request (POST
 * body, or fwknop's HTTP form `GET /<data>` with `-`/`_` for `+`/`/`). Parsed with zod; anything
 * else is refused before any crypto.
 *
 * The sender may be IPv4 or IPv6 (function URLs are dual-stack, and so is a relay in a VPC with
 * IPv6). Its address is passed on in canonical text, an IPv4-mapped IPv6 address (what a
 * dual-stack socket reports for an IPv4 sender) as the IPv4 address it maps, so that the replay
 * record, the stanza's SOURCE match and the rule all see one spelling of one address.
 */
import { z } from "zod";
import { canonicalIp, MAX_SPA_DATA_SIZE } from "../core/index.js";

export interface KnockRequest {
  readonly via: "relay" | "url";
  readonly spa: string;
  readonly sourceIp: string;
  readonly sourcePort: number;
  readonly receivedAt: number;
}

/** An IPv4 or IPv6 address, as its canonical text. */
const ipAddress = z
  .string()
  .max(64)
  .transform((text, ctx) => {
    const canonical = canonicalIp(text);
    if (canonical === null) {
      ctx.addIssue({ code: "custom", message: "not an IP address" });
      return z.NEVER;
    }
    return canonical;
  });

const relayEvent = z.object({
  spa: z.string().min(1).max(MAX_SPA_DATA_SIZE),
  sourceIp: ipAddress,
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
    http: z.object({ method: z.string(), sourceIp: z.string().max(64) }),
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
  const sourceIp = canonicalIp(http.sourceIp);
  if (sourceIp === null) return invalid("function URL request from no IP address");
  let spa: string;
  if (http.method === "GET") {
    const path = (url.data.rawPath ?? "").replace(/^\//, "");
    // fwknop's HTTP form maps base64's +/ to -_; a JOSE packet (dots, which fwknop data never
    // holds) is base64url already and travels as it is.
    spa = path.includes(".") ? path : path.replace(/-/g, "+").replace(/_/g, "/");
  } else if (http.method === "POST") {
    const body = url.data.body ?? "";
    spa = (url.data.isBase64Encoded ? Buffer.from(body, "base64").toString("latin1") : body).trim();
  } else return invalid(`HTTP ${http.method.slice(0, 10)}`);
  if (spa.length === 0 || spa.length > MAX_SPA_DATA_SIZE)
    return invalid(`SPA data of ${spa.length} characters`);
  return {
    via: "url",
    spa,
    sourceIp,
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
