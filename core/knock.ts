/**
 * The knock pipeline, shared by the host daemon and the Lambda: one raw datagram in, one decision
 * out, cheapest step first (docs/architecture.md, "The pipeline"):
 *
 *   precheck → for each stanza matching SOURCE/DESTINATION: HMAC (these first steps synchronous:
 *   screenKnock) → replay look-up (where it is local) → decrypt → decode → age, allow-IP,
 *   username, ports → claim the digest → open the firewall.
 *
 * A JOSE-profile packet (docs/jose-profile.md) takes the same road with its own first steps:
 *
 *   precheck (shape) → JWE header, our server key → decrypt → for each stanza matching SOURCE/
 *   DESTINATION whose AUTHORIZED_KEYS holds the signer: signature → claims → the same policy
 *   checks → claim sha256(kid.jti) → open the firewall.
 *
 * What follows the open (scheduling the close, notifying) is core/grant.ts.
 *
 * It never throws for anything a sender controls: every refusal is an outcome with a code.
 */
import {
  type AccessContext,
  type AccessDecision,
  type AccessStanza,
  decideAccess,
  decideRequest,
} from "./access.js";
import type { Firewall, Grant, OpenedRule, ReplayCache } from "./adapters.js";
import { networkListHolds, parseIpAddress } from "./address.js";
import { isSpaError, SpaError, type SpaErrorCode } from "./errors.js";
import { hmacRefusal } from "./hmac.js";
import type { JosePrivateKey } from "./jose-keys.js";
import {
  authorizedKeyOf,
  JOSE_PROFILE_VERSION,
  type JoseEnvelope,
  joseReplayInput,
  openJoseEnvelope,
  readJoseClaims,
  verifyJoseSignature,
} from "./jose-packet.js";
import { openSpaPacket } from "./packet.js";
import { type CheckedDatagram, type PacketProfile, precheckDatagram } from "./precheck.js";
import { replayDigest } from "./replay.js";

export interface KnockInput {
  readonly payload: Uint8Array;
  readonly sourceIp: string;
  readonly sourcePort: number;
  /** The address the packet was sent to, when the capture knows it (DESTINATION matching). */
  readonly destinationIp: string | null;
  /** Epoch milliseconds. */
  readonly receivedAt: number;
}

export interface KnockSettings {
  /** Seconds; null disables packet aging (ENABLE_SPA_PACKET_AGING N). */
  readonly maxPacketAge: number | null;
}

export interface KnockPorts {
  readonly stanzas: readonly AccessStanza[];
  /** null disables replay protection (ENABLE_DIGEST_PERSISTENCE N), as fwknopd allows. */
  readonly replay: ReplayCache | null;
  readonly firewall: Firewall;
  /** The receiver's X25519 key (SERVER_KEY_FILE); absent or null: JOSE packets are refused. */
  readonly serverKey?: JosePrivateKey | null;
}

/** Who a granted packet came from, as its format names them. */
export interface KnockedPacket {
  readonly profile: PacketProfile;
  readonly username: string;
  /** The JOSE signer's key thumbprint; null for fwknop packets. */
  readonly keyId: string | null;
  /** The protocol version the packet carries: fwknop's (3.0.0), or `jose/1`. */
  readonly version: string;
  /** The packet's own timestamp, epoch seconds. */
  readonly timestamp: number;
}

export type KnockOutcome =
  | {
      readonly granted: true;
      readonly grant: Grant;
      /** The rules the firewall opened or refreshed for it. */
      readonly rules: readonly OpenedRule[];
      readonly stanza: AccessStanza;
      readonly packet: KnockedPacket;
      /** The replay-cache key that was claimed. */
      readonly digest: string;
    }
  | {
      readonly granted: false;
      readonly code: SpaErrorCode;
      readonly detail: string;
      /** The replay-cache key, once known (fwknop: once an HMAC verified; JOSE: after decryption). */
      readonly digest: string | null;
      /** The stanza whose keys verified, if one did. */
      readonly stanza: AccessStanza | null;
      readonly username: string | null;
    };

interface Refusal {
  readonly code: SpaErrorCode;
  readonly detail: string;
  readonly stanza: AccessStanza | null;
  readonly username: string | null;
}

function refusalOf(err: unknown, stanza: AccessStanza | null, username: string | null): Refusal {
  if (isSpaError(err)) return { code: err.code, detail: err.message, stanza, username };
  throw err;
}

/** What a stanza's policy made of a verified packet. */
interface Decided {
  readonly decision: AccessDecision;
  /** The replay-cache key to claim. */
  readonly digest: string;
  /** The packet's own timestamp, epoch seconds. */
  readonly timestamp: number;
}

/** A packet whose keys verified for one stanza, with the stanza's policy still to run. */
interface Authenticated {
  readonly profile: PacketProfile;
  readonly username: string;
  readonly keyId: string | null;
  readonly version: string;
  /** The stanza's policy; throws SpaError. */
  decide(ctx: AccessContext): Decided;
}

/** Verifies a packet against one stanza's keys; throws SpaError when they do not verify it. */
type Authenticate = (stanza: AccessStanza) => Promise<Authenticated>;

