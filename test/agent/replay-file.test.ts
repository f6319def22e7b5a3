import { appendFileSync, mkdtempSync, readFileSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { ReplayFile } from "../../agent/replay-file.js";

const DIGEST_A = "z319IuHgYATYCCudcwtWj2+CD1N6XKm1HyDlfnfNhO8";
const DIGEST_B = "A".repeat(43);
const NOW = 1_795_605_855;
const meta = { sourceIp: "198.18.0.2", sourcePort: 48485, seenAt: NOW, packetTime: NOW };

describe("replay file", () => {
  const dirs: string[] = [];
  const path = () => {
    const dir = mkdtempSync(join(tmpdir(), "spk-replay-"));
    dirs.push(dir);
    return join(dir, "sub", "digest.cache");
  };
  afterEach(() => {
    for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
  });

  it("survives a restart, in fwknopd's line format, mode 0600", async () => {
    const p = path();
    const first = ReplayFile.open({ path: p, maxPacketAge: 120, listenPort: 62201 }, NOW);
    expect(await first.claim(DIGEST_A, meta)).toBe(true);
    expect(await first.claim(DIGEST_A, meta)).toBe(false);
    expect(readFileSync(p, "utf8")).toContain(
      `${DIGEST_A} 17 198.18.0.2 48485 0.0.0.0 62201 ${NOW}\n`,
    );
    expect(statSync(p).mode & 0o777).toBe(0o600);
    const second = ReplayFile.open({ path: p, maxPacketAge: 120, listenPort: 62201 }, NOW + 10);
    expect(await second.seen(DIGEST_A)).toBe(true);
    expect(await second.claim(DIGEST_A, meta)).toBe(false);
  });

  it("reads a file fwknopd wrote and skips a line torn by a crash", async () => {
    const p = path();
    ReplayFile.open({ path: p, maxPacketAge: 120, listenPort: 62201 }, NOW);
    appendFileSync(
      p,
      `${DIGEST_A} 17 198.18.0.2 48485 198.18.0.1 62201 ${NOW}\n${DIGEST_B.slice(0, 20)}`,
    );
    const cache = ReplayFile.open({ path: p, maxPacketAge: 120, listenPort: 62201 }, NOW);
    expect(await cache.seen(DIGEST_A)).toBe(true);
    expect(cache.size).toBe(1);
    expect(await cache.claim(DIGEST_B, meta)).toBe(true);
  });

  it("drops entries older than twice the aging window, keeps them all when aging is off", async () => {
    const p = path();
    const cache = ReplayFile.open({ path: p, maxPacketAge: 120, listenPort: 62201 }, NOW);
    await cache.claim(DIGEST_A, { ...meta, seenAt: NOW - 241 });
    await cache.claim(DIGEST_B, { ...meta, seenAt: NOW - 239 });
    const reopened = ReplayFile.open({ path: p, maxPacketAge: 120, listenPort: 62201 }, NOW);
    expect([await reopened.seen(DIGEST_A), await reopened.seen(DIGEST_B)]).toEqual([false, true]);
    const noAging = ReplayFile.open({ path: p, maxPacketAge: null, listenPort: 62201 }, NOW + 1e6);
    expect(await noAging.seen(DIGEST_B)).toBe(true);
  });

  it("lets exactly one of many concurrent claims of one digest win", async () => {
    const cache = ReplayFile.open({ path: path(), maxPacketAge: 120, listenPort: 62201 }, NOW);
    const results = await Promise.all(
      Array.from({ length: 50 }, () => cache.claim(DIGEST_A, meta)),
    );
    expect(results.filter(Boolean)).toHaveLength(1);
  });
});
