/**
 * Every size bound of the fwknop 2.x wire format, in one place (docs/protocol.md section 5).
 * Names follow libfko's where it has one, so a reader can cross-check them.
 */

/** A received payload (UDP datagram, TCP segment, HTTP request) shorter than this is ignored. */
export const MIN_SPA_DATA_SIZE = 140;
/** A received payload longer than this is ignored. */
export const MAX_SPA_DATA_SIZE = 1500;

/** Bounds on the plaintext `E:D`, the encoded message and the base64 ciphertext (36 ≤ len < 1500). */
export const MIN_SPA_ENCODED_MSG_SIZE = 36;
export const MAX_SPA_ENCODED_MSG_SIZE = 1500;

/** Wire strings this long or longer are classified as GPG, not Rijndael. */
export const MIN_GNUPG_MSG_SIZE = 400;

/** The 16 ASCII digits of the random value. */
export const RAND_VAL_SIZE = 16;

/** base64 username text on decode; the raw username is 1..63 bytes. */
export const MAX_SPA_USERNAME_B64_SIZE = 64;
export const MAX_SPA_USERNAME_SIZE = 63;

/** Timestamp, version and message-type fields: maximum text lengths on decode. */
export const MAX_SPA_TIMESTAMP_SIZE = 12;
export const MAX_SPA_VERSION_SIZE = 8;
export const MAX_SPA_MESSAGE_TYPE_SIZE = 2;

/** base64 text of message / NAT / server_auth / timeout fields on decode; raw message on encode (<). */
export const MAX_SPA_MESSAGE_SIZE = 256;
/** Raw NAT access string on encode (<). */
export const MAX_SPA_NAT_ACCESS_SIZE = 128;
/** Raw server_auth on encode. */
export const MAX_SPA_SERVER_AUTH_SIZE = 64;
/** Host part of a NAT access field. */
export const MAX_HOSTNAME_LEN = 70;

/** `:`-separated fields of `E` (the digest is one more). */
export const MIN_SPA_FIELDS = 6;
export const MAX_SPA_FIELDS = 9;

/** Dotted-quad IPv4 text. */
export const MIN_IPV4_STR_LEN = 7;
export const MAX_IPV4_STR_LEN = 15;

/** fwknopd's decoder rejects a client timeout above this. */
export const MAX_CLIENT_TIMEOUT = 65536;

/** Rijndael key: 1..32 raw bytes; legacy IV mode pads or truncates to 16. */
export const MAX_RIJNDAEL_KEY_SIZE = 32;
export const LEGACY_KEY_SIZE = 16;
/** HMAC key: the fwknop client accepts up to 128 raw bytes (libfko 136). */
export const MAX_HMAC_KEY_SIZE = 128;

/** Salt of the OpenSSL `Salted__` header. */
export const SALT_SIZE = 8;
export const AES_BLOCK_SIZE = 16;

/** The base64 of `Salted__`, dropped on the wire and restored on receipt. */
export const RIJNDAEL_B64_PREFIX = "U2FsdGVkX1";
/** The base64 of a GPG PKESK header, dropped on the wire. */
export const GPG_B64_PREFIX = "hQ";

/** The only protocol version this implementation speaks. */
export const FKO_PROTOCOL_VERSION = "3.0.0";

/** Default UDP port of fwknop servers. */
export const DEFAULT_SPA_PORT = 62201;
