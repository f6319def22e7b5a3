/**
 * The first look at a raw datagram, before any crypto: fwknopd's size, prefix and charset rules
 * (docs/protocol.md section 7, step 1), and the shape of a JOSE-profile packet (a compact JWE:
 * starts `eyJ`, four dots, which fwknop data never holds). Cheap and bounded, so junk costs
 * almost nothing.
 */
import { DIGESTS } from "./digest.js";
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

/** `eyJ`: base64url of `{"`, the start of every JOSE header. */
const JOSE_START = [0x65, 0x79, 0x4a] as const;
const isJoseStart = (p: Uint8Array) =>
  p[0] === JOSE_START[0] && p[1] === JOSE_START[1] && p[2] === JOSE_START[2];

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

/**
 * The shape a datagram must have to be an SPA packet at all, in a form a kernel packet filter can
 * check from fixed offsets alone (agent/firewall/nftables.ts turns it into rules), so that junk
 * is dropped before it wakes the daemon. It only ever drops what knock() would refuse anyway:
 *
 * - fwknop (Rijndael): the wire is base64 of `Salted__` + 8 salt bytes + whole 16-byte blocks
 *   (PKCS#7 pads every mode, a packet holds at least one block), unpadded, with its first 10
 *   characters (`U2FsdGVkX1`) cut off, then an HMAC tag of one of the digests' lengths, or none.
 *   So the length is one of a few dozen values below MIN_GNUPG_MSG_SIZE (longer is GPG, which
 *   is refused), and the first character encodes the last 4 bits of `_` (1111) and 2 salt bits:
 *   one of `8 9 + /`.
 * - JOSE: a compact JWE's first part is base64url of a JSON object, which starts `{"`: `eyJ`.
 */
export interface SpaShape {
  /** Every payload length a fwknop packet can have, ascending. */
  readonly fwknopLengths: readonly number[];
  /** The bytes a fwknop packet's first character can be. */
  readonly fwknopFirstBytes: readonly number[];
  /** The first three bytes of every JOSE-profile packet. */
  readonly joseStart: readonly [number, number, number];
}

/** Every wire length of a fwknop packet whose HMAC tag is `tagLength` characters (0: none). */
export function fwknopWireLengths(tagLength: number): number[] {
  const out: number[] = [];
  for (let blocks = 1; ; blocks++) {
    const encrypted = Math.ceil((4 * (16 + 16 * blocks)) / 3) - RIJNDAEL_B64_PREFIX.length;
    const wire = encrypted + tagLength;
    if (wire >= MIN_GNUPG_MSG_SIZE) return out;
    if (wire >= MIN_SPA_DATA_SIZE) out.push(wire);
  }
}

function buildSpaShape(): SpaShape {
  const tagLengths = [0, ...new Set(Object.values(DIGESTS).map((d) => d.b64Length))];
  const lengths = new Set(tagLengths.flatMap(fwknopWireLengths));
  return {
    fwknopLengths: [...lengths].sort((a, b) => a - b),
    fwknopFirstBytes: [..."+/89"].map((c) => c.charCodeAt(0)),
    joseStart: JOSE_START,
  };
}

export const SPA_SHAPE: SpaShape = buildSpaShape();

/** The kernel filter's decision, in userspace: could this payload be an SPA packet by its shape? */
export function hasSpaShape(payload: Uint8Array): boolean {
  if (payload.length < MIN_SPA_DATA_SIZE || payload.length > MAX_SPA_DATA_SIZE) return false;
  if (isJoseStart(payload)) return true;
  return (
    SPA_SHAPE.fwknopLengths.includes(payload.length) &&
    SPA_SHAPE.fwknopFirstBytes.includes(payload[0] as number)
  );
}
