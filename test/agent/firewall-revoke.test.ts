// `--fw-revoke` in each backend: exactly spaknock's own grants that match are removed, in one
// transaction (nftables) or restore batch per family (iptables), and returned; an admin's rule
// for the same address, in spaknock's chain or anywhere else, is never touched.
import { describe, expect, it } from "vitest";
import type { CommandRunner } from "../../agent/firewall/command-runner.js";
import { IptablesFirewall } from "../../agent/firewall/iptables.js";
import { NftablesFirewall, nftRevokeScript } from "../../agent/firewall/nftables.js";

class RecordingRunner implements CommandRunner {
  readonly calls: { argv: readonly string[]; input?: string }[] = [];
  constructor(private readonly stdout: (argv: readonly string[]) => string = () => "") {}
  async run(argv: readonly string[], input?: string) {
    this.calls.push({ argv, input });
    return { stdout: this.stdout(argv), stderr: "" };
  }
}

const NOW = 1_795_605_803;

describe("nftables revoke", () => {
  const table = JSON.stringify({
    nftables: [
      { metainfo: { version: "1.0.6" } },
      {
        set: {
          name: "allow_tcp",
          elem: [
            { elem: { val: { concat: ["198.18.0.2", 22] }, timeout: 30, expires: 20 } },
            { elem: { val: { concat: ["198.18.0.2", 2222] }, timeout: 30, expires: 25 } },
            { elem: { val: { concat: ["198.18.0.3", 22] }, timeout: 30, expires: 28 } },
          ],
        },
      },
      {
        set: {
          name: "allow_udp",
          elem: [{ elem: { val: { concat: ["198.18.0.2", 53] }, timeout: 30, expires: 5 } }],
        },
      },
      {
        set: {
          name: "allow6_tcp",
          elem: [{ elem: { val: { concat: ["2001:db8::2", 22] }, timeout: 30, expires: 9 } }],
        },
      },
    ],
  });
  const firewall = (runner: CommandRunner) =>
    new NftablesFirewall(
      runner,
      { table: "spaknock", guardPorts: [], interactive: false },
      () => NOW,
    );

  it("deletes each element after adding it, so an element that just expired cannot fail the transaction", () => {
    expect(
      nftRevokeScript("spaknock", [
        { sourceIp: "198.18.0.2", port: { proto: "tcp", port: 22 }, expiresAt: NOW + 20 },
        { sourceIp: "2001:db8::2", port: { proto: "udp", port: 53 }, expiresAt: null },
      ]),
    ).toBe(
      [
        "add element inet spaknock allow_tcp { 198.18.0.2 . 22 timeout 1s }",
        "delete element inet spaknock allow_tcp { 198.18.0.2 . 22 }",
        "add element inet spaknock allow6_udp { 2001:db8::2 . 53 timeout 1s }",
        "delete element inet spaknock allow6_udp { 2001:db8::2 . 53 }",
        "",
      ].join("\n"),
    );
  });

  it("an address alone revokes all its grants, in both protocols, and nobody else's", async () => {
    // Prepare
    const runner = new RecordingRunner((argv) => (argv.includes("-j") ? table : ""));

    // Act
    const removed = await firewall(runner).revoke({ sourceIp: "198.18.0.2", port: null });

    // Assess
    expect(removed).toEqual([
      { sourceIp: "198.18.0.2", port: { proto: "tcp", port: 22 }, expiresAt: NOW + 20 },
      { sourceIp: "198.18.0.2", port: { proto: "tcp", port: 2222 }, expiresAt: NOW + 25 },
      { sourceIp: "198.18.0.2", port: { proto: "udp", port: 53 }, expiresAt: NOW + 5 },
    ]);
    const transactions = runner.calls.filter((c) => c.argv.join(" ") === "nft -f -");
    expect(transactions).toHaveLength(1);
    expect(transactions[0]?.input).toBe(nftRevokeScript("spaknock", removed));
    expect(transactions[0]?.input).not.toContain("198.18.0.3");
  });

  it("an IPv6 address with a port revokes that element of the IPv6 set", async () => {
    const runner = new RecordingRunner((argv) => (argv.includes("-j") ? table : ""));
    const removed = await firewall(runner).revoke({
      sourceIp: "2001:db8::2",
      port: { proto: "tcp", port: 22 },
    });
    expect(removed).toEqual([
      { sourceIp: "2001:db8::2", port: { proto: "tcp", port: 22 }, expiresAt: NOW + 9 },
    ]);
    expect(runner.calls.at(-1)?.input).toBe(
      "add element inet spaknock allow6_tcp { 2001:db8::2 . 22 timeout 1s }\n" +
        "delete element inet spaknock allow6_tcp { 2001:db8::2 . 22 }\n",
    );
  });

  it("changes nothing when nothing matches", async () => {
    const runner = new RecordingRunner((argv) => (argv.includes("-j") ? table : ""));
    const removed = await firewall(runner).revoke({
      sourceIp: "198.18.0.2",
      port: { proto: "udp", port: 22 },
    });
    expect(removed).toEqual([]);
    expect(runner.calls.map((c) => c.argv.join(" "))).toEqual(["nft -j list table inet spaknock"]);
  });
});

