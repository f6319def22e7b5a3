// `spaknock proxy` for real: in a test net, a TCP echo server sits behind a port the server's
// firewall refuses, and the real fwknopd 2.6.10 opens it. From the client namespace the proxy
// knocks, waits for the port and relays: "hello\n" written to its stdin comes back on its stdout.

import { type ChildProcess, execFile } from "node:child_process";
import { randomBytes } from "node:crypto";
import { existsSync } from "node:fs";
import { copyFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type Fwknopd, fwknopdSkipReason, startFwknopd } from "../helpers/fwknopd.js";
import {
  type InteropKeys,
  SPAKNOCK_CLI,
  spaknockCliMissingReason,
  spaknockKeyArgs,
  spaknockTestPacket,
} from "../helpers/interop-spaknock-cli.js";
import {
  closeServerTcp,
  createTestNet,
  findExecutable,
  netnsSkipReason,
  startTcpListener,
  type TestNet,
  tcpConnect,
} from "../helpers/netns.js";
import { peerSkipReason } from "../helpers/peers.js";

const skipReason = netnsSkipReason() ?? fwknopdSkipReason();

interface SshTools {
  readonly ssh: string;
  readonly sshd: string;
  readonly keygen: string;
  readonly unshare: string;
}

/** The programs the sshd tests run, or why they cannot run. */
function findSshTools(): SshTools | { readonly missing: string } {
  const ssh = findExecutable("ssh");
  const keygen = findExecutable("ssh-keygen");
  const sshd = findExecutable("sshd");
  const unshare = findExecutable("unshare");
  if (ssh === undefined || keygen === undefined) {
    return { missing: "ssh is not installed (apt-get install openssh-client)" };
  }
  if (sshd === undefined)
    return { missing: "sshd is not installed (apt-get install openssh-server)" };
  if (unshare === undefined) return { missing: "unshare (util-linux) is not installed" };
  return { ssh, keygen, sshd, unshare };
}

const sshTools = findSshTools();
const sshSkipReason = peerSkipReason(
  "missing" in sshTools ? { reason: sshTools.missing, aptPackage: "openssh-server" } : undefined,
);
const PROXY_JS = fileURLToPath(new URL("../../dist/cli/commands/proxy.js", import.meta.url));
const TRANSPORT_JS = fileURLToPath(new URL("../../dist/cli/transport.js", import.meta.url));
const SPA_PORT = 62201;
const USER = "alice";
// One echo server per test: fwknopd adds no rule identical to one it already added.
const ECHO = { script: 2401, cli: 2402, neverOpened: 2403 } as const;
// sshd listens on both; one is knocked by ssh's ProxyCommand, the other by `spaknock ssh`.
const SSHD = { proxyCommand: 2405, sshCommand: 2406 } as const;
const GUARDED_PORTS = "2400:2499";
const STANZA = "lab";
const EXIT_WAIT_MS = 15_000;

// Runs in the client namespace as `node --input-type=module -e SCRIPT proxy.js transport.js host
// port spaPort wire waitMs`: runProxy with stdio, knocking by sending the prebuilt wire over UDP.
const PROXY_SCRIPT = `
const [proxyPath, transportPath, host, port, spaPort, wire, waitMs] = process.argv.slice(1);
const { runProxy } = await import(proxyPath);
const { sendSpa } = await import(transportPath);
process.exitCode = await runProxy({
  host,
  port: Number(port),
  knock: () => sendSpa("udp", host, Number(spaPort), wire),
  waitTimeoutMs: Number(waitMs),
  stdin: process.stdin,
  stdout: process.stdout,
  stderr: process.stderr,
});
`;

/** PIDs of the processes in `ns` (ip netns pids). */
function namespacePids(ns: string): Promise<number[]> {
  return new Promise((resolve) => {
    execFile("ip", ["netns", "pids", ns], { encoding: "utf8" }, (err, stdout) => {
      resolve(err === null ? stdout.split(/\s+/).filter(Boolean).map(Number) : []);
    });
  });
}

interface ProxyRun {
  readonly child: ChildProcess;
  stdout(): string;
  stderr(): string;
  /** Resolves once stdout contains `text`; rejects if the proxy exits first. */
  waitForStdout(text: string, timeoutMs?: number): Promise<void>;
  /** Resolves with the exit code (null for a signal). */
  exited(timeoutMs?: number): Promise<number | null>;
}

