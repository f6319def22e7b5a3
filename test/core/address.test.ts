import { describe, expect, it } from "vitest";
import {
  canonicalIp,
  ipv4TextOf,
  ipv6TextOf,
  isIpv4MappedBytes,
  isUnspecifiedIp,
  isValidIpv4,
  isValidIpv6,
  networkListMatches,
  parseIpAddress,
  parseNetwork,
  parseNetworkList,
} from "../../core/index.js";

describe("parseIpAddress", () => {
  it.each([
    ["198.18.0.2", 4, "198.18.0.2"],
    ["2001:db8::1", 6, "2001:db8::1"],
    ["2001:DB8:0:0:0:0:0:1", 6, "2001:db8::1"],
    ["2001:db8:0:0:1:0:0:1", 6, "2001:db8::1:0:0:1"],
    ["2001:0db8:0000:0000:0000:ff00:0042:8329", 6, "2001:db8::ff00:42:8329"],
    ["::", 6, "::"],
    ["::1", 6, "::1"],
    ["fe80::", 6, "fe80::"],
    ["2001:db8:1:2:3:4:5:6", 6, "2001:db8:1:2:3:4:5:6"],
    // RFC 5952: a single zero group is not shortened; of two equal runs, the first is.
    ["2001:db8:0:1:1:1:1:1", 6, "2001:db8:0:1:1:1:1:1"],
    ["2001:0:0:1:0:0:0:1", 6, "2001:0:0:1::1"],
    ["64:ff9b::198.18.0.2", 6, "64:ff9b::c612:2"],
  ])("%s is IPv%i, canonically %s", (text, family, canonical) => {
    expect(parseIpAddress(text)).toMatchObject({ family, text: canonical });
  });

  it.each([
    ["::ffff:198.18.0.2", "198.18.0.2"],
    ["::FFFF:c612:0002", "198.18.0.2"],
    ["0:0:0:0:0:ffff:198.18.5.9", "198.18.5.9"],
  ])("the IPv4-mapped %s is the IPv4 address %s", (text, v4) => {
    expect(parseIpAddress(text)).toMatchObject({ family: 4, text: v4 });
    expect(isValidIpv6(text)).toBe(false);
  });

  it.each([
    "",
    "198.18.0",
    "198.018.0.1", // octal to iptables
    "198.18.0.256",
    "198.18.0.1 ",
    "2001:db8::1::2",
    "2001:db8:::1",
    "1:2:3:4:5:6:7:8:9",
    "1:2:3:4:5:6:7::8", // `::` must stand for at least one group... here it stands for none
    "2001:db8::12345",
    "fe80::1%eth0", // a zone id names an interface, not an address
    "[2001:db8::1]",
    "2001:db8::g",
    ":1:2:3:4:5:6:7",
    "1:2:3:4:5:6:7:",
    "::198.18.0.256",
    "::ffff:198.018.0.1",
  ])("refuses %j", (text) => {
    expect(parseIpAddress(text)).toBeNull();
  });

  it("unspecified addresses mean the packet's source", () => {
    expect(isUnspecifiedIp("0.0.0.0")).toBe(true);
    expect(isUnspecifiedIp("::")).toBe(true);
    expect(isUnspecifiedIp("0:0::0")).toBe(true);
    expect(isUnspecifiedIp("::1")).toBe(false);
    expect(canonicalIp("2001:DB8::0:1")).toBe("2001:db8::1");
    expect(isValidIpv4("2001:db8::1")).toBe(false);
  });
});

