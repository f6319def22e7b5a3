/**
 * IPv4 addresses and the network lists of access.conf's SOURCE and DESTINATION:
 * `ANY`, `a.b.c.d`, `a.b.c.d/nn` or `a.b.c.d/m.m.m.m`, comma separated.
 */
import { SpaError } from "./errors.js";
import { MAX_IPV4_STR_LEN, MIN_IPV4_STR_LEN } from "./limits.js";

/** Dotted-quad IPv4, no leading zeros (iptables and nft would read `010` as octal). */
const OCTET = "(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])";
const IPV4_TEXT = new RegExp(`^${OCTET}\\.${OCTET}\\.${OCTET}\\.${OCTET}$`);

export function isValidIpv4(text: string): boolean {
  if (text.length < MIN_IPV4_STR_LEN || text.length > MAX_IPV4_STR_LEN) return false;
  const m = IPV4_TEXT.exec(text);
  return m?.slice(1).every((octet) => Number(octet) <= 255) ?? false;
}

export interface Ipv4Network {
  readonly base: number;
  readonly mask: number;
  readonly text: string;
}

/** null means ANY. */
export type NetworkList = readonly Ipv4Network[] | null;

export function ipv4ToNumber(ip: string): number {
  if (!isValidIpv4(ip)) throw new SpaError("CONFIG_INVALID", `"${ip}" is not an IPv4 address`);
  return ip.split(".").reduce((acc, octet) => acc * 256 + Number(octet), 0) >>> 0;
}

function prefixMask(bits: number): number {
  return bits === 0 ? 0 : (0xffffffff << (32 - bits)) >>> 0;
}

export function parseNetwork(text: string): Ipv4Network {
  const [ip = "", suffix] = text.trim().split("/");
  const address = ipv4ToNumber(ip);
  let mask = 0xffffffff;
  if (suffix !== undefined) {
    if (/^[0-9]{1,2}$/.test(suffix) && Number(suffix) <= 32) mask = prefixMask(Number(suffix));
    else if (isValidIpv4(suffix)) mask = ipv4ToNumber(suffix);
    else throw new SpaError("CONFIG_INVALID", `"${text}": bad prefix length or netmask`);
  }
  return { base: (address & mask) >>> 0, mask, text: text.trim() };
}

export function parseNetworkList(text: string): NetworkList {
  const items = text
    .split(",")
    .map((s) => s.trim())
    .filter((s) => s.length > 0);
  if (items.length === 0) throw new SpaError("CONFIG_INVALID", "empty address list");
  if (items.some((s) => s.toUpperCase() === "ANY")) return null;
  return items.map(parseNetwork);
}

export function networkListMatches(list: NetworkList, ip: string): boolean {
  if (list === null) return true;
  if (!isValidIpv4(ip)) return false;
  const address = ipv4ToNumber(ip);
  return list.some((n) => (address & n.mask) >>> 0 === n.base);
}
