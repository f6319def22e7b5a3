// parseUdpFrame reads frames straight off the wire in pcap mode: every byte is the attacker's.
// Known frame shapes decode to exactly their UDP payload; everything else is null, never a throw.
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { parseUdpFrame } from "../../agent/capture/pcap.js";

const PAYLOAD = Buffer.from("A".repeat(150));

/** An IPv4 header + UDP header + payload, with the lengths a real stack writes. */
function ipv4Udp(
  payload: Buffer,
  opts: { proto?: number; flags?: number; ihl?: number } = {},
): Buffer {
  const ihl = opts.ihl ?? 5;
  const ip = Buffer.alloc(ihl * 4);
  ip[0] = 0x40 | ihl;
  ip.writeUInt16BE(ihl * 4 + 8 + payload.length, 2);
  ip.writeUInt16BE(opts.flags ?? 0x4000, 6); // DF, no fragment offset
  ip[8] = 64;
  ip[9] = opts.proto ?? 17;
  Buffer.from([198, 18, 0, 2]).copy(ip, 12);
  Buffer.from([198, 18, 0, 1]).copy(ip, 16);
  const udp = Buffer.alloc(8);
  udp.writeUInt16BE(40123, 0);
  udp.writeUInt16BE(62201, 2);
  udp.writeUInt16BE(8 + payload.length, 4);
  return Buffer.concat([ip, udp, payload]);
}

/** An IPv6 header + UDP header + payload, from 2001:db8:5a::2 to 2001:db8:5a::1. */
function ipv6Udp(
  payload: Buffer,
  opts: { nextHeader?: number; source?: Buffer; payloadLength?: number } = {},
): Buffer {
  const ip = Buffer.alloc(40);
  ip[0] = 0x60;
  ip.writeUInt16BE(opts.payloadLength ?? 8 + payload.length, 4);
  ip[6] = opts.nextHeader ?? 17;
  ip[7] = 64;
  (opts.source ?? Buffer.from("20010db8005a00000000000000000002", "hex")).copy(ip, 8);
  Buffer.from("20010db8005a00000000000000000001", "hex").copy(ip, 24);
  const udp = Buffer.alloc(8);
  udp.writeUInt16BE(40123, 0);
  udp.writeUInt16BE(62201, 2);
  udp.writeUInt16BE(8 + payload.length, 4);
  return Buffer.concat([ip, udp, payload]);
}

const ethernet = (ipPacket: Buffer, etherType = 0x0800) =>
  Buffer.concat([
    Buffer.alloc(12, 0xaa),
    Buffer.from([etherType >> 8, etherType & 0xff]),
    ipPacket,
  ]);
const vlan = (ipPacket: Buffer) =>
  Buffer.concat([
    Buffer.alloc(12, 0xaa),
    Buffer.from([0x81, 0x00, 0x00, 0x07, 0x08, 0x00]),
    ipPacket,
  ]);
const sll = (ipPacket: Buffer, protocol = 0x0800) =>
  Buffer.concat([Buffer.alloc(14, 0), Buffer.from([protocol >> 8, protocol & 0xff]), ipPacket]);

const EXPECTED = {
  payload: PAYLOAD,
  sourceIp: "198.18.0.2",
  destinationIp: "198.18.0.1",
  sourcePort: 40123,
};

