/**
 * The IAM that `cdk deploy` would create, evaluated offline. The synthesized template is resolved
 * into concrete ARNs (each resource's physical name is its logical id, in one account and region),
 * its roles' identity and trust policies are read out, and AWS SDK calls recorded by
 * aws-sdk-client-mock are turned into the IAM requests AWS would authorize for them (one per
 * resource the Service Authorization Reference lists for the action, with the request and
 * resource tags AWS puts in the context). `@cloud-copilot/iam-simulate` then decides each.
 *
 * Also: every role and unattached managed policy as a list (policyHolders), what EventBridge
 * Scheduler does with a recorded CreateSchedule (schedulerRequestsOf), and the decision for a
 * service principal assuming a role (decideServiceAssume) or for a person under a managed policy.
 *
 * So code and policy cannot drift apart: a Lambda test that makes a call the deployed roles would
 * not allow fails here, long before anyone deploys.
 */
import { runSimulation, type Simulation } from "@cloud-copilot/iam-simulate";
import { synthesize } from "../cdk/synthesize.js";
import { REGION } from "./lambda-fixtures.js";

export const ACCOUNT = "111122223333";

type Json = unknown;
interface Resource {
  readonly Type: string;
  readonly Properties?: Record<string, Json>;
}
export interface PolicyDocument {
  readonly Version: string;
  readonly Statement: readonly Record<string, Json>[];
}

/** The ARN a resource of `type` named `name` has, as GetAtt Arn (or Ref, for some) returns it. */
function arnOf(type: string, name: string): string {
  const at = (service: string, rest: string) => `arn:aws:${service}:${REGION}:${ACCOUNT}:${rest}`;
  switch (type) {
    case "AWS::IAM::Role":
      return `arn:aws:iam::${ACCOUNT}:role/${name}`;
    case "AWS::Lambda::Function":
      return at("lambda", `function:${name}`);
    case "AWS::DynamoDB::GlobalTable":
    case "AWS::DynamoDB::Table":
      return at("dynamodb", `table/${name}`);
    case "AWS::SecretsManager::Secret":
      return at("secretsmanager", `secret:${name}-AbCdEf`);
    case "AWS::Scheduler::ScheduleGroup":
      return at("scheduler", `schedule-group/${name}`);
    case "AWS::SQS::Queue":
      return at("sqs", name);
    case "AWS::SNS::Topic":
      return at("sns", name);
    case "AWS::Logs::LogGroup":
      return at("logs", `log-group:${name}:*`);
    default:
      throw new Error(`deployed-iam: no ARN format for ${type}`);
  }
}

/** What `Ref` returns for a resource of `type` named `name`. */
function refOf(type: string, name: string): string {
  return ["AWS::SecretsManager::Secret", "AWS::SNS::Topic"].includes(type)
    ? arnOf(type, name)
    : name;
}

export class DeployedIam {
  private readonly resources: Record<string, Resource>;

  constructor(
    template: { Resources: Record<string, Resource> },
    private readonly stackName: string,
  ) {
    this.resources = template.Resources;
  }

  /** Synthesizes the app from a spaknock.cloud.json (no bundling) and reads its IAM. */
  static synthesize(config: { stackName: string } & Record<string, unknown>): DeployedIam {
    const s = synthesize(config, { bundle: false });
    try {
      return new DeployedIam(s.template.toJSON() as never, config.stackName);
    } finally {
      s.cleanUp();
    }
  }

