/**
 * The one error family of spaknock. `code` is stable: logs, tests and callers switch on it.
 * Messages say what was wrong and where, and never contain key material.
 */

export const SPA_ERROR_CODES = {
  // precheck of a raw datagram
  SPA_SIZE: "payload size outside 140..1500 bytes",
  SPA_CHARSET: "payload is not base64 text",
  SPA_PREFIXED: "payload carries the Salted__/GPG prefix that clients strip (replay defence)",
  SPA_GPG_UNSUPPORTED: "payload is GPG-encrypted, which spaknock does not accept",
  // HMAC and decryption
  SPA_HMAC_TOO_SHORT: "payload too short to hold the stanza's HMAC",
  SPA_HMAC_MISMATCH: "HMAC does not verify with the stanza's key and digest type",
  SPA_CIPHERTEXT_LENGTH: "ciphertext length is not a whole number of AES blocks",
  SPA_DECRYPT_FAILED: "decryption failed or decrypted data is invalid",
  // decode of the plaintext
  SPA_NON_ASCII: "plaintext contains non-printable bytes",
  SPA_FIELD_COUNT: "wrong number of fields",
  SPA_DIGEST_TYPE: "inner digest has an unknown length",
  SPA_DIGEST_MISMATCH: "inner digest does not match the message",
  SPA_BAD_RANDOM: "random value is not 16 digits",
  SPA_BAD_USERNAME: "invalid username",
  SPA_BAD_TIMESTAMP: "invalid timestamp",
  SPA_BAD_VERSION: "invalid version",
  SPA_BAD_MESSAGE_TYPE: "invalid message type",
  SPA_BAD_MESSAGE: "invalid access or command message",
  SPA_BAD_NAT: "invalid NAT access field",
  SPA_BAD_SERVER_AUTH: "invalid server_auth field",
  SPA_BAD_TIMEOUT: "invalid client timeout",
  // the JOSE profile (docs/jose-profile.md), in the order a receiver checks
  JOSE_SHAPE: "payload starts like a JOSE packet but is not a compact JWE of five base64url parts",
  JOSE_NOT_CONFIGURED: "JOSE packet, but this receiver has no server key (SERVER_KEY_FILE)",
  JOSE_HEADER: "JWE or JWS protected header is not exactly the profile's header",
  JOSE_WRONG_SERVER: "packet is encrypted to another server's key (JWE kid)",
  JOSE_DECRYPT: "the JWE does not decrypt with the server key (altered, or not made for it)",
  JOSE_KEY_UNKNOWN:
    "the signing key (JWS kid) is in no AUTHORIZED_KEYS of a stanza matching the source",
  JOSE_SIGNATURE: "the signature does not verify with the authorized key of that kid",
  JOSE_VERSION: "claim v is not 1, the profile version this receiver speaks",
  JOSE_AUDIENCE: "claim aud is not this server's key: the packet was made for another server",
  JOSE_SUBJECT: "claim sub is not the name of the authorized key that signed",
  JOSE_ADDRESS: "claim ip is not an IPv4 or IPv6 address",
  JOSE_CLAIMS:
    "claims are not exactly v, aud, sub, iat, jti, ip, acc (and tmo), or one is malformed",
  // the access decision
  SPA_REPLAY: "packet digest already seen",
  SPA_NO_SOURCE_MATCH: "no access stanza matches the source address",
  SPA_NO_STANZA_VERIFIED: "no matching stanza's keys verify the packet",
  SPA_STANZA_EXPIRED: "access stanza has expired",
  SPA_STALE: "packet timestamp outside the allowed age",
  SPA_SOURCE_REQUIRED: "allow-IP 0.0.0.0 but the stanza requires a source address",
  SPA_USERNAME_MISMATCH: "username does not match REQUIRE_USERNAME",
  SPA_PORT_DENIED: "requested port not allowed by OPEN_PORTS/RESTRICT_PORTS",
  SPA_NAT_DISABLED: "NAT access requested but not enabled",
  SPA_COMMAND_DISABLED: "command message but command execution is not enabled",
  // the adapters the decision drives
  REPLAY_STORE_FAILED: "the replay cache could not record the packet; nothing was opened",
  FIREWALL_FAILED: "the firewall refused the rule; nothing was opened",
  SCHEDULE_FAILED:
    "the grant stands but its one-time revoke schedule could not be created; the sweeper closes it",
  GROUP_NOT_MANAGED: "a revoke named a security group spaknock does not guard; it was left alone",
  // load: datagrams dropped before any crypto to keep the receiver responsive
  OVERLOAD: "too many packets were in flight; the datagram was dropped unread",
  RATE_LIMITED: "the source sent more packets than its per-source limit allows; dropped unread",
  INTERNAL: "an unexpected error in the receiver; nothing was opened",
  // the receivers' own events (the Lambda's relay and function URL events)
  EVENT_INVALID: "neither a relay event nor a function URL request",
  EVENT_STALE: "the event reached the function too long after the relay received the packet",
  // local input
  KEY_INVALID: "invalid key",
  ARG_INVALID: "invalid argument",
  CONFIG_INVALID: "invalid configuration",
} as const;

export type SpaErrorCode = keyof typeof SPA_ERROR_CODES;

export class SpaError extends Error {
  override readonly name = "SpaError";
  readonly code: SpaErrorCode;

  constructor(code: SpaErrorCode, detail?: string) {
    const summary = SPA_ERROR_CODES[code];
    // Refusals are expected outcomes, thrown once per junk packet under a flood: capturing a
    // stack for each would cost more than the HMAC check that raised it. The code says where.
    const limit = Error.stackTraceLimit;
    Error.stackTraceLimit = 0;
    super(detail ? `${summary}: ${detail}` : summary);
    Error.stackTraceLimit = limit;
    this.code = code;
  }
}

export function isSpaError(value: unknown): value is SpaError {
  return value instanceof SpaError;
}
