// Diagnostic, run inside the server namespace: `node nft-timing.mjs <table> <ip> <port> <runs>`.
// Times the two ways spaknockd can apply one grant — a fresh `nft -f -` child per grant
// (execFile), and one line written to a long-lived `nft -e -i` session (answered by
// "# new generation N") — so the bench can say how much of the knock-to-open time the firewall
// accounts for. It only touches an element for `<ip>`, an address no client holds, and removes it.
import { execFile, spawn } from "node:child_process";
import { performance } from "node:perf_hooks";

const [table, ip, port, runs] = process.argv.slice(2);
const target = `inet ${table} allow_tcp`;
const element = `${ip} . ${port}`;
const grant = [
  `add element ${target} { ${element} timeout 5s }`,
  `delete element ${target} { ${element} }`,
  `add element ${target} { ${element} timeout 5s }`,
];

function nftSpawn(script) {
  return new Promise((resolve, reject) => {
    const child = execFile("nft", ["-f", "-"], { timeout: 10_000 }, (err) =>
      err ? reject(err) : resolve(),
    );
    child.stdin.end(script);
  });
}

function openSession() {
  const child = spawn("nft", ["-e", "-i"], { stdio: ["pipe", "pipe", "pipe"] });
  child.stdout.setEncoding("utf8");
  let buffer = "";
  let waiting = null;
  child.stdout.on("data", (chunk) => {
    buffer += chunk;
    if (waiting !== null && /^# new generation \d+/m.test(buffer)) {
      buffer = "";
      const done = waiting;
      waiting = null;
      done();
    }
  });
  child.stderr.on("data", (chunk) => process.stderr.write(chunk));
  return {
    apply(line) {
      return new Promise((resolve) => {
        waiting = resolve;
        child.stdin.write(`${line}\n`);
      });
    },
    close: () => child.stdin.end(),
  };
}

async function time(fn) {
  const times = [];
  for (let i = 0; i < Number(runs); i++) {
    const start = performance.now();
    await fn();
    times.push(performance.now() - start);
  }
  return times;
}

const spawnTimes = await time(() => nftSpawn(`${grant.join("\n")}\n`));
const session = openSession();
await session.apply(grant.join("; ")); // the session's first command also loads its cache
const sessionTimes = await time(() => session.apply(grant.join("; ")));
session.close();
await nftSpawn(`delete element ${target} { ${element} }\n`);
process.stdout.write(`${JSON.stringify({ spawnTimes, sessionTimes })}\n`);
