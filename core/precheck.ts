/**
 * The first look at a raw datagram, before any crypto: fwknopd's size, prefix and charset rules
 * (docs/protocol.md section 7, step 1). Cheap and bounded, so junk costs almost nothing.
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

/** Returns the payload as SPA data text, or throws SPA_SIZE / SPA_PREFIXED / SPA_CHARSET. */
export function precheckDatagram(payload: Uint8Array): string {
  if (payload.length < MIN_SPA_DATA_SIZE || payload.length > MAX_SPA_DATA_SIZE) {
    throw new SpaError("SPA_SIZE", `${payload.length} bytes`);
  }
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
  return text;
}
