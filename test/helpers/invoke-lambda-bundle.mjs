// Runs in the Lambda runtime's Node (spawned by test/cdk/bundles-on-runtime.test.ts): imports a
// function bundle from cdk.out as Lambda's Node runtime does (an ES module, `index.handler`),
// invokes it once with the event read from stdin, and writes the outcome to the file named by
// the second argument. stdout stays the function's own log, as in CloudWatch.
import { writeFileSync } from "node:fs";
import { pathToFileURL } from "node:url";

const [bundle, resultFile] = process.argv.slice(2);
const chunks = [];
for await (const c of process.stdin) chunks.push(c);
const event = JSON.parse(Buffer.concat(chunks).toString("utf8"));
const context = {
  functionName: process.env.AWS_LAMBDA_FUNCTION_NAME,
  awsRequestId: "00000000-0000-4000-8000-000000000000",
  getRemainingTimeInMillis: () => 10_000,
};
const outcome = { node: process.version };
try {
  const { handler } = await import(pathToFileURL(bundle).href);
  outcome.result = (await handler(event, context)) ?? null;
} catch (err) {
  outcome.error = err instanceof Error ? `${err.name}: ${err.message}` : String(err);
}
writeFileSync(resultFile, JSON.stringify(outcome));