function fwknopAuthenticator(data: string, digest: string): Authenticate {
  return async (stanza) => {
    if (stanza.keys === null) {
      throw new SpaError(
        "SPA_NO_STANZA_VERIFIED",
        `stanza #${stanza.index} takes JOSE packets only`,
      );
    }
    const message = openSpaPacket(data, stanza.keys);
    return {
      profile: "fwknop",
      username: message.username,
      keyId: null,
      version: message.version,
      decide: (ctx) => ({
        decision: decideAccess(stanza, message, ctx),
        digest,
        timestamp: message.timestamp,
      }),
    };
  };
}

function joseAuthenticator(envelope: JoseEnvelope, serverKey: JosePrivateKey): Authenticate {
  // One key may be authorized in several stanzas: its signature is checked once.
  const verified = new Map<string, Promise<Uint8Array>>();
  return async (stanza) => {
    const key = authorizedKeyOf(stanza.authorizedKeys, envelope.signerKid);
    let payload = verified.get(key.kid);
    if (payload === undefined) {
      payload = verifyJoseSignature(envelope, key);
      verified.set(key.kid, payload);
    }
    const bytes = await payload;
    return {
      profile: "jose",
      username: key.name,
      keyId: key.kid,
      version: `jose/${JOSE_PROFILE_VERSION}`,
      // Claims are read per stanza: `sub` must be the name this stanza's set gives the key.
      decide: (ctx) => {
        const request = readJoseClaims(bytes, key, serverKey.kid);
        return {
          decision: decideRequest(stanza, request, ctx),
          digest: replayDigest(joseReplayInput(key.kid, request.jti)),
          timestamp: request.timestamp,
        };
      },
    };
  };
}

/** A candidate stanza, with what the synchronous checks found against it; null: go on. */
interface ScreenedCandidate {
  readonly stanza: AccessStanza;
  readonly refusal: Refusal | null;
}

/** A datagram past knock()'s synchronous steps, with at least one stanza still to try. */
export interface ScreenedDatagram {
  readonly checked: CheckedDatagram;
  readonly candidates: readonly ScreenedCandidate[];
}

/** A refusal outcome: what knock() returns when it opens nothing. */
export type KnockRefusal = Extract<KnockOutcome, { granted: false }>;

export type Screening =
  | { readonly passed: true; readonly screened: ScreenedDatagram }
  | { readonly passed: false; readonly refusal: KnockRefusal };

const refusedWith = (r: Refusal, digest: string | null): KnockRefusal => ({
  granted: false,
  digest,
  ...r,
});

/**
 * A refusal from screenKnock. At module level, not a closure in it: the daemon's bundle keeps
 * function names (esbuild keepNames), which names every closure when it is made, per datagram.
 */
function screenedOut(r: Refusal): Screening {
  return { passed: false, refusal: refusedWith(r, null) };
}

/** Stanza-expired and HMAC checks, in that order; null when the stanza may still take it. */
function screenStanza(stanza: AccessStanza, checked: CheckedDatagram, now: number): Refusal | null {
  if (stanza.accessExpire !== null && now > stanza.accessExpire) {
    return {
      code: "SPA_STANZA_EXPIRED",
      detail: `stanza #${stanza.index}`,
      stanza: null,
      username: null,
    };
  }
  if (checked.profile === "jose") return null; // its signer is known only after decryption
  if (stanza.keys === null) {
    const detail = `stanza #${stanza.index} takes JOSE packets only`;
    return { code: "SPA_NO_STANZA_VERIFIED", detail, stanza: null, username: null };
  }
  if (stanza.keys.hmacKey === null) return null; // no HMAC: only decryption can tell
  const failed = hmacRefusal(checked.data, stanza.keys.hmacKey, stanza.keys.hmacType);
  return failed === null ? null : { ...failed, stanza: null, username: null };
}

/**
 * knock()'s synchronous first steps, everything a sender can fail without a store, a decryption
 * or a promise: precheck, SOURCE/DESTINATION, stanza expiry, the fwknop HMAC of each candidate
 * stanza (JOSE: a server key to open it with). Under a flood of junk this is all the work a
 * datagram gets, so a receiver calls it on its own first (the host daemon does) and hands what
 * passed to knock(); knock() calls it itself otherwise.
 */
export function screenKnock(
  input: KnockInput,
  ports: Pick<KnockPorts, "stanzas" | "serverKey">,
): Screening {
  let checked: CheckedDatagram;
  try {
    checked = precheckDatagram(input.payload);
  } catch (err) {
    return screenedOut(refusalOf(err, null, null));
  }

  // Parsed only when some stanza's SOURCE or DESTINATION needs it (ANY holds every address).
  const { stanzas } = ports;
  const source = stanzas.some((s) => s.sources !== null) ? parseIpAddress(input.sourceIp) : null;
  const destination =
    input.destinationIp === null || stanzas.every((s) => s.destinations === null)
      ? null
      : parseIpAddress(input.destinationIp);
  const matching = stanzas.filter(
    (s) =>
      networkListHolds(s.sources, source) &&
      (s.destinations === null || networkListHolds(s.destinations, destination)),
  );
  if (matching.length === 0) {
    const detail = `no stanza for source ${input.sourceIp}`;
    return screenedOut({ code: "SPA_NO_SOURCE_MATCH", detail, stanza: null, username: null });
  }
  if (checked.profile === "jose" && !ports.serverKey) {
    const detail = "no SERVER_KEY_FILE is configured";
    return screenedOut({ code: "JOSE_NOT_CONFIGURED", detail, stanza: null, username: null });
  }

  const now = Math.floor(input.receivedAt / 1000);
  const candidates = matching.map((stanza) => ({
    stanza,
    refusal: screenStanza(stanza, checked, now),
  }));
  const first = candidates.find((c) => c.refusal === null);
  if (first === undefined) return screenedOut(candidates[0]?.refusal as Refusal);
  return { passed: true, screened: { checked, candidates } };
}

