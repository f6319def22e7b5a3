/**
 * Where a knock goes: the server's address, resolved once per knock so that the packet (`-s`
 * sends `::` on an IPv6 connection) and the socket use the same one, and `host:port` text that
 * stays readable for IPv6 literals. `ssh` and `proxy` resolve the name again for the port wait:
 * a name with several addresses may be waited on at another than the one knocked.
 */
import { lookup } from "node:dns/promises";
import { isIP } from "node:net";

export interface ServerAddress {
  readonly address: string;
  readonly family: 4 | 6;
}

/** Every address of a name, as `dns.lookup(name, { all: true })` gives them. */
export type LookupAll = (host: string) => Promise<readonly { address: string; family: number }[]>;

const systemLookupAll: LookupAll = (host) => lookup(host, { all: true });

/**
 * An IP literal as it is; a name to its first IPv4 address, or its first IPv6 address when it
 * has none. IPv4 first because fwknop-format packets and most allow-IPs are IPv4, and a host
 * that has both usually filters both the same way.
 */
export async function resolveServer(
  host: string,
  lookupAll: LookupAll = systemLookupAll,
): Promise<ServerAddress> {
  const literal = isIP(host);
  if (literal === 4 || literal === 6) return { address: host, family: literal };
  let found: readonly { address: string; family: number }[];
  try {
    found = await lookupAll(host);
  } catch (err) {
    throw new Error(`cannot resolve "${host}" to an IPv4 or IPv6 address`, { cause: err });
  }
  const chosen = found.find((a) => a.family === 4) ?? found.find((a) => a.family === 6);
  if (chosen === undefined) throw new Error(`"${host}" has no IPv4 or IPv6 address`);
  return { address: chosen.address, family: chosen.family === 6 ? 6 : 4 };
}

/** `host:port`, with an IPv6 literal in brackets (`[2001:db8::1]:22`) as URLs and ssh write it. */
export function hostPort(host: string, port: number): string {
  return isIP(host) === 6 ? `[${host}]:${port}` : `${host}:${port}`;
}

/** `[2001:db8::1]` → `2001:db8::1`: a host given in the bracketed form people copy from URLs. */
export function withoutBrackets(host: string): string {
  const m = /^\[([0-9A-Fa-f:.]+)\]$/.exec(host);
  return m && isIP(m[1] as string) === 6 ? (m[1] as string) : host;
}
