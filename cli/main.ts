#!/usr/bin/env node
/**
 * `spaknock`: the SPA client. Option names and meanings follow fwknop's, so muscle memory, rc
 * files and scripts carry over. Data goes to stdout, diagnostics to stderr, and exit codes are
 * decided here and only here: 0 ok, 1 runtime failure, 2 usage, 3 configuration.
 */
import { Command, CommanderError } from "commander";
import { isSpaError } from "../core/index.js";
import {
  applyRc,
  type ClientOptions,
  defaultRcPath,
  loadRcContext,
  stanzaNames,
} from "./client-settings.js";
import { runAudit } from "./commands/audit.js";
import { runDecode } from "./commands/decode.js";
import { renderChecks, runChecks } from "./commands/doctor.js";
import { runGrants, runRevoke } from "./commands/grants.js";
import { runJoseKeyGen, runKeyGen } from "./commands/keygen.js";
import { knockWithOptions } from "./commands/knock.js";
import { runProxy } from "./commands/proxy.js";
import { runSsh } from "./commands/ssh.js";
import { EXIT, UsageError } from "./exit-codes.js";
import { parseAccessOption } from "./knock-options.js";
import { withoutBrackets } from "./server-address.js";

const VERSION = "0.1.0";
const out = (line: string) => process.stdout.write(`${line}\n`);
const collect = (value: string, previous: string[]) => [...previous, value];
const warn = (line: string) => process.stderr.write(`spaknock: ${line}\n`);

function addKeyOptions(cmd: Command): Command {
  return cmd
    .option(
      "--key-rijndael <key>",
      "Rijndael (AES) key as text (visible in ps: prefer an rc file or the prompt)",
    )
    .option("--key-base64-rijndael <key>", "Rijndael key as base64 of the raw bytes")
    .option("--key-hmac <key>", "HMAC key as text (implies --use-hmac)")
    .option("--key-base64-hmac <key>", "HMAC key as base64 (implies --use-hmac)")
    .option(
      "--hmac-digest-type <type>",
      "HMAC digest: md5 sha1 sha256 sha384 sha512 sha3_256 sha3_512",
    )
    .option("--use-hmac", "authenticate the packet with an HMAC (strongly recommended)")
    .option("-M, --encryption-mode <mode>", "cbc (default), ctr, cfb, ofb, ecb or legacy");
}

function addStanzaOptions(cmd: Command): Command {
  return cmd
    .option("-n, --named-config <name>", "use this stanza of the rc file")
    .option("--rc-file <file>", "rc file (default ~/.fwknoprc)")
    .option("--no-rc-file", "read no rc file");
}