describe("iptables revoke", () => {
  // An admin's own ACCEPT for the same address sits in spaknock's chain: no `_exp_` comment, so
  // it is no grant of spaknock's.
  const v4 = `-N SPAKNOCK_INPUT
-A SPAKNOCK_INPUT -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
-A SPAKNOCK_INPUT -s 198.18.0.2/32 -p tcp -m tcp --dport 22 -m comment --comment _exp_1795605810 -j ACCEPT
-A SPAKNOCK_INPUT -s 198.18.0.2/32 -p tcp -m tcp --dport 2233 -j ACCEPT
-A SPAKNOCK_INPUT -s 198.18.0.2/32 -p tcp -m tcp --dport 2234 -m comment --comment "admin: office" -j ACCEPT
-A SPAKNOCK_INPUT -s 198.18.0.2/32 -p udp -m udp --dport 53 -m comment --comment "_exp_1795605900" -j ACCEPT
-A SPAKNOCK_INPUT -s 198.18.0.7/32 -p tcp -m tcp --dport 22 -m comment --comment _exp_1795605900 -j ACCEPT
`;
  const v6 = `-N SPAKNOCK_INPUT
-A SPAKNOCK_INPUT -s 2001:db8::2/128 -p tcp -m tcp --dport 22 -m comment --comment _exp_1795605820 -j ACCEPT
`;
  const runnerOf = () =>
    new RecordingRunner((argv) => {
      if (!argv.includes("-S")) return "";
      return argv[0] === "ip6tables" ? v6 : v4;
    });
  const restores = (runner: RecordingRunner) =>
    runner.calls.filter((c) => c.argv[0]?.endsWith("-restore"));

  it("an address alone removes its `_exp_` rules only, in one batch", async () => {
    // Prepare
    const runner = runnerOf();

    // Act
    const removed = await new IptablesFirewall(runner, { chain: "SPAKNOCK_INPUT" }).revoke({
      sourceIp: "198.18.0.2",
      port: null,
    });

    // Assess
    expect(removed.map((r) => [r.sourceIp, r.port.proto, r.port.port, r.expiresAt])).toEqual([
      ["198.18.0.2", "tcp", 22, 1795605810],
      ["198.18.0.2", "udp", 53, 1795605900],
    ]);
    expect(restores(runner)).toEqual([
      {
        argv: ["iptables-restore", "-w", "--noflush"],
        input: [
          "*filter",
          "-D SPAKNOCK_INPUT -s 198.18.0.2/32 -p tcp -m tcp --dport 22 -m comment --comment _exp_1795605810 -j ACCEPT",
          '-D SPAKNOCK_INPUT -s 198.18.0.2/32 -p udp -m udp --dport 53 -m comment --comment "_exp_1795605900" -j ACCEPT',
          "COMMIT",
          "",
        ].join("\n"),
      },
    ]);
    const batch = restores(runner)[0]?.input ?? "";
    expect(batch).not.toContain("2233");
    expect(batch).not.toContain("2234");
    expect(batch).not.toContain("198.18.0.7");
  });

  it("an IPv6 grant is removed through ip6tables-restore", async () => {
    const runner = runnerOf();
    const removed = await new IptablesFirewall(runner, { chain: "SPAKNOCK_INPUT" }).revoke({
      sourceIp: "2001:db8::2",
      port: { proto: "tcp", port: 22 },
    });
    expect(removed.map((r) => [r.family, r.sourceIp, r.port.port])).toEqual([
      [6, "2001:db8::2", 22],
    ]);
    expect(restores(runner).map((c) => c.argv[0])).toEqual(["ip6tables-restore"]);
  });

  it("runs no restore when nothing matches", async () => {
    const runner = runnerOf();
    const removed = await new IptablesFirewall(runner, { chain: "SPAKNOCK_INPUT" }).revoke({
      sourceIp: "198.18.0.2",
      port: { proto: "tcp", port: 2233 },
    });
    expect(removed).toEqual([]);
    expect(restores(runner)).toEqual([]);
  });
});
