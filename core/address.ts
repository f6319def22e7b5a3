/**
 * IP addresses (IPv4 and IPv6) and the network lists of access.conf's SOURCE and DESTINATION:
 * `ANY`, `a.b.c.d`, `a.b.c.d/nn`, `a.b.c.d/m.m.m.m`, `2001:db8::1` or `2001:db8::/32`, comma
 * separated.
 *
 * Strict on purpose: a form two tools could read two ways is refused (leading zeros in IPv4,
 * which iptables and nft would read as octal; zone ids; brackets; a netmask with holes). An
 * IPv4-mapped IPv6 address (`::ffff:198.18.0.2`, what a dual-stack socket reports for an IPv4
 * sender) is the IPv4 address it maps, everywhere.
 */
import { SpaError } from "./errors.js";
import { MAX_IPV4_STR_LEN, MIN_IPV4_STR_LEN } from "./limits.js";

/** Dotted-quad IPv4, no leading zeros (iptables and nft would read `010` as octal). */
const OCTET = "(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])";
const IPV4_TEXT = new RegExp(`^${OCTET}\\.${OCTET}\\.${OCTET}\\.${OCTET}$`);
/** The longest IPv6 text: eight groups of four, or six and a dotted quad. */
const MAX_IPV6_STR_LEN = 45;

export type IpFamily = 4 | 6;

export interface IpAddress {
  readonly family: IpFamily;
  /** The address as a number: 32 bits for IPv4, 128 for IPv6. */
  readonly value: bigint;
  /** Canonical text: dotted quad, or RFC 5952 (lower case, the longest zero run as `::`). */
  readonly text: string;
}

export function isValidIpv4(text: string): boolean {
  if (text.length < MIN_IPV4_STR_LEN || text.length > MAX_IPV4_STR_LEN) return false;
  return IPV4_TEXT.test(text);
}

function ipv4Value(text: string): bigint {
  return text.split(".").reduce((acc, octet) => (acc << 8n) | BigInt(Number(octet)), 0n);
}

/** The 16-bit groups of an IPv6 text, or null when it is not one unambiguous IPv6 address. */
function ipv6Groups(text: string): number[] | null {
  if (text.length < 2 || text.length > MAX_IPV6_STR_LEN) return null;
  if (!/^[0-9A-Fa-f:.]+$/.test(text)) return null;
  const halves = text.split("::");
  if (halves.length > 2) return null;
  const parse = (part: string, last: boolean): number[] | null => {
    if (part === "") return [];
    const out: number[] = [];
    const pieces = part.split(":");
    for (let i = 0; i < pieces.length; i++) {
      const piece = pieces[i] as string;
      if (last && i === pieces.length - 1 && piece.includes(".")) {
        if (!isValidIpv4(piece)) return null;
        const v = Number(ipv4Value(piece));
        out.push(v >>> 16, v & 0xffff);
      } else if (/^[0-9A-Fa-f]{1,4}$/.test(piece)) {
        out.push(Number.parseInt(piece, 16));
      } else {
        return null;
      }
    }
    return out;
  };
  if (halves.length === 1) {
    const groups = parse(text, true);
    return groups?.length === 8 ? groups : null;
  }
  const head = parse(halves[0] as string, false);
  const tail = parse(halves[1] as string, true);
  if (head === null || tail === null) return null;
  // `::` stands for at least one group of zeros.
  if (head.length + tail.length > 7) return null;
  return [...head, ...new Array<number>(8 - head.length - tail.length).fill(0), ...tail];
}

