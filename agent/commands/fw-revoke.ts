/**
 * `spaknockd --fw-revoke ADDR[:proto/port] [--json]`: closes spaknock's grant(s) for an address
 * now. A running daemon does it (over its control socket, see agent/control-socket.ts), so the
 * close is logged and notified once and its expiry later reports nothing; with no daemon running
 * the command removes the rules and logs the close itself.
 */
import { EXIT, parseIpAddress, parseProtoPort } from "../../core/index.js";
import { askDaemonToRevoke, type RevokeResult } from "../control-socket.js";
import { closeLine, REVOKED } from "../expiry-timers.js";
import type { GrantMatch, ManagedFirewall } from "../firewall/managed-firewall.js";
import type { Log } from "../log.js";
import { grantJson, secondsLeft } from "./fw-list.js";

/**
 * `198.18.0.2`, `198.18.0.2:tcp/22`, `2001:db8::2`, `[2001:db8::2]` or `[2001:db8::2]:tcp/22`.
 * An IPv6 address with a port needs the brackets: `2001:db8::2:tcp/22` is refused, not guessed.
 * Throws a TypeError that says what is wrong.
 */
export function parseRevokeTarget(text: string): GrantMatch {
  const usage = `"${text}" is not ADDR, ADDR:proto/port or [IPV6]:proto/port (e.g. 198.18.0.2:tcp/22, [2001:db8::2]:tcp/22)`;
  let address: string;
  let portText: string | null = null;
  const bracketed = /^\[([^\]]*)\](?::(.*))?$/.exec(text);
  if (bracketed) {
    address = bracketed[1] ?? "";
    portText = bracketed[2] ?? null;
  } else if (text.includes("/")) {
    const at = text.lastIndexOf(":");
    address = at === -1 ? text : text.slice(0, at);
    portText = at === -1 ? null : text.slice(at + 1);
    if (portText === null || address.includes(":")) {
      throw new TypeError(
        `${usage}${address.includes(":") ? ": write an IPv6 address with a port as [ADDR]:proto/port" : ""}`,
      );
    }
  } else address = text;
  const ip = parseIpAddress(address);
  if (bracketed && (ip === null || !address.includes(":"))) {
    throw new TypeError(`${usage}: brackets are for an IPv6 address`);
  }
  if (ip === null) throw new TypeError(usage);
  const sourceIp = ip.text;
  if (portText === null) return { sourceIp, port: null };
  try {
    return { sourceIp, port: parseProtoPort(portText) };
  } catch {
    throw new TypeError(`${usage}: "${portText}" is not tcp/PORT or udp/PORT (1..65535)`);
  }
}

/** The target as the user would write it, for messages. */
export function revokeTargetText(match: GrantMatch): string {
  const v6 = match.sourceIp.includes(":");
  if (match.port === null) return match.sourceIp;
  const port = `${match.port.proto}/${match.port.port}`;
  return v6 ? `[${match.sourceIp}]:${port}` : `${match.sourceIp}:${port}`;
}

export interface FwRevokeParts {
  readonly controlSocket: string;
  /** The firewall for the no-daemon path; built only when needed. */
  readonly firewall: () => ManagedFirewall;
  readonly log: () => Log;
  readonly json: boolean;
  readonly nowSec: () => number;
}

/** Revokes, prints what was closed; the exit code says whether anything was. */
export async function runFwRevoke(match: GrantMatch, parts: FwRevokeParts): Promise<number> {
  const result =
    (await askDaemonToRevoke(parts.controlSocket, match)) ?? (await revokeHere(match, parts));
  const now = parts.nowSec();
  if (parts.json) {
    const revoked = result.revoked.map((r) => grantJson(r, now));
    process.stdout.write(
      `${JSON.stringify({ backend: result.backend, target: result.target, revoked })}\n`,
    );
  } else if (result.revoked.length > 0) process.stdout.write(revokedText(result, now));
  if (result.revoked.length > 0) return EXIT.OK;
  process.stderr.write(
    `spaknockd: no grant of spaknock's in ${result.target} matches ${revokeTargetText(match)}: nothing closed\n`,
  );
  return EXIT.RUNTIME;
}

function revokedText(result: RevokeResult, nowSec: number): string {
  const lines = [`${result.target}: closed ${result.revoked.length}`];
  for (const r of result.revoked) {
    const left = r.expiresAt === null ? "" : `  (${secondsLeft(r, nowSec)} s before its expiry)`;
    lines.push(`  ${r.sourceIp} -> ${r.port.proto}/${r.port.port}${left}`);
  }
  return `${lines.join("\n")}\n`;
}

/** No daemon runs: nothing else tracks the grant, so this process removes and logs it. */
async function revokeHere(match: GrantMatch, parts: FwRevokeParts): Promise<RevokeResult> {
  const firewall = parts.firewall();
  const log = parts.log();
  try {
    const revoked = await firewall.revoke(match);
    for (const r of revoked) log.info(closeLine(firewall.label, r.sourceIp, r.port, null, REVOKED));
    return { backend: firewall.backend, target: firewall.label, revoked };
  } finally {
    firewall.shutdown?.();
    log.close();
  }
}
