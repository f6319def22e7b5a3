/**
 * spaknockd's control socket (`<FWKNOP_RUN_DIR>/spaknockd.sock`, 0600): `spaknockd --fw-revoke`
 * asks the running daemon to close a grant instead of removing it itself.
 *
 * Why a socket and not the command alone: the daemon tracks every grant's timer, and with nftables
 * the kernel ends a grant by itself, so an element that is gone at its expiry looks the same
 * whether it timed out or was revoked. Only the process that removes a rule can say so truthfully;
 * when that process is the daemon, the revoke goes through the same close path as an expiry
 * (TimerExpiry): logged once as "revoked by hand", its timer cancelled, its user told once, and
 * serialised with the daemon's own firewall changes. Without a running daemon the command closes
 * the grant itself (nothing else tracks it then).
 *
 * One JSON line each way per connection: `{"revoke":{"sourceIp":..,"port":{..}|null}}` in,
 * `{"backend","target","revoked":[..]}` or `{"error":".."}` out. Only root (the socket's owner) can
 * connect; all it can ask for is closing a grant early.
 */
import { chmodSync, mkdirSync, rmSync } from "node:fs";
import { createConnection, createServer, type Server, type Socket } from "node:net";
import { dirname, join } from "node:path";
import { canonicalIp } from "../core/index.js";
import type { GrantMatch, ManagedFirewall, OpenRule } from "./firewall/managed-firewall.js";
import type { Log } from "./log.js";

export const CONTROL_SOCKET_FILE = "spaknockd.sock";
/** A request is one short line; anything longer is not one. */
const MAX_REQUEST_BYTES = 4096;
const IDLE_TIMEOUT_MS = 5_000;
const ASK_TIMEOUT_MS = 15_000;

export function controlSocketPath(runDir: string): string {
  return join(runDir, CONTROL_SOCKET_FILE);
}

// The socket's two messages, checked by hand: this file is loaded by every daemon, and a schema
// library would cost it more memory than the rest of the daemon's code.
type Json = unknown;
const isObject = (v: Json): v is Record<string, Json> =>
  typeof v === "object" && v !== null && !Array.isArray(v);
const hasOnlyKeys = (v: Record<string, Json>, keys: readonly string[]) =>
  Object.keys(v).every((k) => keys.includes(k));

function protoPortOf(v: Json): { proto: "tcp" | "udp"; port: number } | null {
  if (!isObject(v) || (v.proto !== "tcp" && v.proto !== "udp")) return null;
  const port = v.port;
  if (typeof port !== "number" || !Number.isInteger(port) || port < 1 || port > 65535) return null;
  return { proto: v.proto, port };
}

/** `{"revoke":{"sourceIp":"…","port":{"proto":"tcp","port":22}|null}}`, nothing more. */
function revokeRequestOf(v: Json): GrantMatch | null {
  if (!isObject(v) || !hasOnlyKeys(v, ["revoke"]) || !isObject(v.revoke)) return null;
  const { sourceIp, port } = v.revoke;
  if (!hasOnlyKeys(v.revoke, ["sourceIp", "port"]) || !("port" in v.revoke)) return null;
  if (typeof sourceIp !== "string" || sourceIp.length > 64) return null;
  if (port === null) return { sourceIp, port: null };
  const checked = protoPortOf(port);
  return checked === null ? null : { sourceIp, port: checked };
}

function openRuleOf(v: Json): OpenRule | null {
  if (!isObject(v) || typeof v.sourceIp !== "string") return null;
  const port = protoPortOf(v.port);
  const { expiresAt } = v;
  const expiry =
    expiresAt === null || (typeof expiresAt === "number" && Number.isInteger(expiresAt));
  return port === null || !expiry
    ? null
    : { sourceIp: v.sourceIp, port, expiresAt: expiresAt as number | null };
}

/** The daemon's answer: what it revoked, or its error. */
function revokeReplyOf(v: Json): RevokeResult | { error: string } | null {
  if (!isObject(v)) return null;
  if (typeof v.error === "string") return { error: v.error };
  const { backend, target, revoked } = v;
  if (backend !== "nftables" && backend !== "iptables" && backend !== "none") return null;
  if (typeof target !== "string" || !Array.isArray(revoked)) return null;
  const rules = revoked.map(openRuleOf);
  if (rules.some((r) => r === null)) return null;
  return { backend, target, revoked: rules as OpenRule[] };
}

