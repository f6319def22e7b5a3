// The daemon's control socket: `--fw-revoke` reaches the running daemon's revoke and gets back
// what it closed; with no daemon listening the command is told so (null) and closes it itself.
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync, statSync } from "node:fs";
import { createConnection } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { askDaemonToRevoke, ControlSocket, controlSocketPath } from "../../agent/control-socket.js";
import type { GrantMatch, OpenRule } from "../../agent/firewall/managed-firewall.js";
import type { Log } from "../../agent/log.js";

const silent: Log = {
  error: () => {},
  warning: () => {},
  info: () => {},
  debug: () => {},
  close: () => {},
};
const closedRule: OpenRule = {
  sourceIp: "2001:db8::2",
  port: { proto: "tcp", port: 22 },
  expiresAt: 1_795_605_833,
};

/** Sends raw bytes and resolves with everything the daemon answers before it closes. */
function rawExchange(path: string, bytes: string): Promise<string> {
  return new Promise((resolve) => {
    const socket = createConnection(path, () => socket.write(bytes));
    let answer = "";
    socket.setEncoding("utf8");
    socket.on("data", (c: string) => {
      answer += c;
    });
    socket.on("error", () => {});
    socket.on("close", () => resolve(answer));
  });
}

describe("control socket", () => {
  let dir: string;
  let path: string;
  let asked: GrantMatch[];
  let control: ControlSocket;

  beforeEach(async () => {
    dir = mkdtempSync(join(tmpdir(), "spaknockd-control-"));
    path = controlSocketPath(dir);
    asked = [];
    control = new ControlSocket(
      path,
      { backend: "nftables", label: "inet spaknock" },
      async (match) => {
        asked.push(match);
        if (match.sourceIp === "198.18.0.66") throw new Error("nft: Could not process rule");
        return match.sourceIp === closedRule.sourceIp ? [closedRule] : [];
      },
      silent,
      // Longer than any test: an empty answer can only come from the size bound, not idleness.
      3_600_000,
    );
    await control.start();
  });

  afterEach(async () => {
    await control.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it("hands the revoke to the daemon and returns what it closed", async () => {
    // Act
    const result = await askDaemonToRevoke(path, {
      sourceIp: "2001:db8::2",
      port: { proto: "tcp", port: 22 },
    });

    // Assess
    expect(asked).toEqual([{ sourceIp: "2001:db8::2", port: { proto: "tcp", port: 22 } }]);
    expect(result).toEqual({ backend: "nftables", target: "inet spaknock", revoked: [closedRule] });
  });

  it("answers an empty list when nothing matched", async () => {
    const result = await askDaemonToRevoke(path, { sourceIp: "198.18.0.9", port: null });
    expect(result?.revoked).toEqual([]);
  });

  it("is a socket only its owner may use", () => {
    const st = statSync(path);
    expect(st.isSocket()).toBe(true);
    expect(st.mode & 0o777).toBe(0o600);
  });

  it("passes the daemon's failure on as an error", async () => {
    await expect(askDaemonToRevoke(path, { sourceIp: "198.18.0.66", port: null })).rejects.toThrow(
      "spaknockd: nft: Could not process rule",
    );
  });

  it("refuses a malformed request, an address that is none, and an oversized line", async () => {
    expect(await rawExchange(path, "not json\n")).toBe('{"error":"malformed control request"}\n');
    expect(await rawExchange(path, '{"revoke":{"sourceIp":"1.2.3.4","port":null},"x":1}\n')).toBe(
      '{"error":"malformed control request"}\n',
    );
    for (const bad of [
      '{"revoke":{"sourceIp":"1.2.3.4"}}',
      '{"revoke":{"sourceIp":"1.2.3.4","port":null,"x":1}}',
      '{"revoke":{"sourceIp":"1.2.3.4","port":{"proto":"icmp","port":1}}}',
      '{"revoke":{"sourceIp":"1.2.3.4","port":{"proto":"tcp","port":0}}}',
      '{"revoke":{"sourceIp":"1.2.3.4","port":{"proto":"tcp","port":22.5}}}',
      '{"revoke":{"sourceIp":4,"port":null}}',
      `{"revoke":{"sourceIp":"${"1".repeat(65)}","port":null}}`,
      '{"revoke":[]}',
      "[]",
    ]) {
      expect(await rawExchange(path, `${bad}\n`)).toBe('{"error":"malformed control request"}\n');
    }
    expect(await rawExchange(path, '{"revoke":{"sourceIp":"1.2.3","port":null}}\n')).toBe(
      '{"error":"\\"1.2.3\\" is not an IP address"}\n',
    );
    // Cut at the size bound: with the idle timeout at an hour, nothing else would answer "".
    expect(await rawExchange(path, "x".repeat(10_000))).toBe("");
    expect(asked).toEqual([]);
  });

  it("canonicalises the address before the daemon sees it", async () => {
    await rawExchange(path, '{"revoke":{"sourceIp":"2001:DB8:0::2","port":null}}\n');
    expect(asked).toEqual([{ sourceIp: "2001:db8::2", port: null }]);
  });

  it("removes its socket file when it stops", async () => {
    await control.stop();
    expect(() => statSync(path)).toThrow();
    expect(await askDaemonToRevoke(path, { sourceIp: "198.18.0.2", port: null })).toBeNull();
  });
});

describe("askDaemonToRevoke without a daemon", () => {
  it("says no daemon listens when there is no socket, or only a killed daemon's", async () => {
    // Prepare: a process that binds the socket and is then killed with -9, leaving the file
    const dir = mkdtempSync(join(tmpdir(), "spaknockd-control-"));
    const path = controlSocketPath(dir);
    const match = { sourceIp: "198.18.0.2", port: null };
    try {
      const noFile = await askDaemonToRevoke(path, match);
      const child = spawn(process.execPath, [
        "-e",
        "require('node:net').createServer().listen(process.argv[1], () => console.log('up'))",
        path,
      ]);
      await new Promise((resolve) => child.stdout.once("data", resolve));
      const exited = new Promise((resolve) => child.once("exit", resolve));
      process.kill(child.pid as number, "SIGKILL");
      await exited;

      // Act
      const deadSocket = await askDaemonToRevoke(path, match);

      // Assess
      expect(noFile).toBeNull();
      expect(statSync(path).isSocket()).toBe(true);
      expect(deadSocket).toBeNull();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
