import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { SMTPServer } from "smtp-server";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Capture, Datagram } from "../../agent/capture/datagram.js";
import { Spaknockd } from "../../agent/daemon.js";
import { DryRunFirewall } from "../../agent/firewall/managed-firewall.js";
import type { Log } from "../../agent/log.js";
import { EmailNotifier } from "../../agent/notify/email.js";
import { ExecHookNotifier } from "../../agent/notify/exec-hook.js";
import type { Grant, Notifier } from "../../core/index.js";
import { packet, stanza } from "../helpers/knock-fakes.js";

const grant: Grant = {
  sourceIp: "198.18.0.2",
  ports: [{ proto: "tcp", port: 22 }],
  username: "alice",
  openedAt: 1_795_605_803,
  expiresAt: 1_795_605_833,
  timeoutSec: 30,
  stanza: 1,
  targets: [],
};

class ManualCapture implements Capture {
  deliver: (d: Datagram) => void = () => {};
  async start(onDatagram: (d: Datagram) => void) {
    this.deliver = onDatagram;
  }
  async stop() {}
}

function memoryLog(lines: string[]): Log {
  const push = (level: string) => (m: string) => lines.push(`${level} ${m}`);
  return {
    error: push("error"),
    warning: push("warning"),
    info: push("info"),
    debug: () => {},
    close: () => {},
  };
}

const until = async (cond: () => boolean, ms = 3000) => {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error("timed out");
    await new Promise((r) => setTimeout(r, 10));
  }
};

describe("email notification", () => {
  const received: { to: string[]; body: string }[] = [];
  let server: SMTPServer;
  let port = 0;
  beforeAll(async () => {
    server = new SMTPServer({
      authOptional: true,
      disabledCommands: ["STARTTLS"],
      onData(stream, session, callback) {
        let body = "";
        stream.on("data", (c: Buffer) => {
          body += c.toString();
        });
        stream.on("end", () => {
          received.push({ to: session.envelope.rcptTo.map((r) => r.address), body });
          callback();
        });
      },
    });
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", () => r()));
    port = (server.server.address() as AddressInfo).port;
  });
  afterAll(() => new Promise<void>((r) => server.close(() => r())));

  it("sends a mail on open and on close to every address, over real SMTP", async () => {
    const mail = new EmailNotifier({
      to: ["ops@example.test", "sec@example.test"],
      from: "spaknockd@host.test",
      host: "127.0.0.1",
      port,
      secure: false,
      hostname: "bastion",
    });
    await mail.opened(grant);
    await mail.closed(grant);
    expect(received).toHaveLength(2);
    expect(received[0]?.to).toEqual(["ops@example.test", "sec@example.test"]);
    expect(received[0]?.body).toContain("Subject: [spaknockd bastion] opened 198.18.0.2 for alice");
    expect(received[0]?.body).toContain("ports:   tcp/22");
    expect(received[1]?.body).toContain("closed 198.18.0.2 for alice");
  });

  it("a mail server that is down fails the notification, not the grant", async () => {
    const lines: string[] = [];
    const capture = new ManualCapture();
    const deadMail = new EmailNotifier({
      to: ["ops@example.test"],
      from: "x@host.test",
      host: "127.0.0.1",
      port: 1, // nothing listens there
      secure: false,
      hostname: "bastion",
    });
    const daemon = new Spaknockd({
      stanzas: [stanza({ fwAccessTimeout: 1 })],
      maxPacketAge: null,
      serverKey: null,
      firewall: new DryRunFirewall(),
      replay: null,
      capture,
      notifiers: [deadMail],
      log: memoryLog(lines),
      flushAtExit: false,
    });
    await daemon.start();
    capture.deliver({
      payload: packet(),
      sourceIp: "198.18.0.2",
      sourcePort: 4000,
      destinationIp: null,
      receivedAt: Date.now(),
    });
    await until(() => lines.some((l) => l.includes("notification (opened)")));
    expect(daemon.stats.granted).toBe(1);
    expect(lines.some((l) => l.startsWith("info add "))).toBe(true);
    await daemon.stop();
  });
});

describe("exec hook", () => {
  const dir = mkdtempSync(join(tmpdir(), "spk-hook-"));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it("gets the event as its argument and the grant as JSON on stdin", async () => {
    const out = join(dir, "events");
    const hook = join(dir, "hook.sh");
    writeFileSync(hook, `#!/bin/sh\n{ printf '%s ' "$1"; cat; } >> ${out}\n`);
    chmodSync(hook, 0o700);
    const notifier: Notifier = new ExecHookNotifier(hook);
    await notifier.opened(grant, []);
    await notifier.closed(grant);
    const [open, close] = readFileSync(out, "utf8").trim().split("\n");
    expect(open?.startsWith("open ")).toBe(true);
    expect(JSON.parse(open?.slice(5) ?? "")).toEqual({ event: "open", grant });
    expect(JSON.parse(close?.slice(6) ?? "").event).toBe("close");
  });

  it("reports a failing hook as an error", async () => {
    await expect(new ExecHookNotifier("/bin/false").opened(grant)).rejects.toThrow(/false open/);
  });
});
