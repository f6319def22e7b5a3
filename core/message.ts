/**
 * The plaintext SPA message `E` and its inner digest `D` (docs/protocol.md section 1):
 *
 *   E = rand ":" b64(user) ":" ts ":" version ":" type ":" b64(msg) [":" b64(nat)] [":" b64(server_auth)] [":" timeout]
 *   P = E ":" b64(DIGEST(E))
 */
import { createHash, timingSafeEqual } from "node:crypto";
import {
  parseAccessMessage,
  parseCommandMessage,
  parseNatAccess,
  validateUsername,
} from "./access-message.js";
import { b64DecodeField, b64Encode } from "./base64.js";
import { DIGESTS, type DigestType, digestTypesForLength } from "./digest.js";
import { SpaError } from "./errors.js";
import {
  FKO_PROTOCOL_VERSION,
  MAX_CLIENT_TIMEOUT,
  MAX_SPA_ENCODED_MSG_SIZE,
  MAX_SPA_FIELDS,
  MAX_SPA_MESSAGE_SIZE,
  MAX_SPA_MESSAGE_TYPE_SIZE,
  MAX_SPA_NAT_ACCESS_SIZE,
  MAX_SPA_TIMESTAMP_SIZE,
  MAX_SPA_USERNAME_B64_SIZE,
  MAX_SPA_VERSION_SIZE,
  MIN_SPA_ENCODED_MSG_SIZE,
  MIN_SPA_FIELDS,
  RAND_VAL_SIZE,
} from "./limits.js";

const DIGITS = /^[0-9]+$/;

export const MESSAGE_TYPES = {
  0: "Command msg",
  1: "Access msg",
  2: "NAT access msg",
  3: "Client timeout access msg",
  4: "Client timeout NAT access msg",
  5: "Local NAT access msg",
  6: "Client timeout local NAT access msg",
} as const;
export type MessageType = keyof typeof MESSAGE_TYPES;

export function messageTypeHasNat(type: MessageType): boolean {
  return type === 2 || type === 4 || type === 5 || type === 6;
}

export function messageTypeHasTimeout(type: MessageType): boolean {
  return type === 3 || type === 4 || type === 6;
}

/** The decoded fields of an SPA message, named as `spaknock decode --json` prints them. */
export interface SpaMessage {
  readonly randomValue: string;
  readonly username: string;
  readonly timestamp: number;
  readonly version: string;
  readonly messageType: MessageType;
  /** Access message (`ip,proto/port,...`) or command message (`ip,command`). */
  readonly message: string;
  readonly natAccess: string | null;
  readonly serverAuth: string | null;
  /** 0 when the message carries no client timeout. */
  readonly clientTimeout: number;
  readonly digestType: DigestType;
  readonly digest: string;
}

export type SpaMessageInput = Omit<SpaMessage, "digest" | "version" | "serverAuth"> & {
  readonly version?: string;
};

function validateMessageBody(type: MessageType, message: string): void {
  if (type === 0) parseCommandMessage(message);
  else parseAccessMessage(message);
}

export function computeDigest(encoded: string, type: DigestType): string {
  return b64Encode(createHash(DIGESTS[type].nodeName).update(encoded, "latin1").digest());
}