function addKnockOptions(cmd: Command): Command {
  addStanzaOptions(cmd)
    .option("--save-rc-stanza", "save these options as stanza -n NAME in the rc file (0600)")
    .option("--force-stanza", "with --save-rc-stanza: replace the stanza instead of updating it")
    .option("-A, --access <proto/port,...>", "ports to open, e.g. tcp/22 or tcp/22,udp/53")
    .option(
      "-a, --allow-ip <ip>",
      "the address the server should open for (IPv6 only with --signing-key)",
    )
    .option(
      "-s, --source-ip",
      "let the server use the packet's source address (sends 0.0.0.0, or :: to an IPv6 server)",
    )
    .option("-R, --resolve-ip-https", "learn your external address from --resolve-url")
    .option("--resolve-url <url>", "the http(s) URL that returns your external address")
    .option("-D, --destination <host>", "the SPA server")
    .option("-p, --server-port <port>", "server port (default 62201)")
    .option("-P, --server-proto <proto>", "udp (default), tcp or http")
    .option("-r, --rand-port", "send to a random port from the packet's random value, as fwknop")
    .option("-S, --source-port <port>", "source port of the packet")
    .option("-U, --spoof-user <user>", "username to send (default: your login name)")
    .option("-f, --fw-timeout <seconds>", "ask for this access time (the server caps it)")
    .option("-N, --nat-access <host:port>", "ask the server to forward to an internal host:port")
    .option("--nat-local", "ask the server to forward to a local port")
    .option("-C, --server-cmd <command>", "send a command message instead of an access request")
    .option(
      "-m, --digest-type <type>",
      "inner digest: md5 sha1 sha256 sha384 sha512 sha3_256 sha3_512",
    )
    .option(
      "-G, --get-key <file>",
      "read the encryption key from a file (`<server>: <key>` or just the key)",
    )
    .option("--get-hmac-key <file>", "read the HMAC key from a file")
    .option(
      "--signing-key <file>",
      "your Ed25519 private JWK (spaknock keygen --ed25519): send a JOSE-profile packet",
    )
    .option("--server-key <file>", "with --signing-key: the server's public X25519 JWK")
    .option("--stdin", "read the encryption key from standard input")
    .option("--fd <n>", "read the encryption key from this file descriptor")
    .option("--time-offset-plus <time>", "add time to the packet's timestamp (60, 5m, 2h, 1d)")
    .option("--time-offset-minus <time>", "subtract time from the packet's timestamp")
    .option("-B, --save-packet <file>", "also write the SPA data to this file")
    .option("-u, --user-agent <ua>", "HTTP User-Agent with -P http (must start with Fwknop)")
    .option("-T, --test", "build the packet and print it; send nothing")
    .option("-v, --verbose", "print the packet's fields (never the keys)");
  return addKeyOptions(cmd);
}

function parseWait(value: string): number {
  const seconds = Number(value);
  if (!Number.isFinite(seconds) || seconds <= 0 || seconds > 3600) {
    throw new UsageError(`--wait "${value}": expected seconds in 1..3600`);
  }
  return seconds * 1000;
}

/** The default tcp port to wait for: the first tcp/N of the stanza's ACCESS. */
function firstTcpPort(access: string | undefined): number | null {
  if (!access) return null;
  const m = /tcp\/([0-9]+)/.exec(parseAccessOption(access).text);
  return m ? Number(m[1]) : null;
}

