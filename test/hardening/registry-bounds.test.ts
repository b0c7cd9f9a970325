import type { IncomingMessage, ServerResponse } from 'node:http';
import { pino } from 'pino';
import { afterAll, describe, expect, it } from 'vitest';
import { UpstreamError } from '../../src/errors.js';
import { RegistryClient } from '../../src/registry/client.js';
import { parseImageRef } from '../../src/registry/image-ref.js';
import { ANSWER_LIMITS, MAX_REDIRECTS } from '../../src/registry/transport.js';
import { HUGE, IN_FLIGHT, startHostileRegistry, stream, trickle, type Handler, type Hostile, type Sent } from './hostile-registry.js';

/**
 * Registry answers are bounded while they stream, and redirects stay on the registry's host (issue: a 400 MB
 * manifest answer took the process to 1.38 GB RSS; a 302 to another host was followed and its body shown).
 * Each hostile registry below is a loopback server that counts the bytes it managed to send: a client that stops
 * reading at its limit closes the connection, so the count stays near the limit instead of the body's size.
 */

const closers: Array<() => Promise<void>> = [];
afterAll(async () => {
  await Promise.all(closers.map((close) => close()));
});

async function hostile(handler: Handler): Promise<Hostile> {
  const server = await startHostileRegistry(handler);
  closers.push(server.close);
  return server;
}

const silent = pino({ level: 'silent' });

function client(hosts: readonly string[], timeoutMs = 10_000): RegistryClient {
  return new RegistryClient({
    credentials: Object.fromEntries(hosts.map((h) => [h, { insecure: true }])),
    timeoutMs,
    logger: silent,
  });
}

async function caught(promise: Promise<unknown>): Promise<UpstreamError> {
  try {
    await promise;
  } catch (err) {
    expect(err).toBeInstanceOf(UpstreamError);
    return err as UpstreamError;
  }
  throw new Error('expected a rejection');
}

/** The one answer a hostile registry sent, once its connection is closed. */
async function onlyAnswer(server: Hostile): Promise<Sent> {
  const [answer, ...more] = server.answers;
  expect(more).toEqual([]);
  if (answer === undefined) throw new Error('no answer was streamed');
  await answer.closed;
  return answer;
}

const manifestRequest = (req: IncomingMessage, res: ServerResponse): boolean => {
  // HEAD without a digest header: the client reads the manifest to hash it.
  if (req.method !== 'HEAD') return false;
  res.writeHead(200, { 'content-type': 'application/vnd.oci.image.manifest.v1+json' });
  res.end();
  return true;
};

