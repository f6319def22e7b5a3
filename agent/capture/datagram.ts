/** One captured SPA candidate, whichever way it was captured. */
export interface Datagram {
  readonly payload: Buffer;
  readonly sourceIp: string;
  readonly sourcePort: number;
  /** Known with pcap; a UDP socket bound to 0.0.0.0 does not tell (fwknopd records 0.0.0.0). */
  readonly destinationIp: string | null;
  /** Epoch milliseconds. */
  readonly receivedAt: number;
}

export interface Capture {
  /** Starts delivering datagrams; rejects with a clear message if capture cannot start. */
  start(onDatagram: (d: Datagram) => void): Promise<void>;
  stop(): Promise<void>;
}