  resolve(value: Json): Json {
    if (Array.isArray(value)) return value.map((v) => this.resolve(v));
    if (value === null || typeof value !== "object") return value;
    const o = value as Record<string, Json>;
    const [key] = Object.keys(o);
    if (Object.keys(o).length === 1 && key !== undefined) {
      const arg = o[key];
      if (key === "Ref") return this.ref(arg as string);
      if (key === "Fn::GetAtt") {
        const [id, attr] = arg as [string, string];
        const r = this.resource(id);
        // A schedule group's name is given (the knock function's environment names it too).
        const name = r.Type === "AWS::Scheduler::ScheduleGroup" ? r.Properties?.Name : undefined;
        if (attr === "Arn") return arnOf(r.Type, typeof name === "string" ? name : id);
        // Ids AWS makes up at create time: any stable value of the right shape will do.
        if (attr === "AllocationId" && r.Type === "AWS::EC2::EIP") return `eipalloc-${id}`;
        if (attr === "GroupId" && r.Type === "AWS::EC2::SecurityGroup") return `sg-${id}`;
        throw new Error(`deployed-iam: GetAtt ${id}.${attr}`);
      }
      if (key === "Fn::Join") {
        const [sep, parts] = arg as [string, Json[]];
        return parts.map((p) => this.resolve(p)).join(sep);
      }
      if (key === "Fn::Base64") return this.resolve(arg); // kept as text, to be read
      if (key === "Fn::Sub")
        return (arg as string).replace(/\$\{([^}]+)\}/g, (_m, name: string) => this.ref(name));
    }
    return Object.fromEntries(Object.entries(o).map(([k, v]) => [k, this.resolve(v)]));
  }

  private ref(name: string): string {
    const pseudo: Record<string, string> = {
      "AWS::Partition": "aws",
      "AWS::Region": REGION,
      "AWS::AccountId": ACCOUNT,
      "AWS::StackName": this.stackName,
      "AWS::URLSuffix": "amazonaws.com",
    };
    if (name in pseudo) return pseudo[name] as string;
    const r = this.resource(name);
    return refOf(r.Type, name);
  }

  private resource(id: string): Resource {
    const r = this.resources[id];
    if (!r) throw new Error(`deployed-iam: no resource ${id}`);
    return r;
  }

  logicalIds(): string[] {
    return Object.keys(this.resources);
  }

  /** The logical id of the one resource of `type` whose id starts with `prefix`. */
  idOf(type: string, prefix: string): string {
    const ids = Object.keys(this.resources).filter(
      (id) => id.startsWith(prefix) && this.resources[id]?.Type === type,
    );
    if (ids.length !== 1) throw new Error(`deployed-iam: ${type} ${prefix}*: ${ids.join(", ")}`);
    return ids[0] as string;
  }

  /** One property of the one resource of `type` whose id starts with `prefix`, resolved. */
  propertyOf(type: string, prefix: string, key: string): Json {
    return this.resolve(this.resource(this.idOf(type, prefix)).Properties?.[key]);
  }

  roleArn(rolePrefix: string): string {
    return arnOf("AWS::IAM::Role", this.idOf("AWS::IAM::Role", rolePrefix));
  }

  /** A session of the role, as a Lambda function or an assumed role makes its calls. */
  sessionArn(rolePrefix: string, session = "session"): string {
    return `arn:aws:sts::${ACCOUNT}:assumed-role/${this.idOf("AWS::IAM::Role", rolePrefix)}/${session}`;
  }

  /** Every identity policy on the role: inline, AWS::IAM::Policy and customer managed. */
  identityPolicies(rolePrefix: string): { name: string; policy: PolicyDocument }[] {
    const roleId = this.idOf("AWS::IAM::Role", rolePrefix);
    const role = this.resource(roleId).Properties ?? {};
    if (Array.isArray(role.ManagedPolicyArns) && role.ManagedPolicyArns.length > 0)
      throw new Error(
        `deployed-iam: ${roleId} has AWS managed policies, which cannot be read here`,
      );
    const out: { name: string; policy: PolicyDocument }[] = [];
    for (const p of (role.Policies as { PolicyName: string; PolicyDocument: Json }[]) ?? [])
      out.push({ name: p.PolicyName, policy: this.resolve(p.PolicyDocument) as PolicyDocument });
    for (const [id, r] of Object.entries(this.resources)) {
      if (r.Type !== "AWS::IAM::Policy" && r.Type !== "AWS::IAM::ManagedPolicy") continue;
      const roles = (r.Properties?.Roles as { Ref?: string }[] | undefined) ?? [];
      if (roles.some((x) => x.Ref === roleId))
        out.push({
          name: id,
          policy: this.resolve(r.Properties?.PolicyDocument) as PolicyDocument,
        });
    }
    return out;
  }

  /**
   * Everything in the template that grants permissions: each role (with its trust policy and
   * identity policies) and each customer managed policy attached to no role here (for people).
   */
  policyHolders(): PolicyHolder[] {
    const out: PolicyHolder[] = [];
    for (const [id, r] of Object.entries(this.resources)) {
      if (r.Type === "AWS::IAM::Role")
        out.push({
          kind: "role",
          id,
          trust: this.trustPolicy(id),
          policies: this.identityPolicies(id),
        });
      const attached = (r.Properties?.Roles as unknown[] | undefined)?.length ?? 0;
      if (r.Type === "AWS::IAM::ManagedPolicy" && attached === 0)
        out.push({
          kind: "managed-policy",
          id,
          policies: [
            { name: id, policy: this.resolve(r.Properties?.PolicyDocument) as PolicyDocument },
          ],
        });
    }
    return out;
  }

  /** The resolved text of the one launch template's user data (the relay's boot script). */
  userData(launchTemplatePrefix: string): string {
    const lt = this.resource(this.idOf("AWS::EC2::LaunchTemplate", launchTemplatePrefix));
    const data = lt.Properties?.LaunchTemplateData as { UserData?: Json } | undefined;
    return this.resolve(data?.UserData) as string;
  }

  trustPolicy(rolePrefix: string): PolicyDocument {
    const role = this.resource(this.idOf("AWS::IAM::Role", rolePrefix));
    return this.resolve(role.Properties?.AssumeRolePolicyDocument) as PolicyDocument;
  }

  /** A function's environment variables, resolved: what it reads at a cold start. */
  environment(functionPrefix: string): Record<string, string> {
    const fn = this.resource(this.idOf("AWS::Lambda::Function", functionPrefix));
    const env = (fn.Properties?.Environment as { Variables?: Json } | undefined)?.Variables ?? {};
    return this.resolve(env) as Record<string, string>;
  }

  /**
   * Decides one request made by a session of `rolePrefix`. With `resourcePolicy` (a role's
   * trust policy for sts:AssumeRole), both sides must allow, as within one account.
   */
  async decide(rolePrefix: string, request: IamRequest, resourcePolicy?: PolicyDocument) {
    const simulation: Simulation = {
      request: {
        principal: this.sessionArn(rolePrefix, request.session ?? "session"),
        action: request.action,
        resource: { resource: request.resource, accountId: ACCOUNT },
        contextVariables: {
          "aws:PrincipalArn": this.roleArn(rolePrefix),
          "aws:PrincipalAccount": ACCOUNT,
          ...request.context,
        },
      },
      identityPolicies: this.identityPolicies(rolePrefix),
      serviceControlPolicies: [],
      resourceControlPolicies: [],
      ...(resourcePolicy ? { resourcePolicy } : {}),
    };
    return simulate(simulation, request);
  }

  /**
   * Decides one request made under `policies` alone (a managed policy attached to a person):
   * the principal is a user in the same account.
   */
  async decideUnder(policies: PolicyHolder["policies"], request: IamRequest) {
    return simulate(
      {
        request: {
          principal: `arn:aws:iam::${ACCOUNT}:user/someone`,
          action: request.action,
          resource: { resource: request.resource, accountId: ACCOUNT },
          contextVariables: { "aws:PrincipalAccount": ACCOUNT, ...request.context },
        },
        identityPolicies: [...policies],
        serviceControlPolicies: [],
        resourceControlPolicies: [],
      },
      request,
    );
  }

  /** An AWS service assuming one of the roles: only the role's trust policy decides. */
  async decideServiceAssume(
    service: string,
    rolePrefix: string,
    context: Record<string, string | string[]>,
  ) {
    const resource = this.roleArn(rolePrefix);
    return simulate(
      {
        request: {
          principal: service,
          action: "sts:AssumeRole",
          resource: { resource, accountId: ACCOUNT },
          contextVariables: context,
        },
        identityPolicies: [],
        serviceControlPolicies: [],
        resourceControlPolicies: [],
        resourcePolicy: this.trustPolicy(rolePrefix),
      },
      { action: "sts:AssumeRole", resource },
    );
  }
}