function watch(child: ChildProcess): ProxyRun {
  let out = "";
  let err = "";
  let exitCode: number | null | undefined;
  const exitWaiters: (() => void)[] = [];
  const outWaiters: (() => void)[] = [];
  child.stdout?.setEncoding("utf8").on("data", (chunk: string) => {
    out += chunk;
    for (const w of outWaiters.splice(0)) w();
  });
  child.stderr?.setEncoding("utf8").on("data", (chunk: string) => {
    err += chunk;
  });
  child.once("exit", (code) => {
    exitCode = code;
    for (const w of [...exitWaiters.splice(0), ...outWaiters.splice(0)]) w();
  });
  const describeRun = (): string => `stdout: ${JSON.stringify(out)}\nstderr: ${err}`;
  return {
    child,
    stdout: () => out,
    stderr: () => err,
    waitForStdout: (text, timeoutMs = EXIT_WAIT_MS) =>
      new Promise((resolve, reject) => {
        const timer = setTimeout(
          () => reject(new Error(`no ${JSON.stringify(text)} on stdout\n${describeRun()}`)),
          timeoutMs,
        );
        const check = (): void => {
          if (out.includes(text)) {
            clearTimeout(timer);
            resolve();
          } else if (exitCode !== undefined) {
            clearTimeout(timer);
            reject(new Error(`proxy exited (${exitCode}) first\n${describeRun()}`));
          } else outWaiters.push(check);
        };
        check();
      }),
    exited: (timeoutMs = EXIT_WAIT_MS) =>
      new Promise((resolve, reject) => {
        const timer = setTimeout(
          () => reject(new Error(`proxy still running after ${timeoutMs} ms\n${describeRun()}`)),
          timeoutMs,
        );
        const check = (): void => {
          clearTimeout(timer);
          resolve(exitCode ?? null);
        };
        if (exitCode !== undefined) check();
        else exitWaiters.push(check);
      }),
  };
}

