/** `-k/--key-gen`: keys from the CSPRNG, printed as access.conf/rc lines, as fwknop prints them. */
import { randomBytes } from "node:crypto";
import { writeFileSync } from "node:fs";
import { parseDigestType } from "../../core/index.js";

export function generateKeyLines(hmacDigestType: string | undefined): string {
  const type = parseDigestType(hmacDigestType ?? "sha256");
  // fwknop: 32-byte Rijndael key; 64-byte HMAC key, 128 bytes for the 128-byte-block digests.
  const hmacBytes = type === "sha384" || type === "sha512" ? 128 : 64;
  return [
    `KEY_BASE64: ${randomBytes(32).toString("base64")}`,
    `HMAC_KEY_BASE64: ${randomBytes(hmacBytes).toString("base64")}`,
  ].join("\n");
}

export function runKeyGen(
  opts: { hmacDigestType?: string; keyGenFile?: string },
  out: (l: string) => void,
): void {
  const lines = generateKeyLines(opts.hmacDigestType);
  if (opts.keyGenFile) {
    writeFileSync(opts.keyGenFile, `${lines}\n`, { mode: 0o600, flag: "wx" });
    out(`wrote new keys to ${opts.keyGenFile} (mode 0600)`);
  } else out(lines);
}
