import { createServer, type Server, type Socket } from "node:net";
import { PassThrough } from "node:stream";
import { afterEach, describe, expect, it } from "vitest";
import { runProxy } from "../../cli/commands/proxy.js";
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

/** Resolves once `text` has been written to `captured`. */
function waitForText(captured: { text(): string }, text: string, timeoutMs = 5_000): Promise<void> {
  return new Promise((resolve, reject) => {
    const started = Date.now();
    const check = (): void => {
      if (captured.text().includes(text)) resolve();
      else if (Date.now() - started > timeoutMs) reject(new Error(`no "${text}" in output`));
      else setTimeout(check, 10);
    };
    check();
  });
}

describe("runProxy", () => {
  const servers: Server[] = [];
  const sockets: Socket[] = [];

  afterEach(async () => {
    for (const socket of sockets.splice(0)) socket.destroy();
    await Promise.all(
      servers.splice(0).map((s) => new Promise<void>((resolve) => s.close(() => resolve()))),
    );
  });

  /** The "knock": starts an echo server on `port`, as a server opening its firewall would. */
  function knockOpensEcho(port: number, handler?: (socket: Socket) => void): () => Promise<void> {
    return async () => {
      const server = createServer(
        { allowHalfOpen: true },
        handler ??
          ((socket) => {
            sockets.push(socket);
            socket.pipe(socket);
          }),
      );
      servers.push(server);
      // Open a little after the knock, like a firewall rule being added.
      setTimeout(() => server.listen(port, LOCALHOST), 300);
    };
  }

  it("knocks, waits, and relays stdin to the port and the port to stdout", async () => {
    // Prepare
    const port = await freePort();
    const stdin = new PassThrough();
    const stdout = captureStream();
    const stderr = captureStream();

    // Act
    const exit = runProxy({
      host: LOCALHOST,
      port,
      knock: knockOpensEcho(port),
      waitTimeoutMs: 5_000,
      stdin,
      stdout: stdout.stream,
      stderr: stderr.stream,
    });
    stdin.write("hello\n");
    await waitForText(stdout, "hello\n");
    stdin.end("bye\n");

    // Assess: stdin's EOF half-closes, the echo server then closes, and the proxy ends.
    expect(await exit).toBe(0);
    expect(stdout.text()).toBe("hello\nbye\n");
    expect(stderr.text()).toBe("");
  });

  it("keeps reading after stdin ends (half-close) until the server has sent everything", async () => {
    // Prepare: the server answers only after the client's EOF.
    const port = await freePort();
    const stdin = new PassThrough();
    const stdout = captureStream();
    const knock = knockOpensEcho(port, (socket) => {
      let got = "";
      socket.setEncoding("utf8").on("data", (chunk: string) => {
        got += chunk;
      });
      socket.on("end", () => setTimeout(() => socket.end(`you sent ${got.length} bytes`), 100));
    });

    // Act
    const exit = runProxy({
      host: LOCALHOST,
      port,
      knock,
      waitTimeoutMs: 5_000,
      stdin,
      stdout: stdout.stream,
      stderr: captureStream().stream,
    });
    stdin.end("12345");

    // Assess
    expect(await exit).toBe(0);
    expect(stdout.text()).toBe("you sent 5 bytes");
  });

  it("ends when the server closes, even while stdin stays open", async () => {
    // Prepare
    const port = await freePort();
    const stdin = new PassThrough();
    const stdout = captureStream();
    const knock = knockOpensEcho(port, (socket) => socket.end("SSH-2.0-bye\r\n"));

    // Act
    const code = await runProxy({
      host: LOCALHOST,
      port,
      knock,
      waitTimeoutMs: 5_000,
      stdin,
      stdout: stdout.stream,
      stderr: captureStream().stream,
    });

    // Assess
    expect(code).toBe(0);
    expect(stdout.text()).toBe("SSH-2.0-bye\r\n");
    expect(stdout.stream.writableEnded).toBe(true);
    expect(stdin.isPaused()).toBe(true);
  });

  it("exits 1 with a clear message when the port does not open", async () => {
    // Prepare
    const port = await freePort();
    const stdout = captureStream();
    const stderr = captureStream();

    // Act
    const code = await runProxy({
      host: LOCALHOST,
      port,
      knock: async () => {},
      waitTimeoutMs: 600,
      stdin: new PassThrough(),
      stdout: stdout.stream,
      stderr: stderr.stream,
    });

    // Assess
    expect(code).toBe(1);
    expect(stdout.text()).toBe("");
    expect(stderr.text()).toBe(
      `spaknock: 127.0.0.1:${port} did not open within 0.6 s after the knock; ` +
        "check the server's OPEN_PORTS and that spaknockd/fwknopd is running\n",
    );
  });

  it("exits 1 and says so when the connection is reset", async () => {
    // Prepare
    const port = await freePort();
    const stderr = captureStream();
    const knock = knockOpensEcho(port, (socket) => {
      socket.on("error", () => {});
      setTimeout(() => socket.resetAndDestroy(), 50);
    });

    // Act
    const code = await runProxy({
      host: LOCALHOST,
      port,
      knock,
      waitTimeoutMs: 5_000,
      stdin: new PassThrough(),
      stdout: captureStream().stream,
      stderr: stderr.stream,
    });

    // Assess
    expect(code).toBe(1);
    expect(stderr.text()).toMatch(
      new RegExp(`^spaknock: connection to 127.0.0.1:${port}: .*ECONNRESET`),
    );
  });

  it("relays over IPv6 to a port that opens on ::1, naming it [::1]:PORT", async () => {
    // Prepare: an echo server that opens on ::1 a little after the knock.
    const probe = createServer();
    await new Promise<void>((resolve) => probe.listen(0, "::1", resolve));
    const port = (probe.address() as { port: number }).port;
    await new Promise<void>((resolve) => probe.close(() => resolve()));
    const stdin = new PassThrough();
    const stdout = captureStream();
    const stderr = captureStream({ isTTY: true });
    const knock = async (): Promise<void> => {
      const server = createServer({ allowHalfOpen: true }, (socket) => {
        sockets.push(socket);
        socket.pipe(socket);
      });
      servers.push(server);
      setTimeout(() => server.listen(port, "::1"), 300);
    };

    // Act
    const exit = runProxy({
      host: "::1",
      port,
      knock,
      waitTimeoutMs: 5_000,
      stdin,
      stdout: stdout.stream,
      stderr: stderr.stream,
    });
    stdin.end("over six\n");

    // Assess
    expect(await exit).toBe(0);
    expect(stdout.text()).toBe("over six\n");
    expect(stderr.text()).toContain(`waiting for [::1]:${port}`);
  });
});
