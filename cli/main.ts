#!/usr/bin/env node
/**
 * `spaknock`: the SPA client. Option names and meanings follow fwknop's, so muscle memory and
 * scripts carry over. Exit codes are decided here and only here.
 */
import { Command, CommanderError, Option } from "commander";
import { isSpaError } from "../core/index.js";
import { runDecode } from "./commands/decode.js";
import { runKnock } from "./commands/knock.js";
import { EXIT, UsageError } from "./exit-codes.js";

const VERSION = "0.1.0";
const out = (line: string) => process.stdout.write(`${line}\n`);

function addKeyOptions(cmd: Command): Command {
  return cmd
    .option("--key-rijndael <key>", "Rijndael (AES) key as text")
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

export function buildProgram(): Command {
  const program = new Command("spaknock")
    .description(
      "Send one fwknop-compatible Single Packet Authorization packet to open a port for your address.",
    )
    .version(`spaknock ${VERSION} (fwknop 2.x wire format, FKO protocol 3.0.0)`, "-V, --version")
    .enablePositionalOptions()
    .exitOverride()
    .configureOutput({ writeErr: (s) => process.stderr.write(s) })
    .option("-A, --access <proto/port,...>", "ports to open, e.g. tcp/22 or tcp/22,udp/53")
    .option("-a, --allow-ip <ip>", "the address the server should open for")
    .option("-s, --source-ip", "let the server use the packet's source address (sends 0.0.0.0)")
    .option("-D, --destination <host>", "the SPA server")
    .option("-p, --server-port <port>", "server port (default 62201)")
    .option("-U, --spoof-user <user>", "username to send (default: your login name)")
    .option("-f, --fw-timeout <seconds>", "ask for this access time (the server caps it)")
    .option("-N, --nat-access <host:port>", "ask the server to forward to an internal host:port")
    .option("--nat-local", "ask the server to forward to a local port")
    .option("-C, --server-cmd <command>", "send a command message instead of an access request")
    .addOption(
      new Option(
        "-m, --digest-type <type>",
        "inner digest: md5 sha1 sha256 sha384 sha512 sha3_256 sha3_512",
      ),
    )
    .option("-T, --test", "build the packet and print it; send nothing")
    .option("-v, --verbose", "print the packet's fields (never the keys)");
  addKeyOptions(program).action(async (opts) => {
    await runKnock(opts, out);
  });

  addKeyOptions(
    program
      .command("decode")
      .description("verify and decode SPA data with the given keys")
      .argument("<spa-data>", "the SPA data (the exact wire string)")
      .option("--json", "print one JSON object"),
  ).action((spaData: string, opts) => {
    runDecode(spaData, opts, out);
  });
  return program;
}

export async function main(argv: string[]): Promise<number> {
  try {
    await buildProgram().parseAsync(argv);
    return EXIT.OK;
  } catch (err) {
    if (err instanceof CommanderError) {
      // --help and --version end here too, with exit code 0.
      return err.exitCode === 0 ? EXIT.OK : EXIT.USAGE;
    }
    if (err instanceof UsageError) {
      process.stderr.write(`spaknock: ${err.message}\n`);
      return EXIT.USAGE;
    }
    if (isSpaError(err)) {
      process.stderr.write(`spaknock: ${err.code}: ${err.message}\n`);
      return err.code === "ARG_INVALID" || err.code === "KEY_INVALID" ? EXIT.USAGE : EXIT.RUNTIME;
    }
    const message = err instanceof Error ? err.message : String(err);
    process.stderr.write(`spaknock: ${message}\n`);
    return EXIT.RUNTIME;
  }
}

process.exitCode = await main(process.argv);
