/**
 * fwknopd.conf, fwknop's format (docs/protocol.md section 8.2), read into spaknockd's settings.
 * fwknop keywords that change what spaknockd does are honoured; ones it knows but does not act
 * on are reported once as ignored; anything else stops startup with `file:line: what is wrong`.
 */
import {
  type ConfLine,
  confError,
  DEFAULT_SPA_PORT,
  type ProtoPort,
  parseBoundedInt,
  parseIpAddress,
  parsePortListLine,
  parseYesNo,
  unknownKeyword,
} from "../../core/index.js";

export type FirewallBackendName = "nftables" | "iptables" | "auto";

export interface DaemonSettings {
  readonly capture: "udp" | "pcap";
  readonly udpListenAddress: string;
  readonly udpPort: number;
  readonly pcapInterface: string;
  readonly pcapFilter: string;
  readonly pcapPromiscuous: boolean;
  readonly pcapSnapLength: number;
  /** Seconds, or null when ENABLE_SPA_PACKET_AGING is N. */
  readonly maxPacketAge: number | null;
  /** null when ENABLE_DIGEST_PERSISTENCE is N (no replay protection, as in fwknopd). */
  readonly digestFile: string | null;
  readonly runDir: string;
  /** null: `<runDir>/spaknockd.pid`. */
  readonly pidFile: string | null;
  readonly accessFile: string | null;
  /** SERVER_KEY_FILE: the X25519 private JWK JOSE packets are encrypted to; null: none. */
  readonly serverKeyFile: string | null;
  readonly syslogIdentity: string;
  readonly syslogFacility: string;
  readonly verbose: boolean;
  readonly firewallBackend: FirewallBackendName;
  /** Ports spaknock's nftables table keeps closed; null: the union of the stanzas' OPEN_PORTS. */
  readonly guardPorts: readonly ProtoPort[] | null;
  readonly nftTable: string;
  /** nftables: datagrams per second one source may send to the SPA port (0: unlimited). */
  readonly spaRateLimit: number;
  /** nftables: drop datagrams whose shape no SPA packet has (SPA_SHAPE) in the kernel. */
  readonly spaShapeFilter: boolean;
  readonly iptablesChain: string;
  readonly flushAtInit: boolean;
  readonly flushAtExit: boolean;
  readonly emailAddresses: readonly string[];
  readonly smtp: {
    readonly host: string;
    readonly port: number;
    readonly from: string;
    readonly secure: boolean;
  };
  readonly notifyExec: string | null;
}

export const DAEMON_DEFAULTS: DaemonSettings = {
  capture: "udp",
  // Dual-stack; the socket falls back to 0.0.0.0 where the kernel has no IPv6.
  udpListenAddress: "::",
  udpPort: DEFAULT_SPA_PORT,
  pcapInterface: "eth0",
  pcapFilter: `udp port ${DEFAULT_SPA_PORT}`,
  pcapPromiscuous: false,
  pcapSnapLength: 1500,
  maxPacketAge: 120,
  digestFile: "/var/lib/spaknock/digest.cache",
  runDir: "/run/spaknock",
  pidFile: null,
  accessFile: null,
  serverKeyFile: null,
  syslogIdentity: "spaknockd",
  syslogFacility: "LOG_DAEMON",
  verbose: false,
  firewallBackend: "auto",
  guardPorts: null,
  nftTable: "spaknock",
  spaRateLimit: 20,
  spaShapeFilter: true,
  iptablesChain: "SPAKNOCK_INPUT",
  flushAtInit: false,
  flushAtExit: true,
  emailAddresses: [],
  smtp: { host: "localhost", port: 25, from: "spaknockd@localhost", secure: false },
  notifyExec: null,
};

