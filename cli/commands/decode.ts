/** `spaknock decode <spa-data>`: verify and decode one packet with the given keys. */
import { DIGESTS, openSpaPacket, type SpaMessage } from "../../core/index.js";
import { describePacket } from "../describe-packet.js";
import { type KeyOptions, keysFromOptions } from "../key-options.js";

export interface DecodeOptions extends KeyOptions {
  json?: boolean;
}

export function runDecode(spaData: string, opts: DecodeOptions, out: (line: string) => void): void {
  const keys = keysFromOptions(opts);
  const data = spaData.trim();
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