async function simulate(simulation: Simulation, request: Pick<IamRequest, "action" | "resource">) {
  const result = await runSimulation(simulation, {});
  if (result.resultType === "error")
    throw new Error(
      `iam-simulate refused ${request.action} on ${request.resource}: ${JSON.stringify(result.errors)}`,
    );
  return result.overallResult;
}

export interface PolicyHolder {
  readonly kind: "role" | "managed-policy";
  /** The logical id. */
  readonly id: string;
  /** Roles only. */
  readonly trust?: PolicyDocument;
  readonly policies: readonly { name: string; policy: PolicyDocument }[];
}

export interface IamRequest {
  readonly action: string;
  readonly resource: string;
  readonly context: Record<string, string | string[]>;
  /** The role session name (the engineer, under the opener role). */
  readonly session?: string;
  /** What made it, for messages. */
  readonly call: string;
}

type Tags = readonly { Key?: string; Value?: string }[];

const ec2Arn = (rest: string) => `arn:aws:ec2:${REGION}:${ACCOUNT}:${rest}`;
const groupArn = (id: string) => ec2Arn(`security-group/${id}`);
const ruleArn = (id: string) => ec2Arn(`security-group-rule/${id}`);

function requestTagContext(tags: Tags): Record<string, string | string[]> {
  const ctx: Record<string, string | string[]> = {
    "aws:TagKeys": tags.map((t) => t.Key ?? ""),
  };
  for (const t of tags) ctx[`aws:RequestTag/${t.Key}`] = t.Value ?? "";
  return ctx;
}

