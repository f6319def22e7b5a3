/**
 * `spaknockd` itself: load the configuration, pick the capture and the firewall, run the daemon
 * until SIGTERM (SIGHUP reloads), or answer `--fw-list`, `--fw-revoke`, `--fw-flush` and `-K`.
 */
import { execFileSync } from "node:child_process";
import { mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { hostname } from "node:os";
import { dirname } from "node:path";
import { CommanderError } from "commander";
import { EXIT, type Notifier } from "../../core/index.js";
import { PcapCapture } from "../capture/pcap.js";
import { UdpSocketCapture } from "../capture/udp-socket.js";
import { type LoadedConfig, loadConfig } from "../config/load.js";
import { ControlSocket, controlSocketPath } from "../control-socket.js";
import { Spaknockd } from "../daemon.js";
import { ExecFileRunner } from "../firewall/command-runner.js";
import { IptablesFirewall } from "../firewall/iptables.js";
import {
  DryRunFirewall,
  type GrantMatch,
  type ManagedFirewall,
} from "../firewall/managed-firewall.js";
import { NftablesFirewall } from "../firewall/nftables.js";
import { type Log, stderrLog, syslogLog } from "../log.js";
import { EmailNotifier } from "../notify/email.js";
import { ExecHookNotifier } from "../notify/exec-hook.js";
import { ReplayFile } from "../replay-file.js";
import { runFwList } from "./fw-list.js";
import { runFwRevoke } from "./fw-revoke.js";

export interface DaemonOptions {
  config?: string;
  accessFile?: string;
  foreground?: boolean;
  interface?: string;
  test?: boolean;
  verbose?: boolean;
  fwList?: boolean;
  fwFlush?: boolean;
  /** `--fw-revoke`, already parsed (parseRevokeTarget). */
  fwRevoke?: GrantMatch;
  /** With --fw-list or --fw-revoke: one JSON document on stdout. */
  json?: boolean;
  kill?: boolean;
  strictPermissions?: boolean;
  udpServer?: boolean;
  firewall?: string;
}

function hasCommand(name: string): boolean {
  try {
    execFileSync(name, ["--version"], { stdio: "ignore", timeout: 5_000 });
    return true;
  } catch {
    return false;
  }
}

/** The capture actually used: `-i` asks for pcap and `-U` for the socket, over the config. */
function captureMode(opts: DaemonOptions, config: LoadedConfig): "udp" | "pcap" {
  if (opts.udpServer === true) return "udp";
  return config.settings.capture === "udp" && opts.interface === undefined ? "udp" : "pcap";
}

export function chooseFirewall(
  config: LoadedConfig,
  override: string | undefined,
  capture: "udp" | "pcap",
): ManagedFirewall {
  const runner = new ExecFileRunner();
  const wanted = override ?? config.settings.firewallBackend;
  const backend = wanted === "auto" ? (hasCommand("nft") ? "nftables" : "iptables") : wanted;
  if (backend === "nftables") {
    return new NftablesFirewall(runner, {
      table: config.settings.nftTable,
      guardPorts: config.guardPorts,
      // The socket's port is protected in the kernel; in pcap mode packets are seen before it.
      spaGuard:
        capture === "udp"
          ? {
              port: config.settings.udpPort,
              perSourcePerSecond: config.settings.spaRateLimit,
              shapeFilter: config.settings.spaShapeFilter,
            }
          : null,
    });
  }
  if (backend === "iptables")
    return new IptablesFirewall(runner, { chain: config.settings.iptablesChain });
  throw new CommanderError(
    EXIT.USAGE,
    "usage",
    `--firewall must be nftables, iptables or auto, got "${wanted}"`,
  );
}

function pidFileOf(config: LoadedConfig): string {
  return config.settings.pidFile ?? `${config.settings.runDir}/spaknockd.pid`;
}

const nowSec = () => Math.floor(Date.now() / 1000);

function logOf(opts: DaemonOptions, config: LoadedConfig): Log {
  return opts.foreground
    ? stderrLog(opts.verbose === true)
    : syslogLog(
        config.settings.syslogIdentity,
        config.settings.syslogFacility,
        opts.verbose === true,
      );
}

/** Options that only make sense together, checked before any file is read. */
function usageError(opts: DaemonOptions): string | null {
  if (opts.fwRevoke !== undefined && (opts.fwList || opts.fwFlush || opts.kill))
    return "--fw-revoke goes alone, without --fw-list, --fw-flush or -K";
  if (opts.json && !opts.fwList && opts.fwRevoke === undefined)
    return "--json goes with --fw-list or --fw-revoke";
  return null;
}

async function runDaemon(opts: DaemonOptions, config: LoadedConfig, log: Log): Promise<number> {
  const s = config.settings;
  for (const note of config.notes) log.warning(note);
  const useUdp = captureMode(opts, config) === "udp";
  const firewall = opts.test
    ? new DryRunFirewall()
    : chooseFirewall(config, opts.firewall, useUdp ? "udp" : "pcap");
  const capture = useUdp
    ? new UdpSocketCapture(s.udpListenAddress, s.udpPort)
    : new PcapCapture(opts.interface ?? s.pcapInterface, s.pcapFilter, s.pcapSnapLength);
  const now = Math.floor(Date.now() / 1000);
  const replay = s.digestFile
    ? ReplayFile.open(
        { path: s.digestFile, maxPacketAge: s.maxPacketAge, listenPort: s.udpPort },
        now,
      )
    : null;
  if (!replay) log.warning("ENABLE_DIGEST_PERSISTENCE is N: replayed packets will be accepted");
  const notifiers: Notifier[] = [];
  if (s.emailAddresses.length > 0) {
    notifiers.push(new EmailNotifier({ ...s.smtp, to: s.emailAddresses, hostname: hostname() }));
  }
  if (s.notifyExec) notifiers.push(new ExecHookNotifier(s.notifyExec));

  const daemon = new Spaknockd({
    stanzas: config.stanzas,
    maxPacketAge: s.maxPacketAge,
    serverKey: config.serverKey,
    firewall,
    replay,
    capture,
    notifiers,
    log,
    flushAtExit: s.flushAtExit && !opts.test,
    ...(replay ? { onAgingChange: (age: number | null) => replay.setMaxPacketAge(age) } : {}),
  });
  if (s.flushAtInit && !opts.test) await firewall.removeAllGrants().catch(() => {});
  await daemon.start();
  const pidFile = pidFileOf(config);
  try {
    mkdirSync(dirname(pidFile), { recursive: true, mode: 0o755 });
    writeFileSync(pidFile, `${process.pid}\n`);
  } catch (err) {
    log.warning(`cannot write pid file ${pidFile}: ${String(err)}`);
  }
  const how =
    capture instanceof UdpSocketCapture
      ? `udp socket ${capture.describe()}, ${capture.describeReader()}`
      : `pcap on ${opts.interface ?? s.pcapInterface} (${s.pcapFilter})`;
  // --fw-revoke reaches the daemon here (agent/control-socket.ts says why); not in test mode,
  // where nothing is opened and the socket of a real daemon with the same run dir must stay.
  const control = opts.test
    ? null
    : new ControlSocket(controlSocketPath(s.runDir), firewall, (m) => daemon.revoke(m), log);
  await control?.start().catch((err) => {
    log.warning(
      `no control socket (--fw-revoke will change the firewall without telling this daemon): ${String(err)}`,
    );
  });
  log.info(
    `spaknockd started: ${config.stanzas.length} access stanza(s) from ${config.accessFile}, capture ${how}, ` +
      `firewall ${firewall.label}${replay ? `, replay cache ${s.digestFile} (${replay.size} entries)` : ""}`,
  );

  return new Promise((resolve) => {
    let stopping = false;
    const stop = (signal: string) => {
      if (stopping) return;
      stopping = true;
      log.info(`got ${signal}, exiting`);
      (control ? control.stop() : Promise.resolve())
        .then(() => daemon.stop())
        .catch((err) => log.error(`error while stopping: ${String(err)}`))
        .finally(() => {
          rmSync(pidFile, { force: true });
          log.close();
          resolve(EXIT.OK);
        });
    };
    process.on("SIGTERM", () => stop("SIGTERM"));
    process.on("SIGINT", () => stop("SIGINT"));
    // One reload at a time, in signal order: a slow one never lands after a later one.
    let reloading = Promise.resolve();
    process.on("SIGHUP", () => {
      reloading = reloading.then(reload);
    });
    const reload = async () => {
      try {
        const next = await loadConfig({
          confFile: opts.config,
          accessFile: opts.accessFile,
          strictPermissions: opts.strictPermissions === true,
        });
        for (const note of next.notes) log.warning(note);
        daemon.reload({
          stanzas: next.stanzas,
          maxPacketAge: next.settings.maxPacketAge,
          serverKey: next.serverKey,
        });
        if (
          firewall instanceof NftablesFirewall &&
          next.guardPorts.length !== config.guardPorts.length
        ) {
          log.warning("guarded ports changed: restart spaknockd to apply them");
        }
        log.info(`reloaded: ${next.stanzas.length} access stanza(s)`);
      } catch (err) {
        log.error(
          `reload failed, keeping the running configuration: ${err instanceof Error ? err.message : String(err)}`,
        );
      }
    };
  });
}

export async function runDaemonCommand(opts: DaemonOptions): Promise<number> {
  const misuse = usageError(opts);
  if (misuse !== null) {
    process.stderr.write(`spaknockd: ${misuse}\n`);
    return EXIT.USAGE;
  }
  let config: LoadedConfig;
  try {
    config = await loadConfig({
      confFile: opts.config,
      accessFile: opts.accessFile,
      strictPermissions: opts.strictPermissions === true,
    });
  } catch (err) {
    process.stderr.write(`spaknockd: ${err instanceof Error ? err.message : String(err)}\n`);
    return EXIT.CONFIG;
  }
  if (opts.kill) {
    const pidFile = pidFileOf(config);
    try {
      const pid = Number(readFileSync(pidFile, "utf8").trim());
      process.kill(pid, "SIGTERM");
      process.stdout.write(`sent SIGTERM to spaknockd (pid ${pid})\n`);
      return EXIT.OK;
    } catch (err) {
      process.stderr.write(
        `spaknockd: no running spaknockd found via ${pidFile}: ${String(err)}\n`,
      );
      return EXIT.RUNTIME;
    }
  }
  const firewallOf = () => chooseFirewall(config, opts.firewall, captureMode(opts, config));
  if (opts.fwRevoke !== undefined) {
    return runFwRevoke(opts.fwRevoke, {
      controlSocket: controlSocketPath(config.settings.runDir),
      firewall: firewallOf,
      log: () => logOf(opts, config),
      json: opts.json === true,
      nowSec,
    });
  }
  if (opts.fwList || opts.fwFlush) {
    const firewall = firewallOf();
    if (opts.fwFlush) {
      await firewall.removeAll();
      process.stdout.write(`removed everything spaknock added (${firewall.label})\n`);
    } else await runFwList(firewall, opts.json === true, nowSec);
    return EXIT.OK;
  }
  return runDaemon(opts, config, logOf(opts, config));
}
