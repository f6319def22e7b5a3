/**
 * cdk-nag names each IAM5 finding after the resource string it flagged, with the stack's pseudo
 * parameters written `<AWS::Region>`; an acknowledgement must use the same id.
 */
export function nagArn(service: string, resource: string): string {
  return `arn:<AWS::Partition>:${service}:<AWS::Region>:<AWS::AccountId>:${resource}`;
}

export function wildcardFinding(resource: string): string {
  return `AwsSolutions-IAM5[Resource::${resource}]`;
}