function resourceTagContext(tags: Tags): Record<string, string> {
  return Object.fromEntries(tags.map((t) => [`aws:ResourceTag/${t.Key}`, t.Value ?? ""]));
}

/** One SDK call as recorded by aws-sdk-client-mock, with its answer (or its error). */
export interface RecordedCall {
  readonly command: string;
  readonly input: Record<string, Json>;
  readonly output: Record<string, Json> | undefined;
}

/** The calls a mocked client saw, in order, with what the mock answered. */
export async function recordedCalls(mock: {
  calls(): readonly { args: readonly unknown[]; returnValue: unknown }[];
}): Promise<RecordedCall[]> {
  const out: RecordedCall[] = [];
  for (const c of mock.calls()) {
    const command = c.args[0] as { constructor: { name: string }; input: Record<string, Json> };
    let output: Record<string, Json> | undefined;
    try {
      output = (await c.returnValue) as Record<string, Json> | undefined;
    } catch {
      output = undefined; // the mock made the call fail; it was still authorized first
    }
    out.push({
      command: command.constructor.name.replace(/Command$/, ""),
      input: command.input,
      output,
    });
  }
  return out;
}

/**
 * The IAM requests AWS authorizes for each call, in order. EC2 rule tags are tracked through the
 * calls themselves: a rule's tags come from the Authorize that created it or the Describe that
 * listed it, and CreateTags changes them for the calls after it.
 */
