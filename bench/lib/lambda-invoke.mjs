// Runs in the Lambda runtime's Node (spawned by bench/lambda.mjs with an IPC channel): imports one
// function bundle from cdk.out as Lambda's Node runtime does (an ES module, `index.handler`), then
// invokes it once per message from the parent and answers with the invocation's CPU time (user +
// system of this process, so the AWS calls' waiting is not in it) and wall time. stdout stays the
// function's own log, as in CloudWatch.
import { pathToFileURL } from "node:url";

const [bundle] = process.argv.slice(2);
const context = {
  functionName: process.env.AWS_LAMBDA_FUNCTION_NAME,
  awsRequestId: "00000000-0000-4000-8000-000000000000",
  getRemainingTimeInMillis: () => 10_000,
};

const started = performance.now();
const { handler } = await import(pathToFileURL(bundle).href);
process.send({ node: process.version, initMs: performance.now() - started });

process.on("message", async (message) => {
  if (message.op === "exit") {
    process.disconnect();
    return;
  }
  // A relay event is stamped here: its receive time must be within seconds of the function's.
  const event = message.stampReceivedAt
    ? { ...message.event, receivedAt: Date.now() }
    : message.event;
  let result = null;
  let error;
  const cpu = process.cpuUsage();
  const wall = performance.now();
  try {
    result = (await handler(event, context)) ?? null;
  } catch (err) {
    error = err instanceof Error ? `${err.name}: ${err.message}` : String(err);
  }
  const wallMs = performance.now() - wall;
  const used = process.cpuUsage(cpu);
  process.send({
    cpuMs: (used.user + used.system) / 1000,
    userMs: used.user / 1000,
    wallMs,
    result,
    error,
  });
});
