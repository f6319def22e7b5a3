/**
 * base64 as libfko uses it: standard alphabet, `=` padding stripped on output, optional on input.
 * Node's decoder silently skips foreign characters, so input is validated first.
 */
import { SpaError, type SpaErrorCode } from "./errors.js";

const B64_TEXT = /^[A-Za-z0-9+/]*={0,2}$/;

export function b64Encode(bytes: Uint8Array | string): string {
  const buf = typeof bytes === "string" ? Buffer.from(bytes, "utf8") : Buffer.from(bytes);
  return stripPadding(buf.toString("base64"));
}

export function stripPadding(b64: string): string {
  let end = b64.length;
  while (end > 0 && b64.charCodeAt(end - 1) === 61 /* = */) end--;
  return b64.slice(0, end);
}

export function isBase64Text(text: string): boolean {
  return B64_TEXT.test(text);
}

/** Decodes strict base64 text to bytes; `code` names the field in the error. */
export function b64DecodeBytes(text: string, code: SpaErrorCode, field: string): Buffer {
  if (!isBase64Text(text)) throw new SpaError(code, `${field} is not base64`);
  return Buffer.from(text, "base64");
}

/**
 * Decodes a base64 field to text the way libfko does: the result is a C string, so an embedded
 * NUL ends it.
 */
export function b64DecodeField(text: string, code: SpaErrorCode, field: string): string {
  const bytes = b64DecodeBytes(text, code, field);
  const nul = bytes.indexOf(0);
  return (nul === -1 ? bytes : bytes.subarray(0, nul)).toString("latin1");
}
