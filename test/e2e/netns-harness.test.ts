// The namespace harness itself (test/helpers/netns.ts), which the e2e tests, the interop tests and
// the bench (compiled to build/harness/) all use: extra client addresses, senders from a whole
// range, teardown. And the bench's module graph, which imports the compiled harness.

import { execFile } from "node:child_process";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  createTestNet,
  ipv6SkipReason,
  netnsSkipReason,
  startTcpListener,
  type TestNet,
  tcpConnect,
} from "../helpers/netns.js";

const run = promisify(execFile);
const skipReason = netnsSkipReason();

describe.skipIf(skipReason !== undefined)(
  `namespace harness${skipReason === undefined ? "" : ` (skipped: ${skipReason})`}`,
  () => {
    let net: TestNet;

    beforeAll(async () => {
      net = await createTestNet();
    });
    afterAll(async () => {
      await net?.destroy();
    });

    it("adds distinct client addresses in one call, all on the client veth", async () => {
      const ips = await net.addClientAddresses(3);
      expect(new Set(ips).size).toBe(3);
      const shown = await net.exec(net.client.ns, ["ip", "-4", "-o", "addr", "show"], {
        check: true,
      });
      for (const ip of ips) {
        expect(ip.startsWith(`${net.subnetPrefix}.`)).toBe(true);
        expect(shown.stdout).toContain(`inet ${ip}/24`);
      }
      const next = await net.addClientAddress();
      expect(ips).not.toContain(next);
    });

    it("lets the client send from any address of a range once allowed, and not before", async () => {
      // A /28 outside this net's own /24, inside 198.18.0.0/15.
      const range = net.subnetPrefix === "198.19.255" ? "198.18.255" : "198.19.255";
      const listener = await startTcpListener(net, net.server.ns, 0);
      const from = { sourceIp: `${range}.241` };
      expect(await tcpConnect(net, net.client.ns, net.server.ip, listener.port, 800, from)).toBe(
        false,
      );
      await net.allowClientSourcesFrom(`${range}.240/28`);
      expect(await tcpConnect(net, net.client.ns, net.server.ip, listener.port, 1_500, from)).toBe(
        true,
      );
      await listener.stop();
    });

    it.skipIf(ipv6SkipReason() !== undefined)(
      "gives the veth pair IPv6 from 2001:db8::/32, usable at once, and adds client addresses",
      async () => {
        const shown = await net.exec(net.client.ns, ["ip", "-6", "-o", "addr", "show"], {
          check: true,
        });
        expect(net.client.ip6?.startsWith("2001:db8:")).toBe(true);
        const line = shown.stdout.split("\n").find((l) => l.includes(`inet6 ${net.client.ip6}/64`));
        expect(line).toBeDefined();
        // Only the link-local address, which the tests never use, goes through DAD.
        expect(line).not.toContain("tentative");
        const extra = await net.addClientIpv6Address();
        expect(extra.startsWith(net.subnet6Prefix as string)).toBe(true);
        expect([net.client.ip6, net.server.ip6]).not.toContain(extra);
        const listener = await startTcpListener(net, net.server.ns, 0, "::");
        for (const sourceIp of [net.client.ip6 as string, extra]) {
          expect(
            await tcpConnect(net, net.client.ns, net.server.ip6 as string, listener.port, 1_500, {
              sourceIp,
            }),
          ).toBe(true);
        }
        await listener.stop();
      },
    );

    it("deletes its namespaces on destroy, and refuses to run anything afterwards", async () => {
      const other = await createTestNet();
      const names = [other.server.ns, other.client.ns];
      const before = (await run("ip", ["netns", "list"])).stdout;
      for (const ns of names) expect(before).toContain(ns);
      await other.destroy();
      const after = (await run("ip", ["netns", "list"])).stdout;
      for (const ns of names) expect(after).not.toContain(ns);
      expect(() => other.spawn(other.server.ns, ["true"])).toThrow(/destroyed/);
    });
  },
);

describe("bench entry point", () => {
  it("loads against the compiled harness and checks its arguments before touching the host", async () => {
    const result = await run(process.execPath, ["bench/run.mjs", "--knocks", "1"]).then(
      () => ({ code: 0, stderr: "" }),
      (err: { code: number; stderr: string }) => err,
    );
    expect(result.code).toBe(2);
    expect(result.stderr).toContain("--knocks: at least 15");
  });
});