export function iamRequestsOf(calls: readonly RecordedCall[], session?: string): IamRequest[] {
  const ruleTags = new Map<string, Tags>();
  const out: IamRequest[] = [];
  const push = (call: string, action: string, resource: string, context = {}) =>
    out.push({ call, action, resource, context, ...(session ? { session } : {}) });
  for (const { command, input, output } of calls) {
    // biome-ignore lint/suspicious/noExplicitAny: SDK inputs of many shapes, read field by field
    const i = input as Record<string, any>;
    switch (command) {
      case "AuthorizeSecurityGroupIngress": {
        const tags: Tags =
          (i.TagSpecifications as { Tags?: Tags }[] | undefined)?.flatMap((s) => s.Tags ?? []) ??
          [];
        const created =
          (output?.SecurityGroupRules as { SecurityGroupRuleId?: string }[] | undefined)?.[0]
            ?.SecurityGroupRuleId ?? "*";
        const action = "ec2:AuthorizeSecurityGroupIngress";
        push(command, action, groupArn(i.GroupId));
        push(command, action, ruleArn(created), requestTagContext(tags));
        if (tags.length > 0)
          push(command, "ec2:CreateTags", ruleArn(created), {
            ...requestTagContext(tags),
            "ec2:CreateAction": "AuthorizeSecurityGroupIngress",
          });
        if (created !== "*") ruleTags.set(created, tags);
        break;
      }
      case "DescribeSecurityGroupRules":
        push(command, "ec2:DescribeSecurityGroupRules", "*");
        for (const r of (output?.SecurityGroupRules as {
          SecurityGroupRuleId?: string;
          Tags?: Tags;
        }[]) ?? [])
          if (r.SecurityGroupRuleId) ruleTags.set(r.SecurityGroupRuleId, r.Tags ?? []);
        break;
      case "ModifySecurityGroupRules":
        push(command, "ec2:ModifySecurityGroupRules", groupArn(i.GroupId));
        for (const r of i.SecurityGroupRules as { SecurityGroupRuleId: string }[])
          push(
            command,
            "ec2:ModifySecurityGroupRules",
            ruleArn(r.SecurityGroupRuleId),
            resourceTagContext(ruleTags.get(r.SecurityGroupRuleId) ?? []),
          );
        break;
      case "CreateTags":
        for (const id of i.Resources as string[]) {
          push(command, "ec2:CreateTags", ruleArn(id), {
            ...resourceTagContext(ruleTags.get(id) ?? []),
            ...requestTagContext(i.Tags),
          });
          const merged = new Map((ruleTags.get(id) ?? []).map((t) => [t.Key, t]));
          for (const t of i.Tags as Tags) merged.set(t.Key, t);
          ruleTags.set(id, [...merged.values()]);
        }
        break;
      case "RevokeSecurityGroupIngress":
        // The reference lists only the security group for this action, not the rule.
        push(command, "ec2:RevokeSecurityGroupIngress", groupArn(i.GroupId));
        break;
      case "PutItem":
        push(
          command,
          "dynamodb:PutItem",
          `arn:aws:dynamodb:${REGION}:${ACCOUNT}:table/${i.TableName}`,
        );
        break;
      case "GetSecretValue":
        push(command, "secretsmanager:GetSecretValue", i.SecretId);
        break;
      case "CreateSchedule":
        push(
          command,
          "scheduler:CreateSchedule",
          `arn:aws:scheduler:${REGION}:${ACCOUNT}:schedule/${i.GroupName}/${i.Name}`,
        );
        push(command, "iam:PassRole", (i.Target as { RoleArn: string }).RoleArn, {
          "iam:PassedToService": "scheduler.amazonaws.com",
        });
        break;
      case "Invoke": {
        const name = i.FunctionName as string;
        push(
          command,
          "lambda:InvokeFunction",
          name.startsWith("arn:") ? name : `arn:aws:lambda:${REGION}:${ACCOUNT}:function:${name}`,
        );
        break;
      }
      case "Publish":
        push(command, "sns:Publish", i.TopicArn);
        break;
      case "AssumeRole":
        push(
          command,
          "sts:AssumeRole",
          i.RoleArn,
          i.SourceIdentity ? { "sts:SourceIdentity": i.SourceIdentity } : {},
        );
        if (i.SourceIdentity)
          push(command, "sts:SetSourceIdentity", i.RoleArn, {
            "sts:SourceIdentity": i.SourceIdentity,
          });
        break;
      default:
        throw new Error(`deployed-iam: no IAM mapping for ${command}; add one`);
    }
  }
  return out;
}

/**
 * What EventBridge Scheduler does, under the scheduler role, when a schedule the knock function
 * created fires: assume the role (trust policy, with the schedule group as source), invoke the
 * target, and on failure send the event to the dead-letter queue.
 */
export function schedulerRequestsOf(calls: readonly RecordedCall[]): {
  assume: { role: string; context: Record<string, string> }[];
  requests: IamRequest[];
} {
  const assume: { role: string; context: Record<string, string> }[] = [];
  const requests: IamRequest[] = [];
  for (const { command, input } of calls) {
    if (command !== "CreateSchedule") continue;
    const target = input.Target as {
      Arn: string;
      RoleArn: string;
      DeadLetterConfig?: { Arn?: string };
    };
    assume.push({
      role: target.RoleArn,
      context: {
        "aws:SourceArn": `arn:aws:scheduler:${REGION}:${ACCOUNT}:schedule-group/${input.GroupName}`,
        "aws:SourceAccount": ACCOUNT,
      },
    });
    requests.push({
      call: "schedule fires",
      action: "lambda:InvokeFunction",
      resource: target.Arn,
      context: {},
    });
    if (target.DeadLetterConfig?.Arn)
      requests.push({
        call: "schedule fails",
        action: "sqs:SendMessage",
        resource: target.DeadLetterConfig.Arn,
        context: {},
      });
  }
  return { assume, requests };
}