/** Builds `E` from validated fields; throws SpaError for anything fwknopd would refuse. */
export function encodeMessage(input: SpaMessageInput): string {
  if (input.randomValue.length !== RAND_VAL_SIZE || !DIGITS.test(input.randomValue)) {
    throw new SpaError("SPA_BAD_RANDOM");
  }
  validateUsername(input.username);
  const usernameB64 = b64Encode(input.username);
  // fwknopd (and decodePlaintext) refuse more than 64 base64 characters, i.e. 48 bytes.
  if (usernameB64.length > MAX_SPA_USERNAME_B64_SIZE) {
    throw new SpaError("SPA_BAD_USERNAME", "longer than 48 bytes, which fwknopd refuses");
  }
  if (!Number.isSafeInteger(input.timestamp) || input.timestamp < 0) {
    throw new SpaError("SPA_BAD_TIMESTAMP");
  }
  if (!(input.messageType in MESSAGE_TYPES)) throw new SpaError("SPA_BAD_MESSAGE_TYPE");
  if (input.message.length < 1 || input.message.length >= MAX_SPA_MESSAGE_SIZE) {
    throw new SpaError("SPA_BAD_MESSAGE", `message must be 1..${MAX_SPA_MESSAGE_SIZE - 1} bytes`);
  }
  validateMessageBody(input.messageType, input.message);
  const fields = [
    input.randomValue,
    usernameB64,
    String(input.timestamp),
    input.version ?? FKO_PROTOCOL_VERSION,
    String(input.messageType),
    b64Encode(input.message),
  ];
  if (messageTypeHasNat(input.messageType)) {
    const nat = input.natAccess ?? "";
    if (nat.length >= MAX_SPA_NAT_ACCESS_SIZE) throw new SpaError("SPA_BAD_NAT", "too long");
    parseNatAccess(nat);
    fields.push(b64Encode(nat));
  } else if (input.natAccess !== null) {
    throw new SpaError("SPA_BAD_NAT", `message type ${input.messageType} carries no NAT field`);
  }
  if (messageTypeHasTimeout(input.messageType)) {
    const t = input.clientTimeout;
    if (!Number.isInteger(t) || t < 1 || t > MAX_CLIENT_TIMEOUT) {
      throw new SpaError("SPA_BAD_TIMEOUT", `client timeout must be 1..${MAX_CLIENT_TIMEOUT}`);
    }
    fields.push(String(t));
  } else if (input.clientTimeout !== 0) {
    throw new SpaError("SPA_BAD_TIMEOUT", `message type ${input.messageType} carries no timeout`);
  }
  return fields.join(":");
}

/** `E:D`, the AES plaintext. */
export function encodePlaintext(input: SpaMessageInput): {
  encoded: string;
  digest: string;
  plaintext: string;
} {
  const encoded = encodeMessage(input);
  const digest = computeDigest(encoded, input.digestType);
  return { encoded, digest, plaintext: `${encoded}:${digest}` };
}

function boundedField(
  text: string,
  min: number,
  max: number,
  code: SpaError["code"],
  what: string,
) {
  if (text.length < min || text.length > max) {
    throw new SpaError(code, `${what} length ${text.length} outside ${min}..${max}`);
  }
}

function verifyInnerDigest(encoded: string, digest: string): DigestType {
  const candidates = digestTypesForLength(digest.length);
  if (candidates.length === 0) throw new SpaError("SPA_DIGEST_TYPE", `length ${digest.length}`);
  const received = Buffer.from(digest, "latin1");
  for (const type of candidates) {
    const computed = Buffer.from(computeDigest(encoded, type), "latin1");
    if (computed.length === received.length && timingSafeEqual(computed, received)) return type;
  }
  throw new SpaError("SPA_DIGEST_MISMATCH");
}

/**
 * Decodes and validates a decrypted plaintext `E:D`, with fwknopd's rules and bounds. The digest
 * type is inferred from the digest's length.
 */
