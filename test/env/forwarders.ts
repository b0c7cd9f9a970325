import { createConnection, createServer, type Server, type Socket } from 'node:net';

/**
 * Makes loopback servers reachable from the pods: a TCP forwarder listens on the ground network's host address
 * (the machine's end of the ground veth, see ground-net.ts) at the same port, and pipes each connection to
 * 127.0.0.1. The servers themselves keep listening on loopback only, so nothing is ever bound to the machine's
 * external interfaces. The forwarders live in the runner's process: they end with it.
 */
export interface Forwarders {
  /** Listens on `address:port` and forwards to `127.0.0.1:port`. */
  add(port: number): Promise<void>;
  close(): Promise<void>;
}

export function startForwarders(address: string): Forwarders {
  const servers: Server[] = [];
  const sockets = new Set<Socket>();
  const track = (socket: Socket): void => {
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
  };
  return {
    add(port: number): Promise<void> {
      const server = createServer((inbound) => {
        track(inbound);
        const outbound = createConnection({ host: '127.0.0.1', port });
        track(outbound);
        inbound.pipe(outbound).pipe(inbound);
        inbound.on('error', () => outbound.destroy());
        outbound.on('error', () => inbound.destroy());
      });
      servers.push(server);
      return new Promise((resolve, reject) => {
        server.once('error', reject);
        server.listen(port, address, () => resolve());
      });
    },
    async close(): Promise<void> {
      for (const socket of sockets) socket.destroy();
      await Promise.all(servers.map((s) => new Promise<void>((resolve) => s.close(() => resolve()))));
    },
  };
}
