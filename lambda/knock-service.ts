/**
 * The knock function's work, with its AWS clients injected: the same core pipeline as the host
 * daemon, with DynamoDB for replay, Secrets Manager for the stanzas, security groups for the
 * firewall, Scheduler for the close and SNS for notices.
 */
import { type GrantOutcome, grantAccess } from "../core/index.js";
import { type AccessConfig, AccessConfigSecret } from "./adapters/access-config-secret.js";
import { DynamoDbReplayCache } from "./adapters/dynamodb-replay.js";
import { ec2ClientFactory } from "./adapters/opener-role.js";
import { SchedulerExpiry } from "./adapters/scheduler-expiry.js";
import { ruleRefsOf, SecurityGroupFirewall } from "./adapters/security-group-firewall.js";
import { SnsNotifier } from "./adapters/sns-notifier.js";
import type { AwsClients, StructuredLog } from "./clients.js";
import type { KnockEnvironment } from "./environment.js";
import { MAX_EVENT_LAG_SEC, parseKnockEvent, URL_RESPONSE } from "./knock-event.js";

export interface KnockService {
  handle(event: unknown): Promise<typeof URL_RESPONSE | undefined>;
}

export function createKnockService(
  env: KnockEnvironment,
  clients: AwsClients,
  log: StructuredLog,
  nowMs: () => number = () => Date.now(),
): KnockService {
  const access = new AccessConfigSecret(
    clients.secrets,
    env.ACCESS_CONFIG_SECRET,
    env.MANAGED_GROUPS,
    env.ACCESS_CONFIG_TTL,
  );
  const replay = new DynamoDbReplayCache(
    clients.dynamodb,
    env.REPLAY_TABLE,
    { maxPacketAge: env.MAX_SPA_PACKET_AGE, eventLagSec: MAX_EVENT_LAG_SEC, marginSec: 60 },
    () => Math.floor(nowMs() / 1000),
  );
  const ec2For = ec2ClientFactory(clients, env.OPENER_ROLE_ARN, nowMs);
  const firewall = new SecurityGroupFirewall({
    ec2For,
    log: (level, message, extra) => log[level](message, extra),
  });
  const expiry = new SchedulerExpiry(clients.scheduler, {
    groupName: env.SCHEDULE_GROUP,
    revokeFunctionArn: env.REVOKE_FUNCTION_ARN,
    schedulerRoleArn: env.SCHEDULER_ROLE_ARN,
    deadLetterArn: env.SCHEDULE_DLQ_ARN,
  });
  const notifiers = env.NOTIFY_TOPIC_ARN
    ? [new SnsNotifier(clients.sns, env.NOTIFY_TOPIC_ARN)]
    : [];

  return {
    async handle(event) {
      const request = parseKnockEvent(event, nowMs());
      const isUrl = typeof event === "object" && event !== null && "requestContext" in event;
      const answer = isUrl ? URL_RESPONSE : undefined;
      if ("code" in request) {
        log.warn("refused", { code: request.code, reason: request.reason });
        return answer;
      }
      let config: AccessConfig;
      try {
        config = await access.load();
      } catch (err) {
        log.error("refused: cannot read the access stanzas", {
          code: "CONFIG_INVALID",
          error: String(err),
        });
        if (isUrl) return answer;
        throw err; // the relay's asynchronous invoke retries; nothing was opened
      }
      let outcome: GrantOutcome;
      try {
        outcome = await grantAccess(
          {
            payload: Buffer.from(request.spa, "latin1"),
            sourceIp: request.sourceIp,
            sourcePort: request.sourcePort,
            destinationIp: null,
            receivedAt: request.receivedAt,
          },
          {
            stanzas: config.stanzas,
            serverKey: config.serverKey,
            replay,
            firewall,
            expiry,
            notifiers,
          },
          { maxPacketAge: env.MAX_SPA_PACKET_AGE },
        );
      } catch (err) {
        log.error("refused: internal error", { code: "INTERNAL", error: String(err) });
        if (isUrl) return answer; // the same answer as always: no oracle
        throw err;
      }
      if (!outcome.granted) {
        log.warn("refused", {
          code: outcome.code,
          reason: outcome.detail,
          sourceIp: request.sourceIp,
          via: request.via,
          ...(outcome.stanza ? { stanza: outcome.stanza.index } : {}),
          ...(outcome.username ? { user: outcome.username } : {}),
        });
        return answer;
      }
      const { grant } = outcome;
      const rules = ruleRefsOf(outcome.rules);
      if (outcome.scheduleError !== null) {
        // The grant stands; the sweeper revokes it within a minute or two of its expiry.
        log.error("could not schedule the revoke; the sweeper will close it", {
          code: "SCHEDULE_FAILED",
          error: outcome.scheduleError,
          rules,
        });
      }
      log.info("granted", {
        sourceIp: grant.sourceIp,
        user: grant.username,
        ports: grant.ports.map((p) => `${p.proto}/${p.port}`),
        expiresAt: grant.expiresAt,
        stanza: grant.stanza,
        rules,
        schedule: outcome.schedule,
        via: request.via,
      });
      for (const failure of await outcome.notified)
        log.warn("notification failed", { error: failure });
      return answer;
    },
  };
}
