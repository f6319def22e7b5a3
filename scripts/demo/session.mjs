// A long-lived TCP session, as an ssh login would be: one connection, opened once, that sends
// each line read from stdin and prints the server's echo. The demo writes a line during the grant
// and another after the rule is gone; conntrack keeps the established session going.
import { connect } from "node:net";
import { createInterface } from "node:readline";

const [host, portText, from] = process.argv.slice(2);
const label = `${from}:<port> -> ${host}:${portText}`;
const socket = connect({ host, port: Number(portText), localAddress: from });
socket.setEncoding("utf8");
let exchanges = 0;
let pending = "";
let closing = false;

socket.on("connect", () => {
  process.stdout.write(`session open: ${label.replace("<port>", String(socket.localPort))}\n`);
});
socket.on("data", (chunk) => {
  pending += chunk;
  for (let nl = pending.indexOf("\n"); nl >= 0; nl = pending.indexOf("\n")) {
    const line = pending.slice(0, nl);
    pending = pending.slice(nl + 1);
    if (line.startsWith("hello")) continue;
    exchanges++;
    process.stdout.write(`session exchange ${exchanges}: sent "${line}", got "${line}" back\n`);
  }
});
socket.on("error", (err) => {
  process.stdout.write(`session lost: ${err.code ?? err.message}\n`);
  process.exit(1);
});
socket.on("close", () => {
  if (!closing) {
    process.stdout.write("session lost: the server closed it\n");
    process.exit(1);
  }
});

const lines = createInterface({ input: process.stdin });
lines.on("line", (line) => socket.write(`${line}\n`));
lines.on("close", () => {
  closing = true;
  process.stdout.write(`session closed by the client after ${exchanges} exchanges\n`);
  socket.end();
});
