// ~/.fwknoprc interop with the real fwknop 2.6.10 client and fwknopd, in a private test net:
// a stanza the real `fwknop --save-rc-stanza` wrote must drive `spaknock -n`, and a stanza
// `spaknock --save-rc-stanza` wrote must drive the real `fwknop -n`, each far enough to open a real
// fwknopd. Keys only ever reach the rc files (written by the tool under test) and access.conf.
//
// fwknopd has one stanza per writer, each with its own keys, HMAC digest and REQUIRE_USERNAME,
// so a rule proves that the keys, digest types, user, ports, timeout and allow-IP all came
// through the rc file.

import { randomBytes } from "node:crypto";
import { copyFile, readFile, stat, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { fwknopClientSkipReason } from "../helpers/fwknop-client.js";
import {
  type Fwknopd,
  type FwknopdStanza,
  fwknopdSkipReason,
  listFwknopRules,
  parseFwknopRule,
  startFwknopd,
} from "../helpers/fwknopd.js";
import {
  randomTextKey,
  SPAKNOCK_CLI,
  spaknockCliMissingReason,
} from "../helpers/interop-spaknock-cli.js";
import {
  createTestNet,
  type ExecResult,
  findExecutable,
  netnsSkipReason,
  sendUdp,
  type TestNet,
} from "../helpers/netns.js";

const skipReason = netnsSkipReason() ?? fwknopdSkipReason() ?? fwknopClientSkipReason();
const SPA_PORT = 62201;
const MAX_FW_TIMEOUT = 300;
// Rule expiry = fwknopd's clock at processing time + timeout; allow for a slow machine.
const EXPIRY_SLACK_S = 5;

/** What one writer puts in its stanza; fwknopd's stanza for it expects exactly this. */
interface Writer {
  readonly stanza: string;
  readonly user: string;
  readonly keyBase64: string;
  readonly hmacKeyBase64: string;
  readonly hmacDigestType: string;
  readonly fwTimeout: number;
  readonly ports: readonly { readonly proto: "tcp" | "udp"; readonly port: number }[];
}

const FROM_FWKNOP: Writer = {
  stanza: "written-by-fwknop",
  user: "rcfwknop",
  keyBase64: randomBytes(32).toString("base64"),
  hmacKeyBase64: randomBytes(64).toString("base64"),
  hmacDigestType: "sha512",
  fwTimeout: 45,
  ports: [
    { proto: "tcp", port: 2401 },
    { proto: "udp", port: 2402 },
  ],
};
// A second stanza in fwknop's file, so that listing and updating see more than one.
const FWKNOP_OTHER_STANZA = "fwknop-other";
const FROM_SPAKNOCK: Writer = {
  stanza: "written-by-spaknock",
  user: "rcspaknock",
  keyBase64: randomBytes(32).toString("base64"),
  hmacKeyBase64: randomBytes(64).toString("base64"),
  hmacDigestType: "sha384",
  fwTimeout: 50,
  ports: [{ proto: "tcp", port: 2403 }],
};

// Hand-written stanzas that use the leeway of fwknop's rc parser (client/config_init.c,
// is_rc_param: `sscanf(line, "%s %[^ ;\t\n\r#]", var, val)`, then a trailing `:` is cut from var):
// a value ends at the first space, tab, `;` or `#`, and `KEYWORD:` means KEYWORD.
const QUIRKS = {
  user: "rcquirks",
  key: randomTextKey(24, randomBytes),
  hmacKey: randomTextKey(48, randomBytes),
  fwTimeout: 40,
} as const;
const QUIRK_CASES = [
  {
    label: "a `# comment` after the text KEY",
    port: 2405,
    edit: (line: string) => (line.startsWith("KEY ") ? `${line}   # rotated in May` : line),
  },
  {
    label: "`;` ending the HMAC_KEY value",
    port: 2406,
    edit: (line: string) => (line.startsWith("HMAC_KEY ") ? `${line};previous-key` : line),
  },
  {
    label: "a `:` after the ACCESS keyword",
    port: 2407,
    edit: (line: string) => line.replace(/^ACCESS /, "ACCESS: "),
  },
] as const;

function accessStanza(writer: Writer): FwknopdStanza {
  return {
    keyBase64: writer.keyBase64,
    hmacKeyBase64: writer.hmacKeyBase64,
    hmacDigestType: writer.hmacDigestType,
    requireUsername: writer.user,
    maxFwTimeout: MAX_FW_TIMEOUT,
  };
}

/** The options both clients accept, for `writer`'s stanza (keys included: they are saved). */
function saveArgs(writer: Writer, net: TestNet): string[] {
  return [
    "-n",
    writer.stanza,
    "-A",
    writer.ports.map(({ proto, port }) => `${proto}/${port}`).join(","),
    "-a",
    net.client.ip,
    "-D",
    net.server.ip,
    "-f",
    String(writer.fwTimeout),
    "-U",
    writer.user,
    "--hmac-digest-type",
    writer.hmacDigestType,
    "--key-base64-rijndael",
    writer.keyBase64,
    "--key-base64-hmac",
    writer.hmacKeyBase64,
  ];
}

/** `[name]`'s `KEYWORD value` lines, in file order. */
function stanzaLines(rc: string, name: string): string[] {
  const lines = rc.split("\n");
  const start = lines.indexOf(`[${name}]`);
  if (start < 0) return [];
  const end = lines.findIndex((line, i) => i > start && (line === "" || line.startsWith("[")));
  return lines.slice(start + 1, end < 0 ? undefined : end);
}

/** The column where fwknop's rc writer starts each value (it pads the keyword). */
function valueColumns(lines: readonly string[]): number[] {
  return lines.map((line) => /^[A-Z][A-Z0-9_]* +/.exec(line)?.[0].length ?? -1);
}

function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}

