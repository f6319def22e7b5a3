// The host Expiry: a close is logged and notified when it happens, never before, also for
// timeouts past setTimeout's 24.8-day range (which would otherwise fire after 1 ms).
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { TimerExpiry } from "../../agent/expiry-timers.js";
import { DryRunFirewall } from "../../agent/firewall/managed-firewall.js";
import type { Log } from "../../agent/log.js";
import type { Grant, Notifier } from "../../core/index.js";

const DAY = 86_400;

function recorder() {
  const lines: string[] = [];
  const log: Log = {
    error: (m) => lines.push(m),
    warning: (m) => lines.push(m),
    info: (m) => lines.push(m),
    debug: () => {},
    close: () => {},
  };
  const closed: Grant[] = [];
  const notifier: Notifier = {
    opened: async () => {},
    closed: async (g) => {
      closed.push(g);
    },
  };
  return { lines, log, closed, notifier };
}

const grantFor = (timeoutSec: number): Grant => {
  const now = Math.floor(Date.now() / 1000);
  return {
    sourceIp: "198.18.0.2",
    ports: [{ proto: "tcp", port: 22 }],
    username: "alice",
    openedAt: now,
    expiresAt: now + timeoutSec,
    timeoutSec,
    stanza: 1,
    targets: [],
  };
};

describe("TimerExpiry", () => {
  beforeEach(() => vi.useFakeTimers({ now: new Date("2026-12-02T12:00:00Z") }));
  afterEach(() => vi.useRealTimers());

  it.each([
    ["30 s", 30],
    ["30 days (past setTimeout's range)", 30 * DAY],
    ["100 days", 100 * DAY],
  ])("logs and notifies the close of a %s grant at its expiry, not before", async (_n, timeout) => {
    // Prepare
    const r = recorder();
    const expiry = new TimerExpiry(new DryRunFirewall(), r.log, [r.notifier], () => Date.now());
    const grant = grantFor(timeout);
    // Act
    await expiry.scheduleClose(grant, []);
    await vi.advanceTimersByTimeAsync(timeout * 1000 - 1000);
    // Assess: one second before, still open
    expect(r.lines).toEqual([]);
    expect(r.closed).toEqual([]);
    expect(expiry.size).toBe(1);
    await vi.advanceTimersByTimeAsync(1000);
    expect(r.lines).toEqual([
      `removed test-mode (no firewall change) 198.18.0.2 -> 0.0.0.0/0(tcp/22) ACCEPT rule ${timeout} sec timeout exceeded`,
    ]);
    expect(r.closed).toEqual([grant]);
    expect(expiry.size).toBe(0);
  });

  it("a refresh moves the close: the first grant's timer reports nothing", async () => {
    const r = recorder();
    const expiry = new TimerExpiry(new DryRunFirewall(), r.log, [r.notifier], () => Date.now());
    const first = grantFor(30);
    await expiry.scheduleClose(first, []);
    await vi.advanceTimersByTimeAsync(20_000);
    const second = grantFor(30);
    await expiry.scheduleClose(second, []);
    await vi.advanceTimersByTimeAsync(15_000);
    expect(r.closed).toEqual([]);
    await vi.advanceTimersByTimeAsync(15_000);
    expect(r.closed).toEqual([second]);
  });
});
