// `spaknockd --fw-revoke ADDR[:proto/port]`: what the argument may be, and what it names.
import { describe, expect, it } from "vitest";
import { parseRevokeTarget, revokeTargetText } from "../../agent/commands/fw-revoke.js";

describe("parseRevokeTarget", () => {
  it.each([
    ["198.18.0.2", { sourceIp: "198.18.0.2", port: null }],
    ["198.18.0.2:tcp/22", { sourceIp: "198.18.0.2", port: { proto: "tcp", port: 22 } }],
    ["198.18.0.2:udp/65535", { sourceIp: "198.18.0.2", port: { proto: "udp", port: 65535 } }],
    ["2001:db8::2", { sourceIp: "2001:db8::2", port: null }],
    ["[2001:db8::2]", { sourceIp: "2001:db8::2", port: null }],
    ["[2001:db8::2]:tcp/22", { sourceIp: "2001:db8::2", port: { proto: "tcp", port: 22 } }],
    // One spelling, the one --fw-list prints (RFC 5952), whatever the user typed.
    ["2001:0DB8:0:0:0:0:0:0002", { sourceIp: "2001:db8::2", port: null }],
    ["[2001:DB8::0:2]:udp/53", { sourceIp: "2001:db8::2", port: { proto: "udp", port: 53 } }],
    // An IPv4-mapped address is the IPv4 grant it stands for.
    ["[::ffff:198.18.0.2]:tcp/22", { sourceIp: "198.18.0.2", port: { proto: "tcp", port: 22 } }],
  ])("reads %s", (text, expected) => {
    expect(parseRevokeTarget(text)).toEqual(expected);
  });

  it.each([
    ["", /is not ADDR/],
    ["example.com", /is not ADDR/],
    ["198.18.0.256", /is not ADDR/],
    ["198.18.0.0/24", /is not ADDR/],
    ["198.18.0.2:22", /is not ADDR/],
    ["198.18.0.2:tcp", /is not ADDR/],
    ["198.18.0.2:tcp/0", /"tcp\/0" is not tcp\/PORT or udp\/PORT/],
    ["198.18.0.2:tcp/65536", /"tcp\/65536" is not tcp\/PORT/],
    ["198.18.0.2:icmp/1", /"icmp\/1" is not tcp\/PORT/],
    ["198.18.0.2:tcp/22,udp/53", /is not tcp\/PORT/],
    // Without brackets the last group could be a port or part of the address: not guessed.
    ["2001:db8::2:tcp/22", /write an IPv6 address with a port as \[ADDR\]:proto\/port/],
    ["[198.18.0.2]:tcp/22", /brackets are for an IPv6 address/],
    ["[2001:db8::2]tcp/22", /is not ADDR/],
    ["[2001:db8::2]:", /is not tcp\/PORT/],
    ["fe80::1%eth0", /is not ADDR/],
  ])("refuses %j and says why", (text, why) => {
    expect(() => parseRevokeTarget(text)).toThrow(TypeError);
    expect(() => parseRevokeTarget(text)).toThrow(why);
  });
});

describe("revokeTargetText", () => {
  it.each(["198.18.0.2", "198.18.0.2:tcp/22", "2001:db8::2", "[2001:db8::2]:udp/53"])(
    "writes %s back as it is read",
    (text) => {
      expect(revokeTargetText(parseRevokeTarget(text))).toBe(text);
    },
  );
});
