/** `-R --resolve-url URL`: learn this host's external IPv4 address from an HTTPS service. */
import { isValidIpv4 } from "../core/index.js";
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
  const ip = body.match(/\b(?:\d{1,3}\.){3}\d{1,3}\b/g)?.find(isValidIpv4);
  if (!response.ok || !ip)
    throw new Error(`${url} did not return an IPv4 address (HTTP ${response.status})`);
  const date = response.headers.get("date");
  return { ip, serverDate: date ? new Date(date) : null };
}

export async function resolveExternalIp(url: string): Promise<string> {
  return (await fetchExternalIp(url)).ip;
}