describe("parseUdpFrame", () => {
  it.each([
    ["Ethernet", ethernet(ipv4Udp(PAYLOAD)), "ETHERNET"],
    ["802.1Q VLAN", vlan(ipv4Udp(PAYLOAD)), "ETHERNET"],
    ["Linux cooked (any interface)", sll(ipv4Udp(PAYLOAD)), "LINKTYPE_LINUX_SLL"],
    ["raw IPv4", ipv4Udp(PAYLOAD), "RAW"],
    ["IPv4 with options (IHL 6)", ipv4Udp(PAYLOAD, { ihl: 6 }), "IPV4"],
  ])("reads the UDP payload of a %s frame", (_name, frame, linkType) => {
    expect(parseUdpFrame(frame, linkType)).toEqual(EXPECTED);
  });

  const EXPECTED_V6 = {
    ...EXPECTED,
    sourceIp: "2001:db8:5a::2",
    destinationIp: "2001:db8:5a::1",
  };

  it.each([
    ["Ethernet", ethernet(ipv6Udp(PAYLOAD), 0x86dd), "ETHERNET"],
    ["Linux cooked (any interface)", sll(ipv6Udp(PAYLOAD), 0x86dd), "LINKTYPE_LINUX_SLL"],
    ["raw IP (told apart by its version)", ipv6Udp(PAYLOAD), "RAW"],
    ["raw IPv6", ipv6Udp(PAYLOAD), "IPV6"],
  ])("reads the UDP payload of an IPv6 %s frame, with RFC 5952 addresses", (_n, frame, link) => {
    expect(parseUdpFrame(frame, link)).toEqual(EXPECTED_V6);
  });

  it("stops at the IPv6 payload length: Ethernet padding is not payload", () => {
    const short = Buffer.from("B".repeat(10));
    const frame = Buffer.concat([ethernet(ipv6Udp(short), 0x86dd), Buffer.alloc(30, 0)]);
    expect(parseUdpFrame(frame, "ETHERNET")?.payload).toEqual(short);
  });

  it.each([
    ["a fragment header before UDP", ipv6Udp(PAYLOAD, { nextHeader: 44 })],
    ["a hop-by-hop header before UDP", ipv6Udp(PAYLOAD, { nextHeader: 0 })],
    ["TCP", ipv6Udp(PAYLOAD, { nextHeader: 6 })],
    [
      "an IPv4-mapped source (never a real sender on a link)",
      ipv6Udp(PAYLOAD, { source: Buffer.from("00000000000000000000ffffc6120002", "hex") }),
    ],
    ["a payload length too short for the UDP header", ipv6Udp(PAYLOAD, { payloadLength: 4 })],
    ["a frame cut inside the IPv6 header", ipv6Udp(PAYLOAD).subarray(0, 39)],
    ["an IPv4 packet where the link layer says IPv6", ipv4Udp(PAYLOAD)],
  ])("returns null for IPv6 with %s", (_name, packet) => {
    expect(parseUdpFrame(ethernet(packet, 0x86dd), "ETHERNET")).toBeNull();
  });

  it("stops at the IP total length: Ethernet padding is not payload", () => {
    const short = Buffer.from("B".repeat(10));
    const frame = Buffer.concat([ethernet(ipv4Udp(short)), Buffer.alloc(30, 0)]);
    expect(parseUdpFrame(frame, "ETHERNET")?.payload).toEqual(short);
  });

  it("copies the payload out of the capture buffer (which libpcap reuses)", () => {
    const frame = ipv4Udp(PAYLOAD);
    const parsed = parseUdpFrame(frame, "RAW");
    frame.fill(0);
    expect(parsed?.payload).toEqual(PAYLOAD);
  });

  it.each([
    ["TCP", ipv4Udp(PAYLOAD, { proto: 6 }), "RAW"],
    ["a first fragment (MF set)", ipv4Udp(PAYLOAD, { flags: 0x2000 }), "RAW"],
    ["a later fragment (offset set)", ipv4Udp(PAYLOAD, { flags: 0x0010 }), "RAW"],
    ["an IHL below 5", ipv4Udp(PAYLOAD, { ihl: 4 }), "RAW"],
    ["IPv6 over Ethernet", ethernet(Buffer.alloc(200, 0x60), 0x86dd), "ETHERNET"],
    ["ARP", ethernet(Buffer.alloc(28), 0x0806), "ETHERNET"],
    ["an unknown link type", ipv4Udp(PAYLOAD), "IEEE802_11"],
    ["a frame cut inside the Ethernet header", Buffer.alloc(13), "ETHERNET"],
    ["a frame cut inside the IP header", ethernet(ipv4Udp(PAYLOAD)).subarray(0, 30), "ETHERNET"],
    ["a frame cut inside the UDP header", ipv4Udp(PAYLOAD).subarray(0, 25), "RAW"],
  ])("returns null for %s", (_name, frame, linkType) => {
    expect(parseUdpFrame(frame, linkType)).toBeNull();
  });

  it("never throws, and any payload it returns lies inside the frame", () => {
    const linkTypes = ["ETHERNET", "LINKTYPE_LINUX_SLL", "RAW", "IPV4", "IPV6", "NULL"];
    fc.assert(
      fc.property(
        fc.oneof(
          fc.uint8Array({ maxLength: 120 }),
          // mutations of a valid frame reach the deeper checks
          fc
            .tuple(fc.integer({ min: 0, max: 200 }), fc.integer({ min: 0, max: 255 }), fc.nat(220))
            .map(([at, value, cut]) => {
              const f = Buffer.from(ethernet(ipv4Udp(PAYLOAD.subarray(0, 40))));
              if (at < f.length) f[at] = value;
              return new Uint8Array(f.subarray(0, Math.min(f.length, cut)));
            }),
          fc
            .tuple(fc.integer({ min: 0, max: 200 }), fc.integer({ min: 0, max: 255 }), fc.nat(220))
            .map(([at, value, cut]) => {
              const f = Buffer.from(ethernet(ipv6Udp(PAYLOAD.subarray(0, 40)), 0x86dd));
              if (at < f.length) f[at] = value;
              return new Uint8Array(f.subarray(0, Math.min(f.length, cut)));
            }),
        ),
        fc.constantFrom(...linkTypes),
        (bytes, linkType) => {
          const frame = Buffer.from(bytes);
          const parsed = parseUdpFrame(frame, linkType);
          if (parsed !== null) expect(parsed.payload.length).toBeLessThanOrEqual(frame.length - 28);
        },
      ),
      { numRuns: 5000 },
    );
  });
});
