/** `spaknock decode <spa-data>`: verify and decode one packet with the given keys. */
import { DIGESTS, openSpaPacket, type SpaMessage } from "../../core/index.js";
import type { ClientOptions } from "../client-settings.js";
import { describePacket } from "../describe-packet.js";
import { gatherKeys } from "./knock.js";

export interface DecodeOptions extends ClientOptions {
  json?: boolean;
}

export async function runDecode(
  spaData: string,
  opts: DecodeOptions,
  out: (line: string) => void,
): Promise<void> {
  const keys = await gatherKeys(opts);
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
