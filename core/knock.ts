/**
 * The knock pipeline, shared by the host daemon and the Lambda: one raw datagram in, one decision
 * out. fwknopd's order, cheapest first (docs/architecture.md, "The pipeline"):
 *
 *   precheck → replay look-up (where it is local) → for each stanza matching SOURCE/DESTINATION:
 *   HMAC → decrypt → decode → age, allow-IP, username, ports → claim the digest → open the firewall.
 *
 * What follows the open (scheduling the close, notifying) is core/grant.ts.
 *
 * It never throws for anything a sender controls: every refusal is an outcome with a code.
 */
import { type AccessStanza, decideAccess } from "./access.js";
import type { Firewall, Grant, OpenedRule, ReplayCache } from "./adapters.js";
import { networkListMatches } from "./address.js";
import { isSpaError, SpaError, type SpaErrorCode } from "./errors.js";
import type { SpaMessage } from "./message.js";
import { openSpaPacket } from "./packet.js";
import { precheckDatagram } from "./precheck.js";
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
}

export type KnockOutcome =
  | {
      readonly granted: true;
      readonly grant: Grant;
      /** The rules the firewall opened or refreshed for it. */
      readonly rules: readonly OpenedRule[];
      readonly stanza: AccessStanza;
      readonly message: SpaMessage;
      readonly digest: string;
    }
  | {
      readonly granted: false;
      readonly code: SpaErrorCode;
      readonly detail: string;
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

export async function knock(
  input: KnockInput,
  ports: KnockPorts,
  settings: KnockSettings,
): Promise<KnockOutcome> {
  const refuse = (r: Refusal, digest: string | null): KnockOutcome => ({
    granted: false,
    digest,
    ...r,
  });
  const now = Math.floor(input.receivedAt / 1000);

  let data: string;
  try {
    data = precheckDatagram(input.payload);
  } catch (err) {
    return refuse(refusalOf(err, null, null), null);
  }
  const digest = replayDigest(data);
  if (ports.replay?.seen) {
    let seen: boolean;
    try {
      seen = await ports.replay.seen(digest);
    } catch (err) {
      const detail = err instanceof Error ? err.message : String(err);
      return refuse({ code: "REPLAY_STORE_FAILED", detail, stanza: null, username: null }, digest);
    }
    if (seen) {
      return refuse(
        { code: "SPA_REPLAY", detail: "digest already seen", stanza: null, username: null },
        digest,
      );
    }
  }

  const candidates = ports.stanzas.filter(
    (s) =>
      networkListMatches(s.sources, input.sourceIp) &&
      (s.destinations === null ||
        (input.destinationIp !== null && networkListMatches(s.destinations, input.destinationIp))),
  );
  if (candidates.length === 0) {
    const detail = `no stanza for source ${input.sourceIp}`;
    return refuse({ code: "SPA_NO_SOURCE_MATCH", detail, stanza: null, username: null }, digest);
  }

  let cryptoRefusal: Refusal | null = null;
  let policyRefusal: Refusal | null = null;
  for (const stanza of candidates) {
    if (stanza.accessExpire !== null && now > stanza.accessExpire) {
      cryptoRefusal ??= {
        code: "SPA_STANZA_EXPIRED",
        detail: `stanza #${stanza.index}`,
        stanza: null,
        username: null,
      };
      continue;
    }
    let message: SpaMessage;
    try {
      message = openSpaPacket(data, stanza.keys);
    } catch (err) {
      cryptoRefusal ??= refusalOf(err, null, null);
      continue;
    }
    let decision: ReturnType<typeof decideAccess>;
    try {
      decision = decideAccess(stanza, message, {
        sourceIp: input.sourceIp,
        now,
        maxPacketAge: settings.maxPacketAge,
      });
    } catch (err) {
      policyRefusal ??= refusalOf(err, stanza, message.username);
      continue;
    }

    if (ports.replay) {
      let claimed: boolean;
      try {
        claimed = await ports.replay.claim(digest, {
          sourceIp: input.sourceIp,
          sourcePort: input.sourcePort,
          seenAt: now,
          packetTime: message.timestamp,
        });
      } catch (err) {
        const detail = err instanceof Error ? err.message : String(err);
        return refuse(
          { code: "REPLAY_STORE_FAILED", detail, stanza, username: message.username },
          digest,
        );
      }
      if (!claimed) {
        const detail = "another copy of this packet was claimed first";
        return refuse({ code: "SPA_REPLAY", detail, stanza, username: message.username }, digest);
      }
    }

    const grant: Grant = {
      sourceIp: decision.allowIp,
      ports: decision.ports,
      username: message.username,
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
      return refuse(
        { code: "FIREWALL_FAILED", detail, stanza, username: message.username },
        digest,
      );
    }
    return { granted: true, grant, rules, stanza, message, digest };
  }
  const refusal = policyRefusal ?? cryptoRefusal;
  if (refusal === null) throw new SpaError("SPA_NO_STANZA_VERIFIED"); // unreachable: candidates > 0
  return refuse(refusal, digest);
}
