import type { Grant } from "../../core/index.js";

export function portsText(grant: Grant): string {
  return grant.ports.map((p) => `${p.proto}/${p.port}`).join(", ");
}

/** The human text of a grant, for mail bodies. */
export function describeGrant(grant: Grant): string {
  return [
    `source:  ${grant.sourceIp}`,
    `user:    ${grant.username}`,
    `ports:   ${portsText(grant)}`,
    `opened:  ${new Date(grant.openedAt * 1000).toISOString()}`,
    `expires: ${new Date(grant.expiresAt * 1000).toISOString()} (${grant.timeoutSec} s)`,
    `stanza:  #${grant.stanza}`,
  ].join("\n");
}
