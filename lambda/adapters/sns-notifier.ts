/** Open/close notifications to an SNS topic (email subscriptions), like the daemon's email. */
import { PublishCommand, type SNSClient } from "@aws-sdk/client-sns";
import type { Grant, Notifier, OpenedRule } from "../../core/index.js";

export interface GrantNotice {
  readonly event: "opened" | "closed";
  readonly sourceIp: string;
  readonly username: string;
  readonly ports: string;
  readonly expiresAt: number | null;
  readonly groups: readonly string[];
}

async function publishNotice(
  client: SNSClient,
  topicArn: string,
  notice: GrantNotice,
): Promise<void> {
  const until = notice.expiresAt ? new Date(notice.expiresAt * 1000).toISOString() : "now";
  await client.send(
    new PublishCommand({
      TopicArn: topicArn,
      Subject: `spaknock ${notice.event} ${notice.sourceIp} for ${notice.username}`.slice(0, 99),
      Message: [
        `event:   ${notice.event}`,
        `source:  ${notice.sourceIp}`,
        `user:    ${notice.username}`,
        `ports:   ${notice.ports}`,
        `groups:  ${notice.groups.join(", ")}`,
        `until:   ${until}`,
      ].join("\n"),
    }),
  );
}

const portsText = (grant: Grant) =>
  grant.ports.length === 0 ? "?" : grant.ports.map((p) => `${p.proto}/${p.port}`).join(", ");

/**
 * The Notifier port on an SNS topic: the knock Lambda's opens, and the closes of the revoke and
 * sweep Lambdas (whose `until` is the expiry the rule had).
 */
export class SnsNotifier implements Notifier {
  constructor(
    private readonly client: SNSClient,
    private readonly topicArn: string,
  ) {}

  opened(grant: Grant, rules: readonly OpenedRule[]): Promise<void> {
    return publishNotice(this.client, this.topicArn, {
      event: "opened",
      sourceIp: grant.sourceIp,
      username: grant.username,
      ports: portsText(grant),
      expiresAt: grant.expiresAt,
      groups: [...new Set(rules.map((r) => r.target))],
    });
  }

  closed(grant: Grant): Promise<void> {
    return publishNotice(this.client, this.topicArn, {
      event: "closed",
      sourceIp: grant.sourceIp,
      username: grant.username,
      ports: portsText(grant),
      expiresAt: grant.expiresAt,
      groups: grant.targets,
    });
  }
}
