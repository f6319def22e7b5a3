// `spaknockd --fw-list [--json]`: the JSON document scripts (and `spaknock grants`) read, and the
// human listing, which stays as it was.
import { describe, expect, it } from "vitest";
import { fwListJson, fwListText, grantJson } from "../../agent/commands/fw-list.js";
import type { OpenRule } from "../../agent/firewall/managed-firewall.js";

const NOW = 1_795_605_803;
const rules: OpenRule[] = [
  { sourceIp: "198.18.0.2", port: { proto: "tcp", port: 22 }, expiresAt: NOW + 25 },
  { sourceIp: "2001:db8::2", port: { proto: "udp", port: 53 }, expiresAt: NOW + 3 },
  { sourceIp: "198.18.0.3", port: { proto: "tcp", port: 443 }, expiresAt: null },
];

describe("fwListJson", () => {
  it("names the backend and table, and each grant with its expiry and time left", () => {
    // Act
    const doc = fwListJson({ backend: "nftables", label: "inet spaknock" }, rules, NOW);

    // Assess: the exact document, as it goes over stdout
    expect(JSON.parse(JSON.stringify(doc))).toEqual({
      backend: "nftables",
      target: "inet spaknock",
      grants: [
        { sourceIp: "198.18.0.2", proto: "tcp", port: 22, expiresAt: NOW + 25, secondsLeft: 25 },
        { sourceIp: "2001:db8::2", proto: "udp", port: 53, expiresAt: NOW + 3, secondsLeft: 3 },
        { sourceIp: "198.18.0.3", proto: "tcp", port: 443, expiresAt: null, secondsLeft: null },
      ],
    });
  });

  it("is an empty list, not an absent one, when nothing is open", () => {
    expect(fwListJson({ backend: "iptables", label: "SPAKNOCK_INPUT" }, [], NOW)).toEqual({
      backend: "iptables",
      target: "SPAKNOCK_INPUT",
      grants: [],
    });
  });

  it("never reports negative time left for a rule past its expiry (iptables, before the sweep)", () => {
    const past: OpenRule = { ...rules[0], expiresAt: NOW - 2 } as OpenRule;
    expect(grantJson(past, NOW)).toMatchObject({ expiresAt: NOW - 2, secondsLeft: 0 });
  });
});

describe("fwListText", () => {
  it("keeps the human listing of the first release", () => {
    expect(fwListText("inet spaknock", rules, NOW)).toBe(
      [
        "inet spaknock: 3 open",
        "  198.18.0.2 -> tcp/22  25 s left",
        "  2001:db8::2 -> udp/53  3 s left",
        "  198.18.0.3 -> tcp/443  ?",
        "",
      ].join("\n"),
    );
  });
});
