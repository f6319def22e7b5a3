/**
 * The first look at a raw datagram, before any crypto: fwknopd's size, prefix and charset rules
 * (docs/protocol.md section 7, step 1), and the shape of a JOSE-profile packet (a compact JWE:
 * starts `eyJ`, four dots, which fwknop data never holds). Cheap and bounded, so junk costs
 * almost nothing.
 */
import { SpaError } from "./errors.js";
import {
  GPG_B64_PREFIX,
  MAX_SPA_DATA_SIZE,
  MIN_GNUPG_MSG_SIZE,
  MIN_SPA_DATA_SIZE,
  RIJNDAEL_B64_PREFIX,
} from "./limits.js";

// 1 for every byte of [A-Za-z0-9+/]. Clients strip `=` padding, and accepting it would give one
// packet a second encoding with another replay digest.
const BASE64_BYTE = new Uint8Array(256);
for (const c of "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/") {
  BASE64_BYTE[c.charCodeAt(0)] = 1;
}

// The compact JWE alphabet: base64url and the dots between parts.
const JOSE_BYTE = new Uint8Array(256);
for (const c of "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.") {
  JOSE_BYTE[c.charCodeAt(0)] = 1;
}
const DOT = 0x2e;

export type PacketProfile = "fwknop" | "jose";

export interface CheckedDatagram {
  readonly profile: PacketProfile;
  /** The payload as text. */
  readonly data: string;
}

/** A compact JWE from ECDH-ES (direct agreement): header, empty key part, iv, ciphertext, tag. */
function precheckJose(payload: Uint8Array): CheckedDatagram {
  const dots: number[] = [];
  for (let i = 0; i < payload.length; i++) {
    const b = payload[i] as number;
    if (JOSE_BYTE[b] !== 1) throw new SpaError("JOSE_SHAPE", `byte ${i} is not base64url`);
    if (b === DOT) dots.push(i);
  }
  if (dots.length !== 4) throw new SpaError("JOSE_SHAPE", `${dots.length + 1} parts, not 5`);
  const [headerEnd, keyEnd, ivEnd, cipherEnd] = dots as [number, number, number, number];
  if (keyEnd !== headerEnd + 1) {
    throw new SpaError("JOSE_SHAPE", "the encrypted-key part is not empty (ECDH-ES has none)");
  }
  if (ivEnd === keyEnd + 1 || cipherEnd === ivEnd + 1 || cipherEnd === payload.length - 1) {
    throw new SpaError("JOSE_SHAPE", "an iv, ciphertext or tag part is empty");
  }
  const data = Buffer.from(payload.buffer, payload.byteOffset, payload.length).toString("latin1");
  return { profile: "jose", data };
}

const isJoseStart = (p: Uint8Array) => p[0] === 0x65 && p[1] === 0x79 && p[2] === 0x4a; // "eyJ"

/** The rule precheckDatagram tells the profiles apart by, for text: `eyJ` and a dot. */
export function looksLikeJosePacket(data: string): boolean {
  return data.startsWith("eyJ") && data.includes(".");
}

/**
 * Returns the payload's profile and text, or throws SPA_SIZE / SPA_PREFIXED / SPA_CHARSET for
 * fwknop data and JOSE_SHAPE for a datagram that starts like a JWE and is not one.
 */
export function precheckDatagram(payload: Uint8Array): CheckedDatagram {
  if (payload.length < MIN_SPA_DATA_SIZE || payload.length > MAX_SPA_DATA_SIZE) {
    throw new SpaError("SPA_SIZE", `${payload.length} bytes`);
  }
  if (isJoseStart(payload) && payload.includes(DOT)) return precheckJose(payload);
  for (let i = 0; i < payload.length; i++) {
    if (BASE64_BYTE[payload[i] as number] !== 1) throw new SpaError("SPA_CHARSET", `byte ${i}`);
  }
  const text = Buffer.from(payload.buffer, payload.byteOffset, payload.length).toString("latin1");
  // A client never sends these prefixes: a packet carrying one is someone re-sending captured
  // data with the prefix restored to dodge the replay digest.
  if (text.startsWith(RIJNDAEL_B64_PREFIX)) throw new SpaError("SPA_PREFIXED", "Salted__ prefix");
  if (text.length > MIN_GNUPG_MSG_SIZE && text.startsWith(GPG_B64_PREFIX)) {
    throw new SpaError("SPA_PREFIXED", "GPG prefix");
  }
  return { profile: "fwknop", data: text };
}