describe('registry answers are read within a limit while they stream', () => {
  it('a 400 MB manifest without Content-Length is cut off at the manifest limit', async () => {
    const server = await hostile((req, res, sent) => {
      if (manifestRequest(req, res)) return;
      sent(stream(res, { total: HUGE, chunk: Buffer.alloc(64 * 1024, 0x20), prefix: '{"schemaVersion":2,' }));
    });

    const err = await caught(client([server.host]).digestOf(parseImageRef(`${server.host}/team/app`), 'v1'));

    expect(err.message).toBe(`registry ${server.host} answered more than 4 MiB for a manifest of ${server.host}/team/app`);
    expect(err.status).toBe(502);
    expect(err.detail).toEqual({ registry: server.host, limitBytes: ANSWER_LIMITS.manifest });
    const answer = await onlyAnswer(server);
    expect(answer.written).toBeLessThan(ANSWER_LIMITS.manifest + IN_FLIGHT);
  });

  it('a manifest whose Content-Length is over the limit is refused before its body is read', async () => {
    const server = await hostile((req, res, sent) => {
      if (manifestRequest(req, res)) return;
      sent(stream(res, { total: HUGE, chunk: Buffer.alloc(64 * 1024, 0x20), headers: { 'content-length': String(HUGE) } }));
    });

    const err = await caught(client([server.host]).digestOf(parseImageRef(`${server.host}/team/app`), 'v1'));

    expect(err.message).toBe(`registry ${server.host} answered more than 4 MiB for a manifest of ${server.host}/team/app`);
    expect((await onlyAnswer(server)).written).toBeLessThan(IN_FLIGHT);
  });

  it('a 400 MB tags list in one page is cut off at the tags limit', async () => {
    const server = await hostile((_req, res, sent) => {
      // `"t-xxxxxxxx",` repeated: a valid JSON array as far as it goes.
      sent(stream(res, { total: HUGE, chunk: Buffer.from('"t-xxxxxxxx",'.repeat(5000)), prefix: '{"tags":[' }));
    });

    const err = await caught(client([server.host]).tags(parseImageRef(`${server.host}/team/app`)));

    expect(err.message).toBe(`registry ${server.host} answered more than 8 MiB for the tags list of ${server.host}/team/app`);
    expect((await onlyAnswer(server)).written).toBeLessThan(ANSWER_LIMITS.tags + IN_FLIGHT);
  });

  it('the tags limit holds for all pages together: endless ~1 MiB pages stop once their sum passes it', async () => {
    const pageBody = (page: number): string =>
      JSON.stringify({ name: 'team/app', tags: Array.from({ length: 70_000 }, (_, i) => `p${String(page).padStart(4, '0')}-${String(i).padStart(8, '0')}`) });
    let page = 0;
    const server = await hostile((_req, res) => {
      page += 1;
      res.writeHead(200, { 'content-type': 'application/json', link: `</v2/team/app/tags/list?n=100&last=p${page}>; rel="next"` });
      res.end(pageBody(page));
    });

    const err = await caught(client([server.host]).tags(parseImageRef(`${server.host}/team/app`)));

    expect(err.message).toBe(`registry ${server.host} answered more than 8 MiB for the tags list of ${server.host}/team/app`);
    // Every page has the same size: the first one to pass the limit is the last one asked for.
    const pageBytes = Buffer.byteLength(pageBody(1));
    expect(server.requests).toHaveLength(Math.floor(ANSWER_LIMITS.tags / pageBytes) + 1);
  });

  it("a token server's 400 MB answer is cut off at the token limit", async () => {
    const tokens = await hostile((_req, res, sent) => {
      sent(stream(res, { total: HUGE, chunk: Buffer.alloc(64 * 1024, 0x61), prefix: '{"token":"' }));
    });
    const server = await hostile((_req, res) => {
      res.writeHead(401, { 'www-authenticate': `Bearer realm="${tokens.origin}/token",service="hostile"` });
      res.end();
    });

    const err = await caught(client([server.host]).tags(parseImageRef(`${server.host}/team/app`)));

    expect(err.message).toBe(`registry ${server.host} answered more than 1 MiB for a token (token server ${tokens.host})`);
    expect((await onlyAnswer(tokens)).written).toBeLessThan(ANSWER_LIMITS.token + IN_FLIGHT);
  });

  it('an error answer with a 400 MB body is reported by its status; only its start is read', async () => {
    const server = await hostile((_req, res, sent) => {
      sent(stream(res, { total: HUGE, chunk: Buffer.alloc(64 * 1024, 0x20), status: 500, prefix: '{"errors":[' }));
    });

    const err = await caught(client([server.host]).tags(parseImageRef(`${server.host}/team/app`)));

    expect(err.message).toBe(`registry ${server.host} answered 500 for ${server.host}/team/app`);
    expect((await onlyAnswer(server)).written).toBeLessThan(ANSWER_LIMITS.error + IN_FLIGHT);
  });

  it('a body that trickles without end ends with the call timeout (504), and the connection is closed', async () => {
    const server = await hostile((req, res, sent) => {
      if (manifestRequest(req, res)) return;
      sent(trickle(res));
    });

    const err = await caught(client([server.host], 500).digestOf(parseImageRef(`${server.host}/team/app`), 'v1'));

    expect(err.message).toBe(`registry ${server.host} did not answer within 500 ms (${server.host})`);
    expect(err.status).toBe(504);
    await onlyAnswer(server);
  });
});

