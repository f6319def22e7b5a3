/**
 * libpcap sniffing (ENABLE_UDP_SERVER N), as fwknopd does: the packet is seen on the interface
 * before the firewall drops it, so the SPA port stays filtered. Uses the optional `cap` binding;
 * if it cannot load, pcap mode fails with a clear message and UDP mode still works.
 */
import { createRequire } from "node:module";
import { ipv4TextOf, ipv6TextOf, isIpv4MappedBytes } from "../../core/index.js";
import type { Capture, Datagram } from "./datagram.js";

interface CapInstance {
  open(device: string, filter: string, bufSize: number, buffer: Buffer): string;
  setMinBytes?(n: number): void;
  on(event: "packet", listener: (nbytes: number, truncated: boolean) => void): void;
  close(): void;
}

type CapModule = { Cap: new () => CapInstance };

function loadCap(): CapModule {
  try {
    return createRequire(import.meta.url)("cap") as CapModule;
  } catch (err) {
    const why = err instanceof Error ? err.message.split("\n")[0] : String(err);
    throw new Error(
      `pcap capture needs the optional 'cap' module, which did not load (${why}); ` +
        "install libpcap-dev and run npm install again, or set ENABLE_UDP_SERVER Y",
    );
  }
}

/** RFC 5952 text of the 16 bytes at `at`; null for an IPv4-mapped one (see parseIpv6Udp). */
const ipv6Text = (b: Buffer, at: number): string | null =>
  isIpv4MappedBytes(b, at) ? null : ipv6TextOf(b, at);

const ETHERTYPE_IPV4 = 0x0800;
const ETHERTYPE_IPV6 = 0x86dd;
const IPPROTO_UDP = 17;
const IPV6_HEADER_LENGTH = 40;

type Parsed = Omit<Datagram, "receivedAt">;

/** The UDP header and payload at `udp`, the payload cut at `ipEnd` and at the UDP length. */
function udpPayload(
  frame: Buffer,
  udp: number,
  ipEnd: number,
  sourceIp: string,
  destinationIp: string,
): Parsed | null {
  if (frame.length < udp + 8) return null;
  const udpLength = frame.readUInt16BE(udp + 4);
  const end = Math.min(frame.length, ipEnd, udp + udpLength);
  if (end < udp + 8) return null;
  return {
    payload: Buffer.from(frame.subarray(udp + 8, end)),
    sourceIp,
    destinationIp,
    sourcePort: frame.readUInt16BE(udp),
  };
}

function parseIpv4Udp(frame: Buffer, ip: number): Parsed | null {
  if (frame.length < ip + 20 || (frame[ip] as number) >> 4 !== 4) return null;
  const ihl = ((frame[ip] as number) & 0x0f) * 4;
  if (ihl < 20 || frame[ip + 9] !== IPPROTO_UDP) return null;
  if ((frame.readUInt16BE(ip + 6) & 0x3fff) !== 0) return null; // fragments are not SPA
  const totalLength = frame.readUInt16BE(ip + 2);
  return udpPayload(
    frame,
    ip + ihl,
    ip + totalLength,
    ipv4TextOf(frame, ip + 12),
    ipv4TextOf(frame, ip + 16),
  );
}

/**
 * UDP straight after the IPv6 header only. Extension headers (fragments above all) are not how an
 * SPA client sends, and walking them would be more attacker-controlled parsing for nothing. An
 * IPv4-mapped source on the wire is no real sender (RFC 4291 keeps those addresses off links): it
 * must not become an IPv4 grant.
 */
function parseIpv6Udp(frame: Buffer, ip: number): Parsed | null {
  if (frame.length < ip + IPV6_HEADER_LENGTH || (frame[ip] as number) >> 4 !== 6) return null;
  if (frame[ip + 6] !== IPPROTO_UDP) return null;
  const source = ipv6Text(frame, ip + 8);
  const destination = ipv6Text(frame, ip + 24);
  if (source === null || destination === null) return null;
  const payloadLength = frame.readUInt16BE(ip + 4);
  const udp = ip + IPV6_HEADER_LENGTH;
  return udpPayload(frame, udp, udp + payloadLength, source, destination);
}

type IpHeader = { at: number; version: 4 | 6 };

function byEtherType(etherType: number, at: number): IpHeader | null {
  if (etherType === ETHERTYPE_IPV4) return { at, version: 4 };
  if (etherType === ETHERTYPE_IPV6) return { at, version: 6 };
  return null;
}

/** Where the IP header starts and which version the link layer says it is; null: not IP. */
function ipHeaderOf(frame: Buffer, linkType: string): IpHeader | null {
  switch (linkType) {
    case "ETHERNET": {
      if (frame.length < 14) return null;
      const etherType = frame.readUInt16BE(12);
      if (etherType === 0x8100 && frame.length >= 18)
        return byEtherType(frame.readUInt16BE(16), 18);
      return byEtherType(etherType, 14);
    }
    case "LINKTYPE_LINUX_SLL":
      return frame.length < 16 ? null : byEtherType(frame.readUInt16BE(14), 16);
    case "IPV4":
      return { at: 0, version: 4 };
    case "IPV6":
      return { at: 0, version: 6 };
    case "RAW": {
      // Raw IP: the version nibble is all there is to tell the two apart.
      const version = frame.length > 0 ? (frame[0] as number) >> 4 : 0;
      return version === 4 || version === 6 ? { at: 0, version } : null;
    }
    default:
      return null;
  }
}

/**
 * Extracts the UDP payload of an IPv4 or IPv6 frame; null for anything else. Bounds-checked
 * throughout: the frame is attacker-controlled.
 */
export function parseUdpFrame(frame: Buffer, linkType: string): Parsed | null {
  const header = ipHeaderOf(frame, linkType);
  if (header === null) return null;
  return header.version === 4 ? parseIpv4Udp(frame, header.at) : parseIpv6Udp(frame, header.at);
}

export class PcapCapture implements Capture {
  private cap: CapInstance | null = null;

  constructor(
    private readonly device: string,
    private readonly filter: string,
    private readonly snapLength: number,
  ) {}

  async start(onDatagram: (d: Datagram) => void): Promise<void> {
    const { Cap } = loadCap();
    const cap = new Cap();
    const buffer = Buffer.alloc(Math.max(this.snapLength, 1600) + 64);
    let linkType: string;
    try {
      linkType = cap.open(this.device, this.filter, 16 * 1024 * 1024, buffer);
    } catch (err) {
      const why = err instanceof Error ? err.message : String(err);
      throw new Error(`cannot sniff ${this.device} with filter "${this.filter}": ${why}`);
    }
    cap.setMinBytes?.(0);
    cap.on("packet", (nbytes) => {
      const parsed = parseUdpFrame(buffer.subarray(0, nbytes), linkType);
      if (parsed) onDatagram({ ...parsed, receivedAt: Date.now() });
    });
    this.cap = cap;
  }

  async stop(): Promise<void> {
    this.cap?.close();
    this.cap = null;
  }
}
