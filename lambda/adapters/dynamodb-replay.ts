/**
 * The replay cache in DynamoDB: one item per packet digest, claimed with a conditional put so
 * that of two Lambdas handling copies of one packet at the same moment exactly one wins. Items
 * carry a TTL attribute; an item past its TTL but not yet deleted by DynamoDB is claimable again
 * (the condition compares expiresAt with now).
 */
import {
  ConditionalCheckFailedException,
  type DynamoDBClient,
  GetItemCommand,
  PutItemCommand,
} from "@aws-sdk/client-dynamodb";
import type { ReplayCache, ReplayMeta } from "../../core/index.js";

export class DynamoDbReplayCache implements ReplayCache {
  constructor(
    private readonly client: DynamoDBClient,
    private readonly table: string,
    /** How long a digest must be remembered: twice the packet aging window. */
    private readonly retainSec: number,
    private readonly nowSec: () => number = () => Math.floor(Date.now() / 1000),
  ) {}

  async seen(digest: string): Promise<boolean> {
    const out = await this.client.send(
      new GetItemCommand({
        TableName: this.table,
        Key: { pk: { S: digest } },
        ConsistentRead: true,
        ProjectionExpression: "expiresAt",
      }),
    );
    const expiresAt = Number(out.Item?.expiresAt?.N ?? 0);
    return out.Item !== undefined && expiresAt >= this.nowSec();
  }

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
            expiresAt: { N: String(now + this.retainSec) },
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