function ipv6Text(value: bigint): string {
  const groups: number[] = [];
  for (let i = 7; i >= 0; i--) groups.push(Number((value >> BigInt(i * 16)) & 0xffffn));
  // RFC 5952: the longest run of two or more zero groups (the first of equals) becomes `::`.
  let best = -1;
  let bestLen = 1;
  for (let i = 0; i < 8; ) {
    if (groups[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > bestLen) {
      best = i;
      bestLen = j - i;
    }
    i = j;
  }
  const hex = groups.map((g) => g.toString(16));
  if (best < 0) return hex.join(":");
  return `${hex.slice(0, best).join(":")}::${hex.slice(best + bestLen).join(":")}`;
}

/** Parses an IPv4 or IPv6 address (an IPv4-mapped one becomes IPv4); null when it is none. */
export function parseIpAddress(text: string): IpAddress | null {
  if (isValidIpv4(text)) return { family: 4, value: ipv4Value(text), text };
  const groups = ipv6Groups(text);
  if (groups === null) return null;
  const value = groups.reduce((acc, g) => (acc << 16n) | BigInt(g), 0n);
  // ::ffff:0:0/96, the IPv4-mapped block.
  if (value >> 32n === 0xffffn) {
    const v4 = value & 0xffffffffn;
    const quad = [24n, 16n, 8n, 0n].map((s) => String((v4 >> s) & 0xffn)).join(".");
    return { family: 4, value: v4, text: quad };
  }
  return { family: 6, value, text: ipv6Text(value) };
}

/** Dotted-quad text of the 4 address bytes at `at`, in network order (a packet's, a socket's). */
export function ipv4TextOf(bytes: Uint8Array, at = 0): string {
  return `${bytes[at]}.${bytes[at + 1]}.${bytes[at + 2]}.${bytes[at + 3]}`;
}

/**
 * RFC 5952 text of the 16 address bytes at `at`, in network order. An IPv4-mapped one is written
 * as IPv6 here: a caller that takes mapped senders as IPv4 (or refuses them) tells them apart
 * first, with `isIpv4MappedBytes`.
 */
export function ipv6TextOf(bytes: Uint8Array, at = 0): string {
  let value = 0n;
  for (let i = 0; i < 16; i++) value = (value << 8n) | BigInt(bytes[at + i] ?? 0);
  return ipv6Text(value);
}

/** Whether the 16 address bytes at `at` are in ::ffff:0:0/96, the IPv4-mapped block. */
export function isIpv4MappedBytes(bytes: Uint8Array, at = 0): boolean {
  for (let i = 0; i < 10; i++) if (bytes[at + i] !== 0) return false;
  return bytes[at + 10] === 0xff && bytes[at + 11] === 0xff;
}

export function isValidIpv6(text: string): boolean {
  return parseIpAddress(text)?.family === 6;
}

/** The canonical text of an address (IPv4-mapped IPv6 as IPv4), or null when it is none. */
export function canonicalIp(text: string): string | null {
  return parseIpAddress(text)?.text ?? null;
}

/** True for `0.0.0.0` and `::`: "the packet's own source address" in an allow-IP. */
export function isUnspecifiedIp(text: string): boolean {
  return parseIpAddress(text)?.value === 0n;
}

export interface IpNetwork {
  readonly family: IpFamily;
  /** The network's first address. */
  readonly base: bigint;
  /** Prefix length: 0..32 or 0..128. */
  readonly bits: number;
  /** As written in the configuration. */
  readonly text: string;
}

/** null means ANY. */
export type NetworkList = readonly IpNetwork[] | null;

const familyBits = (family: IpFamily) => (family === 4 ? 32 : 128);

function prefixMask(family: IpFamily, bits: number): bigint {
  const width = BigInt(familyBits(family));
  return ((1n << width) - 1n) ^ ((1n << (width - BigInt(bits))) - 1n);
}

/** The prefix length of a dotted netmask, or null when its ones are not contiguous. */
function netmaskBits(mask: bigint): number | null {
  for (let bits = 0; bits <= 32; bits++) if (prefixMask(4, bits) === mask) return bits;
  return null;
}

export function parseNetwork(raw: string): IpNetwork {
  const text = raw.trim();
  const parts = text.split("/");
  if (parts.length > 2) throw new SpaError("CONFIG_INVALID", `"${text}": more than one "/"`);
  const [ipText = "", suffix] = parts;
  const ip = parseIpAddress(ipText);
  if (ip === null) throw new SpaError("CONFIG_INVALID", `"${ipText}" is not an IP address`);
  // `::ffff:a.b.c.d/nn` would need its prefix counted in IPv6 bits: write the IPv4 network.
  if (ip.family === 4 && ipText.includes(":") && suffix !== undefined) {
    throw new SpaError("CONFIG_INVALID", `"${text}": write the IPv4 network ${ip.text}/…`);
  }
  const max = familyBits(ip.family);
  let bits = max;
  if (suffix !== undefined) {
    if (/^(0|[1-9][0-9]{0,2})$/.test(suffix) && Number(suffix) <= max) {
      bits = Number(suffix);
    } else if (ip.family === 4 && isValidIpv4(suffix)) {
      const fromMask = netmaskBits(ipv4Value(suffix));
      if (fromMask === null)
        throw new SpaError("CONFIG_INVALID", `"${text}": netmask ${suffix} has holes`);
      bits = fromMask;
    } else {
      throw new SpaError("CONFIG_INVALID", `"${text}": bad prefix length or netmask`);
    }
  }
  return { family: ip.family, base: ip.value & prefixMask(ip.family, bits), bits, text };
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

export function networkContains(n: IpNetwork, ip: IpAddress): boolean {
  return n.family === ip.family && (ip.value & prefixMask(n.family, n.bits)) === n.base;
}

/** Whether an address (parsed once per packet, not once per stanza) is in a list; null: none. */
export function networkListHolds(list: NetworkList, ip: IpAddress | null): boolean {
  if (list === null) return true;
  return ip !== null && list.some((n) => networkContains(n, ip));
}

export function networkListMatches(list: NetworkList, ipText: string): boolean {
  return networkListHolds(list, list === null ? null : parseIpAddress(ipText));
}
