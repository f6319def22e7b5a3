/**
 * Access stanzas (what one access.conf stanza allows) and the checks that decide whether a
 * verified packet is granted, in fwknopd's order (docs/protocol.md section 7, steps 4-6).
 */

import { type AccessRequest, type ProtoPort, parseAccessMessage } from "./access-message.js";
import { isUnspecifiedIp, type NetworkList } from "./address.js";
import { SpaError } from "./errors.js";
import type { AuthorizedKeySet } from "./jose-keys.js";
import { messageTypeHasNat, type SpaMessage } from "./message.js";
import type { SpaKeys } from "./packet.js";

export interface AccessStanza {
  /** 1-based position in file order. */
  readonly index: number;
  /** Where the stanza's SOURCE line is, for log lines ("SOURCE line num"). */
  readonly origin: { readonly file: string; readonly line: number };
  readonly sources: NetworkList;
  readonly destinations: NetworkList;
  /** The fwknop-format keys (KEY, HMAC_KEY); null when the stanza takes JOSE packets only. */
  readonly keys: SpaKeys | null;
  /** AUTHORIZED_KEYS: who may sign JOSE packets; null when the stanza takes fwknop packets only. */
  readonly authorizedKeys: AuthorizedKeySet | null;
  /** null: any port may be requested. */
  readonly openPorts: readonly ProtoPort[] | null;
  readonly restrictPorts: readonly ProtoPort[];
  readonly fwAccessTimeout: number;
  readonly maxFwTimeout: number;
  readonly requireUsername: string | null;
  readonly requireSourceAddress: boolean;
  /** Epoch seconds after which the stanza no longer grants anything; null: never. */
  readonly accessExpire: number | null;
  /** AWS only: the security groups this stanza opens. */
  readonly securityGroups?: readonly string[];
}

export const ACCESS_DEFAULTS = {
  fwAccessTimeout: 30,
  maxFwTimeout: 300,
  maxSpaPacketAge: 120,
} as const;

/** What a granted packet gets: whose address, which ports, for how long. */
export interface AccessDecision {
  readonly allowIp: string;
  readonly ports: readonly ProtoPort[];
  readonly timeoutSec: number;
}

export interface AccessContext {
  /** The packet's source address as seen on the wire. */
  readonly sourceIp: string;
  /** Epoch seconds. */
  readonly now: number;
  /** null when packet aging is disabled. */
  readonly maxPacketAge: number | null;
}

function samePort(a: ProtoPort, b: ProtoPort): boolean {
  return a.proto === b.proto && a.port === b.port;
}

/** Timeout: the client's request capped by MAX_FW_TIMEOUT, else FW_ACCESS_TIMEOUT. */
export function selectTimeout(stanza: AccessStanza, clientTimeout: number): number {
  return clientTimeout > 0 ? Math.min(clientTimeout, stanza.maxFwTimeout) : stanza.fwAccessTimeout;
}

/** What an authenticated packet asks for, whichever its format. */
export interface PacketRequest {
  readonly username: string;
  /** Epoch seconds. */
  readonly timestamp: number;
  /** `0.0.0.0` or `::`: the packet's source address. */
  readonly allowIp: string;
  readonly ports: readonly ProtoPort[];
  /** Seconds; 0: none asked. */
  readonly clientTimeout: number;
}

/**
 * The policy checks that follow a verified fwknop packet, for one stanza. Throws SpaError with
 * the reason; returns what to open.
 */
export function decideAccess(
  stanza: AccessStanza,
  message: SpaMessage,
  ctx: AccessContext,
): AccessDecision {
  checkAge(message.timestamp, ctx);
  if (message.messageType === 0) {
    throw new SpaError("SPA_COMMAND_DISABLED", "spaknock does not execute command messages");
  }
  if (messageTypeHasNat(message.messageType)) {
    throw new SpaError("SPA_NAT_DISABLED", `message type ${message.messageType}`);
  }
  const request: AccessRequest = parseAccessMessage(message.message);
  return decidePolicy(
    stanza,
    {
      ...request,
      username: message.username,
      timestamp: message.timestamp,
      clientTimeout: message.clientTimeout,
    },
    ctx,
  );
}

function checkAge(timestamp: number, ctx: AccessContext): void {
  if (ctx.maxPacketAge !== null && Math.abs(ctx.now - timestamp) > ctx.maxPacketAge) {
    throw new SpaError("SPA_STALE", `time difference ${ctx.now - timestamp} s`);
  }
}

/**
 * The checks every packet format shares, for one stanza: age, allow-IP and
 * REQUIRE_SOURCE_ADDRESS, REQUIRE_USERNAME, OPEN_PORTS/RESTRICT_PORTS, the timeout.
 */
export function decideRequest(
  stanza: AccessStanza,
  request: PacketRequest,
  ctx: AccessContext,
): AccessDecision {
  checkAge(request.timestamp, ctx);
  return decidePolicy(stanza, request, ctx);
}

/** decideRequest once the age has been checked (decideAccess checks it first, as fwknopd does). */
function decidePolicy(
  stanza: AccessStanza,
  request: PacketRequest,
  ctx: AccessContext,
): AccessDecision {
  let allowIp = request.allowIp;
  if (isUnspecifiedIp(allowIp)) {
    if (stanza.requireSourceAddress) throw new SpaError("SPA_SOURCE_REQUIRED");
    allowIp = ctx.sourceIp;
  }
  if (stanza.requireUsername !== null && request.username !== stanza.requireUsername) {
    throw new SpaError("SPA_USERNAME_MISMATCH", `username "${request.username}"`);
  }
  for (const wanted of request.ports) {
    if (stanza.restrictPorts.some((p) => samePort(p, wanted))) {
      throw new SpaError("SPA_PORT_DENIED", `${wanted.proto}/${wanted.port} is restricted`);
    }
    if (stanza.openPorts !== null && !stanza.openPorts.some((p) => samePort(p, wanted))) {
      throw new SpaError("SPA_PORT_DENIED", `${wanted.proto}/${wanted.port} is not in OPEN_PORTS`);
    }
  }
  return {
    allowIp,
    ports: request.ports,
    timeoutSec: selectTimeout(stanza, request.clientTimeout),
  };
}