describe("address text from bytes (a socket's or a packet's)", () => {
  const at = (prefix: number[], addr: number[]) => Uint8Array.from([...prefix, ...addr]);

  it("writes IPv4 as a dotted quad and IPv6 in RFC 5952 form, from any offset", () => {
    expect(ipv4TextOf(at([9, 9], [198, 18, 0, 2]), 2)).toBe("198.18.0.2");
    const v6 = [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];
    expect(ipv6TextOf(at([7], v6), 1)).toBe("2001:db8::1");
    expect(ipv6TextOf(at([], v6))).toBe(parseIpAddress("2001:0db8:0:0::0001")?.text);
  });

  it("tells IPv4-mapped addresses apart, and nothing else", () => {
    const mapped = [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 198, 18, 0, 2];
    expect(isIpv4MappedBytes(at([1], mapped), 1)).toBe(true);
    expect(isIpv4MappedBytes(at([], [...mapped.slice(0, 10), 0xff, 0xfe, 198, 18, 0, 2]))).toBe(
      false,
    );
    expect(isIpv4MappedBytes(at([], [0, 1, ...mapped.slice(2)]))).toBe(false);
  });
});

describe("network lists (SOURCE, DESTINATION)", () => {
  it.each([
    ["198.18.5.0/24", "198.18.5.77", true],
    ["198.18.5.0/24", "198.18.6.1", false],
    ["198.18.5.0/255.255.255.0", "198.18.5.1", true],
    ["198.18.5.9", "198.18.5.9", true],
    ["198.18.0.0/0", "203.0.113.1", true],
    ["2001:db8:5a::/48", "2001:db8:5a:1::2", true],
    ["2001:db8:5a::/48", "2001:db8:5b::2", false],
    ["2001:db8::1", "2001:db8::1", true],
    ["2001:db8::1/128", "2001:db8::2", false],
    // Families never mix: an IPv4 network holds no IPv6 address, and ::/0 holds no IPv4 one.
    ["::/0", "198.18.0.2", false],
    ["0.0.0.0/0", "2001:db8::1", false],
    // A dual-stack socket reports an IPv4 sender as ::ffff:a.b.c.d: it is the IPv4 address.
    ["198.18.5.0/24", "::ffff:198.18.5.3", true],
  ])("%s holds %s: %s", (list, ip, expected) => {
    expect(networkListMatches(parseNetworkList(list), ip)).toBe(expected);
  });

  it("ANY anywhere in the list means any address, of either family", () => {
    expect(parseNetworkList("198.18.0.1, ANY")).toBeNull();
    expect(networkListMatches(parseNetworkList("any"), "2001:db8::1")).toBe(true);
  });

  it("a list mixes families", () => {
    const list = parseNetworkList("198.18.5.0/24, 2001:db8:5a::/64");
    expect(networkListMatches(list, "198.18.5.1")).toBe(true);
    expect(networkListMatches(list, "2001:db8:5a::9")).toBe(true);
    expect(networkListMatches(list, "2001:db8:5b::9")).toBe(false);
  });

  it("an address that is none matches no list but ANY", () => {
    expect(networkListMatches(parseNetworkList("0.0.0.0/0"), "not-an-ip")).toBe(false);
  });

  it.each([
    ["198.18.0.0/24/8", /more than one "\/"/],
    ["198.18.0.0/255.0.255.0", /has holes/],
    ["198.18.0.0/33", /bad prefix length/],
    ["198.18.0.0/024", /bad prefix length/],
    ["2001:db8::/129", /bad prefix length/],
    ["2001:db8::/ffff::", /bad prefix length/],
    ["::ffff:198.18.0.0/120", /write the IPv4 network 198.18.0.0/],
    ["198.018.0.1", /not an IP address/],
    ["fe80::1%eth0/64", /not an IP address/],
  ])("refuses %s", (text, message) => {
    expect(() => parseNetwork(text)).toThrow(message);
  });

  it("the base is the network's first address whatever host bits were written", () => {
    expect(parseNetwork("198.18.5.77/24")).toMatchObject({ family: 4, bits: 24 });
    expect(networkListMatches(parseNetworkList("198.18.5.77/24"), "198.18.5.1")).toBe(true);
    expect(networkListMatches(parseNetworkList("2001:db8::ffff/112"), "2001:db8::1")).toBe(true);
  });
});
