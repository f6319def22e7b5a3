import { describe, expect, it } from "vitest";
import { CommandFailed, type CommandRunner } from "../../agent/firewall/command-runner.js";
import {
  IptablesFirewall,
  iptablesBatch,
  iptablesRuleSpec,
  parseIptablesRules,
} from "../../agent/firewall/iptables.js";
import {
  NftablesFirewall,
  nftGrantScript,
  nftSetupScript,
  parseNftTableJson,
} from "../../agent/firewall/nftables.js";
import { type Grant, type ProtoPort, SpaError } from "../../core/index.js";

const grant: Grant = {
  sourceIp: "198.18.0.2",
  ports: [
    { proto: "tcp", port: 22 },
    { proto: "udp", port: 53 },
  ],
  username: "alice",
  openedAt: 1_795_605_803,
  expiresAt: 1_795_605_833,
  timeoutSec: 30,
  stanza: 1,
  targets: [],
};

class RecordingRunner implements CommandRunner {
  readonly calls: { argv: readonly string[]; input?: string }[] = [];
  constructor(private readonly stdout: (argv: readonly string[]) => string = () => "") {}
  async run(argv: readonly string[], input?: string) {
    this.calls.push({ argv, input });
    return { stdout: this.stdout(argv), stderr: "" };
  }
}

