import { spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { openSpaPacket } from "../../core/index.js";
import { peerSkipReason } from "../helpers/peers.js";

const CLI = new URL("../../dist/cli/main.js", import.meta.url).pathname;
const hasScript = existsSync("/usr/bin/script");

/** Runs spaknock on a pseudo-terminal (util-linux `script`), answering each prompt in turn. */
function runOnPty(args: string[], answers: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    const command = ["node", CLI, ...args].map((a) => `'${a}'`).join(" ");
    const child = spawn("script", ["-qfec", command, "/dev/null"], {
      stdio: ["pipe", "pipe", "pipe"],
    });
    let output = "";
    const pending = [...answers];
    child.stdout.on("data", (chunk: Buffer) => {
      output += chunk.toString();
      if (/Enter (encryption|HMAC) key: $/.test(output) && pending.length > 0) {
        child.stdin.write(`${pending.shift()}\r`);
      }
    });
    const timer = setTimeout(() => {
      child.kill("SIGKILL");
      reject(new Error(`timed out; output so far: ${output}`));
    }, 15_000);
    child.on("close", () => {
      clearTimeout(timer);
      resolve(output);
    });
  });
}

describe.skipIf(
  peerSkipReason(
    hasScript
      ? undefined
      : { reason: "`script` is not installed (apt-get install bsdutils)", aptPackage: "bsdutils" },
  ) !== undefined,
)("key prompt on a terminal", () => {
  it("asks for both keys without echoing them, and the keys reach the packet", async () => {
    // Prepare
    const key = "typed-rijndael-key";
    const hmacKey = "typed-hmac-key-0123";
    // Act
    const output = await runOnPty(
      [
        "-A",
        "tcp/22",
        "-a",
        "198.18.0.2",
        "-D",
        "198.18.0.1",
        "-U",
        "alice",
        "--no-rc-file",
        "--use-hmac",
        "-T",
      ],
      [key, hmacKey],
    );
    // Assess
    expect(output).toContain("Enter encryption key: ");
    expect(output).toContain("Enter HMAC key: ");
    expect(output).not.toContain(key);
    expect(output).not.toContain(hmacKey);
    const wire = output.trim().split(/\r?\n/).at(-1)?.trim() ?? "";
    const message = openSpaPacket(wire, {
      key: Buffer.from(key),
      mode: "cbc",
      hmacKey: Buffer.from(hmacKey),
      hmacType: "sha256",
    });
    expect(message).toMatchObject({ username: "alice", message: "198.18.0.2,tcp/22" });
  });

  it("without a terminal it says how to give a key instead of hanging", async () => {
    const child = spawn(
      "node",
      [CLI, "-A", "tcp/22", "-a", "198.18.0.2", "-D", "198.18.0.1", "--no-rc-file", "-T"],
      {
        stdio: ["ignore", "pipe", "pipe"],
      },
    );
    let stderr = "";
    child.stderr.on("data", (c: Buffer) => {
      stderr += c.toString();
    });
    const code = await new Promise<number | null>((r) => child.on("close", r));
    expect(code).toBe(2);
    expect(stderr).toMatch(/no key given and no terminal/);
  });
});
