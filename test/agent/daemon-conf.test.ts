import { describe, expect, it } from "vitest";
import { DAEMON_DEFAULTS, parseDaemonConf } from "../../agent/config/daemon-conf.js";
import { type ConfLine, parseConfText } from "../../core/index.js";

const parse = (text: string, ignored: ConfLine[] = []) =>
  parseDaemonConf(parseConfText(text, "fwknopd.conf"), (l) => ignored.push(l));

describe("fwknopd.conf", () => {
  it("is all defaults when empty (Debian ships it fully commented)", () => {
    expect(parse("# PCAP_INTF eth0\n")).toEqual(DAEMON_DEFAULTS);
  });

  it("reads capture, aging, persistence, firewall and mail keywords, with $VAR references", () => {
    const s = parse(`
FWKNOP_RUN_DIR            /var/run/spk
DIGEST_FILE               $FWKNOP_RUN_DIR/digest.cache
ENABLE_UDP_SERVER         N
PCAP_INTF                 veth0
PCAP_FILTER               udp port 40000
MAX_SPA_PACKET_AGE        60
FIREWALL_BACKEND          iptables
GUARD_PORTS               tcp/22, tcp/2222
EMAIL_ADDRESSES           ops@example.test, sec@example.test
SMTP_HOST                 127.0.0.1
SMTP_PORT                 2525
`);
    expect(s).toMatchObject({
      runDir: "/var/run/spk",
      digestFile: "/var/run/spk/digest.cache",
      capture: "pcap",
      pcapInterface: "veth0",
      pcapFilter: "udp port 40000",
      maxPacketAge: 60,
      firewallBackend: "iptables",
      guardPorts: [
        { proto: "tcp", port: 22 },
        { proto: "tcp", port: 2222 },
      ],
      emailAddresses: ["ops@example.test", "sec@example.test"],
      smtp: { host: "127.0.0.1", port: 2525 },
    });
  });

  it("turns aging and replay protection off only when asked", () => {
    expect(parse("ENABLE_SPA_PACKET_AGING N\nENABLE_DIGEST_PERSISTENCE N")).toMatchObject({
      maxPacketAge: null,
      digestFile: null,
    });
  });

  it.each([
    ["an unknown keyword", "PCAP_INTERFACE eth0", "fwknopd.conf:1: unknown keyword PCAP_INTERFACE"],
    ["a line that is not a keyword", "PcapInterface eth0", "fwknopd.conf:1: not a known keyword"],
    [
      "a misspelt keyword",
      "MAX_SPA_PACKET_AGES 60",
      "fwknopd.conf:1: unknown keyword MAX_SPA_PACKET_AGES (did you mean MAX_SPA_PACKET_AGE?)",
    ],
    ["an undefined variable", "DIGEST_FILE $NOPE/x", "fwknopd.conf:1: $NOPE is not defined"],
    ["a bad age", "MAX_SPA_PACKET_AGE 0", "fwknopd.conf:1: MAX_SPA_PACKET_AGE must be"],
    ["a bad backend", "FIREWALL_BACKEND pf", "fwknopd.conf:1: FIREWALL_BACKEND must be"],
    [
      "a placeholder",
      "SMTP_HOST __CHANGEME__",
      "fwknopd.conf:1: SMTP_HOST still has the placeholder",
    ],
    ["a bad address", "EMAIL_ADDRESSES not-an-address", "is not an email address"],
  ])("stops on %s", (_name, text, message) => {
    expect(() => parse(text)).toThrow(message);
  });

  it("listens dual-stack by default, and on the UDPSERV_ADDRESS given, IPv4 or IPv6", () => {
    expect(DAEMON_DEFAULTS.udpListenAddress).toBe("::");
    expect(parse("UDPSERV_ADDRESS 198.18.0.1").udpListenAddress).toBe("198.18.0.1");
    expect(parse("UDPSERV_ADDRESS 0.0.0.0").udpListenAddress).toBe("0.0.0.0");
    expect(parse("UDPSERV_ADDRESS 2001:DB8:5a:0::1").udpListenAddress).toBe("2001:db8:5a::1");
    // The mapped form is the IPv4 address it maps: an IPv4 socket, not a dual-stack one.
    expect(parse("UDPSERV_ADDRESS ::ffff:198.18.0.1").udpListenAddress).toBe("198.18.0.1");
  });

  it.each([
    ["a leading zero", "UDPSERV_ADDRESS 198.018.0.1"],
    ["a zone id", "UDPSERV_ADDRESS fe80::1%eth0"],
    ["brackets", "UDPSERV_ADDRESS [2001:db8::1]"],
    ["a prefix", "UDPSERV_ADDRESS 2001:db8::/64"],
    ["a name", "UDPSERV_ADDRESS localhost"],
  ])("refuses a UDPSERV_ADDRESS with %s", (_name, text) => {
    expect(() => parse(text)).toThrow(
      "fwknopd.conf:1: UDPSERV_ADDRESS must be an IPv4 or IPv6 address",
    );
  });

  it("reports ignored fwknop keywords once each", () => {
    const ignored: ConfLine[] = [];
    parse("ENABLE_IPT_FORWARDING Y\nENABLE_IPT_FORWARDING N\nENABLE_SPA_OVER_HTTP Y", ignored);
    expect(ignored.map((l) => l.keyword)).toEqual([
      "ENABLE_IPT_FORWARDING",
      "ENABLE_SPA_OVER_HTTP",
    ]);
  });
});
