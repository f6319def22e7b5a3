/**
 * A loopback HTTP endpoint that answers the AWS APIs the knock and revoke functions call, in each
 * API's own protocol (EC2 query + XML, STS and SNS query + XML, Secrets Manager JSON 1.1,
 * Scheduler and Lambda's Invoke REST JSON), so that a function bundle can run unchanged with `AWS_ENDPOINT_URL`
 * pointing here. It keeps the state a grant changes: the security-group rules (with their tags)
 * and the schedules. DynamoDB is dynalite's job, not this one's.
 *
 * Each request is recorded with the service and access key of its SigV4 signature, so a test can
 * tell which credentials (the function's, or an assumed role's) made which call.
 */
import { randomBytes } from "node:crypto";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";

export interface FakeAwsRequest {
  /** From the signature's credential scope: `ec2`, `sts`, `scheduler`, … */
  readonly service: string;
  readonly accessKeyId: string;
  /** `AuthorizeSecurityGroupIngress`, `GetSecretValue`, `CreateSchedule`, … */
  readonly action: string;
  /** Query parameters (form-encoded APIs) or the JSON body. */
  readonly params: Record<string, unknown>;
}

export interface FakeRule {
  readonly ruleId: string;
  readonly groupId: string;
  readonly protocol: string;
  readonly fromPort: number;
  readonly toPort: number;
  readonly cidrIpv4?: string;
  readonly cidrIpv6?: string;
  readonly description: string;
  tags: Map<string, string>;
}

export interface FakeSchedule {
  readonly name: string;
  readonly body: {
    GroupName?: string;
    Target: { Arn: string; RoleArn: string; Input: string };
  } & Record<string, unknown>;
}

const EC2_NS = "http://ec2.amazonaws.com/doc/2016-11-15/";
const STS_NS = "https://sts.amazonaws.com/doc/2011-06-15/";
const SNS_NS = "http://sns.amazonaws.com/doc/2010-03-31/";