export function decodePlaintext(plaintext: string): SpaMessage {
  boundedField(
    plaintext,
    MIN_SPA_ENCODED_MSG_SIZE,
    MAX_SPA_ENCODED_MSG_SIZE - 1,
    "SPA_DECRYPT_FAILED",
    "plaintext",
  );
  for (let i = 0; i < plaintext.length; i++) {
    const c = plaintext.charCodeAt(i);
    if (c < 0x20 || c > 0x7e) throw new SpaError("SPA_NON_ASCII", `byte ${i}`);
  }
  const lastColon = plaintext.lastIndexOf(":");
  const encoded = plaintext.slice(0, lastColon);
  const digest = plaintext.slice(lastColon + 1);
  const fields = encoded.split(":");
  if (lastColon === -1 || fields.length < MIN_SPA_FIELDS || fields.length > MAX_SPA_FIELDS) {
    throw new SpaError("SPA_FIELD_COUNT", `${fields.length + 1} fields`);
  }
  const digestType = verifyInnerDigest(encoded, digest);

  const [randomValue = "", userB64 = "", tsText = "", version = "", typeText = "", ...rest] =
    fields;
  if (randomValue.length !== RAND_VAL_SIZE || !DIGITS.test(randomValue)) {
    throw new SpaError("SPA_BAD_RANDOM");
  }
  boundedField(userB64, 1, MAX_SPA_USERNAME_B64_SIZE, "SPA_BAD_USERNAME", "username");
  const username = b64DecodeField(userB64, "SPA_BAD_USERNAME", "username");
  validateUsername(username);
  boundedField(tsText, 1, MAX_SPA_TIMESTAMP_SIZE, "SPA_BAD_TIMESTAMP", "timestamp");
  // fwknopd parses the timestamp into a C int.
  if (!DIGITS.test(tsText) || Number(tsText) > 0x7fffffff) throw new SpaError("SPA_BAD_TIMESTAMP");
  boundedField(version, 1, MAX_SPA_VERSION_SIZE, "SPA_BAD_VERSION", "version");
  boundedField(typeText, 1, MAX_SPA_MESSAGE_TYPE_SIZE, "SPA_BAD_MESSAGE_TYPE", "message type");
  const typeNumber = DIGITS.test(typeText) ? Number(typeText) : -1;
  if (!(typeNumber in MESSAGE_TYPES)) throw new SpaError("SPA_BAD_MESSAGE_TYPE", typeText);
  const messageType = typeNumber as MessageType;

  const hasNat = messageTypeHasNat(messageType);
  const hasTimeout = messageTypeHasTimeout(messageType);
  // msg, nat?, server_auth?, timeout?
  const maxAfterType = 2 + (hasNat ? 1 : 0) + (hasTimeout ? 1 : 0);
  if (rest.length > maxAfterType)
    throw new SpaError("SPA_FIELD_COUNT", `${rest.length} after type`);
  const queue = [...rest];
  const msgB64 = queue.shift();
  if (msgB64 === undefined) throw new SpaError("SPA_BAD_MESSAGE", "missing");
  boundedField(msgB64, 1, MAX_SPA_MESSAGE_SIZE, "SPA_BAD_MESSAGE", "message");
  const message = b64DecodeField(msgB64, "SPA_BAD_MESSAGE", "message");
  validateMessageBody(messageType, message);

  let natAccess: string | null = null;
  if (hasNat) {
    const natB64 = queue.shift();
    if (natB64 === undefined) throw new SpaError("SPA_BAD_NAT", "missing");
    boundedField(natB64, 1, MAX_SPA_MESSAGE_SIZE, "SPA_BAD_NAT", "NAT access");
    natAccess = b64DecodeField(natB64, "SPA_BAD_NAT", "NAT access");
    parseNatAccess(natAccess);
  }

  let clientTimeout = 0;
  if (hasTimeout) {
    const timeoutText = queue.pop();
    if (timeoutText === undefined) throw new SpaError("SPA_BAD_TIMEOUT", "missing");
    boundedField(timeoutText, 1, MAX_SPA_MESSAGE_SIZE, "SPA_BAD_TIMEOUT", "timeout");
    if (!DIGITS.test(timeoutText) || Number(timeoutText) > MAX_CLIENT_TIMEOUT) {
      throw new SpaError("SPA_BAD_TIMEOUT", timeoutText.slice(0, 16));
    }
    clientTimeout = Number(timeoutText);
  }

  // Whatever is left is server_auth: accepted and ignored, as fwknopd does.
  let serverAuth: string | null = null;
  const authB64 = queue.shift();
  if (authB64 !== undefined) {
    boundedField(authB64, 1, MAX_SPA_MESSAGE_SIZE, "SPA_BAD_SERVER_AUTH", "server_auth");
    serverAuth = b64DecodeField(authB64, "SPA_BAD_SERVER_AUTH", "server_auth");
  }

  return {
    randomValue,
    username,
    timestamp: Number(tsText),
    version,
    messageType,
    message,
    natAccess,
    serverAuth,
    clientTimeout,
    digestType,
    digest,
  };
}
