/** Sending SPA data to a server. UDP: one datagram from an OS-assigned port, as fwknop does. */
import { createSocket } from "node:dgram";

export function sendUdp(host: string, port: number, data: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const socket = createSocket("udp4");
    socket.once("error", (err) => {
      socket.close();
      reject(err);
    });
    socket.send(Buffer.from(data, "latin1"), port, host, (err) => {
      socket.close();
      if (err) reject(err);
      else resolve();
    });
  });
}