export function buildProgram(): Command {
  const program = new Command("spaknock")
    .description(
      "Send one fwknop-compatible Single Packet Authorization packet to open a port for your address.",
    )
    .version(`spaknock ${VERSION} (fwknop 2.x wire format, FKO protocol 3.0.0)`, "-V, --version")
    .enablePositionalOptions()
    .exitOverride()
    .configureOutput({ writeErr: (s) => process.stderr.write(s) })
    .option(
      "-k, --key-gen",
      "print a new KEY_BASE64 and HMAC_KEY_BASE64 (from the CSPRNG) and exit",
    )
    .option("-K, --key-gen-file <file>", "with -k: write the new keys to this file (0600)")
    .option("--stanza-list", "list the stanzas of the rc file and exit")
    .option("--json", "with --stanza-list: print JSON")
    .addHelpText(
      "after",
      [
        "",
        "Examples:",
        "  spaknock -k                # new KEY_BASE64 / HMAC_KEY_BASE64 for access.conf",
        "  spaknock -n prod           # knock with the stanza [prod] of ~/.fwknoprc",
        "  spaknock -n prod -T -v     # print the packet's fields, send nothing",
        "",
      ].join("\n"),
    );
  addKnockOptions(program).action(
    async (opts: ClientOptions & { keyGen?: boolean; keyGenFile?: string; json?: boolean }) => {
      if (opts.keyGen || opts.keyGenFile) {
        runKeyGen(opts, out);
        return;
      }
      if (opts.stanzaList) {
        const file = opts.rcFile || defaultRcPath();
        const names = stanzaNames(file);
        if (opts.json) out(JSON.stringify({ rcFile: file, stanzas: names }));
        else out([`stanzas in ${file}:`, ...names.map((n) => ` - ${n}`)].join("\n"));
        return;
      }
      await knockWithOptions(opts, out, warn);
    },
  );

  addKeyOptions(
    program
      .command("decode")
      .description("verify and decode SPA data with the given keys")
      .argument("<spa-data>", "the SPA data (the exact wire string)")
      .option("--server-key <file>", "JOSE profile: the server's private X25519 JWK")
      .option("--authorized-keys <file>", "JOSE profile: the JWK Set of users' public keys")
      .option("--json", "print one JSON object")
      .addHelpText(
        "after",
        '\nExample:\n  spaknock decode "$(cat packet.txt)" --key-base64-rijndael K --key-base64-hmac H --json\n',
      ),
  ).action(async (spaData: string, opts) => {
    await runDecode(spaData, opts, out, warn);
  });

  program
    .command("keygen")
    .description(
      "make a key pair for JOSE-profile packets: the private JWK to a file (0600), the public JWK on stdout",
    )
    .option("--ed25519", "a user's signing key (its public half goes to AUTHORIZED_KEYS)")
    .option("--x25519", "a server's key (SERVER_KEY_FILE in fwknopd.conf)")
    .option("-o, --output <file>", "where to write the private key (never an existing file)")
    .addHelpText(
      "after",
      "\nExample:\n  spaknock keygen --ed25519 -o ~/.spaknock/alice.jwk > alice.pub.jwk\n",
    )
    .action(async (opts) => {
      await runJoseKeyGen(opts, out, warn);
    });

  addStanzaOptions(
    program
      .command("ssh")
      .description("knock with the stanza, wait until its tcp port answers, then run ssh")
      .option("--wait <seconds>", "how long to wait for the port after the knock", "10")
      .option("--port <port>", "the tcp port to wait for (default: the first tcp port of ACCESS)")
      .argument(
        "[ssh-args...]",
        "arguments for ssh (default: the stanza's SPA_SERVER); put ssh's own options after --",
      )
      .passThroughOptions()
      .addHelpText("after", "\nExample:\n  spaknock ssh -n prod -- -p 22 alice@198.18.0.1\n"),
  ).action(async (sshArgs: string[], opts: ClientOptions & { wait: string; port?: string }) => {
    // The stanza says where to knock and which port to wait for; runSsh sends the knock itself.
    const stanza = applyRc(opts, loadRcContext(opts).values);
    if (!stanza.destination) throw new UsageError("the stanza names no SPA_SERVER");
    const port = opts.port ? Number(opts.port) : firstTcpPort(stanza.access);
    if (!port) throw new UsageError("no tcp port to wait for: give --port or a tcp/N in ACCESS");
    process.exitCode = await runSsh({
      host: stanza.destination,
      port,
      knock: async () => {
        await knockWithOptions(opts, () => {}, warn);
      },
      waitTimeoutMs: parseWait(opts.wait),
      sshArgs: sshArgs.length > 0 ? sshArgs : [stanza.destination],
    });
  });

  addStanzaOptions(
    program
      .command("proxy")
      .description(
        "for ssh's ProxyCommand: knock, wait for HOST:PORT, then relay stdin/stdout to it",
      )
      .argument(
        "<host>",
        "the host to connect to (also the SPA server unless the stanza names one)",
      )
      .argument("<port>", "the tcp port to connect to")
      .option("--wait <seconds>", "how long to wait for the port after the knock", "10")
      .addHelpText(
        "after",
        "\nExample:\n  ssh -o 'ProxyCommand spaknock proxy %h %p -n prod' alice@198.18.0.1\n",
      ),
  ).action(async (given: string, port: string, opts: ClientOptions & { wait: string }) => {
    // ssh's %h is a bare IPv6 literal; a user may well write it in brackets.
    const host = withoutBrackets(given);
    const portNumber = Number(port);
    if (!Number.isInteger(portNumber) || portNumber < 1 || portNumber > 65535) {
      throw new UsageError(`port "${port}" is not 1..65535`);
    }
    process.exitCode = await runProxy({
      host,
      port: portNumber,
      knock: async () => {
        await knockWithOptions(
          { destination: host, access: `tcp/${portNumber}`, ...opts },
          () => {},
          warn,
        );
      },
      waitTimeoutMs: parseWait(opts.wait),
      stdin: process.stdin,
      stdout: process.stdout,
      stderr: process.stderr,
    });
  });

  const scopeOptions = (cmd: Command): Command =>
    cmd
      .option("--config <file>", "the stack's spaknock.cloud.json (default ./spaknock.cloud.json)")
      .option("--region <region>", "a region to ask (repeatable; default: the SDK's)", collect, [])
      .option("--all-regions", 'every region in the config\'s "regions"')
      .option(
        "--group <sg-id>",
        "a guarded security group (repeatable; default: the config's)",
        collect,
        [],
      );

  scopeOptions(
    program
      .command("audit")
      .description(
        "pair CloudTrail's rule events into grants: who, from where, when, closed by what",
      )
      .option("--since <when>", "start: 24h, 7d, 90m or a date (default 24h)")
      .option("--until <when>", "end: a date, or 1h for an hour ago (default now)")
      .option("--user <name>", "only this engineer's grants")
      .option("--late-after <seconds>", "a close this long after the expiry is flagged late", "180")
      .option("--json", "one JSON object per grant, a line each")
      .option("--csv", "CSV for spreadsheets")
      .addHelpText(
        "after",
        "\nExample:\n  spaknock audit --since 7d --user alice --config spaknock.cloud.json\n",
      ),
  ).action(async (opts) => {
    await runAudit(opts, out);
  });

  scopeOptions(
    program
      .command("grants")
      .description("list the spaknock grants open now in the guarded groups (AWS)")
      .option("--json", "print JSON")
      .addHelpText("after", "\nExample:\n  spaknock grants --all-regions --json\n"),
  ).action(async (opts) => {
    await runGrants(opts, out);
  });

  scopeOptions(
    program
      .command("revoke")
      .description("close spaknock grants early (AWS): only spaknock-tagged rules")
      .option("--rule <sgr-id>", "this rule")
      .option("--user <name>", "every grant of this engineer")
      .option("--source <ip>", "every grant for this address")
      .option("--json", "print JSON")
      .addHelpText("after", "\nExample:\n  spaknock revoke --user alice\n"),
  ).action(async (opts) => {
    if ((await runRevoke(opts, out)) === 0) process.exitCode = EXIT.RUNTIME;
  });

  addStanzaOptions(
    program
      .command("doctor")
      .description("check a stanza: keys, server, clock; say what is wrong in words")
      .option("--json", "print JSON")
      .addHelpText("after", "\nExample:\n  spaknock doctor -n prod\n"),
  ).action(async (opts: ClientOptions & { json?: boolean }) => {
    const checks = await runChecks(opts);
    if (opts.json) out(JSON.stringify({ ok: checks.every((c) => c.ok), checks }));
    else out(renderChecks(checks));
    if (!checks.every((c) => c.ok)) process.exitCode = EXIT.CONFIG;
  });
  return program;
}

export async function main(argv: string[]): Promise<number> {
  try {
    await buildProgram().parseAsync(argv);
    return typeof process.exitCode === "number" ? process.exitCode : EXIT.OK;
  } catch (err) {
    if (err instanceof CommanderError) {
      // --help and --version end here too, with exit code 0.
      return err.exitCode === 0 ? EXIT.OK : EXIT.USAGE;
    }
    if (err instanceof UsageError) {
      warn(err.message);
      return EXIT.USAGE;
    }
    if (isSpaError(err)) {
      warn(`${err.code}: ${err.message}`);
      return err.code === "ARG_INVALID" || err.code === "KEY_INVALID" ? EXIT.USAGE : EXIT.RUNTIME;
    }
    const message = err instanceof Error ? err.message : String(err);
    warn(message);
    return EXIT.RUNTIME;
  }
}

// `spaknock -T -v | head` closes the pipe early: that is not an error worth a stack trace.
process.stdout.on("error", (err: NodeJS.ErrnoException) => {
  if (err.code === "EPIPE") process.exit(process.exitCode ?? 0);
});

process.exitCode = await main(process.argv);
