// The host Expiry: a close is logged and notified when it happens, never before, also for
// timeouts past setTimeout's 24.8-day range (which would otherwise fire after 1 ms); the close
// line comes from the firewall's answer, and a grant revoked by hand is closed exactly once.
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { TimerExpiry } from "../../agent/expiry-timers.js";
import {
  DryRunFirewall,
  type GrantMatch,
  type ManagedFirewall,
  matchesGrant,
  type OpenRule,
} from "../../agent/firewall/managed-firewall.js";
import type { Log } from "../../agent/log.js";
import type { Grant, Notifier, OpenedRule } from "../../core/index.js";

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

const grantFor = (
  timeoutSec: number,
  ports: Grant["ports"] = [{ proto: "tcp", port: 22 }],
): Grant => {
  const now = Math.floor(Date.now() / 1000);
  return {
    sourceIp: "198.18.0.2",
    ports,
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

const keyOf = (r: OpenRule) => `${r.sourceIp} ${r.port.proto}/${r.port.port}`;

/**
 * A host firewall in memory on the fake clock. `kernelExpires`: like nftables, an element past its
 * expiry is simply not listed any more; otherwise, like iptables, it stays until removed.
 */
class FakeHostFirewall implements ManagedFirewall {
  readonly backend = "iptables";
  readonly label = "SPK_TEST";
  readonly rules = new Map<string, OpenRule>();
  /** removeExpired calls to fail before one succeeds. */
  failRemovals = 0;

  constructor(readonly kernelExpires: boolean) {}

  private nowSec(): number {
    return Math.floor(Date.now() / 1000);
  }

  async setup(): Promise<void> {}
  async open(grant: Grant): Promise<readonly OpenedRule[]> {
    for (const port of grant.ports) {
      const rule = { sourceIp: grant.sourceIp, port, expiresAt: grant.expiresAt };
      this.rules.set(keyOf(rule), rule);
    }
    return [];
  }
  async list(): Promise<OpenRule[]> {
    return [...this.rules.values()].filter(
      (r) => !this.kernelExpires || (r.expiresAt ?? Infinity) > this.nowSec(),
    );
  }
  async removeExpired(nowSec: number): Promise<OpenRule[]> {
    if (this.failRemovals > 0) {
      this.failRemovals--;
      throw new Error("iptables-restore: resource temporarily unavailable");
    }
    return this.take((r) => !this.kernelExpires && r.expiresAt !== null && r.expiresAt <= nowSec);
  }
  async revoke(match: GrantMatch): Promise<OpenRule[]> {
    return this.take((r) => matchesGrant(r, match) && (r.expiresAt ?? Infinity) > this.nowSec());
  }
  async removeAllGrants(): Promise<void> {
    this.rules.clear();
  }
  async removeAll(): Promise<void> {
    this.rules.clear();
  }
  private take(which: (r: OpenRule) => boolean): OpenRule[] {
    const taken = [...this.rules.values()].filter(which);
    for (const r of taken) this.rules.delete(keyOf(r));
    return taken;
  }
}

/** A grant opened in `firewall` and handed to `expiry`, as the knock pipeline does. */
async function openGrant(
  firewall: FakeHostFirewall,
  expiry: TimerExpiry,
  grant: Grant,
): Promise<Grant> {
  await expiry.scheduleClose(grant, await firewall.open(grant));
  return grant;
}

const expiredLine = (port: string, sec: number) =>
  `removed SPK_TEST 198.18.0.2 -> 0.0.0.0/0(${port}) ACCEPT rule ${sec} sec timeout exceeded`;
const revokedLine = (port: string, sec: number) =>
  `removed SPK_TEST 198.18.0.2 -> 0.0.0.0/0(${port}) ACCEPT rule ${sec} sec revoked by hand`;

describe("TimerExpiry with a host firewall", () => {
  beforeEach(() => vi.useFakeTimers({ now: new Date("2026-12-02T12:00:00Z") }));
  afterEach(() => vi.useRealTimers());

  for (const kernelExpires of [true, false]) {
    const kind = kernelExpires ? "nftables-like" : "iptables-like";

    it(`${kind}: a revoke is logged and notified once, and its expiry later reports nothing`, async () => {
      // Prepare
      const r = recorder();
      const firewall = new FakeHostFirewall(kernelExpires);
      const expiry = new TimerExpiry(firewall, r.log, [r.notifier], () => Date.now());
      const grant = await openGrant(firewall, expiry, grantFor(30));
      await vi.advanceTimersByTimeAsync(5_000);

      // Act
      const removed = await expiry.revoke({ sourceIp: "198.18.0.2", port: null });
      await vi.advanceTimersByTimeAsync(60_000);

      // Assess
      expect(removed.map(keyOf)).toEqual(["198.18.0.2 tcp/22"]);
      expect(r.lines).toEqual([revokedLine("tcp/22", 30)]);
      expect(r.closed).toEqual([grant]);
      expect(expiry.size).toBe(0);
      expect(firewall.rules.size).toBe(0);
    });

    it(`${kind}: logs nothing while the firewall still holds the rule at its timer, then the close`, async () => {
      // Prepare: the firewall holds the rule 3 s longer than the timer runs (a clock step, a
      // refresh by another process): the timer alone must not claim the close.
      const r = recorder();
      const firewall = new FakeHostFirewall(kernelExpires);
      const expiry = new TimerExpiry(firewall, r.log, [r.notifier], () => Date.now());
      const grant = grantFor(30);
      await firewall.open({ ...grant, expiresAt: grant.expiresAt + 3 });
      await expiry.scheduleClose(grant, []);

      // Act
      await vi.advanceTimersByTimeAsync(30_000);
      const atTimer = [...r.lines];
      await vi.advanceTimersByTimeAsync(3_000);

      // Assess
      expect(atTimer).toEqual([]);
      expect(r.lines).toEqual([expiredLine("tcp/22", 30)]);
      expect(r.closed).toEqual([grant]);
      expect(firewall.rules.size).toBe(kernelExpires ? 1 : 0); // the kernel's own, or removed
    });
  }

  it("revoking one port of a two-port grant tells the user only when the last one closes", async () => {
    // Prepare
    const r = recorder();
    const firewall = new FakeHostFirewall(true);
    const expiry = new TimerExpiry(firewall, r.log, [r.notifier], () => Date.now());
    const grant = await openGrant(
      firewall,
      expiry,
      grantFor(30, [
        { proto: "tcp", port: 22 },
        { proto: "udp", port: 53 },
      ]),
    );

    // Act
    await expiry.revoke({ sourceIp: "198.18.0.2", port: { proto: "tcp", port: 22 } });
    const notifiedAfterRevoke = r.closed.length;
    await vi.advanceTimersByTimeAsync(30_000);

    // Assess
    expect(notifiedAfterRevoke).toBe(0);
    expect(r.lines).toEqual([revokedLine("tcp/22", 30), expiredLine("udp/53", 30)]);
    expect(r.closed).toEqual([grant]);
  });

  it("a revoke that matches nothing logs and notifies nothing, and the grant closes on time", async () => {
    const r = recorder();
    const firewall = new FakeHostFirewall(false);
    const expiry = new TimerExpiry(firewall, r.log, [r.notifier], () => Date.now());
    await openGrant(firewall, expiry, grantFor(30));

    const removed = await expiry.revoke({ sourceIp: "198.18.0.9", port: null });

    expect(removed).toEqual([]);
    expect(r.lines).toEqual([]);
    expect(expiry.size).toBe(1);
    await vi.advanceTimersByTimeAsync(30_000);
    expect(r.lines).toEqual([expiredLine("tcp/22", 30)]);
  });

  it("iptables-like: a failed removal claims no close; the retry closes it once", async () => {
    // Prepare
    const r = recorder();
    const firewall = new FakeHostFirewall(false);
    firewall.failRemovals = 1;
    const expiry = new TimerExpiry(firewall, r.log, [r.notifier], () => Date.now());
    const grant = await openGrant(firewall, expiry, grantFor(30));

    // Act
    await vi.advanceTimersByTimeAsync(30_000);
    const atTimer = [...r.lines];
    const notifiedAtTimer = r.closed.length;
    await vi.advanceTimersByTimeAsync(1_000);

    // Assess
    expect(atTimer).toHaveLength(1);
    expect(atTimer[0]).toMatch(
      /^could not remove expired rule 198\.18\.0\.2 tcp\/22: .*\(retrying\)$/,
    );
    expect(notifiedAtTimer).toBe(0);
    expect(r.lines.slice(1)).toEqual([expiredLine("tcp/22", 30)]);
    expect(r.closed).toEqual([grant]);
    expect(firewall.rules.size).toBe(0);
  });

  it("iptables-like: a rule someone else removed is not claimed as removed by spaknockd", async () => {
    const r = recorder();
    const firewall = new FakeHostFirewall(false);
    const expiry = new TimerExpiry(firewall, r.log, [r.notifier], () => Date.now());
    await openGrant(firewall, expiry, grantFor(30));
    firewall.rules.clear(); // an admin's `iptables -D`

    await vi.advanceTimersByTimeAsync(30_000);

    expect(r.lines).toEqual([
      "198.18.0.2 tcp/22 was already gone from SPK_TEST at its expiry (removed outside spaknockd)",
    ]);
    expect(r.lines.some((l) => l.startsWith("removed "))).toBe(false);
    expect(expiry.size).toBe(0);
  });

  it("a sweep's removal of a tracked grant is its close: logged and notified once", async () => {
    // Prepare
    const r = recorder();
    const firewall = new FakeHostFirewall(false);
    const expiry = new TimerExpiry(firewall, r.log, [r.notifier], () => Date.now());
    const grant = await openGrant(firewall, expiry, grantFor(30));
    const stray: OpenRule = {
      sourceIp: "198.18.0.7",
      port: { proto: "tcp", port: 22 },
      expiresAt: null,
    };

    // Act: the sweep ran just before the timer
    await vi.advanceTimersByTimeAsync(29_999);
    const untracked = expiry.closedElsewhere([
      ...(await firewall.removeExpired(Date.now() / 1000 + 1)),
      stray,
    ]);
    await vi.advanceTimersByTimeAsync(10_000);

    // Assess
    expect(untracked).toEqual([stray]);
    expect(r.lines).toEqual([expiredLine("tcp/22", 30)]);
    expect(r.closed).toEqual([grant]);
  });

  it("an adopted grant more than 2,147,483 s away does not close early, and closes on time", async () => {
    // Prepare: what a restarted daemon finds, expiring in 40 days (past setTimeout's range)
    const r = recorder();
    const firewall = new FakeHostFirewall(false);
    const expiry = new TimerExpiry(firewall, r.log, [r.notifier], () => Date.now());
    const grant = { ...grantFor(40 * DAY), stanza: 0 };
    await firewall.open(grant);
    expiry.adopt(grant);

    // Act: past the point where an unchecked setTimeout would fire (1 ms), and past 2^31 ms
    await vi.advanceTimersByTimeAsync(1);
    const afterOneMs = [...r.lines];
    await vi.advanceTimersByTimeAsync(2 ** 31 + 1000);
    const after25Days = [...r.lines];
    const heldAfter25Days = firewall.rules.size;
    await vi.advanceTimersByTimeAsync(40 * DAY * 1000 - 2 ** 31 - 1001);

    // Assess
    expect(afterOneMs).toEqual([]);
    expect(after25Days).toEqual([]);
    expect(heldAfter25Days).toBe(1);
    expect(r.lines).toEqual([expiredLine("tcp/22", 40 * DAY)]);
    expect(firewall.rules.size).toBe(0);
  });
});
