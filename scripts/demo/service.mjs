// The demo's guarded service on the server: a greeting, then every line echoed back. A client
// that goes away (a probe that connects and closes, a reset) only ends its own connection.
import { createServer } from "node:net";

const port = Number(process.argv[2]);
const server = createServer((socket) => {
  socket.on("error", () => socket.destroy());
  socket.write("hello from the server\n");
  socket.pipe(socket);
});
server.on("error", (err) => {
  process.stderr.write(`demo service: ${err.message}\n`);
  process.exit(1);
});
server.listen(port);
process.on("SIGTERM", () => process.exit(0));