/** fwknopd.conf keywords spaknockd reads but does not act on. */
export const IGNORED_DAEMON_KEYWORDS = new Set(
  (
    "ENABLE_TCP_SERVER TCPSERV_PORT ENABLE_SPA_OVER_HTTP ENABLE_X_FORWARDED_FOR ENABLE_IPT_FORWARDING " +
    "ENABLE_IPT_LOCAL_NAT ENABLE_IPT_SNAT SNAT_TRANSLATE_IP ENABLE_IPT_OUTPUT IPT_INPUT_ACCESS " +
    "IPT_FORWARD_ACCESS IPT_DNAT_ACCESS IPT_SNAT_ACCESS IPT_MASQUERADE_ACCESS IPT_OUTPUT_ACCESS " +
    "ENABLE_IPT_COMMENT_CHECK ENABLE_RULE_PREPEND ENABLE_DESTINATION_RULE ENABLE_NAT_DNS " +
    "RULES_CHECK_THRESHOLD FWKNOP_CONF_DIR ACCESS_FOLDER FIREWALL_EXE LOCALE " +
    "ENABLE_PCAP_ANY_DIRECTION PCAP_DISPATCH_COUNT PCAP_LOOP_SLEEP PCAP_FILE EXIT_AT_INTF_DOWN " +
    "ENABLE_NFQ_CAPTURE NFQ_INTERFACE NFQ_PORT NFQ_QUEUE_NUMBER NFQ_TABLE NFQ_CHAIN NFQ_LOOP_SLEEP " +
    "ENABLE_EXTERNAL_CMDS EXTERNAL_CMD_OPEN EXTERNAL_CMD_CLOSE EXTERNAL_CMD_ALARM ENABLE_EXT_CMD_PREFIX " +
    "EXT_CMD_PREFIX GPG_HOME_DIR GPG_EXE SUDO_EXE DIGEST_DB_FILE ENABLE_FIREWD_FORWARDING " +
    "ENABLE_FIREWD_LOCAL_NAT ENABLE_FIREWD_SNAT ENABLE_FIREWD_OUTPUT ENABLE_FIREWD_COMMENT_CHECK " +
    "FIREWD_INPUT_ACCESS FIREWD_FORWARD_ACCESS FIREWD_DNAT_ACCESS FIREWD_SNAT_ACCESS " +
    "FIREWD_MASQUERADE_ACCESS FIREWD_OUTPUT_ACCESS FLUSH_FIREWD_AT_INIT FLUSH_FIREWD_AT_EXIT " +
    "FLUSH_IPFW_AT_INIT FLUSH_IPFW_AT_EXIT IPFW_START_RULE_NUM IPFW_MAX_RULES IPFW_ACTIVE_SET_NUM " +
    "IPFW_EXPIRE_SET_NUM IPFW_EXPIRE_PURGE_INTERVAL IPFW_ADD_CHECK_STATE PF_ANCHOR_NAME PF_EXPIRE_INTERVAL"
  ).split(/\s+/),
);

type Mutable<T> = { -readonly [K in keyof T]: T[K] };

/** The settings while fwknopd.conf is read, and the lines that only count together. */
interface DaemonDraft {
  readonly s: Mutable<DaemonSettings>;
  readonly smtp: Mutable<DaemonSettings["smtp"]>;
  aging: boolean;
  maxAge: number;
  persistence: boolean;
  digestFile: string | null;
}

function expandVariables(lines: readonly ConfLine[]): ConfLine[] {
  const seen = new Map<string, string>();
  return lines.map((l) => {
    const value = l.value.replace(/\$([A-Z_][A-Z0-9_]*)/g, (_m, name: string) => {
      const v = seen.get(name);
      if (v === undefined) throw confError(l, `$${name} is not defined above this line`);
      return v;
    });
    seen.set(l.keyword, value);
    return { ...l, value };
  });
}

function requireValue(l: ConfLine): string {
  if (l.value === "") throw confError(l, `${l.keyword} needs a value`);
  return l.value;
}

