/**
 * The replay cache on disk (DIGEST_FILE), in fwknopd's line format so either daemon can read it:
 *
 *   <digest> <proto> <src_ip> <src_port> <dst_ip> <dst_port> <time>
 *
 * Append-only; each claim is written before the grant proceeds. A crash mid-write leaves at
 * most one torn last line, which loading skips. Compaction rewrites the file (temp + rename)
 * without entries that packet aging already rejects.
 */
import {
  appendFileSync,
  closeSync,
  mkdirSync,
  openSync,
  readFileSync,
  renameSync,
  writeFileSync,
  writeSync,
} from "node:fs";
import { dirname } from "node:path";
import type { ReplayCache, ReplayMeta } from "../core/index.js";

const LINE = /^([A-Za-z0-9+/]{43}) \d+ \S+ \d+ \S+ \d+ (\d+)$/;
const HEADER = "# <digest> <proto> <src_ip> <src_port> <dst_ip> <dst_port> <time>\n";

export interface ReplayFileOptions {
  readonly path: string;
  /** Packet aging window in seconds; null: aging off, entries are never dropped. */
  readonly maxPacketAge: number | null;
  readonly listenPort: number;
}

export class ReplayFile implements ReplayCache {
  /** digest → [first seen (epoch s), its line in the file] */
  private readonly entries = new Map<string, [number, string]>();
  private appendedSinceCompaction = 0;
  /** Kept open: one write per claim, no open/close round trips on the knock's path. */
  private fd: number | null = null;

  private constructor(private options: ReplayFileOptions) {}

  /** Loads the file (creating it 0600 if missing) and drops entries too old to matter. */
  static open(options: ReplayFileOptions, nowSec: number): ReplayFile {
    const cache = new ReplayFile(options);
    mkdirSync(dirname(options.path), { recursive: true, mode: 0o700 });
    let text = "";
    try {
      text = readFileSync(options.path, "latin1");
    } catch {
      closeSync(openSync(options.path, "a", 0o600));
      appendFileSync(options.path, HEADER);
    }
    for (const line of text.split("\n")) {
      const m = LINE.exec(line.trim());
      if (m) cache.entries.set(m[1] as string, [Number(m[2]), line.trim()]);
    }
    cache.compact(nowSec);
    return cache;
  }

  /** A reload may change the aging window; compaction must then keep digests for the new one. */
  setMaxPacketAge(age: number | null): void {
    this.options = { ...this.options, maxPacketAge: age };
  }

  get size(): number {
    return this.entries.size;
  }

  async seen(digest: string): Promise<boolean> {
    return this.entries.has(digest);
  }

  async claim(digest: string, meta: ReplayMeta): Promise<boolean> {
    // The map is updated before the first await: two copies racing in this process cannot both win.
    if (this.entries.has(digest)) return false;
    const line = `${digest} 17 ${meta.sourceIp} ${meta.sourcePort} 0.0.0.0 ${this.options.listenPort} ${meta.seenAt}`;
    this.entries.set(digest, [meta.seenAt, line]);
    try {
      // A few dozen bytes to the page cache: synchronous is cheaper than a threadpool round
      // trip, and the line is in the file before the grant proceeds.
      this.fd ??= openSync(this.options.path, "a", 0o600);
      writeSync(this.fd, `${line}\n`);
    } catch (err) {
      // Not durable means not claimed: the caller refuses rather than grant a replayable packet.
      this.entries.delete(digest);
      throw err;
    }
    this.appendedSinceCompaction++;
    if (this.appendedSinceCompaction > 10_000) this.compact(meta.seenAt);
    return true;
  }

  /**
   * A packet stamped T is accepted while |now - T| <= age, so a digest first seen at S can only
   * come back usefully until S + 2 * age. Older entries are dropped.
   */
  compact(nowSec: number): void {
    const age = this.options.maxPacketAge;
    if (age !== null) {
      for (const [digest, [seenAt]] of this.entries) {
        if (seenAt < nowSec - 2 * age) this.entries.delete(digest);
      }
    }
    const lines = [...this.entries.values()].map(([, line]) => line);
    if (this.fd !== null) {
      closeSync(this.fd);
      this.fd = null;
    }
    const tmp = `${this.options.path}.tmp`;
    writeFileSync(tmp, HEADER + lines.map((l) => `${l}\n`).join(""), { mode: 0o600 });
    renameSync(tmp, this.options.path);
    this.appendedSinceCompaction = 0;
  }
}