const xmlEscape = (s: string) => s.replace(/[<>&'"]/g, (c) => `&#${c.charCodeAt(0)};`);

export class FakeAwsEndpoint {
  readonly requests: FakeAwsRequest[] = [];
  readonly rules = new Map<string, FakeRule>();
  readonly schedules: FakeSchedule[] = [];
  /** Requests this endpoint could not answer; a test expects none. */
  readonly unanswered: string[] = [];
  endpoint = "";
  private readonly server: Server;
  private readonly waiters: { test: (r: FakeAwsRequest) => boolean; resolve: () => void }[] = [];

  constructor(
    private readonly account: string,
    private readonly region: string,
    private readonly secretString: string,
  ) {
    this.server = createServer((req, res) => {
      this.answer(req, res).catch((err) => {
        this.unanswered.push(String(err));
        res.writeHead(500).end();
      });
    });
  }

  async start(): Promise<void> {
    await new Promise<void>((resolve) => this.server.listen(0, "127.0.0.1", resolve));
    this.endpoint = `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
  }

  async stop(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise((resolve) => this.server.close(resolve));
  }

  /** Resolves once a request that passes `test` has arrived (or already had). */
  arrival(test: (r: FakeAwsRequest) => boolean): Promise<void> {
    if (this.requests.some(test)) return Promise.resolve();
    return new Promise((resolve) => this.waiters.push({ test, resolve }));
  }

  private record(r: FakeAwsRequest): void {
    this.requests.push(r);
    for (const w of this.waiters.filter((x) => x.test(r))) w.resolve();
  }

  /** The calls made so far, as `service:Action`. */
  actions(): string[] {
    return this.requests.map((r) => `${r.service}:${r.action}`);
  }

  private async answer(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    const body = Buffer.concat(chunks).toString("utf8");
    const scope = /Credential=([^/]+)\/\d{8}\/[^/]+\/([^/]+)\//.exec(
      req.headers.authorization ?? "",
    );
    const accessKeyId = scope?.[1] ?? "";
    const service = scope?.[2] ?? "";
    const path = new URL(req.url ?? "/", "http://x").pathname;
    const target = req.headers["x-amz-target"] as string | undefined;
    const requestId = randomBytes(16).toString("hex");

    if (target) {
      const action = target.split(".").pop() ?? "";
      const params = JSON.parse(body || "{}") as Record<string, unknown>;
      this.record({ service, accessKeyId, action, params });
      if (target === "secretsmanager.GetSecretValue") {
        const name = String(params.SecretId);
        return json(res, requestId, "application/x-amz-json-1.1", {
          ARN: name.startsWith("arn:")
            ? name
            : `arn:aws:secretsmanager:${this.region}:${this.account}:secret:${name}`,
          Name: name,
          SecretString: this.secretString,
          VersionId: "00000000-0000-0000-0000-000000000001",
          VersionStages: ["AWSCURRENT"],
        });
      }
      return this.refuse(res, requestId, `${service} ${target}`);
    }

    const schedule = /^\/schedules\/([^/]+)$/.exec(path);
    if (service === "scheduler" && schedule && req.method === "POST") {
      const name = decodeURIComponent(schedule[1] as string);
      const params = JSON.parse(body) as FakeSchedule["body"];
      this.record({ service, accessKeyId, action: "CreateSchedule", params });
      this.schedules.push({ name, body: params });
      return json(res, requestId, "application/json", {
        ScheduleArn: `arn:aws:scheduler:${this.region}:${this.account}:schedule/${params.GroupName ?? "default"}/${name}`,
      });
    }

    const invoke = /^\/2015-03-31\/functions\/([^/]+)\/invocations$/.exec(path);
    if (service === "lambda" && invoke && req.method === "POST") {
      const invocationType = String(req.headers["x-amz-invocation-type"] ?? "RequestResponse");
      this.record({
        service,
        accessKeyId,
        action: "Invoke",
        params: {
          FunctionName: decodeURIComponent(invoke[1] as string),
          InvocationType: invocationType,
          Payload: body,
        },
      });
      // Asynchronous invocations are accepted (202); a dry run only checks (204).
      res.writeHead(invocationType === "DryRun" ? 204 : 202, { "x-amzn-requestid": requestId });
      res.end();
      return;
    }

    const form = Object.fromEntries(new URLSearchParams(body));
    const action = form.Action ?? "";
    this.record({ service, accessKeyId, action, params: form });
    const key = `${service}:${action}`;
    switch (key) {
      case "sts:AssumeRole": {
        const expiration = new Date(Date.now() + 3600_000).toISOString();
        const role = String(form.RoleArn).split("/").pop();
        return xml(
          res,
          `<AssumeRoleResponse xmlns="${STS_NS}"><AssumeRoleResult><Credentials>` +
            `<AccessKeyId>ASIA${randomBytes(8).toString("hex").toUpperCase()}</AccessKeyId>` +
            "<SecretAccessKey>assumed-secret</SecretAccessKey><SessionToken>assumed-token</SessionToken>" +
            `<Expiration>${expiration}</Expiration></Credentials><AssumedRoleUser>` +
            `<Arn>arn:aws:sts::${this.account}:assumed-role/${role}/${xmlEscape(String(form.RoleSessionName))}</Arn>` +
            `<AssumedRoleId>AROAEXAMPLE:${xmlEscape(String(form.RoleSessionName))}</AssumedRoleId></AssumedRoleUser>` +
            `<SourceIdentity>${xmlEscape(String(form.SourceIdentity ?? ""))}</SourceIdentity>` +
            `</AssumeRoleResult><ResponseMetadata><RequestId>${requestId}</RequestId></ResponseMetadata></AssumeRoleResponse>`,
        );
      }
      case "sns:Publish":
        return xml(
          res,
          `<PublishResponse xmlns="${SNS_NS}"><PublishResult><MessageId>${requestId}</MessageId></PublishResult>` +
            `<ResponseMetadata><RequestId>${requestId}</RequestId></ResponseMetadata></PublishResponse>`,
        );
      case "ec2:AuthorizeSecurityGroupIngress":
        return xml(res, this.authorize(form, requestId));
      case "ec2:DescribeSecurityGroupRules":
        return xml(res, this.describe(form, requestId));
      case "ec2:RevokeSecurityGroupIngress": {
        const ids = Object.entries(form)
          .filter(([k]) => /^SecurityGroupRuleId\.\d+$/.test(k))
          .map(([, v]) => v);
        for (const id of ids) {
          const rule = this.rules.get(id);
          if (rule?.groupId !== form.GroupId)
            return ec2Error(res, requestId, "InvalidSecurityGroupRuleId.NotFound", id);
          this.rules.delete(id);
        }
        return xml(
          res,
          `<RevokeSecurityGroupIngressResponse xmlns="${EC2_NS}"><requestId>${requestId}</requestId><return>true</return></RevokeSecurityGroupIngressResponse>`,
        );
      }
      default:
        return this.refuse(res, requestId, `${key} ${body.slice(0, 200)}`);
    }
  }

  private authorize(form: Record<string, string>, requestId: string): string {
    const p = "IpPermissions.1.";
    const ruleId = `sgr-${randomBytes(9).toString("hex").slice(0, 17)}`;
    const cidrIpv4 = form[`${p}IpRanges.1.CidrIp`];
    const cidrIpv6 = form[`${p}Ipv6Ranges.1.CidrIpv6`];
    const tags = new Map<string, string>();
    for (let i = 1; form[`TagSpecification.1.Tag.${i}.Key`] !== undefined; i++)
      tags.set(
        form[`TagSpecification.1.Tag.${i}.Key`] as string,
        form[`TagSpecification.1.Tag.${i}.Value`] ?? "",
      );
    const rule: FakeRule = {
      ruleId,
      groupId: String(form.GroupId),
      protocol: String(form[`${p}IpProtocol`]),
      fromPort: Number(form[`${p}FromPort`]),
      toPort: Number(form[`${p}ToPort`]),
      ...(cidrIpv4 ? { cidrIpv4 } : {}),
      ...(cidrIpv6 ? { cidrIpv6 } : {}),
      description: form[`${p}IpRanges.1.Description`] ?? form[`${p}Ipv6Ranges.1.Description`] ?? "",
      tags,
    };
    this.rules.set(ruleId, rule);
    return `<AuthorizeSecurityGroupIngressResponse xmlns="${EC2_NS}"><requestId>${requestId}</requestId><return>true</return><securityGroupRuleSet>${this.ruleXml(rule)}</securityGroupRuleSet></AuthorizeSecurityGroupIngressResponse>`;
  }

  private describe(form: Record<string, string>, requestId: string): string {
    let rules = [...this.rules.values()];
    for (let i = 1; form[`Filter.${i}.Name`] !== undefined; i++) {
      const name = form[`Filter.${i}.Name`] as string;
      const values: string[] = [];
      for (let j = 1; form[`Filter.${i}.Value.${j}`] !== undefined; j++)
        values.push(form[`Filter.${i}.Value.${j}`] as string);
      if (name === "group-id") rules = rules.filter((r) => values.includes(r.groupId));
      else if (name === "tag-key") rules = rules.filter((r) => values.some((v) => r.tags.has(v)));
      else throw new Error(`fake EC2: no filter ${name}`);
    }
    return `<DescribeSecurityGroupRulesResponse xmlns="${EC2_NS}"><requestId>${requestId}</requestId><securityGroupRuleSet>${rules.map((r) => this.ruleXml(r)).join("")}</securityGroupRuleSet></DescribeSecurityGroupRulesResponse>`;
  }

  private ruleXml(r: FakeRule): string {
    const tags = [...r.tags]
      .map(([k, v]) => `<item><key>${xmlEscape(k)}</key><value>${xmlEscape(v)}</value></item>`)
      .join("");
    return (
      `<item><securityGroupRuleId>${r.ruleId}</securityGroupRuleId><groupId>${r.groupId}</groupId>` +
      `<groupOwnerId>${this.account}</groupOwnerId><isEgress>false</isEgress>` +
      `<ipProtocol>${r.protocol}</ipProtocol><fromPort>${r.fromPort}</fromPort><toPort>${r.toPort}</toPort>` +
      (r.cidrIpv4 ? `<cidrIpv4>${r.cidrIpv4}</cidrIpv4>` : "") +
      (r.cidrIpv6 ? `<cidrIpv6>${r.cidrIpv6}</cidrIpv6>` : "") +
      `<description>${xmlEscape(r.description)}</description><tagSet>${tags}</tagSet></item>`
    );
  }

  private refuse(res: ServerResponse, requestId: string, what: string): void {
    this.unanswered.push(what);
    json(res, requestId, "application/json", { message: `fake AWS: no answer for ${what}` }, 400);
  }
}

function json(
  res: ServerResponse,
  requestId: string,
  contentType: string,
  body: unknown,
  status = 200,
): void {
  res.writeHead(status, { "content-type": contentType, "x-amzn-requestid": requestId });
  res.end(JSON.stringify(body));
}

function xml(res: ServerResponse, body: string): void {
  res.writeHead(200, { "content-type": "text/xml;charset=UTF-8" });
  res.end(body);
}

function ec2Error(res: ServerResponse, requestId: string, code: string, message: string): void {
  res.writeHead(400, { "content-type": "text/xml;charset=UTF-8" });
  res.end(
    `<Response><Errors><Error><Code>${code}</Code><Message>${xmlEscape(message)}</Message></Error></Errors><RequestID>${requestId}</RequestID></Response>`,
  );
}
