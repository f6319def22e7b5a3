/**
 * EC2 calls made as the engineer: with OPENER_ROLE_ARN set, the knock and revoke functions
 * assume that role with SourceIdentity = the SPA username, so CloudTrail's Authorize/Revoke
 * events name the person, not the function.
 */
import { EC2Client } from "@aws-sdk/client-ec2";
import { AssumeRoleCommand, type STSClient } from "@aws-sdk/client-sts";

/** STS allows [\w+=,.@-] in SourceIdentity and RoleSessionName, 2..64 characters. */
export function sanitiseIdentity(name: string, maxLength = 64): string {
  const clean = name.replace(/[^\w+=,.@-]/g, "_").slice(0, maxLength);
  return clean.length >= 2 ? clean : clean.padEnd(2, "_");
}

/**
 * Why the role is assumed: a knock (`spaknock-<user>`), or a close by the revoke schedule
 * (`spaknock-revoke-<user>`) or the sweeper (`spaknock-sweep-<user>`). The session name is in
 * every CloudTrail record's principal, so `spaknock audit` can tell who closed a rule.
 */
export type SessionPurpose = "knock" | "revoke" | "sweep";

export function assumeRoleRequest(
  roleArn: string,
  username: string,
  purpose: SessionPurpose = "knock",
) {
  const prefix = purpose === "knock" ? "spaknock-" : `spaknock-${purpose}-`;
  return {
    RoleArn: roleArn,
    RoleSessionName: sanitiseIdentity(`${prefix}${username}`),
    SourceIdentity: sanitiseIdentity(username),
    DurationSeconds: 900,
  };
}

/**
 * How long before its credentials expire an assumed session stops being reused. AssumeRole asks
 * for 900 s, so a session serves its user's knocks (or closes) for up to ten minutes, and a
 * call never starts on credentials that are about to lapse.
 */
export const SESSION_REUSE_MARGIN_MS = 5 * 60_000;

/**
 * The EC2 client to act with for one user. Without an opener role, the function's own. With one,
 * a client on that user's assumed session, kept per session name until near its expiry: one
 * AssumeRole per user every ten minutes, not one per grant. Those clients share the function's
 * connection pool, so no grant pays for a new TLS connection to EC2.
 */
export function ec2ClientFactory(
  clients: { readonly ec2: EC2Client; readonly sts: STSClient },
  openerRoleArn: string | undefined,
  nowMs: () => number = () => Date.now(),
): (username: string, purpose?: SessionPurpose) => Promise<EC2Client> {
  if (!openerRoleArn) return async () => clients.ec2;
  const sessions = new Map<string, { readonly client: EC2Client; readonly reuseUntil: number }>();
  return async (username, purpose = "knock") => {
    const request = assumeRoleRequest(openerRoleArn, username, purpose);
    const session = sessions.get(request.RoleSessionName);
    if (session && nowMs() < session.reuseUntil) return session.client;
    // Read only here: a function without an opener role never builds its STS client.
    const out = await clients.sts.send(new AssumeRoleCommand(request));
    const c = out.Credentials;
    if (!c?.AccessKeyId || !c.SecretAccessKey)
      throw new Error("AssumeRole returned no credentials");
    // The function's own client's settings, as the providers it resolved them with (memoized):
    // a new client would otherwise look each one up again in the environment and the shared
    // config files, on every new session.
    const base = clients.ec2.config;
    const client = new EC2Client({
      region: base.region,
      maxAttempts: base.maxAttempts,
      retryMode: base.retryMode,
      useDualstackEndpoint: base.useDualstackEndpoint,
      useFipsEndpoint: base.useFipsEndpoint,
      userAgentAppId: base.userAgentAppId,
      authSchemePreference: base.authSchemePreference,
      ...(base.endpoint ? { endpoint: base.endpoint } : {}),
      requestHandler: base.requestHandler,
      credentials: {
        accessKeyId: c.AccessKeyId,
        secretAccessKey: c.SecretAccessKey,
        ...(c.SessionToken ? { sessionToken: c.SessionToken } : {}),
      },
    });
    if (c.Expiration) {
      const reuseUntil = c.Expiration.getTime() - SESSION_REUSE_MARGIN_MS;
      sessions.set(request.RoleSessionName, { client, reuseUntil });
    }
    return client;
  };
}
