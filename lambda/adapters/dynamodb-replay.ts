/**
 * The replay cache in DynamoDB: one item per packet digest, claimed with a conditional put so
 * that of two Lambdas handling copies of one packet at the same moment exactly one wins. Items
 * carry a TTL attribute; an item past its TTL but not yet deleted by DynamoDB is claimable again
 * (the condition compares expiresAt with now). An item's expiry is computed from the latest of
 * the clocks involved (the function's, the relay's receive time, the packet's timestamp), so a
 * copy delivered late by Lambda's asynchronous queue still finds it.
 */
import {
  ConditionalCheckFailedException,
  type DynamoDBClient,
  PutItemCommand,
} from "@aws-sdk/client-dynamodb";
import {
  type ReplayCache,
  type ReplayMeta,
  type ReplayRetention,
  replayRetainUntil,
} from "../../core/index.js";

/**
 * No `seen` look-up: a consistent read before the HMAC would make every forged datagram a paid
 * DynamoDB call. The conditional put in `claim`, after the HMAC and the access decision, is what
 * refuses a replay.
 */
export class DynamoDbReplayCache implements ReplayCache {
  constructor(
    private readonly client: DynamoDBClient,
    private readonly table: string,
    private readonly retention: ReplayRetention,
    private readonly nowSec: () => number = () => Math.floor(Date.now() / 1000),
  ) {}

  async claim(digest: string, meta: ReplayMeta): Promise<boolean> {
    const now = this.nowSec();
    try {
      await this.client.send(
        new PutItemCommand({
          TableName: this.table,
          Item: {
            pk: { S: digest },
            sourceIp: { S: meta.sourceIp },
            sourcePort: { N: String(meta.sourcePort) },
            seenAt: { N: String(meta.seenAt) },
            packetTime: { N: String(meta.packetTime) },
            expiresAt: { N: String(replayRetainUntil(meta, now, this.retention)) },
          },
          ConditionExpression: "attribute_not_exists(pk) OR expiresAt < :now",
          ExpressionAttributeValues: { ":now": { N: String(now) } },
        }),
      );
      return true;
    } catch (err) {
      if (err instanceof ConditionalCheckFailedException) return false;
      throw err;
    }
  }
}
