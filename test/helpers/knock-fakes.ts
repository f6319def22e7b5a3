/** In-memory adapters for the knock pipeline's ports, for unit tests. */
import {
  ACCESS_DEFAULTS,
  type AccessStanza,
  buildSpaPacket,
  type Firewall,
  type Grant,
  type KnockInput,
  type OpenedRule,
  type ReplayCache,
  type ReplayMeta,
  randomValueFromBytes,
  type SpaKeys,
  type SpaMessageInput,
} from "../../core/index.js";

export class MemoryReplay implements ReplayCache {
  readonly digests = new Map<string, ReplayMeta>();
  async seen(digest: string): Promise<boolean> {
    return this.digests.has(digest);
  }
  async claim(digest: string, meta: ReplayMeta): Promise<boolean> {
    await Promise.resolve();
    if (this.digests.has(digest)) return false;
    this.digests.set(digest, meta);
    return true;
  }
}

export class MemoryFirewall implements Firewall {
  readonly opened: Grant[] = [];
  failWith: Error | null = null;
  async open(grant: Grant): Promise<readonly OpenedRule[]> {
    if (this.failWith) throw this.failWith;
    this.opened.push(grant);
    return grant.ports.map((p) => ({
      target: "memory",
      ruleId: `${grant.sourceIp} ${p.proto}/${p.port}`,
    }));
  }
}

export const TEST_KEYS: SpaKeys = {
  key: Buffer.from("a-rijndael-key-for-tests"),
  mode: "cbc",
  hmacKey: Buffer.from("an-hmac-key-for-tests-only"),
  hmacType: "sha256",
};

export function stanza(overrides: Partial<AccessStanza> = {}): AccessStanza {
  return {
    index: 1,
    origin: { file: "access.conf", line: 1 },
    sources: null,
    destinations: null,
    keys: TEST_KEYS,
    authorizedKeys: null,
    openPorts: null,
    restrictPorts: [],
    fwAccessTimeout: ACCESS_DEFAULTS.fwAccessTimeout,
    maxFwTimeout: ACCESS_DEFAULTS.maxFwTimeout,
    requireUsername: null,
    requireSourceAddress: false,
    accessExpire: null,
    ...overrides,
  };
}

let counter = 0;
export function packet(
  fields: Partial<SpaMessageInput> = {},
  keys: SpaKeys = TEST_KEYS,
  nowSec = 1_795_605_803,
): Buffer {
  counter++;
  const seed = Buffer.alloc(8);
  seed.writeUInt32BE(counter, 4);
  const input: SpaMessageInput = {
    randomValue: randomValueFromBytes(seed),
    username: "alice",
    timestamp: nowSec,
    messageType: 1,
    message: "198.18.0.2,tcp/22",
    natAccess: null,
    clientTimeout: 0,
    digestType: "sha256",
    ...fields,
  };
  return Buffer.from(buildSpaPacket(input, keys, Buffer.alloc(8, counter)).wire, "latin1");
}

/** The receive time of knockInput's datagrams: the packets' default timestamp. */
export const KNOCK_NOW = 1_795_605_803;

/** A datagram from `sourceIp` to 198.18.0.1, received at KNOCK_NOW. */
export const knockInput = (payload: Buffer, sourceIp = "198.18.0.2"): KnockInput => ({
  payload,
  sourceIp,
  sourcePort: 40000,
  destinationIp: "198.18.0.1",
  receivedAt: KNOCK_NOW * 1000,
});
