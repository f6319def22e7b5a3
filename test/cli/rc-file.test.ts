import { chmodSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { applyRc, loadRcContext, rcValuesFor, saveRcStanza } from "../../cli/client-settings.js";
import { parseRcFile, renderRcFile, resolveStanza } from "../../cli/rc-file.js";

// Written by the real fwknop 2.6.10: `fwknop ... -n myserver --save-rc-stanza`.
const FWKNOP_WRITTEN = `[default]

[myserver]
ALLOW_IP                    198.18.0.2
ACCESS                      tcp/22
SPA_SERVER                  198.18.0.1
KEY_BASE64                  AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=
HMAC_KEY_BASE64             BBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBA=
USE_HMAC                    Y
`;

describe("~/.fwknoprc", () => {
  const dir = mkdtempSync(join(tmpdir(), "spk-rc-"));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it("reads a stanza written by fwknop, over [default]", () => {
    const rc = parseRcFile(
      `[default]\nSPA_SERVER_PORT 40000\nDIGEST_TYPE=sha512\n\n${FWKNOP_WRITTEN.replace("[default]\n", "")}`,
      "rc",
    );
    const values = resolveStanza(rc, "myserver", "rc");
    expect(Object.fromEntries(values)).toMatchObject({
      SPA_SERVER_PORT: "40000",
      DIGEST_TYPE: "sha512",
      ALLOW_IP: "198.18.0.2",
      USE_HMAC: "Y",
    });
    expect(() => resolveStanza(rc, "nope", "rc")).toThrow(
      "no stanza [nope] in rc (it has: myserver)",
    );
  });

  it("turns rc lines into options, and the command line wins", () => {
    const values = resolveStanza(parseRcFile(FWKNOP_WRITTEN, "rc"), "myserver", "rc");
    expect(applyRc({}, values)).toMatchObject({
      allowIp: "198.18.0.2",
      access: "tcp/22",
      destination: "198.18.0.1",
      keyBase64Rijndael: "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=",
      useHmac: true,
    });
    const o = applyRc({ access: "tcp/2222", keyRijndael: "typed-key", sourceIp: true }, values);
    expect(o).toMatchObject({ access: "tcp/2222", keyRijndael: "typed-key", sourceIp: true });
    expect(o.keyBase64Rijndael).toBeUndefined();
    expect(o.allowIp).toBeUndefined();
  });

  it("writes fwknop's layout, 0600, keeping other stanzas", () => {
    const file = join(dir, "written");
    writeFileSync(file, "[default]\nSPA_SERVER_PORT 62201\n\n[other]\nSPA_SERVER 198.18.9.9\n", {
      mode: 0o600,
    });
    const values = rcValuesFor({
      allowIp: "198.18.0.2",
      access: "tcp/22",
      destination: "198.18.0.1",
      keyBase64Rijndael: "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=",
      keyBase64Hmac: "BBBB",
    });
    saveRcStanza(file, "myserver", values, false);
    const text = readFileSync(file, "utf8");
    expect(text).toContain("[other]\nSPA_SERVER                  198.18.9.9\n");
    expect(text).toContain(`[myserver]
ALLOW_IP                    198.18.0.2
ACCESS                      tcp/22
SPA_SERVER                  198.18.0.1
KEY_BASE64                  AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=
HMAC_KEY_BASE64             BBBB
USE_HMAC                    Y
`);
    expect(statSync(file).mode & 0o777).toBe(0o600);
    expect(renderRcFile(parseRcFile(text, "x"))).toBe(text);
  });

  it("refuses to write keys into a file others can read, and warns when reading one", () => {
    const file = join(dir, "loose");
    writeFileSync(file, FWKNOP_WRITTEN);
    chmodSync(file, 0o644);
    expect(() => saveRcStanza(file, "x", new Map([["KEY_BASE64", "AAAA"]]), false)).toThrow(
      /refusing to write keys/,
    );
    const ctx = loadRcContext({ rcFile: file, namedConfig: "myserver" });
    expect(ctx.warnings.join()).toMatch(/readable by others/);
  });

  it("--force-stanza replaces a stanza; without it, values are updated in place", () => {
    const file = join(dir, "force");
    writeFileSync(file, "[s]\nSPA_SERVER 198.18.0.1\nACCESS tcp/22\n", { mode: 0o600 });
    saveRcStanza(file, "s", new Map([["ACCESS", "tcp/2222"]]), false);
    expect(
      Object.fromEntries(resolveStanza(parseRcFile(readFileSync(file, "utf8"), "f"), "s", "f")),
    ).toEqual({
      SPA_SERVER: "198.18.0.1",
      ACCESS: "tcp/2222",
    });
    saveRcStanza(file, "s", new Map([["ACCESS", "udp/53"]]), true);
    expect(
      Object.fromEntries(resolveStanza(parseRcFile(readFileSync(file, "utf8"), "f"), "s", "f")),
    ).toEqual({
      ACCESS: "udp/53",
    });
  });

  it("reads values as fwknop does: a value ends at a space, tab, ; or #, and KEYWORD: is fine", () => {
    const rc = parseRcFile(
      "[x]\nKEY mysecret # rotated\nHMAC_KEY abc;old\nACCESS: tcp/22\nSPA_SERVER\t198.18.0.1\tx\n",
      "rc",
    );
    expect(Object.fromEntries(resolveStanza(rc, "x", "rc"))).toEqual({
      KEY: "mysecret",
      HMAC_KEY: "abc",
      ACCESS: "tcp/22",
      SPA_SERVER: "198.18.0.1",
    });
  });
});
