/**
 * Key generation. `-k/--key-gen`: fwknop's shared keys from the CSPRNG, printed as access.conf/rc
 * lines, as fwknop prints them. `keygen --ed25519|--x25519 -o FILE`: a JOSE-profile key pair, the
 * private JWK written to FILE (0600, never over an existing file) and the public JWK printed for
 * whoever needs it (the operator, or the clients of a server).
 */
import { randomBytes } from "node:crypto";
import { writeFileSync } from "node:fs";
import { generateJwkPair, type JoseCurve, parseDigestType } from "../../core/index.js";
import { UsageError } from "../exit-codes.js";

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

export interface JoseKeyGenOptions {
  ed25519?: boolean;
  x25519?: boolean;
  output?: string;
}

/** What to do with the public key, said on stderr so that stdout stays one JSON line. */
function handOverAdvice(curve: JoseCurve, file: string): string[] {
  if (curve === "Ed25519") {
    return [
      `wrote your private signing key to ${file} (mode 0600); it never leaves this machine`,
      "hand the public key above (one JSON line) to the server's operator: they add it, with a",
      '"name" member holding your username, to the AUTHORIZED_KEYS JWK Set of your stanza',
      `then knock with --signing-key ${file} --server-key SERVER.jwk (or SIGNING_KEY_FILE and SERVER_KEY_FILE in ~/.fwknoprc)`,
    ];
  }
  return [
    `wrote the server's private key to ${file} (mode 0600): SERVER_KEY_FILE ${file} in fwknopd.conf`,
    "give clients the public key above (one JSON line) as their --server-key file (SERVER_KEY_FILE)",
  ];
}

export async function runJoseKeyGen(
  opts: JoseKeyGenOptions,
  out: (line: string) => void,
  warn: (line: string) => void,
): Promise<void> {
  if (opts.ed25519 === opts.x25519) {
    throw new UsageError(
      "keygen: give one of --ed25519 (a user's signing key) or --x25519 (a server's key)",
    );
  }
  if (opts.output === undefined) {
    throw new UsageError("keygen: give -o FILE for the private key (it is never printed)");
  }
  const curve: JoseCurve = opts.ed25519 ? "Ed25519" : "X25519";
  const { privateJwk, publicJwk } = await generateJwkPair(curve);
  try {
    // "wx": a second keygen must never replace a key someone may already have handed over.
    writeFileSync(opts.output, `${JSON.stringify(privateJwk)}\n`, { mode: 0o600, flag: "wx" });
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === "EEXIST") {
      throw new UsageError(`keygen: ${opts.output} exists; refusing to overwrite a key`);
    }
    throw new UsageError(`keygen: cannot write ${opts.output} (${code ?? err})`);
  }
  out(JSON.stringify(publicJwk));
  for (const line of handOverAdvice(curve, opts.output)) warn(line);
}
