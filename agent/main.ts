#!/usr/bin/env -S node --max-semi-space-size=1
/**
 * `spaknockd`: the host daemon. Command line like fwknopd's. Exit codes: 0 ok, 1 runtime
 * failure, 2 usage, 3 configuration.
 */
import { Command, CommanderError, InvalidArgumentError } from "commander";
import { EXIT, isSpaError } from "../core/index.js";
import { type DaemonOptions, runDaemonCommand } from "./commands/daemon.js";
import { parseRevokeTarget } from "./commands/fw-revoke.js";
import type { RelayCliOptions } from "./commands/relay.js";
import { RELAY_DEFAULTS } from "./relay-defaults.js";

function revokeTargetOption(text: string) {
  try {
    return parseRevokeTarget(text);
  } catch (err) {
    throw new InvalidArgumentError(err instanceof Error ? err.message : String(err));
  }
}

function buildProgram(run: (opts: DaemonOptions) => Promise<number>): Command {
  const program = new Command("spaknockd").enablePositionalOptions();
  program
    .command("relay")
    .description("forward SPA datagrams to the spaknock knock Lambda (for AWS)")
    .requiredOption("--function <name-or-arn>", "the knock function")
    .option(
      "--listen <addr:port>",
      "where to listen: IPV4:PORT, or [IPV6]:PORT ([::] is dual-stack)",
      "[::]:62201",
    )
    .option("--region <region>", "AWS region (default: from the environment)")
    .option("--endpoint <url>", "Lambda endpoint override (tests, VPC endpoints)")
    .option(
      "--rate <n>",
      "invocations per source address per 10 s",
      String(RELAY_DEFAULTS.perSourceLimit),
    )
    .option("-f, --foreground", "log to stderr instead of syslog")
    .option("-v, --verbose", "debug logging (every dropped datagram)")
    .addHelpText(
      "after",
      "\nExample:\n  spaknockd relay --function spaknock-knock --listen '[::]:62201' -f\n",
    )
    .action(async (opts: RelayCliOptions) => {
      // Loaded here, not at start: the AWS SDK costs the daemon mode ~10 MiB it never uses.
      const { runRelay } = await import("./commands/relay.js");
      process.exitCode = await runRelay(opts);
    });
  return program
    .description(
      "Single Packet Authorization daemon, compatible with fwknop clients and config files",
    )
    .version("spaknockd 0.1.0", "-V, --version")
    .exitOverride()
    .option("-c, --config <file>", "fwknopd.conf-format file (default /etc/spaknock/fwknopd.conf)")
    .option(
      "-a, --access-file <file>",
      "access.conf-format file (default /etc/spaknock/access.conf)",
    )
    .option("-f, --foreground", "log to stderr instead of syslog")
    .option("-i, --interface <iface>", "sniff this interface with libpcap (implies pcap capture)")
    .option("-U, --udp-server", "capture with a silent UDP socket (the default)")
    .option("-t, --test", "decide and log, but change no firewall rule")
    .option("-v, --verbose", "debug logging")
    .option("--firewall <backend>", "nftables, iptables or auto (overrides FIREWALL_BACKEND)")
    .option("--strict-permissions", "refuse key files readable by group or others (default: warn)")
    .option("--fw-list", "list what spaknock has open, with time left, and exit")
    .option(
      "--fw-revoke <addr[:proto/port]>",
      "close spaknock's grant(s) for an address now ([IPV6]:proto/port with a port), and exit",
      revokeTargetOption,
    )
    .option("--json", "with --fw-list or --fw-revoke: one JSON document on stdout")
    .option("--fw-flush", "remove every rule spaknock added, and exit")
    .option("-K, --kill", "stop the running spaknockd (SIGTERM to the pid in its pid file)")
    .addHelpText(
      "after",
      [
        "",
        "Examples:",
        "  spaknockd -f -v                    # foreground, logs on stderr (/etc/spaknock/*.conf)",
        "  spaknockd -c /etc/fwknop/fwknopd.conf -a /etc/fwknop/access.conf   # fwknop's files",
        "  spaknockd --fw-list                # what is open now, with time left",
        "",
      ].join("\n"),
    )
    .action(async (opts: DaemonOptions) => {
      process.exitCode = await run(opts);
    });
}

try {
  await buildProgram(runDaemonCommand).parseAsync(process.argv);
} catch (err) {
  if (err instanceof CommanderError) process.exitCode = err.exitCode === 0 ? EXIT.OK : EXIT.USAGE;
  else {
    process.stderr.write(
      `spaknockd: ${isSpaError(err) ? `${err.code}: ` : ""}${err instanceof Error ? err.message : String(err)}\n`,
    );
    process.exitCode = EXIT.RUNTIME;
  }
}
