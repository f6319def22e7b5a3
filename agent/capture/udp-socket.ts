/**
 * A silent UDP socket (ENABLE_UDP_SERVER): it receives and never sends a byte, so to a scanner
 * the port looks like any other filtered or closed UDP port.
 */
import { createSocket, type Socket } from "node:dgram";
import type { Capture, Datagram } from "./datagram.js";

export class UdpSocketCapture implements Capture {
  private socket: Socket | null = null;

  constructor(
    private readonly address: string,
    private readonly port: number,
  ) {}

  start(onDatagram: (d: Datagram) => void): Promise<void> {
    return new Promise((resolve, reject) => {
      const socket = createSocket({ type: "udp4", recvBufferSize: 8 * 1024 * 1024 });
      this.socket = socket;
      socket.once("error", (err) =>
        reject(new Error(`cannot listen on udp/${this.port}: ${err.message}`)),
      );
      socket.on("message", (payload, rinfo) => {
        onDatagram({
          payload,
          sourceIp: rinfo.address,
          sourcePort: rinfo.port,
          destinationIp: this.address === "0.0.0.0" ? null : this.address,
          receivedAt: Date.now(),
        });
      });
      socket.bind(this.port, this.address, () => {
        socket.removeAllListeners("error");
        socket.on("error", () => {}); // receive errors on UDP are transient; never crash on them
        resolve();
      });
    });
  }

  stop(): Promise<void> {
    return new Promise((resolve) => {
      if (!this.socket) return resolve();
      this.socket.close(() => resolve());
      this.socket = null;
    });
  }
}
