import { createServer, type Server } from "node:net";
import { afterEach, describe, expect, it } from "vitest";
import {
  connectWhenOpen,
  knockThenConnect,
  portDidNotOpenMessage,
  waitForTcpPort,
} from "../../cli/wait-for-port.js";
import { captureStream } from "./streams.js";

const LOCALHOST = "127.0.0.1";

/** A port on 127.0.0.1 that nothing listens on (bound, then released). */
async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, LOCALHOST, resolve));
  const port = (server.address() as { port: number }).port;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

describe("waitForTcpPort", () => {
  const servers: Server[] = [];

  afterEach(async () => {
    await Promise.all(
      servers.splice(0).map((s) => new Promise<void>((resolve) => s.close(() => resolve()))),
    );
  });

  function listenLater(port: number, delayMs: number): Promise<void> {
    return new Promise((resolve) => {
      setTimeout(() => {
        const server = createServer((socket) => socket.destroy());
        servers.push(server);
        server.listen(port, LOCALHOST, () => resolve());
      }, delayMs);
    });
  }

  it("is true once a listener appears, after refused attempts", async () => {
    // Prepare
    const port = await freePort();
    const listening = listenLater(port, 600);
    const attempts: number[] = [];
    const started = Date.now();

    // Act
    const open = await waitForTcpPort(LOCALHOST, port, {
      timeoutMs: 10_000,
      onAttempt: (n) => attempts.push(n),
    });

    // Assess
    await listening;
    expect(open).toBe(true);
    expect(Date.now() - started).toBeGreaterThanOrEqual(550);
    // Well before the timeout: it returned on the first success, not at the end.
    expect(Date.now() - started).toBeLessThan(5_000);
    expect(attempts.length).toBeGreaterThan(1);
    expect(attempts).toEqual(attempts.map((_, i) => i + 1));
  });

  it("is true at once when the port is already open", async () => {
    const port = await freePort();
    await listenLater(port, 0);

    expect(await waitForTcpPort(LOCALHOST, port, { timeoutMs: 2_000 })).toBe(true);
  });

  it("is false after the timeout when nothing listens", async () => {
    // Prepare
    const port = await freePort();
    const started = Date.now();

    // Act
    const open = await waitForTcpPort(LOCALHOST, port, { timeoutMs: 700, retryIntervalMs: 100 });

    // Assess
    const elapsed = Date.now() - started;
    expect(open).toBe(false);
    expect(elapsed).toBeGreaterThanOrEqual(650);
    expect(elapsed).toBeLessThan(3_000);
  });

  it("resolves a host name once (localhost, from /etc/hosts) and connects to it", async () => {
    const port = await freePort();
    await listenLater(port, 0);

    expect(await waitForTcpPort("localhost", port, { timeoutMs: 2_000 })).toBe(true);
  });

  it("connectWhenOpen hands over the connection that proved the port open", async () => {
    // Prepare
    const port = await freePort();
    const greeting = "SSH-2.0-test\r\n";
    const server = createServer((socket) => socket.end(greeting));
    servers.push(server);
    await new Promise<void>((resolve) => server.listen(port, LOCALHOST, resolve));

    // Act
    const socket = await connectWhenOpen(LOCALHOST, port, { timeoutMs: 2_000 });

    // Assess
    expect(socket).toBeDefined();
    const received = await new Promise<string>((resolve) => {
      let text = "";
      socket?.setEncoding("utf8").on("data", (chunk: string) => {
        text += chunk;
      });
      socket?.on("end", () => resolve(text));
    });
    socket?.destroy();
    expect(received).toBe(greeting);
  });
});

describe("knockThenConnect", () => {
  it("knocks first, then says clearly that the port stayed closed", async () => {
    // Prepare
    const port = await freePort();
    const stderr = captureStream();
    let knocks = 0;

    // Act
    const socket = await knockThenConnect({
      host: LOCALHOST,
      port,
      knock: async () => {
        knocks += 1;
      },
      waitTimeoutMs: 500,
      stderr: stderr.stream,
    });

    // Assess
    expect(socket).toBeUndefined();
    expect(knocks).toBe(1);
    expect(stderr.text()).toBe(`${portDidNotOpenMessage(LOCALHOST, port, 500)}\n`);
    expect(stderr.text()).toBe(
      `spaknock: 127.0.0.1:${port} did not open within 0.5 s after the knock; ` +
        "check the server's OPEN_PORTS and that spaknockd/fwknopd is running\n",
    );
  });

  it("does not wait when the knock fails: the knock's error propagates", async () => {
    const failure = new Error("send failed");

    await expect(
      knockThenConnect({
        host: LOCALHOST,
        port: await freePort(),
        knock: () => Promise.reject(failure),
        waitTimeoutMs: 10_000,
        stderr: captureStream().stream,
      }),
    ).rejects.toBe(failure);
  });
});