describe("nftables commands", () => {
  it("guards every OPEN_PORTS port and accepts established traffic first", () => {
    expect(
      nftSetupScript("spaknock", [
        { proto: "tcp", port: 22 },
        { proto: "tcp", port: 22 },
        { proto: "udp", port: 1194 },
      ]),
    ).toBe(`add table inet spaknock
add set inet spaknock allow_tcp { type ipv4_addr . inet_service; flags timeout; }
add set inet spaknock allow_udp { type ipv4_addr . inet_service; flags timeout; }
add set inet spaknock allow6_tcp { type ipv6_addr . inet_service; flags timeout; }
add set inet spaknock allow6_udp { type ipv6_addr . inet_service; flags timeout; }
add set inet spaknock guard_tcp { type inet_service; }
add set inet spaknock guard_udp { type inet_service; }
add chain inet spaknock input { type filter hook input priority -10; policy accept; }
flush chain inet spaknock input
flush set inet spaknock guard_tcp
flush set inet spaknock guard_udp
add element inet spaknock guard_tcp { 22 }
add element inet spaknock guard_udp { 1194 }
add rule inet spaknock input ct state established,related accept
add rule inet spaknock input ip saddr . tcp dport @allow_tcp accept
add rule inet spaknock input ip saddr . udp dport @allow_udp accept
add rule inet spaknock input ip6 saddr . tcp dport @allow6_tcp accept
add rule inet spaknock input ip6 saddr . udp dport @allow6_udp accept
add rule inet spaknock input tcp dport @guard_tcp drop
add rule inet spaknock input udp dport @guard_udp drop
`);
  });

  it("refreshes an element atomically (add, delete, add with the new timeout)", () => {
    expect(
      nftGrantScript("spaknock", grant),
    ).toBe(`add element inet spaknock allow_tcp { 198.18.0.2 . 22 timeout 30s }
delete element inet spaknock allow_tcp { 198.18.0.2 . 22 }
add element inet spaknock allow_tcp { 198.18.0.2 . 22 timeout 30s }
add element inet spaknock allow_udp { 198.18.0.2 . 53 timeout 30s }
delete element inet spaknock allow_udp { 198.18.0.2 . 53 }
add element inet spaknock allow_udp { 198.18.0.2 . 53 timeout 30s }
`);
  });

  it("puts an IPv6 grant in the IPv6 sets of the same table", () => {
    expect(
      nftGrantScript("spaknock", { ...grant, sourceIp: "2001:db8:5a::2" }),
    ).toBe(`add element inet spaknock allow6_tcp { 2001:db8:5a::2 . 22 timeout 30s }
delete element inet spaknock allow6_tcp { 2001:db8:5a::2 . 22 }
add element inet spaknock allow6_tcp { 2001:db8:5a::2 . 22 timeout 30s }
add element inet spaknock allow6_udp { 2001:db8:5a::2 . 53 timeout 30s }
delete element inet spaknock allow6_udp { 2001:db8:5a::2 . 53 }
add element inet spaknock allow6_udp { 2001:db8:5a::2 . 53 timeout 30s }
`);
  });

  it("refuses to build a grant for something that is not an address", () => {
    expect(() => nftGrantScript("spaknock", { ...grant, sourceIp: "198.18.0.2; flush" })).toThrow(
      TypeError,
    );
  });

  it("sends the SPA port through the shape chain, first after the size check, unless turned off", () => {
    const script = nftSetupScript("spaknock", [], { port: 62201, perSourcePerSecond: 5 });
    const lines = script.split("\n");
    const size = lines.indexOf(
      "add rule inet spaknock input udp dport 62201 udp length != 148-1508 drop",
    );
    expect(lines[size + 1]).toBe("add rule inet spaknock input udp dport 62201 jump spa_shape");
    expect(lines.indexOf("flush chain inet spaknock spa_shape")).toBeLessThan(size);
    expect(script).toContain("add rule inet spaknock spa_shape @th,64,24 0x65794a return\n");
    // fwknop lengths are payload + the 8-byte UDP header; 140 is the smallest, 396 the largest.
    expect(script).toMatch(
      /add rule inet spaknock spa_shape udp length \{ 148, 153, .*, 404 \} @th,64,8 \{ 0x2b, 0x2f, 0x38, 0x39 \} return\n/,
    );
    expect(script).toContain(
      "add rule inet spaknock spa_shape counter name spa_shape_drops drop\n",
    );
    const off = nftSetupScript("spaknock", [], {
      port: 62201,
      perSourcePerSecond: 5,
      shapeFilter: false,
    });
    expect(off).not.toContain("spa_shape");
  });

  it("rate-limits the SPA port per IPv4 address and per IPv6 /64", () => {
    const script = nftSetupScript("spaknock", [], { port: 62201, perSourcePerSecond: 5 });
    expect(script).toContain(
      "add rule inet spaknock input udp dport 62201 update @spa_rate { ip saddr limit rate over 5/second burst 10 packets } drop\n",
    );
    expect(script).toContain(
      "add set inet spaknock spa_rate6 { type ipv6_addr; flags dynamic,timeout; timeout 10s; size 65536; }\n" +
        "add rule inet spaknock input udp dport 62201 update @spa_rate6 { ip6 saddr and ffff:ffff:ffff:ffff:: limit rate over 5/second burst 10 packets } drop\n",
    );
  });

  it("flushes the grants of both families, declaring the IPv6 sets first (a table from before IPv6)", async () => {
    const runner = new RecordingRunner();
    await new NftablesFirewall(runner, {
      table: "spaknock",
      guardPorts: [],
      interactive: false,
    }).removeAllGrants();
    const script = runner.calls[0]?.input ?? "";
    expect(runner.calls[0]?.argv).toEqual(["nft", "-f", "-"]);
    expect(script.split("\n").filter((l) => l.startsWith("flush set"))).toEqual([
      "flush set inet spaknock allow_tcp",
      "flush set inet spaknock allow_udp",
      "flush set inet spaknock allow6_tcp",
      "flush set inet spaknock allow6_udp",
    ]);
    expect(script.indexOf("add set inet spaknock allow6_tcp")).toBeLessThan(
      script.indexOf("flush set inet spaknock allow6_tcp"),
    );
  });

  it("reads IPv6 grants back in RFC 5952 form, beside IPv4 ones", () => {
    const json = JSON.stringify({
      nftables: [
        {
          set: {
            name: "allow_udp",
            elem: [{ elem: { val: { concat: ["198.18.0.2", 53] }, expires: 3 } }],
          },
        },
        {
          set: {
            name: "allow6_tcp",
            elem: [{ elem: { val: { concat: ["2001:DB8:5A:0:0:0:0:2", 22] }, expires: 17 } }],
          },
        },
        {
          set: {
            name: "allow6_udp",
            elem: [{ elem: { val: { concat: ["2001:db8:5a::3", 53] } } }],
          },
        },
      ],
    });
    expect(parseNftTableJson(json, 1000)).toEqual([
      { sourceIp: "198.18.0.2", port: { proto: "udp", port: 53 }, expiresAt: 1003 },
      { sourceIp: "2001:db8:5a::2", port: { proto: "tcp", port: 22 }, expiresAt: 1017 },
      { sourceIp: "2001:db8:5a::3", port: { proto: "udp", port: 53 }, expiresAt: null },
    ]);
  });

  it("reads open grants and their time left from nft's JSON", () => {
    const json = JSON.stringify({
      nftables: [
        { metainfo: { version: "1.0.6" } },
        {
          set: {
            name: "allow_tcp",
            elem: [{ elem: { val: { concat: ["198.18.0.2", 22] }, timeout: 30, expires: 17 } }],
          },
        },
        { set: { name: "guard_tcp", elem: [22] } },
      ],
    });
    expect(parseNftTableJson(json, 1000)).toEqual([
      { sourceIp: "198.18.0.2", port: { proto: "tcp", port: 22 }, expiresAt: 1017 },
    ]);
  });
});