/**
 * The whole pipeline for one datagram. `screening` is screenKnock's result for this same input
 * and these same stanzas, when the caller has run it already.
 */
export async function knock(
  input: KnockInput,
  ports: KnockPorts,
  settings: KnockSettings,
  screening: Screening = screenKnock(input, ports),
): Promise<KnockOutcome> {
  if (!screening.passed) return screening.refusal;
  const { checked, candidates } = screening.screened;
  const refuse = refusedWith;
  const now = Math.floor(input.receivedAt / 1000);

  // fwknop data is its own replay key: a local cache refuses a replay before any decryption. A
  // JOSE packet's key (signer and jti) is inside the encryption: its claim refuses it.
  let knownDigest: string | null = null;
  if (checked.profile === "fwknop") {
    knownDigest = replayDigest(checked.data);
    if (ports.replay?.seen) {
      let seen: boolean;
      try {
        seen = await ports.replay.seen(knownDigest);
      } catch (err) {
        const detail = err instanceof Error ? err.message : String(err);
        return refuse(
          { code: "REPLAY_STORE_FAILED", detail, stanza: null, username: null },
          knownDigest,
        );
      }
      if (seen) {
        return refuse(
          { code: "SPA_REPLAY", detail: "digest already seen", stanza: null, username: null },
          knownDigest,
        );
      }
    }
  }

  let authenticate: Authenticate;
  if (checked.profile === "fwknop") {
    authenticate = fwknopAuthenticator(checked.data, knownDigest as string);
  } else {
    try {
      const serverKey = ports.serverKey as JosePrivateKey; // screenKnock refused it otherwise
      authenticate = joseAuthenticator(await openJoseEnvelope(checked.data, serverKey), serverKey);
    } catch (err) {
      return refuse(refusalOf(err, null, null), null);
    }
  }

  let cryptoRefusal: Refusal | null = null;
  let policyRefusal: Refusal | null = null;
  let lastDigest = knownDigest;
  for (const { stanza, refusal: screened } of candidates) {
    if (screened !== null) {
      cryptoRefusal ??= screened;
      continue;
    }
    let verified: Authenticated;
    try {
      verified = await authenticate(stanza);
    } catch (err) {
      cryptoRefusal ??= refusalOf(err, null, null);
      continue;
    }
    const { username } = verified;
    let decided: Decided;
    try {
      decided = verified.decide({
        sourceIp: input.sourceIp,
        now,
        maxPacketAge: settings.maxPacketAge,
      });
    } catch (err) {
      policyRefusal ??= refusalOf(err, stanza, username);
      continue;
    }
    const { decision, digest, timestamp } = decided;
    lastDigest = digest;

    if (ports.replay) {
      let claimed: boolean;
      try {
        claimed = await ports.replay.claim(digest, {
          sourceIp: input.sourceIp,
          sourcePort: input.sourcePort,
          seenAt: now,
          packetTime: timestamp,
        });
      } catch (err) {
        const detail = err instanceof Error ? err.message : String(err);
        return refuse({ code: "REPLAY_STORE_FAILED", detail, stanza, username }, digest);
      }
      if (!claimed) {
        const detail = "another copy of this packet was claimed first";
        return refuse({ code: "SPA_REPLAY", detail, stanza, username }, digest);
      }
    }

    const grant: Grant = {
      sourceIp: decision.allowIp,
      ports: decision.ports,
      username,
      openedAt: now,
      expiresAt: now + decision.timeoutSec,
      timeoutSec: decision.timeoutSec,
      stanza: stanza.index,
      targets: stanza.securityGroups ?? [],
    };
    let rules: readonly OpenedRule[];
    try {
      rules = await ports.firewall.open(grant);
    } catch (err) {
      const detail = err instanceof Error ? err.message : String(err);
      return refuse({ code: "FIREWALL_FAILED", detail, stanza, username }, digest);
    }
    const packet: KnockedPacket = {
      profile: verified.profile,
      username,
      keyId: verified.keyId,
      version: verified.version,
      timestamp,
    };
    return { granted: true, grant, rules, stanza, packet, digest };
  }
  const refusal = policyRefusal ?? cryptoRefusal;
  if (refusal === null) throw new SpaError("SPA_NO_STANZA_VERIFIED"); // unreachable: one passed
  return refuse(refusal, lastDigest);
}
