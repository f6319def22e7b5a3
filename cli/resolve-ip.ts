/**
 * `-R --resolve-url URL`: learn this host's external address from an HTTPS service. An IPv4
 * address in the answer wins; an IPv6 one is taken when there is none (an IPv6-only network, or a
 * service that answers over IPv6), and only JOSE-profile packets can carry it.
 */
import { isValidIpv4, parseIpAddress } from "../core/index.js";
import { UsageError } from "./exit-codes.js";

export interface ResolvedIp {
  readonly ip: string;
  /** The server's Date header, for clock checks (`doctor`). */
  readonly serverDate: Date | null;
}

export async function fetchExternalIp(url: string, timeoutMs = 5_000): Promise<ResolvedIp> {
  if (!/^https?:\/\//i.test(url))
    throw new UsageError(`--resolve-url "${url}": expected an http(s):// URL`);
  const response = await fetch(url, {
    signal: AbortSignal.timeout(timeoutMs),
    headers: { "user-agent": "spaknock" },
  });
  const body = (await response.text()).slice(0, 4096);
  const ip =
    body.match(/\b(?:\d{1,3}\.){3}\d{1,3}\b/g)?.find(isValidIpv4) ??
    body
      .match(/[0-9A-Fa-f]*:[0-9A-Fa-f:.]*/g)
      ?.map((candidate) => parseIpAddress(candidate)?.text)
      .find((text) => text !== undefined);
  if (!response.ok || !ip)
    throw new Error(`${url} did not return an IPv4 or IPv6 address (HTTP ${response.status})`);
  const date = response.headers.get("date");
  return { ip, serverDate: date ? new Date(date) : null };
}

export async function resolveExternalIp(url: string): Promise<string> {
  return (await fetchExternalIp(url)).ip;
}
