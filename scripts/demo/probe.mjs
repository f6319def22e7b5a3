// One TCP connection attempt from a chosen source address, as a port scanner's connect scan
// makes it: prints CONNECTED (with the service's greeting), refused (RST) or filtered (no answer:
// the SYN was dropped). Exit status 0 connected, 3 filtered, 4 refused or another error.
import { connect } from "node:net";

const [host, portText, from, waitText] = process.argv.slice(2);
// A SYN-ACK across one veth takes well under a millisecond: no answer in this long is a drop.
const waitMs = Number(waitText ?? "1500");
const label = `tcp ${from} -> ${host}:${portText}`;
const socket = connect({ host, port: Number(portText), localAddress: from });

function done(text, status) {
  process.stdout.write(`${label}: ${text}\n`);
  socket.destroy();
  process.exit(status);
}

const timer = setTimeout(() => done("no answer (filtered)", 3), waitMs);
socket.setEncoding("utf8");
socket.once("data", (greeting) => {
  clearTimeout(timer);
  done(`CONNECTED (the server says "${greeting.trim()}")`, 0);
});
socket.on("error", (err) => {
  clearTimeout(timer);
  done(err.code === "ECONNREFUSED" ? "refused (RST)" : `failed: ${err.code ?? err.message}`, 4);
});
