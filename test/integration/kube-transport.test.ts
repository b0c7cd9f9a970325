import { subscribe, unsubscribe } from 'node:diagnostics_channel';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { loadKubeAccess } from '../../src/kube/kubeconfig.js';
import { KubeTransport } from '../../src/kube/transport.js';
import { ground } from '../env/ground.js';

/** Counts the TCP connections this process opens while `fn` runs (node publishes each new client socket). */
async function connectionsDuring<T>(fn: () => Promise<T>): Promise<{ result: T; connections: number }> {
  let connections = 0;
  const count = (): void => {
    connections++;
  };
  subscribe('net.client.socket', count);
  try {
    return { result: await fn(), connections };
  } finally {
    unsubscribe('net.client.socket', count);
  }
}

describe('KubeTransport against the apiserver', () => {
  const namespacePath = '/api/v1/namespaces/default';

  it('keeps its TLS connection alive: requests one after another go over one connection', async () => {
    const transport = new KubeTransport(loadKubeAccess(ground('kube').adminKubeconfig), 10_000);
    await transport.send({ method: 'GET', path: '/readyz' });

    const { result, connections } = await connectionsDuring(async () => {
      const statuses: number[] = [];
      for (let i = 0; i < 5; i++) statuses.push((await transport.send({ method: 'GET', path: namespacePath })).status);
      return statuses;
    });

    expect(result).toEqual([200, 200, 200, 200, 200]);
    expect(connections).toBe(0);
  });

  it('answers two reads of one object at the same moment with one round trip', async () => {
    const transport = new KubeTransport(loadKubeAccess(ground('kube').adminKubeconfig), 10_000);
    await transport.send({ method: 'GET', path: '/readyz' });

    // Two requests at once need two connections, unless the second joins the first; the one kept alive serves one.
    const { result, connections } = await connectionsDuring(() =>
      Promise.all([transport.send({ method: 'GET', path: namespacePath }), transport.send({ method: 'GET', path: namespacePath })]),
    );

    expect(result.map((r) => r.status)).toEqual([200, 200]);
    expect(result[0]?.body).toEqual(result[1]?.body);
    expect(connections).toBe(0);
  });
});

describe('KubeTransport joining reads', () => {
  let server: Server;
  let url: string;
  const seen: string[] = [];
  /** GET answers held back until released, to keep reads in flight. */
  const held: Array<() => void> = [];

  beforeAll(async () => {
    server = createServer((req: IncomingMessage, res: ServerResponse) => {
      seen.push(`${req.method ?? ''} ${req.url ?? ''}`);
      const answer = (): void => {
        res.setHeader('content-type', 'application/json');
        res.end(JSON.stringify({ metadata: { name: 'web', resourceVersion: String(seen.length) } }));
      };
      req.resume();
      req.on('end', () => (req.method === 'GET' ? held.push(answer) : answer()));
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  afterAll(() => new Promise<void>((resolve) => server.close(() => resolve())));
  afterEach(() => {
    seen.length = 0;
  });

  const transport = (): KubeTransport => new KubeTransport({ server: url, apply: () => Promise.resolve() }, 5_000);
  const release = async (count: number): Promise<void> => {
    while (held.length < count) await new Promise((resolve) => setTimeout(resolve, 5));
    for (const answer of held.splice(0)) answer();
  };
  const path = '/apis/apps/v1/namespaces/default/deployments/web';

  it('gives each caller its own copy of the joined answer', async () => {
    const t = transport();
    const both = Promise.all([t.send({ method: 'GET', path }), t.send({ method: 'GET', path })]);
    await release(1);
    const [a, b] = await both;

    expect(seen).toEqual([`GET ${path}`]);
    expect(a?.body).toEqual(b?.body);
    expect(a?.body).not.toBe(b?.body);
  });

  it('does not join a read sent before a write of this transport finished', async () => {
    const t = transport();
    const before = t.send({ method: 'GET', path });
    await t.send({ method: 'PATCH', path, body: { metadata: { name: 'web' } } });
    const after = t.send({ method: 'GET', path });
    await release(2);
    await Promise.all([before, after]);

    expect(seen).toEqual([`GET ${path}`, `PATCH ${path}`, `GET ${path}`]);
  });

  it('does not join reads of other objects or with other query parameters', async () => {
    const t = transport();
    const reads = Promise.all([
      t.send({ method: 'GET', path }),
      t.send({ method: 'GET', path: `${path}-canary` }),
      t.send({ method: 'GET', path, query: { resourceVersion: '0' } }),
    ]);
    await release(3);
    await reads;

    expect([...seen].sort()).toEqual([`GET ${path}`, `GET ${path}-canary`, `GET ${path}?resourceVersion=0`].sort());
  });
});
