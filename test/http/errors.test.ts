import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import {
  ConflictError,
  InputError,
  ManifestError,
  NotFoundError,
  UpstreamError,
} from '../../src/errors.js';
import { toErrorReply } from '../../src/http/errors.js';
import { AS, call, startServer, type Answer, type TestServer } from './helpers.js';

let server: TestServer;
beforeAll(async () => {
  server = await startServer();
});
afterAll(async () => {
  await server.close();
});
beforeEach(() => {
  server.engine.failure = undefined;
});

const deploy = (requestId = 'req-7'): Promise<Answer> =>
  call(`${server.url}/api/deploy?commit=abc1234`, { method: 'PUT', headers: { ...AS.ops, 'x-request-id': requestId } });

describe('engine errors are mapped once', () => {
  it.each([
    ['InputError', new InputError('commit abc1234 does not exist in the repository', { field: 'commit' }), 400, { error: 'commit abc1234 does not exist in the repository', field: 'commit' }],
    ['NotFoundError', new NotFoundError('tag main-abc1234 not found for image api', { detail: { image: 'api' } }), 404, { error: 'tag main-abc1234 not found for image api', image: 'api' }],
    ['ConflictError', new ConflictError('a deploy of api is running'), 409, { error: 'a deploy of api is running' }],
    ['ManifestError', new ManifestError('kubernetes/a.yaml: not YAML', { detail: { file: 'kubernetes/a.yaml' } }), 422, { error: 'kubernetes/a.yaml: not YAML', file: 'kubernetes/a.yaml' }],
    ['UpstreamError', new UpstreamError('registry', 'registry.example.com answered 500'), 502, { error: 'registry.example.com answered 500', system: 'registry', requestId: 'req-7' }],
    ['UpstreamError 504', new UpstreamError('git', 'git fetch timed out', { status: 504 }), 504, { error: 'git fetch timed out', system: 'git', requestId: 'req-7' }],
  ])('%s → its status and body', async (_name, failure, status, body) => {
    server.engine.failure = failure;
    const res = await deploy();
    expect(res.status).toBe(status);
    expect(res.body).toEqual(body);
  });

  it('a detail field cannot replace the message', async () => {
    server.engine.failure = new ConflictError('busy', { detail: { error: 'overwritten', since: 't' } });
    const res = await deploy();
    expect(res.body).toEqual({ error: 'busy', since: 't' });
  });

  it('an unknown error → 500 "internal error" with the request id, no stack or message, logged with err', async () => {
    server.engine.failure = new TypeError('cannot read properties of undefined (reading "spec") at /work/src/secret.ts:1');
    const res = await deploy('req-500');
    expect(res.status).toBe(500);
    expect(res.body).toEqual({ error: 'internal error', requestId: 'req-500' });
    expect(res.text).not.toContain('TypeError');
    expect(res.text).not.toContain('spec');
    const logged = server.logs
      .map((l) => JSON.parse(l) as { reqId?: string; msg?: string; err?: { message?: string; stack?: string } })
      .find((l) => l.reqId === 'req-500' && l.msg === 'request failed');
    expect(logged?.err?.message).toContain('cannot read properties of undefined');
    expect(logged?.err?.stack).toContain('TypeError');
  });

  it('a thrown non-Error → 500 too', async () => {
    server.engine.failure = { weird: true };
    const res = await deploy();
    expect(res.status).toBe(500);
    expect(res.body).toEqual({ error: 'internal error', requestId: 'req-7' });
  });

  it('tags errors go the same way', async () => {
    server.engine.failure = new UpstreamError('registry', 'registry.example.com is unreachable', { status: 503 });
    const res = await call(`${server.url}/api/tags`, { headers: { ...AS.ops, 'x-request-id': 'req-8' } });
    expect(res.status).toBe(503);
    expect(res.body).toEqual({ error: 'registry.example.com is unreachable', system: 'registry', requestId: 'req-8' });
  });
});

describe('toErrorReply', () => {
  const context = { requestId: 'r1', bodyLimit: 65536 };

  it('maps a Fastify 4xx by its code and passes other Fastify 4xx messages on', () => {
    const err = Object.assign(new Error('Request body size did not match Content-Length'), {
      code: 'FST_ERR_CTP_INVALID_CONTENT_LENGTH',
      statusCode: 400,
    });
    expect(toErrorReply(err, context)).toEqual({
      status: 400,
      body: { error: 'Request body size did not match Content-Length' },
      headers: {},
      level: 'info',
    });
  });

  it('treats a Fastify 5xx as unknown', () => {
    const err = Object.assign(new Error('internal detail'), { code: 'FST_ERR_SOMETHING', statusCode: 500 });
    expect(toErrorReply(err, context)).toMatchObject({ status: 500, body: { error: 'internal error', requestId: 'r1' }, level: 'error' });
  });

  it('treats an error with a made-up statusCode but no Fastify code as unknown', () => {
    const err = Object.assign(new Error('upstream said 404'), { statusCode: 404 });
    expect(toErrorReply(err, context)).toMatchObject({ status: 500, body: { error: 'internal error', requestId: 'r1' } });
  });
});
