/**
 * libpcap sniffing (ENABLE_UDP_SERVER N), as fwknopd does: the packet is seen on the interface
 * before the firewall drops it, so the SPA port stays filtered. Uses the optional `cap` binding;
 * if it cannot load, pcap mode fails with a clear message and UDP mode still works.
 */
import { createRequire } from "node:module";
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

const ipText = (b: Buffer, at: number) => `${b[at]}.${b[at + 1]}.${b[at + 2]}.${b[at + 3]}`;

/**
 * Extracts the UDP payload of an IPv4 frame; null for anything else. Bounds-checked throughout:
 * the frame is attacker-controlled.
 */
export function parseUdpFrame(
  frame: Buffer,
  linkType: string,
): Omit<Datagram, "receivedAt"> | null {
  let ip = 0;
  if (linkType === "ETHERNET") {
    if (frame.length < 14) return null;
    let etherType = frame.readUInt16BE(12);
    ip = 14;
    if (etherType === 0x8100 && frame.length >= 18) {
      etherType = frame.readUInt16BE(16);
      ip = 18;
    }
    if (etherType !== 0x0800) return null;
  } else if (linkType === "LINKTYPE_LINUX_SLL") {
    if (frame.length < 16 || frame.readUInt16BE(14) !== 0x0800) return null;
    ip = 16;
  } else if (linkType !== "RAW" && linkType !== "IPV4") {
    return null;
  }
  if (frame.length < ip + 20 || (frame[ip] as number) >> 4 !== 4) return null;
  const ihl = ((frame[ip] as number) & 0x0f) * 4;
  if (ihl < 20 || frame[ip + 9] !== 17) return null;
  if ((frame.readUInt16BE(ip + 6) & 0x3fff) !== 0) return null; // fragments are not SPA
  const totalLength = frame.readUInt16BE(ip + 2);
  const udp = ip + ihl;
  if (frame.length < udp + 8) return null;
  const udpLength = frame.readUInt16BE(udp + 4);
  const end = Math.min(frame.length, ip + totalLength, udp + udpLength);
  if (end < udp + 8) return null;
  return {
    payload: Buffer.from(frame.subarray(udp + 8, end)),
    sourceIp: ipText(frame, ip + 12),
    destinationIp: ipText(frame, ip + 16),
    sourcePort: frame.readUInt16BE(udp),
  };
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