describe('redirects stay on the registry host', () => {
  /** Another host (another port is another origin) that would answer with something the caller must not see. */
  async function elsewhere(): Promise<Hostile> {
    return hostile((_req, res) => {
      res.writeHead(200, { 'content-type': 'application/json', 'docker-content-digest': `sha256:${'e'.repeat(64)}` });
      res.end('{"tags":["SECRET-FROM-ELSEWHERE"]}');
    });
  }

  it.each([301, 302, 303, 307, 308])('a %i to another host is refused without asking that host', async (status) => {
    const other = await elsewhere();
    const server = await hostile((_req, res) => {
      res.writeHead(status, { location: `${other.origin}/internal/metadata` });
      res.end('moved');
    });

    const err = await caught(client([server.host]).tags(parseImageRef(`${server.host}/team/app`)));

    expect(err.message).toBe(
      `registry ${server.host} redirected GET /v2/team/app/tags/list to another host (${other.origin}); ` +
        `the deployer follows redirects only within ${server.origin}`,
    );
    expect(JSON.stringify({ message: err.message, detail: err.detail })).not.toContain('SECRET');
    expect(other.requests).toEqual([]);
  });

  it('a redirect of a manifest lookup to another host is refused too, as is one to https on the same host', async () => {
    const other = await elsewhere();
    const server = await hostile((req, res) => {
      const to = req.url?.includes('/manifests/v1') === true ? `${other.origin}/v2/team/app/manifests/v1` : `https://${req.headers.host ?? ''}/x`;
      res.writeHead(302, { location: to });
      res.end();
    });
    const registry = client([server.host]);

    const toOther = await caught(registry.digestOf(parseImageRef(`${server.host}/team/app`), 'v1'));
    const toHttps = await caught(registry.digestOf(parseImageRef(`${server.host}/team/app`), 'v2'));

    expect(toOther.message).toBe(
      `registry ${server.host} redirected HEAD /v2/team/app/manifests/v1 to another host (${other.origin}); ` +
        `the deployer follows redirects only within ${server.origin}`,
    );
    expect(toHttps.message).toContain(`to another host (https://${server.host})`);
    expect(other.requests).toEqual([]);
  });

  it('a redirect on the same host is followed', async () => {
    const server = await hostile((req, res) => {
      if (req.url?.startsWith('/v2/team/app/') === true) {
        res.writeHead(307, { location: '/v2/mirror/app/tags/list?n=100' });
        res.end();
        return;
      }
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end('{"name":"mirror/app","tags":["v1","v2"]}');
    });

    const tags = await client([server.host]).tags(parseImageRef(`${server.host}/team/app`));

    expect(tags.sort()).toEqual(['v1', 'v2']);
    expect(server.requests).toEqual(['GET /v2/team/app/tags/list?n=100', 'GET /v2/mirror/app/tags/list?n=100']);
  });

  it(`a redirect loop on the same host ends after ${MAX_REDIRECTS} redirects`, async () => {
    let hop = 0;
    const server = await hostile((_req, res) => {
      hop += 1;
      res.writeHead(302, { location: `/v2/team/app/tags/list?hop=${hop}` });
      res.end();
    });

    const err = await caught(client([server.host]).tags(parseImageRef(`${server.host}/team/app`)));

    expect(err.message).toBe(`registry ${server.host} redirected GET /v2/team/app/tags/list more than ${MAX_REDIRECTS} times`);
    expect(server.requests).toHaveLength(MAX_REDIRECTS + 1);
  });

  it("a token server's redirect to another host is refused", async () => {
    const other = await elsewhere();
    const tokens = await hostile((_req, res) => {
      res.writeHead(302, { location: `${other.origin}/token` });
      res.end();
    });
    const server = await hostile((_req, res) => {
      res.writeHead(401, { 'www-authenticate': `Bearer realm="${tokens.origin}/token",service="hostile"` });
      res.end();
    });

    const err = await caught(client([server.host]).tags(parseImageRef(`${server.host}/team/app`)));

    expect(err.message).toBe(
      `registry ${server.host} redirected GET /token to another host (${other.origin}); the deployer follows redirects only within ${tokens.origin}`,
    );
    expect(other.requests).toEqual([]);
  });
});
