import { createSocket } from "node:dgram";
import { createServer, type Server } from "node:net";
import { afterEach, describe, expect, it } from "vitest";
import {
  DEFAULT_HTTP_USER_AGENT,
  httpRequestFor,
  randomServerPort,
  sendSpa,
} from "../../cli/transport.js";
import { vectors } from "../helpers/vectors.js";

const LOCALHOST = "127.0.0.1";

const v16 = vectors.find((v) => v.id === "V16") as (typeof vectors)[number] & { http: string };

/** A TCP server on 127.0.0.1 that resolves each connection's bytes once the client closes. */
async function startCollector(): Promise<{
  server: Server;
  port: number;
  next: () => Promise<Buffer>;
}> {
  const received: Promise<Buffer>[] = [];
  const waiting: ((b: Promise<Buffer>) => void)[] = [];
  const server = createServer((socket) => {
    const bytes = new Promise<Buffer>((resolve, reject) => {
      const chunks: Buffer[] = [];
      socket.on("data", (chunk: Buffer) => chunks.push(chunk));
      socket.on("end", () => {
        socket.end();
        resolve(Buffer.concat(chunks));
      });
      socket.on("error", reject);
    });
    const waiter = waiting.shift();
    if (waiter) waiter(bytes);
    else received.push(bytes);
  });
  await new Promise<void>((resolve) => server.listen(0, LOCALHOST, resolve));
  const port = (server.address() as { port: number }).port;
  const next = (): Promise<Buffer> => {
    const ready = received.shift();
    return ready ?? new Promise<Buffer>((resolve) => waiting.push((b) => resolve(b)));
  };
  return { server, port, next };
}

/** A port on 127.0.0.1 that nothing listens on (bound, then released). */
async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, LOCALHOST, resolve));
  const port = (server.address() as { port: number }).port;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

describe("httpRequestFor", () => {
  it("builds exactly the request fwknop 2.6.10 sent for vector V16", () => {
    // Prepare: the fixture stores the request with CR LF written as the escapes \r\n.
    const expected = v16.http.replaceAll("\\r\\n", "\r\n");

    // Act
    const request = httpRequestFor(v16.wire, "198.18.0.1", DEFAULT_HTTP_USER_AGENT);

    // Assess
    expect(request).toBe(expected);
    expect(Buffer.from(request, "latin1")).toEqual(Buffer.from(expected, "latin1"));
  });

  it("maps only + and / in the path, and sends the given user agent and host", () => {
    const request = httpRequestFor("ab+cd/ef+/", "spa.example.org", "Fwknop/custom");
    expect(request).toBe(
      "GET /ab-cd_ef-_ HTTP/1.0\r\nUser-Agent: Fwknop/custom\r\nAccept: */*\r\n" +
        "Host: spa.example.org\r\nConnection: close\r\n\r\n",
    );
  });

  it.each([
    ["a host with CR LF", "198.18.0.1\r\nX-Forwarded-For: 1.2.3.4", DEFAULT_HTTP_USER_AGENT],
    ["a user agent with LF", "198.18.0.1", "Fwknop\nX: y"],
    ["an empty host", "", DEFAULT_HTTP_USER_AGENT],
  ])("refuses %s (header injection)", (_label, host, userAgent) => {
    expect(() => httpRequestFor(v16.wire, host, userAgent)).toThrow(TypeError);
  });
});

describe("randomServerPort (fwknop -r)", () => {
  it.each([
    ["0000000000000000", 10_000],
    ["1234567890123456", 10_000 + 12_345],
    ["5553499999999999", 10_000 + 55_534],
    ["5553500000000000", 10_000],
    ["9999999999999999", 10_000 + (99_999 % 55_535)],
  ])("%s -> %i (10000 + first five digits mod 55535)", (randomValue, port) => {
    expect(randomServerPort(randomValue)).toBe(port);
  });

  it.each(["123", "12345678901234567", "12345abc90123456", ""])("refuses %j", (value) => {
    expect(() => randomServerPort(value)).toThrow(TypeError);
  });
});

describe("sendSpa", () => {
  const servers: Server[] = [];

  afterEach(async () => {
    await Promise.all(
      servers.splice(0).map((s) => new Promise<void>((resolve) => s.close(() => resolve()))),
    );
  });

  it("tcp: the server receives exactly the wire string, then the connection closes", async () => {
    // Prepare
    const { server, port, next } = await startCollector();
    servers.push(server);

    // Act
    await sendSpa("tcp", LOCALHOST, port, v16.wire);

    // Assess
    expect((await next()).toString("latin1")).toBe(v16.wire);
  });

  it("http: the server receives exactly fwknop's GET request", async () => {
    // Prepare
    const { server, port, next } = await startCollector();
    servers.push(server);

    // Act
    await sendSpa("http", LOCALHOST, port, v16.wire);

    // Assess
    expect((await next()).toString("latin1")).toBe(
      httpRequestFor(v16.wire, LOCALHOST, DEFAULT_HTTP_USER_AGENT),
    );
  });

  it("http: -u changes the user agent", async () => {
    const { server, port, next } = await startCollector();
    servers.push(server);

    await sendSpa("http", LOCALHOST, port, v16.wire, { userAgent: "Fwknop/spaknock" });

    expect((await next()).toString("latin1")).toContain("\r\nUser-Agent: Fwknop/spaknock\r\n");
  });

  it("tcp: a refused connection is an error that says what to do", async () => {
    const port = await closedPort();

    await expect(sendSpa("tcp", LOCALHOST, port, v16.wire)).rejects.toThrow(
      /connection refused.*ENABLE_TCP_SERVER/,
    );
  });

  it("udp: one datagram whose payload is exactly the wire string", async () => {
    // Prepare
    const receiver = createSocket("udp4");
    await new Promise<void>((resolve) => receiver.bind(0, LOCALHOST, resolve));
    const port = receiver.address().port;
    const datagram = new Promise<{ msg: Buffer; srcPort: number }>((resolve) =>
      receiver.once("message", (msg, rinfo) => resolve({ msg, srcPort: rinfo.port })),
    );

    // Act
    await sendSpa("udp", LOCALHOST, port, v16.wire);

    // Assess
    const { msg } = await datagram;
    receiver.close();
    expect(msg.toString("latin1")).toBe(v16.wire);
  });

  it("udp: -S binds the given source port", async () => {
    // Prepare
    const receiver = createSocket("udp4");
    await new Promise<void>((resolve) => receiver.bind(0, LOCALHOST, resolve));
    const sourcePort = await closedPort();
    const datagram = new Promise<number>((resolve) =>
      receiver.once("message", (_msg, rinfo) => resolve(rinfo.port)),
    );

    // Act
    await sendSpa("udp", LOCALHOST, receiver.address().port, v16.wire, { sourcePort });

    // Assess
    expect(await datagram).toBe(sourcePort);
    receiver.close();
  });

  it("sends one exact datagram with default options", async () => {
    const receiver = createSocket("udp4");
    await new Promise<void>((resolve) => receiver.bind(0, LOCALHOST, resolve));
    const datagram = new Promise<Buffer>((resolve) => receiver.once("message", resolve));

    await sendSpa("udp", LOCALHOST, receiver.address().port, v16.wire);

    expect((await datagram).toString("latin1")).toBe(v16.wire);
    receiver.close();
  });
});