/** What each fwknopd.conf keyword spaknockd acts on does to the settings being read. */
const DAEMON_KEYWORDS: Readonly<Record<string, (l: ConfLine, d: DaemonDraft) => void>> = {
  PCAP_INTF: (l, d) => {
    d.s.pcapInterface = requireValue(l);
  },
  PCAP_FILTER: (l, d) => {
    d.s.pcapFilter = requireValue(l);
  },
  ENABLE_PCAP_PROMISC: (l, d) => {
    d.s.pcapPromiscuous = parseYesNo(l.value);
  },
  MAX_SNIFF_BYTES: (l, d) => {
    d.s.pcapSnapLength = parseBoundedInt(l, 100, 65535);
  },
  ENABLE_UDP_SERVER: (l, d) => {
    d.s.capture = parseYesNo(l.value) ? "udp" : "pcap";
  },
  UDPSERV_PORT: (l, d) => {
    d.s.udpPort = parseBoundedInt(l, 1, 65535);
  },
  UDPSERV_ADDRESS: (l, d) => {
    // `0.0.0.0` listens on IPv4 only, `::` on both; the mapped form means the IPv4 address.
    const ip = parseIpAddress(l.value);
    if (ip === null) throw confError(l, "UDPSERV_ADDRESS must be an IPv4 or IPv6 address");
    d.s.udpListenAddress = ip.text;
  },
  ENABLE_SPA_PACKET_AGING: (l, d) => {
    d.aging = parseYesNo(l.value);
  },
  MAX_SPA_PACKET_AGE: (l, d) => {
    d.maxAge = parseBoundedInt(l, 1, 100000);
  },
  ENABLE_DIGEST_PERSISTENCE: (l, d) => {
    d.persistence = parseYesNo(l.value);
  },
  DIGEST_FILE: (l, d) => {
    d.digestFile = requireValue(l);
  },
  FWKNOP_RUN_DIR: (l, d) => {
    d.s.runDir = requireValue(l);
  },
  FWKNOP_PID_FILE: (l, d) => {
    d.s.pidFile = requireValue(l);
  },
  ACCESS_FILE: (l, d) => {
    d.s.accessFile = requireValue(l);
  },
  SERVER_KEY_FILE: (l, d) => {
    if (!l.value.startsWith("/")) throw confError(l, "SERVER_KEY_FILE must be an absolute path");
    d.s.serverKeyFile = l.value;
  },
  SYSLOG_IDENTITY: (l, d) => {
    d.s.syslogIdentity = requireValue(l);
  },
  SYSLOG_FACILITY: (l, d) => {
    if (!/^LOG_(DAEMON|LOCAL[0-7]|AUTH|AUTHPRIV|USER)$/.test(l.value)) {
      throw confError(
        l,
        "SYSLOG_FACILITY must be LOG_DAEMON, LOG_LOCAL0..7, LOG_AUTH(PRIV) or LOG_USER",
      );
    }
    d.s.syslogFacility = l.value;
  },
  VERBOSE: (l, d) => {
    d.s.verbose = parseYesNo(l.value) || /^[1-9]/.test(l.value);
  },
  FLUSH_IPT_AT_INIT: (l, d) => {
    d.s.flushAtInit = parseYesNo(l.value);
  },
  FLUSH_IPT_AT_EXIT: (l, d) => {
    d.s.flushAtExit = parseYesNo(l.value);
  },
  FIREWALL_BACKEND: (l, d) => {
    if (!["nftables", "iptables", "auto"].includes(l.value)) {
      throw confError(l, "FIREWALL_BACKEND must be nftables, iptables or auto");
    }
    d.s.firewallBackend = l.value as FirewallBackendName;
  },
  GUARD_PORTS: (l, d) => {
    d.s.guardPorts = parsePortListLine(l);
  },
  NFT_TABLE: (l, d) => {
    if (!/^[A-Za-z][A-Za-z0-9_]{0,31}$/.test(l.value))
      throw confError(l, "NFT_TABLE: letters, digits, _");
    d.s.nftTable = l.value;
  },
  SPA_RATE_LIMIT: (l, d) => {
    d.s.spaRateLimit = parseBoundedInt(l, 0, 100000);
  },
  SPA_SHAPE_FILTER: (l, d) => {
    d.s.spaShapeFilter = parseYesNo(l.value);
  },
  IPT_CHAIN: (l, d) => {
    if (!/^[A-Za-z][A-Za-z0-9_]{0,27}$/.test(l.value))
      throw confError(l, "IPT_CHAIN: letters, digits, _");
    d.s.iptablesChain = l.value;
  },
  EMAIL_ADDRESSES: (l, d) => {
    d.s.emailAddresses = l.value
      .split(/[,\s]+/)
      .filter((a) => a.length > 0)
      .map((a) => {
        if (!/^[^@\s]+@[^@\s]+$/.test(a)) throw confError(l, `"${a}" is not an email address`);
        return a;
      });
  },
  SMTP_HOST: (l, d) => {
    d.smtp.host = requireValue(l);
  },
  SMTP_PORT: (l, d) => {
    d.smtp.port = parseBoundedInt(l, 1, 65535);
  },
  SMTP_FROM: (l, d) => {
    d.smtp.from = requireValue(l);
  },
  SMTP_TLS: (l, d) => {
    d.smtp.secure = parseYesNo(l.value);
  },
  NOTIFY_EXEC: (l, d) => {
    if (!l.value.startsWith("/")) throw confError(l, "NOTIFY_EXEC must be an absolute path");
    d.s.notifyExec = l.value;
  },
};

/** Reads fwknopd.conf lines into settings; `ignored` is told once per ignored keyword. */
export function parseDaemonConf(
  rawLines: readonly ConfLine[],
  ignored: (line: ConfLine) => void,
): DaemonSettings {
  const smtp: Mutable<DaemonSettings["smtp"]> = { ...DAEMON_DEFAULTS.smtp };
  const d: DaemonDraft = {
    s: { ...DAEMON_DEFAULTS, smtp },
    smtp,
    aging: true,
    maxAge: 120,
    persistence: true,
    digestFile: null,
  };
  const reported = new Set<string>();
  for (const l of expandVariables(rawLines)) {
    if (l.value === "__CHANGEME__")
      throw confError(l, `${l.keyword} still has the placeholder __CHANGEME__`);
    const read = Object.hasOwn(DAEMON_KEYWORDS, l.keyword) ? DAEMON_KEYWORDS[l.keyword] : undefined;
    if (read !== undefined) {
      read(l, d);
      continue;
    }
    if (!IGNORED_DAEMON_KEYWORDS.has(l.keyword))
      throw unknownKeyword(l, [...Object.keys(DAEMON_KEYWORDS), ...IGNORED_DAEMON_KEYWORDS]);
    if (!reported.has(l.keyword)) ignored(l);
    reported.add(l.keyword);
  }
  const { s } = d;
  s.maxPacketAge = d.aging ? d.maxAge : null;
  s.digestFile = d.persistence
    ? (d.digestFile ??
      `${s.runDir === DAEMON_DEFAULTS.runDir ? "/var/lib/spaknock" : s.runDir}/digest.cache`)
    : null;
  return s;
}