describe.skipIf(skipReason !== undefined)(
  `spaknock proxy -> fwknopd${skipReason === undefined ? "" : ` (skipped: ${skipReason})`}`,
  () => {
    const keys: InteropKeys = {
      kind: "base64",
      key: randomBytes(32).toString("base64"),
      hmacKey: randomBytes(64).toString("base64"),
    };
    let net: TestNet;
    let fwknopd: Fwknopd;

    beforeAll(async () => {
      // A missing build is a broken setup, not a reason to skip.
      for (const file of [SPAKNOCK_CLI, PROXY_JS, TRANSPORT_JS]) {
        if (!existsSync(file)) {
          throw new Error(spaknockCliMissingReason() ?? `${file} is missing: run npm run build`);
        }
      }
      net = await createTestNet();
      await closeServerTcp(net, "reset", GUARDED_PORTS);
      for (const port of Object.values(ECHO)) await startTcpListener(net, net.server.ns, port);
      fwknopd = await startFwknopd(net, {
        stanzas: [
          {
            keyBase64: keys.key,
            hmacKeyBase64: keys.hmacKey ?? undefined,
            hmacDigestType: "sha256",
            openPorts: [...Object.values(ECHO), ...Object.values(SSHD)]
              .map((port) => `tcp/${port}`)
              .join(", "),
            fwAccessTimeout: 30,
          },
        ],
      });
    });

    afterAll(async () => {
      await net?.destroy();
    });

    /** Starts runProxy (through PROXY_SCRIPT) in the client namespace, knocking with `wire`. */
    function startScriptProxy(port: number, wire: string, waitMs: number): ProxyRun {
      return watch(
        net.spawn(
          net.client.ns,
          [
            process.execPath,
            "--input-type=module",
            "-e",
            PROXY_SCRIPT,
            PROXY_JS,
            TRANSPORT_JS,
            net.server.ip,
            String(port),
            String(SPA_PORT),
            wire,
            String(waitMs),
          ],
          { stdio: ["pipe", "pipe", "pipe"] },
        ),
      );
    }

    /** `spaknock -T` wire opening tcp/`port` for the client, made with `packetKeys`. */
    function wireFor(port: number, packetKeys: InteropKeys = keys): Promise<string> {
      return spaknockTestPacket([
        "-A",
        `tcp/${port}`,
        "-a",
        net.client.ip,
        "-U",
        USER,
        ...spaknockKeyArgs(packetKeys),
        "-D",
        net.server.ip,
      ]);
    }

    /** A 0600 rc file with stanza STANZA holding the keys; `lines` are added to the stanza. */
    async function writeRcFile(
      lines: readonly string[] = [],
    ): Promise<{ dir: string; rcFile: string }> {
      const dir = net.makeTempDir("rc");
      const rcFile = join(dir, "fwknoprc");
      await writeFile(
        rcFile,
        [
          "[default]",
          "",
          `[${STANZA}]`,
          `ALLOW_IP ${net.client.ip}`,
          `SPOOF_USER ${USER}`,
          `KEY_BASE64 ${keys.key}`,
          `HMAC_KEY_BASE64 ${keys.hmacKey}`,
          "USE_HMAC Y",
          ...lines,
          "",
        ].join("\n"),
        { mode: 0o600 },
      );
      return { dir, rcFile };
    }

    it("runProxy knocks, waits for the closed port to open, and relays an echo round trip", async () => {
      // Prepare
      expect(await tcpConnect(net, net.client.ns, net.server.ip, ECHO.script)).toBe(false);
      const from = fwknopd.mark();

      // Act
      const proxy = startScriptProxy(ECHO.script, await wireFor(ECHO.script), 10_000);
      proxy.child.stdin?.write("hello\n");
      await proxy.waitForStdout("hello\n");
      proxy.child.stdin?.end();

      // Assess: stdin's EOF half-closes, the echo server closes, the proxy exits 0 by itself.
      expect(await proxy.exited()).toBe(0);
      expect(proxy.stdout()).toBe("hello\n");
      expect(proxy.stderr()).toBe("");
      await fwknopd.waitForLog(
        new RegExp(`Added access rule to FWKNOP_INPUT for \\S+ -> \\S+ tcp/${ECHO.script},`),
        5_000,
        from,
      );
    });

    it("`spaknock proxy HOST PORT -n NAME` (the ProxyCommand line) relays an echo round trip", async () => {
      // Prepare: keys live only in the rc file (0600), as in ~/.fwknoprc.
      expect(await tcpConnect(net, net.client.ns, net.server.ip, ECHO.cli)).toBe(false);
      const { dir, rcFile } = await writeRcFile();

      // Act
      const proxy = watch(
        net.spawn(
          net.client.ns,
          [
            process.execPath,
            SPAKNOCK_CLI,
            "proxy",
            net.server.ip,
            String(ECHO.cli),
            "-n",
            STANZA,
            "--rc-file",
            rcFile,
          ],
          { stdio: ["pipe", "pipe", "pipe"], env: { ...process.env, HOME: dir } },
        ),
      );
      proxy.child.stdin?.write("hello\n");
      await proxy.waitForStdout("hello\n");
      proxy.child.stdin?.end();

      // Assess
      expect(await proxy.exited()).toBe(0);
      expect(proxy.stdout()).toBe("hello\n");
    });

    it("exits 1 and says what to check when the knock does not open the port", async () => {
      // Prepare: a packet fwknopd cannot authenticate.
      const wrongKeys: InteropKeys = { ...keys, hmacKey: randomBytes(64).toString("base64") };
      const wire = await wireFor(ECHO.neverOpened, wrongKeys);

      // Act
      const proxy = startScriptProxy(ECHO.neverOpened, wire, 1_500);

      // Assess
      expect(await proxy.exited()).toBe(1);
      expect(proxy.stdout()).toBe("");
      expect(proxy.stderr()).toBe(
        `spaknock: ${net.server.ip}:${ECHO.neverOpened} did not open within 1.5 s after the knock; ` +
          "check the server's OPEN_PORTS and that spaknockd/fwknopd is running\n",
      );
      expect(await tcpConnect(net, net.client.ns, net.server.ip, ECHO.neverOpened)).toBe(false);
    });
    describe.skipIf(sshSkipReason !== undefined)(
      `with a real sshd${sshSkipReason === undefined ? "" : ` (skipped: ${sshSkipReason})`}`,
      () => {
        const tools = sshTools as SshTools;
        let sshDir: string;
        let clientKey: string;

        beforeAll(async () => {
          sshDir = net.makeTempDir("sshd");
          clientKey = join(sshDir, "client_key");
          const hostKey = join(sshDir, "host_key");
          for (const key of [hostKey, clientKey]) {
            await net.exec(
              net.server.ns,
              [tools.keygen, "-q", "-t", "ed25519", "-N", "", "-C", "spaknock-test", "-f", key],
              { check: true },
            );
          }
          await copyFile(`${clientKey}.pub`, join(sshDir, "authorized_keys"));
          const config = join(sshDir, "sshd_config");
          await writeFile(
            config,
            [
              ...Object.values(SSHD).map((port) => `Port ${port}`),
              `ListenAddress ${net.server.ip}`,
              `HostKey ${hostKey}`,
              `PidFile ${join(sshDir, "sshd.pid")}`,
              `AuthorizedKeysFile ${join(sshDir, "authorized_keys")}`,
              "StrictModes no",
              "PubkeyAuthentication yes",
              "PasswordAuthentication no",
              "KbdInteractiveAuthentication no",
              "PermitRootLogin prohibit-password",
              "UsePAM no",
              "",
            ].join("\n"),
            { mode: 0o600 },
          );
          // sshd insists on its privilege-separation directory /run/sshd. A private mount
          // namespace with a fresh /run gives it one without touching the host's /run.
          const sshd = net.spawn(net.server.ns, [
            tools.unshare,
            "--mount",
            "--propagation",
            "private",
            "/bin/sh",
            "-c",
            'mount -t tmpfs spaknock-test /run && mkdir -m 0755 /run/sshd && exec "$0" -D -e -f "$1"',
            tools.sshd,
            config,
          ]);
          await new Promise<void>((resolve, reject) => {
            let log = "";
            const timer = setTimeout(
              () => reject(new Error(`sshd did not start:\n${log}`)),
              10_000,
            );
            sshd.stderr?.setEncoding("utf8").on("data", (chunk: string) => {
              log += chunk;
              if ((log.match(/Server listening on/g) ?? []).length >= Object.keys(SSHD).length) {
                clearTimeout(timer);
                resolve();
              }
            });
            sshd.once("exit", (code) => {
              clearTimeout(timer);
              reject(new Error(`sshd exited (${code}):\n${log}`));
            });
          });
        });

        /** ssh options that use only the test's keys and files, never ~/.ssh. */
        function sshOptions(port: number): string[] {
          return [
            "-F",
            "/dev/null",
            "-i",
            clientKey,
            "-o",
            "IdentitiesOnly=yes",
            "-o",
            "BatchMode=yes",
            "-o",
            "StrictHostKeyChecking=no",
            "-o",
            "UserKnownHostsFile=/dev/null",
            "-o",
            "LogLevel=ERROR",
            "-p",
            String(port),
          ];
        }

        it("ssh -o ProxyCommand='spaknock proxy %h %p -n NAME' logs in through the closed port", async () => {
          // Prepare
          const port = SSHD.proxyCommand;
          expect(await tcpConnect(net, net.client.ns, net.server.ip, port)).toBe(false);
          const { dir, rcFile } = await writeRcFile();
          const proxyCommand = `${process.execPath} ${SPAKNOCK_CLI} proxy %h %p -n ${STANZA} --rc-file ${rcFile}`;

          // Act
          const result = await net.exec(
            net.client.ns,
            [
              tools.ssh,
              ...sshOptions(port),
              "-o",
              `ProxyCommand=${proxyCommand}`,
              `root@${net.server.ip}`,
              "echo spaknock-ssh-ok",
            ],
            { timeoutMs: 20_000, env: { ...process.env, HOME: dir } },
          );

          // Assess
          expect(result.code, result.stderr).toBe(0);
          expect(result.stdout).toBe("spaknock-ssh-ok\n");
          // When ssh is done, so is the proxy: nothing is left running in the client namespace.
          await expect.poll(() => namespacePids(net.client.ns), { timeout: 5_000 }).toEqual([]);
        });

        it("`spaknock ssh -n NAME -- <ssh args>` knocks, waits, and runs ssh", async () => {
          // Prepare
          const port = SSHD.sshCommand;
          expect(await tcpConnect(net, net.client.ns, net.server.ip, port)).toBe(false);
          const { dir, rcFile } = await writeRcFile([
            `SPA_SERVER ${net.server.ip}`,
            `ACCESS tcp/${port}`,
          ]);

          // Act
          const result = await net.exec(
            net.client.ns,
            [
              process.execPath,
              SPAKNOCK_CLI,
              "ssh",
              "-n",
              STANZA,
              "--rc-file",
              rcFile,
              "--",
              ...sshOptions(port),
              `root@${net.server.ip}`,
              "echo spaknock-ssh-ok",
            ],
            { timeoutMs: 20_000, env: { ...process.env, HOME: dir } },
          );

          // Assess
          expect(result.code, result.stderr).toBe(0);
          expect(result.stdout).toBe("spaknock-ssh-ok\n");
        });
      },
    );
  },
);
