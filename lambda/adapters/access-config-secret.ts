/**
 * The access stanzas, in fwknop's access.conf format, from a Secrets Manager secret; read once
 * per container and re-read after a TTL so a rotated key takes effect without a deploy.
 */
import { GetSecretValueCommand, type SecretsManagerClient } from "@aws-sdk/client-secrets-manager";
import { type AccessStanza, parseAccessConf, parseConfText, SpaError } from "../../core/index.js";

export class AccessConfigSecret {
  private cached: { stanzas: readonly AccessStanza[]; at: number } | null = null;

  constructor(
    private readonly client: SecretsManagerClient,
    private readonly secretId: string,
    private readonly managedGroups: readonly string[],
    private readonly ttlSec: number,
    private readonly nowSec: () => number = () => Math.floor(Date.now() / 1000),
  ) {}

  async stanzas(): Promise<readonly AccessStanza[]> {
    if (this.cached && this.nowSec() - this.cached.at < this.ttlSec) return this.cached.stanzas;
    const out = await this.client.send(new GetSecretValueCommand({ SecretId: this.secretId }));
    const text =
      out.SecretString ?? (out.SecretBinary ? Buffer.from(out.SecretBinary).toString("utf8") : "");
    const stanzas = parseAccessConf(parseConfText(text, `secret:${this.secretId}`), {
      allowSecurityGroups: true,
      ignored: () => {},
    });
    for (const s of stanzas) {
      const groups = s.securityGroups ?? [];
      if (groups.length === 0) {
        throw new SpaError(
          "CONFIG_INVALID",
          `secret:${this.secretId}:${s.origin.line}: stanza #${s.index} has no SECURITY_GROUPS`,
        );
      }
      const foreign = groups.filter((g) => !this.managedGroups.includes(g));
      if (foreign.length > 0) {
        throw new SpaError(
          "CONFIG_INVALID",
          `secret:${this.secretId}:${s.origin.line}: ${foreign.join(", ")} not among the managed groups`,
        );
      }
    }
    this.cached = { stanzas, at: this.nowSec() };
    return stanzas;
  }
}
