import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { createServer, type Server } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { runSsh } from "../../cli/commands/ssh.js";
import { captureStream } from "./streams.js";

const LOCALHOST = "127.0.0.1";
// Stands in for ssh: runs its arguments as a shell script.
const SH = "/bin/sh";

describe("runSsh", () => {
  const servers: Server[] = [];
  let dir: string;
  let openPort: number;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), "spaknock-ssh-test-"));
    const server = createServer((socket) => socket.destroy());
    servers.push(server);
    await new Promise<void>((resolve) => server.listen(0, LOCALHOST, resolve));
    openPort = (server.address() as { port: number }).port;
  });

  afterAll(async () => {
    await Promise.all(
      servers.splice(0).map((s) => new Promise<void>((resolve) => s.close(() => resolve()))),
    );
    rmSync(dir, { recursive: true, force: true });
  });

  afterEach(() => {
    rmSync(join(dir, "out"), { force: true });
  });

  it("knocks, waits for the port, then runs ssh with exactly the given arguments", async () => {
    // Prepare
    const out = join(dir, "out");
    const events: string[] = [];

    // Act
    const code = await runSsh({
      host: LOCALHOST,
      port: openPort,
      knock: async () => {
        events.push("knock");
      },
      waitTimeoutMs: 5_000,
      sshPath: SH,
      sshArgs: ["-c", 'printf "%s|" "$@" > "$0"', out, "-p", "22", "user@host", "a b;c"],
      stderr: captureStream().stream,
    });

    // Assess
    expect(code).toBe(0);
    expect(events).toEqual(["knock"]);
    expect(readFileSync(out, "utf8")).toBe("-p|22|user@host|a b;c|");
  });

  it("returns ssh's exit status", async () => {
    const code = await runSsh({
      host: LOCALHOST,
      port: openPort,
      knock: async () => {},
      waitTimeoutMs: 5_000,
      sshPath: SH,
      sshArgs: ["-c", "exit 7"],
      stderr: captureStream().stream,
    });

    expect(code).toBe(7);
  });

  it("returns 128 + the signal number when a signal ends ssh", async () => {
    const code = await runSsh({
      host: LOCALHOST,
      port: openPort,
      knock: async () => {},
      waitTimeoutMs: 5_000,
      sshPath: SH,
      sshArgs: ["-c", "kill -TERM $$"],
      stderr: captureStream().stream,
    });

    expect(code).toBe(128 + 15);
  });

  it("does not run ssh, and exits 1 with a clear message, when the port stays closed", async () => {
    // Prepare
    const closed = createServer();
    await new Promise<void>((resolve) => closed.listen(0, LOCALHOST, resolve));
    const port = (closed.address() as { port: number }).port;
    await new Promise<void>((resolve) => closed.close(() => resolve()));
    const out = join(dir, "out");
    const stderr = captureStream();

    // Act
    const code = await runSsh({
      host: LOCALHOST,
      port,
      knock: async () => {},
      waitTimeoutMs: 500,
      sshPath: SH,
      sshArgs: ["-c", 'touch "$0"', out],
      stderr: stderr.stream,
    });

    // Assess
    expect(code).toBe(1);
    expect(existsSync(out)).toBe(false);
    expect(stderr.text()).toMatch(
      new RegExp(`^spaknock: 127\\.0\\.0\\.1:${port} did not open within 0\\.5 s after the knock`),
    );
  });

  it("exits 1 and names the program when ssh cannot be found", async () => {
    const stderr = captureStream();

    const code = await runSsh({
      host: LOCALHOST,
      port: openPort,
      knock: async () => {},
      waitTimeoutMs: 5_000,
      sshPath: join(dir, "no-such-ssh"),
      sshArgs: [],
      stderr: stderr.stream,
    });

    expect(code).toBe(1);
    expect(stderr.text()).toBe(
      `spaknock: cannot run "${join(dir, "no-such-ssh")}": not found (install openssh-client)\n`,
    );
  });

  it("leaves no signal handlers behind", async () => {
    const before = ["SIGINT", "SIGQUIT", "SIGTERM", "SIGHUP"].map((s) => process.listenerCount(s));

    await runSsh({
      host: LOCALHOST,
      port: openPort,
      knock: async () => {},
      waitTimeoutMs: 5_000,
      sshPath: SH,
      sshArgs: ["-c", "exit 0"],
      stderr: captureStream().stream,
    });

    expect(["SIGINT", "SIGQUIT", "SIGTERM", "SIGHUP"].map((s) => process.listenerCount(s))).toEqual(
      before,
    );
  });
});
