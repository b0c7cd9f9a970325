import { createServer } from 'node:net';
import { describe, expect, it } from 'vitest';
import { ephemeralRange, freePort } from '../env/processes.js';

/**
 * The ports the ground gives its server processes (etcd, kube-apiserver, registries, Prometheus, ...) lie outside the
 * kernel's ephemeral range: there an outgoing connection of any process on the machine can take a port between the
 * pick and the server's bind.
 */
describe('freePort', () => {
  it('gives distinct ports below the ephemeral range that a server can listen on', async () => {
    const [low, high] = ephemeralRange();
    expect(low).toBeLessThan(high);
    const ports = await Promise.all(Array.from({ length: 20 }, () => freePort()));
    expect(new Set(ports).size).toBe(ports.length);
    for (const port of ports) {
      expect(port).toBeGreaterThanOrEqual(1_024);
      expect(port).toBeLessThan(low);
      await new Promise<void>((resolve, reject) => {
        const server = createServer();
        server.once('error', reject);
        server.listen(port, '127.0.0.1', () => server.close(() => resolve()));
      });
    }
  });
});
