// NftSession against a stand-in for `nft -e -i` (a small script that answers like nft does):
// one transaction per line, `# new generation N` on success, stderr on failure, and a session
// that hangs or dies is replaced instead of wedging every later knock.
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { NftSession } from "../../agent/firewall/nft-session.js";
import { nftGrantScript } from "../../agent/firewall/nftables.js";

let dir: string;
let fakeNft: string;
let linesFile: string;

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), "spaknock-nft-session-"));
  fakeNft = join(dir, "nft");
  linesFile = join(dir, "lines");
  // Answers each line as nft does; HANG never answers, DIE exits, FAIL is refused.
  writeFileSync(
    fakeNft,
    `#!/usr/bin/env node
const fs = require("node:fs");
let generation = 0;
require("node:readline").createInterface({ input: process.stdin }).on("line", (line) => {
  fs.appendFileSync(${JSON.stringify(linesFile)}, line + "\\n");
  if (line.includes("HANG")) return;
  if (line.includes("DIE")) process.exit(3);
  if (line.includes("FAIL")) process.stderr.write("Error: Could not process rule: No such file or directory\\nmore\\n");
  else process.stdout.write("# new generation " + ++generation + " by process 1 (nft)\\n");
});
`,
  );
  chmodSync(fakeNft, 0o755);
});

afterAll(() => rmSync(dir, { recursive: true, force: true }));

const sentLines = () => readFileSync(linesFile, "utf8").trim().split("\n");

describe("NftSession", () => {
  it("sends a script as one line (one transaction) and resolves on the new generation", async () => {
    const session = new NftSession(fakeNft);
    try {
      await session.apply(
        "add element inet spaknock allow_tcp { 198.18.0.2 . 22 timeout 30s }\n\n  add element inet spaknock allow_udp { 198.18.0.2 . 53 timeout 30s }\n",
      );
      expect(sentLines().at(-1)).toBe(
        "add element inet spaknock allow_tcp { 198.18.0.2 . 22 timeout 30s }; add element inet spaknock allow_udp { 198.18.0.2 . 53 timeout 30s }",
      );
    } finally {
      session.close();
    }
  });

  it("sends an IPv6 grant (colons and all) as one transaction line", async () => {
    const session = new NftSession(fakeNft);
    try {
      await session.apply(
        nftGrantScript("spaknock", {
          sourceIp: "2001:db8:5a::2",
          ports: [{ proto: "tcp", port: 22 }],
          username: "alice",
          openedAt: 1_795_605_803,
          expiresAt: 1_795_605_833,
          timeoutSec: 30,
          stanza: 1,
          targets: [],
        }),
      );
      expect(sentLines().at(-1)).toBe(
        "add element inet spaknock allow6_tcp { 2001:db8:5a::2 . 22 timeout 30s }; " +
          "delete element inet spaknock allow6_tcp { 2001:db8:5a::2 . 22 }; " +
          "add element inet spaknock allow6_tcp { 2001:db8:5a::2 . 22 timeout 30s }",
      );
    } finally {
      session.close();
    }
  });

  it("rejects with nft's first error line, and the next transaction still works", async () => {
    const session = new NftSession(fakeNft);
    try {
      await expect(session.apply("add element FAIL")).rejects.toThrow(
        "nft: Error: Could not process rule: No such file or directory",
      );
      await expect(session.apply("add element ok")).resolves.toBeUndefined();
    } finally {
      session.close();
    }
  });

  it("runs concurrent calls one at a time, in order", async () => {
    const session = new NftSession(fakeNft);
    try {
      await Promise.all(Array.from({ length: 10 }, (_, i) => session.apply(`line ${i}`)));
      expect(sentLines().slice(-10)).toEqual(Array.from({ length: 10 }, (_, i) => `line ${i}`));
    } finally {
      session.close();
    }
  });

  it("times out a session that never answers, and starts a fresh one for the next call", async () => {
    const session = new NftSession(fakeNft, 300);
    try {
      await expect(session.apply("HANG")).rejects.toThrow("nft session timed out");
      await expect(session.apply("after the hang")).resolves.toBeUndefined();
    } finally {
      session.close();
    }
  });

  it("rejects the pending call when nft exits, and recovers", async () => {
    const session = new NftSession(fakeNft);
    try {
      await expect(session.apply("DIE")).rejects.toThrow("nft session ended: exit 3");
      await expect(session.apply("after the exit")).resolves.toBeUndefined();
    } finally {
      session.close();
    }
  });

  it("rejects when nft cannot be started at all", async () => {
    const session = new NftSession(join(dir, "no-such-nft"));
    await expect(session.apply("add element x")).rejects.toThrow(
      /nft session ended: spawn .* ENOENT/,
    );
    session.close();
  });
});