describe("iptables commands", () => {
  const listed = `-N SPAKNOCK_INPUT
-A SPAKNOCK_INPUT -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
-A SPAKNOCK_INPUT -s 198.18.0.2/32 -p tcp -m tcp --dport 22 -m comment --comment _exp_1795605810 -j ACCEPT
-A SPAKNOCK_INPUT -s 198.18.0.7/32 -p udp -m udp --dport 53 -m comment --comment "_exp_1795605900" -j ACCEPT
`;

  it("writes the rule fwknopd writes, with the expiry in a comment", () => {
    expect(
      iptablesRuleSpec("198.18.0.2", { proto: "tcp", port: 22 }, 1_795_605_885).join(" "),
    ).toBe(
      "-s 198.18.0.2/32 -p tcp -m tcp --dport 22 -m comment --comment _exp_1795605885 -j ACCEPT",
    );
  });

  it("parses iptables -S back into rules", () => {
    expect(
      parseIptablesRules(listed, "SPAKNOCK_INPUT").map((r) => [
        r.sourceIp,
        r.port.port,
        r.expiresAt,
      ]),
    ).toEqual([
      ["198.18.0.2", 22, 1795605810],
      ["198.18.0.7", 53, 1795605900],
    ]);
  });

  it("refreshes by adding the new rule and deleting the old one in one restore batch", async () => {
    const runner = new RecordingRunner((argv) => (argv.includes("-S") ? listed : ""));
    const fw = new IptablesFirewall(runner, { chain: "SPAKNOCK_INPUT" });
    await fw.open({ ...grant, ports: [{ proto: "tcp", port: 22 }] });
    const restore = runner.calls.find((c) => c.argv[0] === "iptables-restore");
    expect(restore?.argv).toEqual(["iptables-restore", "-w", "--noflush"]);
    expect(restore?.input).toBe(
      iptablesBatch(
        "SPAKNOCK_INPUT",
        [iptablesRuleSpec("198.18.0.2", { proto: "tcp", port: 22 }, grant.expiresAt)],
        [
          "-s 198.18.0.2/32 -p tcp -m tcp --dport 22 -m comment --comment _exp_1795605810 -j ACCEPT",
        ],
      ),
    );
  });

  /** An iptables that keeps its chain: `-S` lists it, `iptables-restore --noflush` edits it. */
  class ChainRunner implements CommandRunner {
    readonly rules: string[] = [];
    restores = 0;
    async run(argv: readonly string[], input?: string) {
      // Yield as execFile would, so that two callers could interleave if nothing serialised them.
      await new Promise((resolve) => setTimeout(resolve, 5));
      if (argv.includes("-S")) {
        const lines = ["-N SPAKNOCK_INPUT", ...this.rules.map((r) => `-A SPAKNOCK_INPUT ${r}`)];
        return { stdout: `${lines.join("\n")}\n`, stderr: "" };
      }
      if (argv[0] === "iptables-restore") {
        this.restores++;
        for (const line of (input ?? "").split("\n")) {
          if (line.startsWith("-A SPAKNOCK_INPUT ")) this.rules.push(line.slice(18));
          if (line.startsWith("-D SPAKNOCK_INPUT ")) {
            const at = this.rules.indexOf(line.slice(18));
            if (at === -1) throw new Error(`iptables-restore: no such rule: ${line}`);
            this.rules.splice(at, 1);
          }
        }
      }
      return { stdout: "", stderr: "" };
    }
  }
  const tcp22 = [{ proto: "tcp" as const, port: 22 }];

  it("makes no change when the same rule is already there, and says which rules hold the grant", async () => {
    const runner = new ChainRunner();
    const fw = new IptablesFirewall(runner, { chain: "SPAKNOCK_INPUT" });
    const opened = await fw.open({ ...grant, ports: tcp22 });
    expect(opened).toEqual([{ target: "SPAKNOCK_INPUT", ruleId: "198.18.0.2 tcp/22" }]);
    await fw.open({ ...grant, ports: tcp22 });
    expect(runner.restores).toBe(1);
    expect(runner.rules).toHaveLength(1);
  });

  it("leaves other sources' and other ports' rules alone", async () => {
    const runner = new ChainRunner();
    const fw = new IptablesFirewall(runner, { chain: "SPAKNOCK_INPUT" });
    await fw.open({ ...grant, sourceIp: "198.18.0.7", ports: tcp22 });
    await fw.open({ ...grant, ports: [{ proto: "udp", port: 53 }] });
    await fw.open({ ...grant, ports: tcp22, expiresAt: grant.expiresAt + 30 });
    expect(runner.rules.map((r) => r.replace(/ -m comment.*/, ""))).toEqual([
      "-s 198.18.0.7/32 -p tcp -m tcp --dport 22",
      "-s 198.18.0.2/32 -p udp -m udp --dport 53",
      "-s 198.18.0.2/32 -p tcp -m tcp --dport 22",
    ]);
  });

  it("serialises concurrent refreshes of one source+port: one rule remains, with the last expiry", async () => {
    // Prepare: ten knocks for the same address and port arrive at once, each a later expiry
    const runner = new ChainRunner();
    const fw = new IptablesFirewall(runner, { chain: "SPAKNOCK_INPUT" });
    // Act
    await Promise.all(
      Array.from({ length: 10 }, (_, i) =>
        fw.open({ ...grant, ports: tcp22, expiresAt: grant.expiresAt + i }),
      ),
    );
    // Assess: list-then-restore never raced (a stale -D would have thrown), no duplicate stacked
    expect(runner.rules).toEqual([
      iptablesRuleSpec("198.18.0.2", tcp22[0] as ProtoPort, grant.expiresAt + 9).join(" "),
    ]);
  });

  it("removes only expired rules", async () => {
    const runner = new RecordingRunner((argv) => (argv.includes("-S") ? listed : ""));
    const fw = new IptablesFirewall(runner, { chain: "SPAKNOCK_INPUT" });
    const removed = await fw.removeExpired(1_795_605_850);
    expect(removed.map((r) => r.sourceIp)).toEqual(["198.18.0.2"]);
    expect(runner.calls.at(-1)?.input).toContain("-D SPAKNOCK_INPUT -s 198.18.0.2/32");
    expect(runner.calls.at(-1)?.input).not.toContain("198.18.0.7");
  });

  it("never uses a shell: every call is an argv array", async () => {
    const runner = new RecordingRunner();
    await new IptablesFirewall(runner, { chain: "SPAKNOCK_INPUT" }).setup();
    for (const c of runner.calls) {
      expect(c.argv[0]).toMatch(/^ip6?tables/);
      expect(c.argv.join(" ")).not.toMatch(/[;&|`$]/);
    }
  });
});

describe("iptables commands, IPv6", () => {
  const v6 = { ...grant, sourceIp: "2001:db8:5a::2", ports: [{ proto: "tcp" as const, port: 22 }] };

  /**
   * iptables and ip6tables, each with its own SPAKNOCK_INPUT chain, as `-S` and `*-restore`
   * see them; with `ip6tablesMissing` every ip6tables call fails as a missing binary does.
   */
  class FamiliesRunner implements CommandRunner {
    readonly rules: Record<"iptables" | "ip6tables", string[]> = { iptables: [], ip6tables: [] };
    readonly calls: { argv: readonly string[]; input?: string }[] = [];
    readonly jumps: Record<"iptables" | "ip6tables", number> = { iptables: 0, ip6tables: 0 };
    constructor(private readonly ip6tablesMissing = false) {}
    async run(argv: readonly string[], input?: string) {
      this.calls.push({ argv, input });
      const bin = argv[0]?.startsWith("ip6tables") ? "ip6tables" : "iptables";
      if (bin === "ip6tables" && this.ip6tablesMissing)
        throw new CommandFailed(argv, `spawn ${argv[0]} ENOENT`, null);
      if (argv.includes("INPUT")) {
        // the jump from INPUT: -C and -D succeed while one is there
        if (argv.includes("-I")) this.jumps[bin]++;
        else if (this.jumps[bin] === 0) throw new CommandFailed(argv, "no such rule", 1);
        else if (argv.includes("-D")) this.jumps[bin]--;
        return { stdout: "", stderr: "" };
      }
      if (argv.includes("-S")) {
        const lines = [
          "-N SPAKNOCK_INPUT",
          ...this.rules[bin].map((r) => `-A SPAKNOCK_INPUT ${r}`),
        ];
        return { stdout: `${lines.join("\n")}\n`, stderr: "" };
      }
      if (argv[0]?.endsWith("-restore")) {
        for (const line of (input ?? "").split("\n")) {
          if (line.startsWith("-A SPAKNOCK_INPUT ")) this.rules[bin].push(line.slice(18));
          if (line.startsWith("-D SPAKNOCK_INPUT ")) {
            const at = this.rules[bin].indexOf(line.slice(18));
            if (at === -1) throw new CommandFailed(argv, `no such rule: ${line}`, 1);
            this.rules[bin].splice(at, 1);
          }
        }
      }
      return { stdout: "", stderr: "" };
    }
  }

  it("writes an IPv6 grant as a /128 rule with the same expiry comment", () => {
    expect(iptablesRuleSpec("2001:DB8:5a:0::2", { proto: "udp", port: 53 }, 1_795_605_885)).toEqual(
      "-s 2001:db8:5a::2/128 -p udp -m udp --dport 53 -m comment --comment _exp_1795605885 -j ACCEPT".split(
        " ",
      ),
    );
  });

  it("parses ip6tables -S, in one spelling, and keeps each family's host rules apart", () => {
    const listed = `-N SPAKNOCK_INPUT
-A SPAKNOCK_INPUT -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
-A SPAKNOCK_INPUT -s 2001:db8:5a::2/128 -p tcp -m tcp --dport 22 -m comment --comment _exp_1795605810 -j ACCEPT
-A SPAKNOCK_INPUT -s ::1.2.3.4/128 -p tcp -m tcp --dport 22 -m comment --comment _exp_1795605811 -j ACCEPT
-A SPAKNOCK_INPUT -s 2001:db8::/32 -p tcp -m tcp --dport 22 -m comment --comment _exp_1795605812 -j ACCEPT
`;
    expect(parseIptablesRules(listed, "SPAKNOCK_INPUT", 6)).toEqual([
      {
        family: 6,
        spec: "-s 2001:db8:5a::2/128 -p tcp -m tcp --dport 22 -m comment --comment _exp_1795605810 -j ACCEPT",
        sourceIp: "2001:db8:5a::2",
        port: { proto: "tcp", port: 22 },
        expiresAt: 1795605810,
      },
      {
        family: 6,
        spec: "-s ::1.2.3.4/128 -p tcp -m tcp --dport 22 -m comment --comment _exp_1795605811 -j ACCEPT",
        sourceIp: "::102:304",
        port: { proto: "tcp", port: 22 },
        expiresAt: 1795605811,
      },
    ]);
    expect(parseIptablesRules(listed, "SPAKNOCK_INPUT", 4)).toEqual([]);
  });

  it("opens and refreshes IPv6 grants through ip6tables-restore, IPv4 through iptables-restore", async () => {
    const runner = new FamiliesRunner();
    const fw = new IptablesFirewall(runner, { chain: "SPAKNOCK_INPUT" });
    await fw.setup();
    expect(await fw.open(v6)).toEqual([
      { target: "SPAKNOCK_INPUT", ruleId: "2001:db8:5a::2 tcp/22" },
    ]);
    await fw.open({ ...v6, expiresAt: v6.expiresAt + 30 });
    await fw.open({ ...grant, ports: v6.ports });
    expect(runner.rules.ip6tables).toEqual([
      iptablesRuleSpec("2001:db8:5a::2", { proto: "tcp", port: 22 }, v6.expiresAt + 30).join(" "),
    ]);
    expect(runner.rules.iptables).toEqual([
      iptablesRuleSpec("198.18.0.2", { proto: "tcp", port: 22 }, grant.expiresAt).join(" "),
    ]);
    expect((await fw.list()).map((r) => r.sourceIp)).toEqual(["198.18.0.2", "2001:db8:5a::2"]);
  });

  it("sets up, sweeps and removes the chain in both families", async () => {
    const runner = new FamiliesRunner();
    const fw = new IptablesFirewall(runner, { chain: "SPAKNOCK_INPUT" });
    await fw.setup();
    const setupBins = new Set(runner.calls.map((c) => c.argv[0]));
    expect(setupBins).toEqual(new Set(["iptables", "ip6tables"]));
    await fw.open(v6);
    await fw.open({ ...grant, ports: v6.ports, expiresAt: grant.expiresAt + 100 });
    const removed = await fw.removeExpired(grant.expiresAt + 1);
    expect(removed.map((r) => r.sourceIp)).toEqual(["2001:db8:5a::2"]);
    expect(runner.rules.ip6tables).toEqual([]);
    expect(runner.rules.iptables).toHaveLength(1);
    runner.calls.length = 0;
    await fw.removeAll();
    for (const bin of ["iptables", "ip6tables"]) {
      expect(runner.calls.map((c) => c.argv.join(" "))).toContain(`${bin} -w -X SPAKNOCK_INPUT`);
    }
  });

  it("without ip6tables: IPv4 grants still open, an IPv6 grant fails with FIREWALL_FAILED", async () => {
    // Prepare
    const runner = new FamiliesRunner(true);
    const fw = new IptablesFirewall(runner, { chain: "SPAKNOCK_INPUT" });
    // Act
    await fw.setup();
    const v4 = await fw.open({ ...grant, ports: v6.ports });
    const failure = await fw.open(v6).catch((err: unknown) => err);
    // Assess
    expect(v4).toEqual([{ target: "SPAKNOCK_INPUT", ruleId: "198.18.0.2 tcp/22" }]);
    expect(runner.rules.iptables).toHaveLength(1);
    expect(failure).toBeInstanceOf(SpaError);
    expect((failure as SpaError).code).toBe("FIREWALL_FAILED");
    expect((failure as SpaError).message).toContain("ip6tables");
    expect((await fw.list()).map((r) => r.sourceIp)).toEqual(["198.18.0.2"]);
    await expect(fw.removeAll()).resolves.toBeUndefined();
  });
});