/** What a revoke closed, and where: the same whether the daemon or the command did it. */
export interface RevokeResult {
  readonly backend: ManagedFirewall["backend"];
  /** The firewall's label: "inet spaknock", "SPAKNOCK_INPUT". */
  readonly target: string;
  readonly revoked: readonly OpenRule[];
}

type Reply = RevokeResult | { readonly error: string };

export class ControlSocket {
  private server: Server | null = null;

  constructor(
    private readonly path: string,
    private readonly firewall: Pick<ManagedFirewall, "backend" | "label">,
    private readonly revoke: (match: GrantMatch) => Promise<OpenRule[]>,
    private readonly log: Log,
    /** How long a client may stay silent before the socket drops it. */
    private readonly idleTimeoutMs = IDLE_TIMEOUT_MS,
  ) {}

  async start(): Promise<void> {
    mkdirSync(dirname(this.path), { recursive: true, mode: 0o755 });
    rmSync(this.path, { force: true }); // left by a daemon that did not stop cleanly
    const server = createServer((socket) => this.serve(socket));
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen(this.path, () => {
        server.off("error", reject);
        resolve();
      });
    });
    chmodSync(this.path, 0o600);
    server.on("error", (err) => this.log.error(`control socket ${this.path}: ${String(err)}`));
    this.server = server;
  }

  async stop(): Promise<void> {
    const server = this.server;
    if (!server) return;
    this.server = null;
    await new Promise<void>((resolve) => server.close(() => resolve()));
    rmSync(this.path, { force: true });
  }

  private serve(socket: Socket): void {
    let buffer = "";
    socket.setEncoding("utf8");
    socket.setTimeout(this.idleTimeoutMs, () => socket.destroy());
    socket.on("error", () => {});
    const onData = (chunk: string) => {
      buffer += chunk;
      const end = buffer.indexOf("\n");
      if (end === -1) {
        if (buffer.length > MAX_REQUEST_BYTES) socket.destroy();
        return;
      }
      socket.off("data", onData);
      void this.answer(buffer.slice(0, end)).then((reply) =>
        socket.end(`${JSON.stringify(reply)}\n`),
      );
    };
    socket.on("data", onData);
  }

  private async answer(line: string): Promise<Reply> {
    let request: GrantMatch | null;
    try {
      request = revokeRequestOf(JSON.parse(line));
    } catch {
      request = null;
    }
    if (request === null) return { error: "malformed control request" };
    const sourceIp = canonicalIp(request.sourceIp);
    if (sourceIp === null) return { error: `"${request.sourceIp}" is not an IP address` };
    try {
      const revoked = await this.revoke({ sourceIp, port: request.port });
      return { backend: this.firewall.backend, target: this.firewall.label, revoked };
    } catch (err) {
      this.log.error(`revoke of ${sourceIp} failed: ${String(err)}`);
      return { error: err instanceof Error ? err.message : String(err) };
    }
  }
}

/**
 * Asks the daemon listening on `path` to revoke. Resolves null when no daemon listens there (no
 * socket, or the socket of one that died), so the caller closes the grant itself.
 */
export function askDaemonToRevoke(
  path: string,
  match: GrantMatch,
  timeoutMs = ASK_TIMEOUT_MS,
): Promise<RevokeResult | null> {
  return new Promise((resolve, reject) => {
    const socket = createConnection(path);
    let connected = false;
    let answer = "";
    socket.setEncoding("utf8");
    socket.setTimeout(timeoutMs, () =>
      socket.destroy(new Error(`spaknockd did not answer on ${path} within ${timeoutMs} ms`)),
    );
    socket.on("connect", () => {
      connected = true;
      socket.write(`${JSON.stringify({ revoke: match })}\n`);
    });
    socket.on("data", (chunk: string) => {
      answer += chunk;
    });
    socket.on("error", (err: NodeJS.ErrnoException) => {
      if (!connected && (err.code === "ENOENT" || err.code === "ECONNREFUSED")) resolve(null);
      else reject(err);
    });
    socket.on("end", () => {
      try {
        const reply = revokeReplyOf(JSON.parse(answer));
        if (reply === null) throw new Error("malformed");
        if ("error" in reply) reject(new Error(`spaknockd: ${reply.error}`));
        else resolve(reply);
      } catch {
        reject(new Error(`spaknockd sent a malformed answer on ${path}`));
      }
    });
  });
}
