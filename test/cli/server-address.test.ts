import { createServer, type Server } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  hostPort,
  type LookupAll,
  resolveServer,
  withoutBrackets,
} from "../../cli/server-address.js";
import { portDidNotOpenMessage, waitForTcpPort } from "../../cli/wait-for-port.js";

describe("resolveServer", () => {
  const resolvesTo = (host: string, lookupAll: LookupAll, address: string, family: 4 | 6) =>
    expect(resolveServer(host, lookupAll)).resolves.toEqual({ address, family });

  it("keeps IP literals, IPv6 included, without a lookup", async () => {
    const noLookup = () => Promise.reject(new Error("looked up"));
    await resolvesTo("2001:db8:5a::1", noLookup, "2001:db8:5a::1", 6);
    await resolvesTo("198.18.0.1", noLookup, "198.18.0.1", 4);
  });

  it("takes the IPv4 address of a name that has both, the IPv6 one of a name with only AAAA", async () => {
    const both = async () => [
      { address: "2001:db8::10", family: 6 },
      { address: "198.18.0.10", family: 4 },
    ];
    const onlyAaaa = async () => [{ address: "2001:db8::11", family: 6 }];
    await resolvesTo("dual.example", both, "198.18.0.10", 4);
    await resolvesTo("v6only.example", onlyAaaa, "2001:db8::11", 6);
  });

  it("says which name did not resolve", async () => {
    const fails = () => Promise.reject(Object.assign(new Error("nope"), { code: "ENOTFOUND" }));
    await expect(resolveServer("gone.example", fails)).rejects.toThrow(
      'cannot resolve "gone.example" to an IPv4 or IPv6 address',
    );
  });
});

describe("host:port text", () => {
  it("brackets IPv6 literals only", () => {
    expect(hostPort("2001:db8::1", 22)).toBe("[2001:db8::1]:22");
    expect(hostPort("198.18.0.1", 22)).toBe("198.18.0.1:22");
    expect(hostPort("ssh.example", 22)).toBe("ssh.example:22");
    expect(portDidNotOpenMessage("::1", 2222, 3000)).toContain("[::1]:2222 did not open");
  });

  it("takes a bracketed IPv6 literal as the address inside", () => {
    expect(withoutBrackets("[2001:db8::1]")).toBe("2001:db8::1");
    expect(withoutBrackets("[ssh.example]")).toBe("[ssh.example]");
    expect(withoutBrackets("2001:db8::1")).toBe("2001:db8::1");
  });
});

describe("waiting for a port over IPv6", () => {
  let server: Server;
  let port: number;
  beforeAll(async () => {
    server = createServer((socket) => socket.end());
    await new Promise<void>((resolve) => server.listen(0, "::1", resolve));
    port = (server.address() as { port: number }).port;
  });
  afterAll(() => new Promise<void>((resolve) => server.close(() => resolve())));

  it("connects to a port open on ::1", async () => {
    await expect(waitForTcpPort("::1", port, { timeoutMs: 2_000 })).resolves.toBe(true);
  });
});
