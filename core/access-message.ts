/**
 * The grammar of what an SPA message asks for (docs/protocol.md section 1.3): the access
 * message `allow_ip,proto/port[,…]`, the command message and the NAT target, plus the username
 * rule. Used by the packet decoder and by the config parsers (OPEN_PORTS and the like).
 */
import { isValidIpv4 } from "./address.js";
import { SpaError } from "./errors.js";
import { MAX_HOSTNAME_LEN, MAX_SPA_USERNAME_SIZE } from "./limits.js";

export interface ProtoPort {
  readonly proto: "tcp" | "udp";
  readonly port: number;
}

export interface AccessRequest {
  readonly allowIp: string;
  readonly ports: readonly ProtoPort[];
}

export interface CommandRequest {
  readonly allowIp: string;
  readonly command: string;
}

export interface NatAccess {
  readonly host: string;
  readonly port: number;
}

const DIGITS = /^[0-9]+$/;
const PROTO_PORT = /^(tcp|udp)\/([0-9]{1,5})$/;
// Username bytes libfko refuses besides non-printables.
const USERNAME_FORBIDDEN = new Set('"/\\[]:;|=,+*?<>');
const NAT_HOST_FORBIDDEN = /[ /?"'\\]/;

export function validateUsername(username: string): void {
  if (username.length < 1 || username.length > MAX_SPA_USERNAME_SIZE) {
    throw new SpaError("SPA_BAD_USERNAME", `length must be 1..${MAX_SPA_USERNAME_SIZE}`);
  }
  for (const ch of username) {
    const c = ch.charCodeAt(0);
    if (c < 0x20 || c > 0x7e || USERNAME_FORBIDDEN.has(ch)) {
      throw new SpaError("SPA_BAD_USERNAME", `character 0x${c.toString(16)} not allowed`);
    }
  }
}

export function parseProtoPort(text: string): ProtoPort {
  const m = PROTO_PORT.exec(text);
  const port = m ? Number(m[2]) : 0;
  if (!m || port < 1 || port > 65535) {
    throw new SpaError("SPA_BAD_MESSAGE", `"${text}" is not tcp/PORT or udp/PORT (1..65535)`);
  }
  return { proto: m[1] as "tcp" | "udp", port };
}

/** `allow_ip,proto/port[,proto/port...]`, the grammar both fwknop and fwknopd accept. */
export function parseAccessMessage(message: string): AccessRequest {
  const parts = message.split(",");
  const allowIp = parts[0] ?? "";
  if (!isValidIpv4(allowIp)) throw new SpaError("SPA_BAD_MESSAGE", "allow-IP is not IPv4");
  if (parts.length < 2) throw new SpaError("SPA_BAD_MESSAGE", "no proto/port");
  return { allowIp, ports: parts.slice(1).map(parseProtoPort) };
}

export function parseCommandMessage(message: string): CommandRequest {
  const comma = message.indexOf(",");
  const allowIp = comma === -1 ? message : message.slice(0, comma);
  if (!isValidIpv4(allowIp)) throw new SpaError("SPA_BAD_MESSAGE", "allow-IP is not IPv4");
  const command = comma === -1 ? "" : message.slice(comma + 1);
  if (command.length === 0) throw new SpaError("SPA_BAD_MESSAGE", "empty command");
  return { allowIp, command };
}

/** `host,port`, the internal target of a NAT access request. */
export function parseNatAccess(nat: string): NatAccess {
  const parts = nat.split(",");
  if (parts.length !== 2) throw new SpaError("SPA_BAD_NAT", "expected host,port");
  const [host = "", portText = ""] = parts;
  if (host.length < 1 || host.length > MAX_HOSTNAME_LEN || NAT_HOST_FORBIDDEN.test(host)) {
    throw new SpaError("SPA_BAD_NAT", "invalid host");
  }
  const port = DIGITS.test(portText) && portText.length <= 5 ? Number(portText) : 0;
  if (port < 1 || port > 65535) throw new SpaError("SPA_BAD_NAT", "port must be 1..65535");
  return { host, port };
}
