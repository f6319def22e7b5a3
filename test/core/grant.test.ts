// grantAccess: the grant's life after the decision, as both receivers run it.
import { describe, expect, it } from "vitest";
import {
  type Expiry,
  type Grant,
  grantAccess,
  type KnockInput,
  type Notifier,
  type OpenedRule,
} from "../../core/index.js";
import { MemoryFirewall, MemoryReplay, packet, stanza } from "../helpers/knock-fakes.js";

const NOW = 1_795_605_803;
const input = (payload: Buffer): KnockInput => ({
  payload,
  sourceIp: "198.18.0.2",
  sourcePort: 40000,
  destinationIp: null,
  receivedAt: NOW * 1000,
});
const settings = { maxPacketAge: 120 };

class RecordingExpiry implements Expiry {
  readonly scheduled: [Grant, readonly OpenedRule[]][] = [];
  failWith: Error | null = null;
  async scheduleClose(grant: Grant, rules: readonly OpenedRule[]): Promise<string> {
    if (this.failWith) throw this.failWith;
    this.scheduled.push([grant, rules]);
    return "schedule-1";
  }
}

class RecordingNotifier implements Notifier {
  readonly opened_: Grant[] = [];
  constructor(private readonly fail = false) {}
  async opened(grant: Grant): Promise<void> {
    if (this.fail) throw new Error("smtp down");
    this.opened_.push(grant);
  }
  async closed(): Promise<void> {}
}

describe("grantAccess", () => {
  it("opens, schedules the close with the rules the firewall returned, and notifies", async () => {
    // Prepare
    const expiry = new RecordingExpiry();
    const mail = new RecordingNotifier();
    const parts = {
      stanzas: [stanza({ securityGroups: ["sg-0123456789abcdef0"] })],
      replay: new MemoryReplay(),
      firewall: new MemoryFirewall(),
      expiry,
      notifiers: [mail],
    };
    // Act
    const outcome = await grantAccess(input(packet()), parts, settings);
    // Assess
    if (!outcome.granted) throw new Error(`refused: ${outcome.code}`);
    expect(outcome.grant.targets).toEqual(["sg-0123456789abcdef0"]);
    expect(outcome.schedule).toBe("schedule-1");
    expect(outcome.scheduleError).toBeNull();
    expect(expiry.scheduled).toEqual([
      [outcome.grant, [{ target: "memory", ruleId: "198.18.0.2 tcp/22" }]],
    ]);
    expect(await outcome.notified).toEqual([]);
    expect(mail.opened_).toEqual([outcome.grant]);
  });

  it("keeps the grant when the close cannot be scheduled, and says why", async () => {
    const expiry = new RecordingExpiry();
    expiry.failWith = new Error("ThrottlingException");
    const firewall = new MemoryFirewall();
    const parts = {
      stanzas: [stanza()],
      replay: new MemoryReplay(),
      firewall,
      expiry,
      notifiers: [],
    };
    const outcome = await grantAccess(input(packet()), parts, settings);
    expect(outcome).toMatchObject({
      granted: true,
      schedule: null,
      scheduleError: "ThrottlingException",
    });
    expect(firewall.opened).toHaveLength(1);
  });

  it("reports a failed notifier without failing the grant or the other notifiers", async () => {
    const good = new RecordingNotifier();
    const parts = {
      stanzas: [stanza()],
      replay: new MemoryReplay(),
      firewall: new MemoryFirewall(),
      expiry: null,
      notifiers: [new RecordingNotifier(true), good],
    };
    const outcome = await grantAccess(input(packet()), parts, settings);
    if (!outcome.granted) throw new Error(`refused: ${outcome.code}`);
    expect(await outcome.notified).toEqual(["smtp down"]);
    expect(good.opened_).toHaveLength(1);
  });

  it("schedules nothing when no rule of spaknock's holds the door", async () => {
    const expiry = new RecordingExpiry();
    const firewall = new MemoryFirewall();
    firewall.open = async (grant) => {
      firewall.opened.push(grant);
      return []; // an admin's rule already lets the address in
    };
    const parts = {
      stanzas: [stanza()],
      replay: new MemoryReplay(),
      firewall,
      expiry,
      notifiers: [],
    };
    const outcome = await grantAccess(input(packet()), parts, settings);
    expect(outcome).toMatchObject({ granted: true, schedule: null, scheduleError: null });
    expect(expiry.scheduled).toEqual([]);
  });

  it("passes a refusal through without scheduling or notifying", async () => {
    const expiry = new RecordingExpiry();
    const mail = new RecordingNotifier();
    const parts = {
      stanzas: [stanza()],
      replay: new MemoryReplay(),
      firewall: new MemoryFirewall(),
      expiry,
      notifiers: [mail],
    };
    const outcome = await grantAccess(input(packet({ timestamp: NOW - 500 })), parts, settings);
    expect(outcome).toMatchObject({ granted: false, code: "SPA_STALE" });
    expect(expiry.scheduled).toEqual([]);
    expect(mail.opened_).toEqual([]);
  });
});