function nowSeconds(): number {
  return Math.floor(Date.now() / 1000);
}

describe.skipIf(skipReason !== undefined)(
  `~/.fwknoprc interop with fwknop${skipReason === undefined ? "" : ` (skipped: ${skipReason})`}`,
  () => {
    let net: TestNet;
    let fwknopd: Fwknopd;
    // HOME for every client run, so nothing reads or writes the real ~/.fwknoprc or ~/.fwknop.run.
    let home: string;
    // The rc file the real fwknop wrote; tests copy it before changing anything.
    let fwknopRc: string;

    /** Run a client in the client namespace with HOME set to the private home. */
    function runClient(argv: readonly string[]): Promise<ExecResult> {
      return net.exec(net.client.ns, argv, {
        env: { ...process.env, HOME: home },
        cwd: home,
        timeoutMs: 15_000,
      });
    }

    function fwknop(args: readonly string[]): Promise<ExecResult> {
      return runClient([findExecutable("fwknop") ?? "fwknop", ...args]);
    }

    function spaknock(args: readonly string[]): Promise<ExecResult> {
      return runClient([process.execPath, SPAKNOCK_CLI, ...args]);
    }

    /** `spaknock --save-rc-stanza -T` with FROM_SPAKNOCK's options into `rc` (sends nothing). */
    function spaknockSaveStanza(rc: string): Promise<ExecResult> {
      return spaknock([...saveArgs(FROM_SPAKNOCK, net), "--rc-file", rc, "--save-rc-stanza", "-T"]);
    }

    /** Wait for fwknopd's rule for each port of `writer` and check its source and expiry. */
    async function expectRulesFor(
      writer: Pick<Writer, "ports" | "fwTimeout">,
      from: number,
      sentAt: number,
    ): Promise<void> {
      let cursor = from;
      for (const { proto, port } of writer.ports) {
        const line = await fwknopd.waitForLog(
          new RegExp(
            `Added access rule to FWKNOP_INPUT for ${escapeRegExp(net.client.ip)} -> \\S+ (?:\\S+,)?${proto}/${port}(?:,\\S+)?, expires at \\d+`,
          ),
          10_000,
          cursor,
        );
        cursor = fwknopd.lines.indexOf(line, cursor) + 1;
      }
      const rules = (await listFwknopRules(net)).map(parseFwknopRule);
      for (const { proto, port } of writer.ports) {
        const rule = rules.find(
          (r) => r.source === `${net.client.ip}/32` && r.proto === proto && r.dport === port,
        );
        expect(rule, JSON.stringify(rules, null, 2)).toMatchObject({ target: "ACCEPT" });
        expect(rule?.expiresAt).toBeGreaterThanOrEqual(sentAt + writer.fwTimeout);
        expect(rule?.expiresAt).toBeLessThanOrEqual(sentAt + writer.fwTimeout + EXPIRY_SLACK_S);
      }
    }

    beforeAll(async () => {
      // A missing build is a broken setup, not a reason to skip.
      const missing = spaknockCliMissingReason();
      if (missing !== undefined) throw new Error(missing);
      net = await createTestNet();
      home = net.makeTempDir("home");
      fwknopRc = join(home, "fwknoprc-from-fwknop");
      fwknopd = await startFwknopd(net, {
        stanzas: [
          accessStanza(FROM_FWKNOP),
          accessStanza(FROM_SPAKNOCK),
          {
            key: QUIRKS.key,
            hmacKey: QUIRKS.hmacKey,
            requireUsername: QUIRKS.user,
            maxFwTimeout: MAX_FW_TIMEOUT,
          },
        ],
      });

      // The real fwknop writes both stanzas (-T: it sends nothing).
      for (const args of [
        [...saveArgs(FROM_FWKNOP, net), "-m", "sha384"],
        [
          "-n",
          FWKNOP_OTHER_STANZA,
          "-A",
          "tcp/22",
          "-s",
          "-D",
          net.server.ip,
          "--key-base64-rijndael",
          randomBytes(32).toString("base64"),
        ],
      ]) {
        const result = await fwknop([...args, "--rc-file", fwknopRc, "--save-rc-stanza", "-T"]);
        expect(result.code, result.stderr + result.stdout).toBe(0);
      }
    });

    afterAll(async () => {
      await net?.destroy();
    });

    it("spaknock -n uses a stanza written by the real fwknop --save-rc-stanza to open fwknopd", async () => {
      // Prepare
      const rcBefore = await readFile(fwknopRc, "utf8");
      expect(stanzaLines(rcBefore, FROM_FWKNOP.stanza)).toContain(
        `HMAC_KEY_BASE64             ${FROM_FWKNOP.hmacKeyBase64}`,
      );

      // Act: no key or any other option but the stanza on spaknock's command line
      const built = await spaknock(["-n", FROM_FWKNOP.stanza, "--rc-file", fwknopRc, "-T"]);
      expect(built.code, built.stderr).toBe(0);
      const wire = built.stdout.trimEnd().split("\n").at(-1)?.trim() ?? "";
      expect(wire).toMatch(/^[A-Za-z0-9+/]{100,}$/);
      const from = fwknopd.mark();
      const sentAt = nowSeconds();
      await sendUdp(net, net.client.ns, net.server.ip, SPA_PORT, wire);

      // Assess: stanza #1 is the only one with these keys and REQUIRE_USERNAME rcfwknop
      await fwknopd.waitForLog(/\(stanza #1\) SPA Packet from IP: .* received/, 10_000, from);
      await expectRulesFor(FROM_FWKNOP, from, sentAt);
      // DIGEST_TYPE SHA384 from the rc file (fwknopd infers the inner digest from its length).
      expect(fwknopd.lines.slice(from).some((l) => /Digest Type: 4\b/.test(l))).toBe(true);
      expect(await readFile(fwknopRc, "utf8")).toBe(rcBefore);
    });

    it("the real fwknop -n uses a stanza written by spaknock --save-rc-stanza to open fwknopd", async () => {
      // Prepare
      const rc = join(home, "fwknoprc-from-spaknock");
      const saved = await spaknockSaveStanza(rc);
      expect(saved.code, saved.stderr).toBe(0);
      const from = fwknopd.mark();
      const sentAt = nowSeconds();

      // Act: the real client sends the knock itself, configured by the stanza alone
      const knock = await fwknop(["-n", FROM_SPAKNOCK.stanza, "--rc-file", rc, "--no-save-args"]);

      // Assess
      expect(knock.code, knock.stderr + knock.stdout).toBe(0);
      // fwknop complains about an rc file that is not 0600 ("permissions should only be user
      // read/write") or a line it does not understand ("Parameter error in <file>, line N").
      expect(knock.stderr + knock.stdout).not.toMatch(/warn|permission|error|unrecogni|invalid/i);
      await fwknopd.waitForLog(/\(stanza #2\) SPA Packet from IP: .* received/, 10_000, from);
      await expectRulesFor(FROM_SPAKNOCK, from, sentAt);
    });

    it("spaknock --save-rc-stanza writes a 0600 file in fwknop's layout", async () => {
      // Prepare
      const rc = join(home, "fwknoprc-layout");

      // Act
      const saved = await spaknockSaveStanza(rc);

      // Assess
      expect(saved.code, saved.stderr).toBe(0);
      expect((await stat(rc)).mode & 0o777).toBe(0o600);
      const text = await readFile(rc, "utf8");
      const lines = stanzaLines(text, FROM_SPAKNOCK.stanza);
      const settings = new Map(
        lines.map((line) => {
          const [keyword = "", ...value] = line.split(/ +/);
          return [keyword, value.join(" ")];
        }),
      );
      expect(Object.fromEntries(settings)).toMatchObject({
        SPA_SERVER: net.server.ip,
        ALLOW_IP: net.client.ip,
        ACCESS: "tcp/2403",
        FW_TIMEOUT: "50",
        SPOOF_USER: FROM_SPAKNOCK.user,
        KEY_BASE64: FROM_SPAKNOCK.keyBase64,
        HMAC_KEY_BASE64: FROM_SPAKNOCK.hmacKeyBase64,
        USE_HMAC: "Y",
      });
      expect(settings.get("HMAC_DIGEST_TYPE")?.toLowerCase()).toBe("sha384");
      // Every value starts in the column where the real fwknop starts its values.
      const fwknopColumn = valueColumns(
        stanzaLines(await readFile(fwknopRc, "utf8"), FROM_FWKNOP.stanza),
      )[0];
      expect(fwknopColumn).toBeGreaterThan(0);
      expect(new Set(valueColumns(lines))).toEqual(new Set([fwknopColumn]));
    });

    it("spaknock --save-rc-stanza into fwknop's file keeps fwknop's stanzas usable", async () => {
      // Prepare
      const rc = join(home, "fwknoprc-shared");
      await copyFile(fwknopRc, rc);
      const fwknopText = await readFile(rc, "utf8");

      // Act
      const saved = await spaknockSaveStanza(rc);

      // Assess
      expect(saved.code, saved.stderr).toBe(0);
      expect((await stat(rc)).mode & 0o777).toBe(0o600);
      const text = await readFile(rc, "utf8");
      for (const name of [FROM_FWKNOP.stanza, FWKNOP_OTHER_STANZA]) {
        expect(stanzaLines(text, name)).toEqual(stanzaLines(fwknopText, name));
      }
      const listed = await fwknop(["--rc-file", rc, "--stanza-list"]);
      expect(listed.code, listed.stderr).toBe(0);
      expect(listed.stdout.match(/^ - (\S+)$/gm)?.map((l) => l.slice(3))).toEqual([
        FROM_FWKNOP.stanza,
        FWKNOP_OTHER_STANZA,
        FROM_SPAKNOCK.stanza,
      ]);
      // The real fwknop still builds a packet from the stanza it wrote (and one from spaknock's).
      for (const name of [FROM_FWKNOP.stanza, FROM_SPAKNOCK.stanza]) {
        const built = await fwknop(["-n", name, "--rc-file", rc, "--no-save-args", "-T"]);
        expect(built.code, built.stderr + built.stdout).toBe(0);
      }
    });

    it("spaknock --stanza-list --json lists the stanzas fwknop wrote, as fwknop does", async () => {
      // Prepare
      const fromFwknop = await fwknop(["--rc-file", fwknopRc, "--stanza-list"]);
      expect(fromFwknop.code, fromFwknop.stderr).toBe(0);
      const fwknopNames = fromFwknop.stdout.match(/^ - (\S+)$/gm)?.map((l) => l.slice(3));

      // Act
      const listed = await spaknock(["--stanza-list", "--json", "--rc-file", fwknopRc]);

      // Assess
      expect(listed.code, listed.stderr).toBe(0);
      const json = JSON.parse(listed.stdout) as { stanzas: unknown };
      expect(json.stanzas).toEqual([FROM_FWKNOP.stanza, FWKNOP_OTHER_STANZA]);
      expect(json.stanzas).toEqual(fwknopNames);
    });

    // fwknop ends a value at the first space, tab, `;` or `#` and drops a `:` after the keyword;
    // an rc file that relies on that must work unchanged (a text KEY must not swallow a comment).
    it.each(QUIRK_CASES)(
      "spaknock -n reads a stanza with $label as the real fwknop does",
      async ({ label, port, edit }) => {
        // Prepare
        const rc = join(home, `fwknoprc-quirk-${port}`);
        const name = `quirk-${port}`;
        const lines = [
          `KEY ${QUIRKS.key}`,
          `HMAC_KEY ${QUIRKS.hmacKey}`,
          "USE_HMAC Y",
          `ACCESS tcp/${port}`,
          `ALLOW_IP ${net.client.ip}`,
          `SPA_SERVER ${net.server.ip}`,
          `SPOOF_USER ${QUIRKS.user}`,
          `FW_TIMEOUT ${QUIRKS.fwTimeout}`,
        ].map(edit);
        await writeFile(rc, `[${name}]\n${lines.join("\n")}\n`, { mode: 0o600, flag: "wx" });
        // The real fwknop reads the stanza as meant (-T: it sends nothing).
        const fromFwknop = await fwknop([
          "-n",
          name,
          "--rc-file",
          rc,
          "--no-save-args",
          "-T",
          "-v",
        ]);
        expect(fromFwknop.code, fromFwknop.stderr).toBe(0);
        expect(fromFwknop.stdout).toContain(`Message String: ${net.client.ip},tcp/${port}\n`);

        // Act
        const built = await spaknock(["-n", name, "--rc-file", rc, "-T"]);
        expect(built.code, `${label}: ${built.stderr}`).toBe(0);
        const wire = built.stdout.trimEnd().split("\n").at(-1)?.trim() ?? "";
        const from = fwknopd.mark();
        const sentAt = nowSeconds();
        await sendUdp(net, net.client.ns, net.server.ip, SPA_PORT, wire);

        // Assess: stanza #3 holds these keys; a wrong key shows as its fko error
        const outcome = await fwknopd.waitForLog(
          new RegExp(`\\(stanza #3\\) Error creating fko context|Added access rule .*tcp/${port}`),
          10_000,
          from,
        );
        expect(outcome).toContain("Added access rule");
        await expectRulesFor(
          { ports: [{ proto: "tcp", port }], fwTimeout: QUIRKS.fwTimeout },
          from,
          sentAt,
        );
      },
    );
  },
);
