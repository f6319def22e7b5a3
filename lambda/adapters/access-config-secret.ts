/**
 * The access stanzas, in fwknop's access.conf format, from a Secrets Manager secret; read once
 * per container and re-read after a TTL so a rotated key (or a deleted user key) takes effect
 * without a deploy.
 *
 * The secret holds either access.conf text, or, for the JOSE profile, one JSON object:
 *
 *   {"accessConf": "SOURCE ANY\nAUTHORIZED_KEYS team\n...",
 *    "authorizedKeys": {"team": {"keys": [...]}},
 *    "serverKey": {"kty": "OKP", "crv": "X25519", "x": "...", "d": "...", "kid": "..."}}
 *
 * where each AUTHORIZED_KEYS line names a member of `authorizedKeys`. One secret, one grant to
 * read it: the server key sits beside the fwknop keys it is as sensitive as.
 */
import { GetSecretValueCommand, type SecretsManagerClient } from "@aws-sdk/client-secrets-manager";
import {
  type AccessStanza,
  type AuthorizedKeySet,
  authorizedKeysNames,
  type ConfLine,
  importAuthorizedKeys,
  importPrivateJwk,
  isSpaError,
  type JosePrivateKey,
  parseAccessConf,
  parseConfText,
  SpaError,
} from "../../core/index.js";

export interface AccessConfig {
  readonly stanzas: readonly AccessStanza[];
  /** The JOSE profile's server key; null when the secret holds none. */
  readonly serverKey: JosePrivateKey | null;
}

interface SecretBundle {
  readonly accessConf: string;
  readonly authorizedKeys: Readonly<Record<string, unknown>>;
  readonly serverKey: unknown;
}

function parseBundle(text: string, where: string): SecretBundle {
  if (!text.trimStart().startsWith("{")) {
    return { accessConf: text, authorizedKeys: {}, serverKey: undefined };
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    throw new SpaError("CONFIG_INVALID", `${where}: starts with "{" but is not JSON`);
  }
  const v = value as Record<string, unknown>;
  const extra = Object.keys(v).filter(
    (k) => !["accessConf", "authorizedKeys", "serverKey"].includes(k),
  );
  if (extra.length > 0)
    throw new SpaError("CONFIG_INVALID", `${where}: unexpected member "${extra[0]}"`);
  if (typeof v.accessConf !== "string") {
    throw new SpaError("CONFIG_INVALID", `${where}: accessConf (the access.conf text) is missing`);
  }
  const sets = v.authorizedKeys ?? {};
  if (typeof sets !== "object" || Array.isArray(sets)) {
    throw new SpaError("CONFIG_INVALID", `${where}: authorizedKeys is not an object of JWK Sets`);
  }
  return {
    accessConf: v.accessConf,
    authorizedKeys: sets as Record<string, unknown>,
    serverKey: v.serverKey,
  };
}

/**
 * The key sets the AUTHORIZED_KEYS lines name, and the server key, from the bundle. A key's own
 * complaint (KEY_INVALID) becomes a configuration error of the secret.
 */
async function importKeys(
  bundle: SecretBundle,
  lines: readonly ConfLine[],
  where: string,
): Promise<{ sets: Map<string, AuthorizedKeySet>; serverKey: JosePrivateKey | null }> {
  try {
    const sets = new Map<string, AuthorizedKeySet>();
    for (const name of authorizedKeysNames(lines)) {
      const set = bundle.authorizedKeys[name];
      if (set === undefined) {
        throw new SpaError(
          "CONFIG_INVALID",
          `${where}: AUTHORIZED_KEYS ${name} is not in authorizedKeys`,
        );
      }
      // core's importers read a key file's text; here the key is a member of the bundle.
      const text = JSON.stringify(set);
      sets.set(name, await importAuthorizedKeys(text, `${where} authorizedKeys.${name}`));
    }
    const serverKey =
      bundle.serverKey === undefined
        ? null
        : await importPrivateJwk(JSON.stringify(bundle.serverKey), "X25519", `${where} serverKey`);
    return { sets, serverKey };
  } catch (err) {
    if (isSpaError(err) && err.code === "KEY_INVALID")
      throw new SpaError("CONFIG_INVALID", err.message);
    throw err;
  }
}

export class AccessConfigSecret {
  private cached: { config: AccessConfig; at: number } | null = null;

  constructor(
    private readonly client: SecretsManagerClient,
    private readonly secretId: string,
    private readonly managedGroups: readonly string[],
    private readonly ttlSec: number,
    private readonly nowSec: () => number = () => Math.floor(Date.now() / 1000),
  ) {}

  async load(): Promise<AccessConfig> {
    if (this.cached && this.nowSec() - this.cached.at < this.ttlSec) return this.cached.config;
    const out = await this.client.send(new GetSecretValueCommand({ SecretId: this.secretId }));
    const text =
      out.SecretString ?? (out.SecretBinary ? Buffer.from(out.SecretBinary).toString("utf8") : "");
    const where = `secret:${this.secretId}`;
    const bundle = parseBundle(text, where);
    const lines = parseConfText(bundle.accessConf, where);
    const { sets, serverKey } = await importKeys(bundle, lines, where);
    const stanzas = parseAccessConf(lines, {
      allowSecurityGroups: true,
      ignored: () => {},
      authorizedKeys: sets,
    });
    for (const s of stanzas) {
      const groups = s.securityGroups ?? [];
      if (groups.length === 0) {
        throw new SpaError(
          "CONFIG_INVALID",
          `${where}:${s.origin.line}: stanza #${s.index} has no SECURITY_GROUPS`,
        );
      }
      const foreign = groups.filter((g) => !this.managedGroups.includes(g));
      if (foreign.length > 0) {
        throw new SpaError(
          "CONFIG_INVALID",
          `${where}:${s.origin.line}: ${foreign.join(", ")} not among the managed groups`,
        );
      }
    }
    const config = { stanzas, serverKey };
    this.cached = { config, at: this.nowSec() };
    return config;
  }
}
