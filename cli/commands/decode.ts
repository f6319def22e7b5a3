/**
 * `spaknock decode <spa-data>`: verify and decode one packet with the given keys. fwknop data
 * needs the shared keys; a JOSE-profile packet needs the server's private key and an authorized
 * key set, and goes through the receivers' own steps (precheck, envelope, signer, signature,
 * claims), so that decode refuses exactly what a receiver would, with the same code. Like fwknop
 * decode, it checks no packet age and claims no replay entry.
 */
import {
  authorizedKeyOf,
  DIGESTS,
  type JoseRequest,
  looksLikeJosePacket,
  openJoseEnvelope,
  openSpaPacket,
  precheckDatagram,
  readJoseClaims,
  type SpaMessage,
  verifyJoseSignature,
} from "../../core/index.js";
import type { ClientOptions } from "../client-settings.js";
import { describeJosePacket, describePacket } from "../describe-packet.js";
import { UsageError } from "../exit-codes.js";
import { readAuthorizedKeySet, readServerPrivateKey } from "../jose-key-files.js";
import { gatherKeys } from "./knock.js";

export interface DecodeOptions extends ClientOptions {
  json?: boolean;
  /** JOSE: the file of the authorized key set (a JWK Set). `serverKey` is the private JWK here. */
  authorizedKeys?: string;
}

/** The `--json` output of a JOSE-profile packet (SPA-JOSE.md). */
export interface DecodedJosePacket {
  readonly profile: "jose";
  readonly keyId: string;
  readonly username: string;
  readonly timestamp: number;
  readonly allowIp: string;
  readonly access: string[];
  /** Seconds; 0 when the packet asks for none. */
  readonly clientTimeout: number;
  readonly jti: string;
}

// A compact JWE's header is base64url JSON (`eyJ`) and its parts are joined by dots; fwknop data
// is plain base64 without a dot. The same shape test as the receivers' precheck.
export async function runDecode(
  spaData: string,
  opts: DecodeOptions,
  out: (line: string) => void,
  warn: (line: string) => void = () => {},
): Promise<void> {
  const data = spaData.trim();
  if (looksLikeJosePacket(data)) {
    await decodeJose(data, opts, out, warn);
    return;
  }
  if (opts.serverKey !== undefined || opts.authorizedKeys !== undefined) {
    throw new UsageError(
      "--server-key and --authorized-keys are for JOSE-profile packets; this is fwknop data",
    );
  }
  const keys = await gatherKeys(opts);
  const message: SpaMessage = openSpaPacket(data, keys);
  if (opts.json) {
    out(JSON.stringify(message));
    return;
  }
  out(
    describePacket({
      message,
      hmacType: keys.hmacKey ? keys.hmacType : null,
      mode: keys.mode,
      hmac: keys.hmacKey ? data.slice(-DIGESTS[keys.hmacType].b64Length) : null,
      wire: data,
    }),
  );
}

async function decodeJose(
  data: string,
  opts: DecodeOptions,
  out: (line: string) => void,
  warn: (line: string) => void,
): Promise<void> {
  if (opts.serverKey === undefined || opts.authorizedKeys === undefined) {
    throw new UsageError(
      "a JOSE-profile packet: give --server-key FILE (the server's private X25519 JWK) and " +
        "--authorized-keys FILE (the JWK Set of users' public keys)",
    );
  }
  const serverKey = await readServerPrivateKey(opts.serverKey, warn);
  const keySet = await readAuthorizedKeySet(opts.authorizedKeys);
  const checked = precheckDatagram(Buffer.from(data, "latin1"));
  const envelope = await openJoseEnvelope(checked.data, serverKey);
  const signer = authorizedKeyOf(keySet, envelope.signerKid);
  const payload = await verifyJoseSignature(envelope, signer);
  const request: JoseRequest = readJoseClaims(payload, signer, serverKey.kid);
  if (opts.json) {
    const decoded: DecodedJosePacket = {
      profile: "jose",
      keyId: signer.kid,
      username: request.username,
      timestamp: request.timestamp,
      allowIp: request.allowIp,
      access: request.ports.map((p) => `${p.proto}/${p.port}`),
      clientTimeout: request.clientTimeout,
      jti: request.jti,
    };
    out(JSON.stringify(decoded));
    return;
  }
  out(describeJosePacket({ signerKid: signer.kid, serverKid: serverKey.kid, request, wire: data }));
}
