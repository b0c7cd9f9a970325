import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startServer, testConfig, type TestServer } from '../http/helpers.js';
import { openConnection as open, trickleWrites as trickle, type Conversation } from './slow-client.js';

/**
 * Finding 4 (its HTTP half): slow clients held connections open for minutes — no request, header or body timeout,
 * no connection cap — until file descriptors ran out. With real sockets on loopback: a trickling unauthenticated
 * body and trickling headers are cut by the server, and connections beyond the cap are closed at once.
 */

describe('slow clients', () => {
  let server: TestServer;

  beforeAll(async () => {
    server = await startServer({ config: testConfig({ http: { requestTimeoutSeconds: 1, headersTimeoutSeconds: 0.5 } }) });
  });

  afterAll(async () => {
    await server?.close();
  });

  it('an unauthenticated body trickling in is cut by the request timeout', async () => {
    const c = await open(server.url);
    c.socket.write('PUT /api/deploy HTTP/1.1\r\nHost: deployer\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 100000\r\n\r\n');
    // 100 000 bytes at one byte per 50 ms would take 83 minutes; 600 writes, 30 s, if nothing cuts it.
    const written = await trickle(c, 'x', 50, 600);
    await c.closed;
    expect(written).toBeLessThan(600);
    expect(c.received()).toMatch(/^HTTP\/1\.1 (401|408) /);
  });

  it('headers trickling in are cut by the header timeout (408)', async () => {
    const c = await open(server.url);
    c.socket.write('GET /healthz HTTP/1.1\r\nHost: deployer\r\n');
    const written = await trickle(c, 'X-Slow: 1\r\n', 50, 600);
    await c.closed;
    expect(written).toBeLessThan(600);
    expect(c.received()).toMatch(/^HTTP\/1\.1 408 /);
  });
});

describe('the connection cap', () => {
  let server: TestServer;

  beforeAll(async () => {
    server = await startServer({ config: testConfig({ http: { maxConnections: 3, keepAliveTimeoutSeconds: 60 } }) });
  });

  afterAll(async () => {
    await server?.close();
  });

  const healthz = async (c: Conversation): Promise<void> => {
    const before = c.received().length;
    c.socket.write('GET /healthz HTTP/1.1\r\nHost: deployer\r\n\r\n');
    while (!/\r\n\r\n\{"status":"ok"\}$/.test(c.received().slice(before))) await new Promise((r) => setTimeout(r, 10));
  };

  it('closes connections beyond maxConnections at once, and takes new ones when one is free', async () => {
    // Three kept-alive connections, each answered once, so the server has surely taken them.
    const held = await Promise.all([open(server.url), open(server.url), open(server.url)]);
    for (const c of held) await healthz(c);

    const fourth = await open(server.url);
    fourth.socket.write('GET /healthz HTTP/1.1\r\nHost: deployer\r\n\r\n');
    await fourth.closed;
    expect(fourth.received()).toBe('');

    held[0]?.socket.destroy();
    await held[0]?.closed;
    // The server notices the close on its own schedule: retry until a connection is taken again.
    let answered = false;
    for (let attempt = 0; attempt < 100 && !answered; attempt++) {
      const next = await open(server.url);
      next.socket.write('GET /healthz HTTP/1.1\r\nHost: deployer\r\nConnection: close\r\n\r\n');
      await next.closed;
      answered = next.received().startsWith('HTTP/1.1 200 ');
    }
    expect(answered).toBe(true);
    for (const c of held) c.socket.destroy();
  });
});
