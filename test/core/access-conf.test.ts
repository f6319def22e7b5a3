import { describe, expect, it } from "vitest";
import { type ConfLine, parseAccessConf, parseConfText, SpaError } from "../../core/index.js";

const KEY_B64 = Buffer.alloc(32, 7).toString("base64");
const HMAC_B64 = Buffer.alloc(64, 9).toString("base64");

function parse(text: string, ignored: ConfLine[] = []) {
  return parseAccessConf(parseConfText(text, "access.conf"), {
    allowSecurityGroups: false,
    ignored: (l) => ignored.push(l),
  });
}

function errorOf(fn: () => unknown): SpaError {
  try {
    fn();
  } catch (err) {
    if (err instanceof SpaError) return err;
    throw err;
  }
  throw new Error("expected a SpaError");
}

describe("access.conf", () => {
  it("reads fwknop's keywords into stanzas in file order", () => {
    const stanzas = parse(`
# a comment
SOURCE              198.18.0.0/24, 198.19.0.1/255.255.255.255
KEY_BASE64          ${KEY_B64}
HMAC_KEY_BASE64     ${HMAC_B64}
HMAC_DIGEST_TYPE    sha512
OPEN_PORTS          tcp/22, udp/53
FW_ACCESS_TIMEOUT   45
MAX_FW_TIMEOUT      90
REQUIRE_USERNAME    alice
REQUIRE_SOURCE_ADDRESS Y

SOURCE: ANY
KEY                 plain-text-key;   trailing after a semicolon is not part of the value
ENCRYPTION_MODE     legacy
ACCESS_EXPIRE_EPOCH 1800000000
RESTRICT_PORTS      tcp/23
`);
    expect(stanzas).toHaveLength(2);
    const [a, b] = stanzas;
    expect(a).toMatchObject({
      index: 1,
      origin: { file: "access.conf", line: 3 },
      openPorts: [
        { proto: "tcp", port: 22 },
        { proto: "udp", port: 53 },
      ],
      fwAccessTimeout: 45,
      maxFwTimeout: 90,
      requireUsername: "alice",
      requireSourceAddress: true,
      accessExpire: null,
    });
    expect(a?.keys?.hmacType).toBe("sha512");
    expect(Buffer.from(a?.keys?.key ?? []).equals(Buffer.alloc(32, 7))).toBe(true);
    expect(b).toMatchObject({ index: 2, sources: null, openPorts: null, accessExpire: 1800000000 });
    expect(Buffer.from(b?.keys?.key ?? []).toString()).toBe("plain-text-key");
    expect(b?.keys?.mode).toBe("legacy");
    expect(b?.keys?.hmacKey).toBeNull();
    expect(b?.restrictPorts).toEqual([{ proto: "tcp", port: 23 }]);
  });

  it.each([
    [
      "an unknown keyword",
      `SOURCE ANY\nKEY k\nOPEN_PORT tcp/22`,
      "access.conf:3: unknown keyword OPEN_PORT (did you mean OPEN_PORTS?)",
    ],
    [
      "a placeholder",
      `SOURCE ANY\nKEY_BASE64 __CHANGEME__`,
      "access.conf:2: KEY_BASE64 still has the placeholder",
    ],
    [
      "a missing key",
      `SOURCE ANY\nOPEN_PORTS tcp/22`,
      "access.conf:1: stanza has no KEY or KEY_BASE64",
    ],
    ["a key before SOURCE", `KEY k\nSOURCE ANY`, "access.conf:1: KEY before the first SOURCE line"],
    [
      "a bad port list",
      `SOURCE ANY\nKEY k\nOPEN_PORTS tcp/99999`,
      "access.conf:3: OPEN_PORTS must be",
    ],
    [
      "a bad timeout",
      `SOURCE ANY\nKEY k\nFW_ACCESS_TIMEOUT soon`,
      "access.conf:3: FW_ACCESS_TIMEOUT must be",
    ],
    [
      "a bad digest",
      `SOURCE ANY\nKEY k\nHMAC_KEY h\nHMAC_DIGEST_TYPE sha9`,
      "access.conf:4: HMAC_DIGEST_TYPE",
    ],
    ["a bad source", `SOURCE 300.1.1.1\nKEY k`, "access.conf:1: SOURCE"],
    ["a key too long", `SOURCE ANY\nKEY ${"k".repeat(33)}`, "access.conf:2: KEY: invalid key"],
    ["equal keys", `SOURCE ANY\nKEY same\nHMAC_KEY same`, "access.conf:3:"],
    [
      "a GPG-only stanza",
      `SOURCE ANY\nGPG_DECRYPT_ID ABCD`,
      "GPG, which spaknock does not support",
    ],
    ["no stanza at all", `# nothing`, "no SOURCE stanza"],
  ])("stops on %s with file:line", (_name, text, message) => {
    const err = errorOf(() => parse(text));
    expect(err.code).toBe("CONFIG_INVALID");
    expect(err.message).toContain(message);
  });

  it("never puts a key in an error message", () => {
    const secret = "super-secret-key-material-0123456789";
    const err = errorOf(() => parse(`SOURCE ANY\nKEY ${secret}`));
    expect(err.message).not.toContain(secret);
    const err2 = errorOf(() => parse(`SOURCE ANY\nKEY_BASE64 ${secret}!`));
    expect(err2.message).not.toContain(secret);
  });

  it("never echoes a line that is not a keyword: a key wrapped onto a second line stays out of logs", () => {
    // Prepare: a base64 HMAC key broken in two by an editor, and a passphrase-like lower-case token
    const wrapped = Buffer.alloc(64, 0x5c).toString("base64");
    const head = wrapped.slice(0, 40);
    const tail = wrapped.slice(40);
    const texts = [
      `SOURCE ANY\nKEY k\nHMAC_KEY_BASE64 ${head}\n${tail}`,
      `SOURCE ANY\nKEY k\nsecret+Passphrase/9 more-secret`,
      `SOURCE ANY\nKEY k\nABCDEFGHIJKLMNOPQRSTUVWXYZ234567 and-more`,
    ];
    for (const text of texts) {
      // Act
      const err = errorOf(() => parse(text));
      // Assess: file:line and what was expected, none of the line's text
      expect(err.code).toBe("CONFIG_INVALID");
      expect(err.message).toMatch(/^invalid configuration: access\.conf:[34]: not a known keyword/);
      for (const token of [
        tail,
        "secret+Passphrase/9",
        "more-secret",
        "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567",
        "and-more",
      ])
        expect(err.message).not.toContain(token);
    }
  });

  it.each([
    ["12/31/2025", "2025-12-31"],
    ["02/29/2028", "2028-02-29"],
  ])("reads ACCESS_EXPIRE %s as that day", (value, day) => {
    const [s] = parse(`SOURCE ANY\nKEY k\nACCESS_EXPIRE ${value}`);
    const d = new Date((s?.accessExpire ?? 0) * 1000);
    const local = `${d.getFullYear()}-${String(d.getMonth() + 1).padStart(2, "0")}-${String(d.getDate()).padStart(2, "0")}`;
    expect(local).toBe(day);
  });

  it.each([
    "31/12/2025",
    "02/30/2026",
    "02/29/2027",
    "13/01/2026",
    "00/10/2026",
    "04/31/2026",
    "01/00/2026",
  ])("refuses ACCESS_EXPIRE %s, a day that does not exist, instead of rolling it over", (value) => {
    const err = errorOf(() => parse(`SOURCE ANY\nKEY k\nACCESS_EXPIRE ${value}`));
    expect(err.code).toBe("CONFIG_INVALID");
    expect(err.message).toContain(`access.conf:3: ACCESS_EXPIRE ${value} is not a calendar date`);
  });

  it("reports each fwknop keyword it ignores once, with where it first appears", () => {
    const ignored: ConfLine[] = [];
    parse(
      `SOURCE ANY\nKEY a\nENABLE_CMD_EXEC Y\nSOURCE ANY\nKEY b\nENABLE_CMD_EXEC N\nFORCE_NAT 1.2.3.4 22`,
      ignored,
    );
    expect(ignored.map((l) => `${l.keyword}@${l.line}`)).toEqual([
      "ENABLE_CMD_EXEC@3",
      "FORCE_NAT@7",
    ]);
  });

  it("reads SECURITY_GROUPS only where allowed (the Lambda)", () => {
    const text = "SOURCE ANY\nKEY k\nSECURITY_GROUPS sg-0123456789abcdef0, sg-01234567";
    expect(() => parse(text)).toThrow(/SECURITY_GROUPS is read only by the AWS knock function/);
    const [s] = parseAccessConf(parseConfText(text, "secret"), {
      allowSecurityGroups: true,
      ignored: () => {},
    });
    expect(s?.securityGroups).toEqual(["sg-0123456789abcdef0", "sg-01234567"]);
  });

  it("only takes key lines from an %include_keys file", () => {
    const lines = [
      ...parseConfText("SOURCE ANY", "access.conf"),
      ...parseConfText(`KEY_BASE64 ${KEY_B64}\nOPEN_PORTS tcp/22`, "keys.conf").map((l) => ({
        ...l,
        fromKeysFile: true,
      })),
    ];
    expect(() => parseAccessConf(lines, { allowSecurityGroups: false, ignored: () => {} })).toThrow(
      /keys.conf:2: %include_keys files may only hold key lines/,
    );
  });
});
