/** The field dump fwknop prints with `-v`, so its users read the same thing. Never a key. */
import {
  DIGESTS,
  type DigestType,
  ENCRYPTION_MODE_INFO,
  type EncryptionMode,
  JOSE_PROFILE_VERSION,
  type JoseRequest,
  MAX_JOSE_SEND_SIZE,
  MESSAGE_TYPES,
  type SpaMessage,
} from "../core/index.js";

export interface DescribedPacket {
  readonly message: SpaMessage;
  readonly hmacType: DigestType | null;
  readonly mode: EncryptionMode;
  readonly encoded?: string;
  readonly hmac: string | null;
  readonly wire: string;
}

export function describePacket(p: DescribedPacket): string {
  const m = p.message;
  const rows: [string, string][] = [
    ["Random Value", m.randomValue],
    ["Username", m.username],
    ["Timestamp", String(m.timestamp)],
    ["FKO Version", m.version],
    ["Message Type", `${m.messageType} (${MESSAGE_TYPES[m.messageType]})`],
    ["Message String", m.message],
    ["Nat Access", m.natAccess ?? "<NULL>"],
    ["Server Auth", m.serverAuth ?? "<NULL>"],
    ["Client Timeout", String(m.clientTimeout)],
    ["Digest Type", `${DIGESTS[m.digestType].fkoId} (${DIGESTS[m.digestType].label})`],
    [
      "HMAC Type",
      p.hmacType ? `${DIGESTS[p.hmacType].fkoId} (${DIGESTS[p.hmacType].label})` : "0 (None)",
    ],
    ["Encryption Type", "1 (Rijndael)"],
    [
      "Encryption Mode",
      `${ENCRYPTION_MODE_INFO[p.mode].fkoId} (${ENCRYPTION_MODE_INFO[p.mode].label})`,
    ],
    ...(p.encoded === undefined ? [] : ([["Encoded Data", p.encoded]] as [string, string][])),
    ["SPA Data Digest", m.digest],
    ["HMAC", p.hmac ?? "<NULL>"],
    ["Final SPA Data", p.wire],
  ];
  const lines = rows.map(([label, value]) => `${label.padStart(15)}: ${value}`);
  return ["SPA Field Values:", "=================", ...lines].join("\n");
}

export interface DescribedJosePacket {
  /** The signer's key id (the JWS kid): which user key, never the key itself. */
  readonly signerKid: string;
  /** The server key the packet is encrypted to (the JWE kid and `aud`). */
  readonly serverKid: string;
  readonly request: JoseRequest;
  readonly wire: string;
}

/** `-v` and `decode` for a JOSE-profile packet: the claims by name, the ids of both keys. */
export function describeJosePacket(p: DescribedJosePacket): string {
  const r = p.request;
  const rows: [string, string][] = [
    ["Profile", `jose (version ${JOSE_PROFILE_VERSION})`],
    ["Key Id", p.signerKid],
    ["Server Key Id", p.serverKid],
    ["Username", r.username],
    ["Timestamp", String(r.timestamp)],
    ["Allow IP", r.allowIp],
    ["Access", r.ports.map((port) => `${port.proto}/${port.port}`).join(",")],
    ["Client Timeout", r.clientTimeout > 0 ? String(r.clientTimeout) : "0 (the server's default)"],
    ["JTI", r.jti],
    ["Size", `${p.wire.length} bytes (at most ${MAX_JOSE_SEND_SIZE})`],
    ["Final SPA Data", p.wire],
  ];
  const lines = rows.map(([label, value]) => `${label.padStart(15)}: ${value}`);
  return ["SPA Field Values:", "=================", ...lines].join("\n");
}
