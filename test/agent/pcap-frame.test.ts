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
const sll = (ipPacket: Buffer) =>
  Buffer.concat([Buffer.alloc(14, 0), Buffer.from([0x08, 0x00]), ipPacket]);

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
    const linkTypes = ["ETHERNET", "LINKTYPE_LINUX_SLL", "RAW", "IPV4", "NULL"];
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
