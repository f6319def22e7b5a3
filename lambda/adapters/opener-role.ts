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

export function ec2ClientFactory(
  base: EC2Client,
  sts: STSClient,
  openerRoleArn: string | undefined,
): (username: string, purpose?: SessionPurpose) => Promise<EC2Client> {
  if (!openerRoleArn) return async () => base;
  return async (username, purpose = "knock") => {
    const out = await sts.send(
      new AssumeRoleCommand(assumeRoleRequest(openerRoleArn, username, purpose)),
    );
    const c = out.Credentials;
    if (!c?.AccessKeyId || !c.SecretAccessKey)
      throw new Error("AssumeRole returned no credentials");
    return new EC2Client({
      region: await base.config.region(),
      maxAttempts: await base.config.maxAttempts(),
      ...(base.config.endpoint ? { endpoint: await base.config.endpoint() } : {}),
      credentials: {
        accessKeyId: c.AccessKeyId,
        secretAccessKey: c.SecretAccessKey,
        ...(c.SessionToken ? { sessionToken: c.SessionToken } : {}),
      },
    });
  };
}
