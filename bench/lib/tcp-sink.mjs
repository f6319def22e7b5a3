// The guarded service, run inside the server namespace: `node tcp-sink.mjs <port>`.
// Accepts connections and closes them; prints LISTENING once bound.
import { createServer } from "node:net";

const port = Number(process.argv[2]);
const server = createServer((socket) => {
  socket.on("error", () => {});
  socket.end();
});
server.listen({ port, host: "0.0.0.0", backlog: 4096 }, () => {
  process.stdout.write(`LISTENING ${port}\n`);
});
