// UdpSocketCapture's choice of socket: `::` is one dual-stack socket, with a fallback to IPv4 on a
// kernel without IPv6; an IPv4 address is an IPv4 socket. A stand-in dgram socket records what
// was asked for and fails the IPv6 bind as such a kernel does; one test uses the real loopback.
import { createSocket, type Socket, type SocketOptions } from "node:dgram";
import { EventEmitter } from "node:events";
import { describe, expect, it } from "vitest";
import type { Datagram } from "../../agent/capture/datagram.js";
import { UdpSocketCapture } from "../../agent/capture/udp-socket.js";

/** Binds like a dgram socket; `failWith` makes a udp6 bind fail with that errno code. */
function fakeSockets(failWith: string | null) {
  const made: { options: SocketOptions; boundTo?: string }[] = [];
  const factory = (options: SocketOptions): Socket => {
    const record: { options: SocketOptions; boundTo?: string } = { options };
    made.push(record);
    const socket = new EventEmitter() as EventEmitter & Record<string, unknown>;
    socket.bind = (port: number, address: string, done: () => void) => {
      record.boundTo = `${address}/${port}`;
      if (options.type === "udp6" && failWith !== null) {
        const err = Object.assign(new Error(`bind ${failWith} ${address}`), { code: failWith });
        setImmediate(() => socket.emit("error", err));
      } else setImmediate(done);
    };
    socket.close = (done?: () => void) => done?.();
    socket.address = () => ({ address: record.boundTo?.split("/")[0], port: 62201 });
    return socket as unknown as Socket;
  };
  return { made, factory };
}

describe("UdpSocketCapture", () => {
  it("listens on :: with one dual-stack socket (ipv6Only false)", async () => {
    const { made, factory } = fakeSockets(null);
    const capture = new UdpSocketCapture("::", 62201, factory);
    await capture.start(() => {});
    expect(made.map((m) => [m.options.type, m.options.ipv6Only, m.boundTo])).toEqual([
      ["udp6", false, "::/62201"],
    ]);
    expect(capture.describe()).toBe("[::]:62201");
  });

  it("falls back to 0.0.0.0 when the kernel has no IPv6 (EAFNOSUPPORT)", async () => {
    const { made, factory } = fakeSockets("EAFNOSUPPORT");
    const capture = new UdpSocketCapture("::", 62201, factory);
    await capture.start(() => {});
    expect(made.map((m) => [m.options.type, m.boundTo])).toEqual([
      ["udp6", "::/62201"],
      ["udp4", "0.0.0.0/62201"],
    ]);
    expect(capture.describe()).toBe("0.0.0.0:62201");
  });

  it("does not fall back for a port in use, nor for a specific IPv6 address", async () => {
    const inUse = fakeSockets("EADDRINUSE");
    await expect(new UdpSocketCapture("::", 62201, inUse.factory).start(() => {})).rejects.toThrow(
      "cannot listen on udp/62201: bind EADDRINUSE ::",
    );
    expect(inUse.made).toHaveLength(1);
    const specific = fakeSockets("EAFNOSUPPORT");
    await expect(
      new UdpSocketCapture("2001:db8:5a::1", 62201, specific.factory).start(() => {}),
    ).rejects.toThrow("EAFNOSUPPORT");
    expect(specific.made).toHaveLength(1);
  });

  it("binds an IPv4 address, or the IPv4 address a mapped one names, with an IPv4 socket", async () => {
    const { made, factory } = fakeSockets(null);
    await new UdpSocketCapture("198.18.0.1", 62201, factory).start(() => {});
    await new UdpSocketCapture("::ffff:198.18.0.1", 62201, factory).start(() => {});
    expect(made.map((m) => [m.options.type, m.boundTo])).toEqual([
      ["udp4", "198.18.0.1/62201"],
      ["udp4", "198.18.0.1/62201"],
    ]);
  });

  it("reports an IPv4 sender to a dual-stack socket as plain IPv4 (loopback)", async () => {
    // Prepare
    const capture = new UdpSocketCapture("::", 0);
    const got: Datagram[] = [];
    await capture.start((d) => got.push(d));
    const port = capture.listening?.port as number;
    const sender = createSocket("udp4");
    try {
      // Act
      await new Promise<void>((resolve, reject) =>
        sender.send("hello", port, "127.0.0.1", (err) => (err ? reject(err) : resolve())),
      );
      while (got.length === 0) await new Promise((resolve) => setTimeout(resolve, 5));
    } finally {
      sender.close();
      await capture.stop();
    }
    // Assess
    expect(got[0]).toMatchObject({ sourceIp: "127.0.0.1", destinationIp: null });
    expect(got[0]?.payload.toString()).toBe("hello");
  });
});
