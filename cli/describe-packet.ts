/** The field dump fwknop prints with `-v`, so its users read the same thing. Never a key. */
import {
  DIGESTS,
  type DigestType,
  ENCRYPTION_MODE_INFO,
  type EncryptionMode,
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
