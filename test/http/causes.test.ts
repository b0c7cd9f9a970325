import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { buildApp } from '../../src/app.js';
import { UpstreamError } from '../../src/errors.js';
import { createHttpServer } from '../../src/http/server.js';
import { editDistance, nearest } from '../../src/http/suggest.js';
import { Metrics } from '../../src/report/metrics.js';
import { AS, call, FakeDeployer, FORM, form, JSON_TYPE, startServer, testConfig, type TestServer } from './helpers.js';

/** Errors that name their cause (issue 20): unknown fields, wrong methods, mistyped services, readiness. */

let server: TestServer;
beforeAll(async () => {
  server = await startServer();
});
afterAll(async () => {
  await server.close();
});

describe('unknown request fields', () => {
  it('a typo of a form field is refused, naming it and the field it is near', async () => {
    const res = await call(`${server.url}/api/deploy`, { method: 'PUT', headers: { ...AS.ops, ...FORM }, body: form({ comit: 'abc1234' }) });
    expect(res.status).toBe(400);
    expect(res.body).toEqual({
      error: 'unknown field comit (did you mean commit?); the fields are commit, tag, wait',
      field: 'comit',
      unknownFields: ['comit'],
    });
    expect(server.engine.runs).toHaveLength(0);
  });

  it('every unknown field of a JSON body is named, a suggestion only where one is near', async () => {
    const res = await call(`${server.url}/api/canary`, {
      method: 'PUT',
      headers: { ...AS.ops, ...JSON_TYPE },
      body: JSON.stringify({ commit: 'abc1234', tga: 'main-abc1234', force: true }),
    });
    expect(res.status).toBe(400);
    expect(res.body).toMatchObject({ error: 'unknown fields tga (did you mean tag?), force; the fields are commit, tag, wait', field: 'tga' });
  });

  it('unknown query string fields are refused too, on GET routes as on PUT', async () => {
    const tags = await call(`${server.url}/api/tags?comit=abc1234`, { headers: AS.ops });
    expect(tags.status).toBe(400);
    expect(tags.body).toMatchObject({ error: 'unknown field comit (did you mean commit?); the fields are commit', field: 'comit' });
    const deploy = await call(`${server.url}/api/deploy?commit=abc1234&wiat=5m`, { method: 'PUT', headers: AS.ops });
    expect(deploy.status).toBe(400);
    expect(deploy.body).toMatchObject({ error: 'unknown field wiat (did you mean wait?); the fields are commit, tag, wait' });
  });

  it('a strange field name is shown quoted and shortened, never raw', async () => {
    const res = await call(`${server.url}/api/deploy`, {
      method: 'PUT',
      headers: { ...AS.ops, ...JSON_TYPE },
      body: JSON.stringify({ commit: 'abc1234', ['x\n'.repeat(50)]: 1 }),
    });
    expect(res.status).toBe(400);
    expect((res.body as { error: string }).error).toMatch(/^unknown field "(x\\n){20}"; the fields are commit, tag, wait$/);
  });

  it.each([
    ['the original deployer: commit in a form', { commit: 'abc1234' }],
    ['the original deployer: commit and tag', { commit: 'abc1234', tag: 'main-abc1234' }],
    ['depctl and CI: wait', { commit: 'abc1234', wait: '5m' }],
  ])('fields the clients send stay accepted (%s)', async (_name, fields) => {
    const res = await call(`${server.url}/api/deploy`, { method: 'PUT', headers: { ...AS.ops, ...FORM }, body: form(fields) });
    expect([200, 501]).toContain(res.status);
  });

  it('routes that take other vendors’ payloads (/hooks/) keep accepting fields they do not read', async () => {
    const app = createHttpServer({ logger: pino({ level: 'silent' }) });
    app.post('/hooks/probe', { schema: { body: z.object({ service: z.string() }) } }, (request) => ({ got: request.body }));
    app.post('/probe', { schema: { body: z.object({ service: z.string() }) } }, (request) => ({ got: request.body }));
    const payload = { service: 'api', receiver: 'deployer', groupLabels: {} };
    const hook = await app.inject({ method: 'POST', url: '/hooks/probe', payload });
    expect(hook.statusCode).toBe(200);
    expect(hook.json()).toEqual({ got: { service: 'api' } });
    const other = await app.inject({ method: 'POST', url: '/probe', payload });
    expect(other.statusCode).toBe(400);
    expect(other.json()).toMatchObject({ error: 'unknown fields receiver, groupLabels; the fields are service' });
    await app.close();
  });
});

describe('a wrong method', () => {
  it('GET on a deploy route is 405 with Allow, not 404', async () => {
    const res = await call(`${server.url}/api/deploy`, { headers: AS.ops });
    expect(res.status).toBe(405);
    expect(res.headers.get('allow')).toBe('POST, PUT');
    expect(res.body).toEqual({ error: 'method GET is not allowed here; /api/deploy takes POST, PUT' });
  });

  it('PUT on a read route is 405 naming GET and HEAD; a path no route has stays 404', async () => {
    const res = await call(`${server.url}/api/tags`, { method: 'PUT', headers: AS.ops });
    expect(res.status).toBe(405);
    expect(res.headers.get('allow')).toBe('GET, HEAD');
    const none = await call(`${server.url}/api/deploy/now`, { method: 'PUT', headers: AS.ops });
    expect(none.status).toBe(404);
    expect(none.body).toEqual({ error: 'no such endpoint' });
  });
});

describe('a mistyped service name', () => {
  it('404 suggests the near configured service', async () => {
    const res = await call(`${server.url}/apu/deploy`, { method: 'PUT', headers: { ...AS.ops, ...FORM }, body: form({ commit: 'abc1234' }) });
    expect(res.status).toBe(404);
    expect(res.body).toEqual({ error: 'service "apu" is not configured (did you mean api?)', service: 'apu', didYouMean: 'api' });
  });

  it('no suggestion when nothing is near', async () => {
    const res = await call(`${server.url}/billing`, { headers: AS.ops });
    expect(res.status).toBe(404);
    expect(res.body).toEqual({ error: 'service "billing" is not configured', service: 'billing' });
  });

  it('a scoped token gets a suggestion among the services it may read only, in its 403', async () => {
    // ci may read and deploy "api" only: "apu" suggests api, "wen" (near "web") suggests nothing.
    const near = await call(`${server.url}/apu/deploy`, { method: 'PUT', headers: { ...AS.ci, ...FORM }, body: form({ commit: 'abc1234' }) });
    expect(near.status).toBe(403);
    expect(near.body).toMatchObject({ error: 'token "ci" may not deploy service "apu" (did you mean api?)', didYouMean: 'api' });
    const outside = await call(`${server.url}/wen`, { headers: AS.ci });
    expect(outside.status).toBe(403);
    expect(outside.body).toEqual({ error: 'token "ci" may not read service "wen"', token: 'ci', action: 'read', service: 'wen' });
  });

  it('a service the token may read gets no suggestion of another, however near', async () => {
    const near = await startServer({
      config: testConfig({
        services: { web: { repository: { url: 'https://git.example.com/web.git' } }, wen: { repository: { url: 'https://git.example.com/wen.git' } } },
      }),
    });
    try {
      // reader may read every service but deploy none.
      const res = await call(`${near.url}/web/deploy`, { method: 'PUT', headers: { ...AS.reader, ...FORM }, body: form({ commit: 'abc1234' }) });
      expect(res.status).toBe(403);
      expect(res.body).toEqual({ error: 'token "reader" may not deploy service "web"', token: 'reader', action: 'deploy', service: 'web' });
    } finally {
      await near.close();
    }
  });

  it('nearest() takes typos only', () => {
    expect(editDistance('comit', 'commit')).toBe(1);
    expect(editDistance('tga', 'tag')).toBe(1);
    expect(nearest('comit', ['commit', 'tag'])).toBe('commit');
    expect(nearest('ab', ['xy', 'ac'])).toBeUndefined();
    expect(nearest('shop', ['shopping'])).toBeUndefined();
    expect(nearest('shp', ['shop', 'ship'])).toBe('shop');
  });
});

describe('GET /readyz', () => {
  const work = mkdtempSync(join(tmpdir(), 'http-readyz-'));
  afterAll(() => rmSync(work, { recursive: true, force: true }));
  // A cache below a regular file can never be created (whoever runs the test, root included).
  const file = join(work, 'not-a-dir');
  writeFileSync(file, 'x');
  const failing = () =>
    buildApp({
      config: testConfig({ cache: { dir: join(file, 'cache') } }),
      logger: pino({ level: 'silent' }),
      version: 't',
      deployer: new FakeDeployer(),
      metrics: new Metrics(),
      apiserver: { ping: () => Promise.reject(new UpstreamError('kubernetes', 'the Kubernetes apiserver at https://10.0.0.1 is unreachable')) },
    });

  it('stays terse without a token, or with a wrong one', async () => {
    const app = failing();
    for (const headers of [{}, { authorization: 'Basic b3BzOndyb25n' }]) {
      const res = await app.inject({ method: 'GET', url: '/readyz', headers });
      expect(res.statusCode).toBe(503);
      expect(res.json()).toEqual({ status: 'not ready', checks: { config: 'ok', cache: 'failed', kubernetes: 'failed' } });
    }
    await app.close();
  });

  it('with a valid token, says which check failed and why', async () => {
    const app = failing();
    const res = await app.inject({ method: 'GET', url: '/readyz', headers: AS.reader });
    expect(res.statusCode).toBe(503);
    const body = res.json<{ failures: Record<string, string> }>();
    expect(body).toMatchObject({ status: 'not ready', checks: { cache: 'failed', kubernetes: 'failed' } });
    expect(body.failures['kubernetes']).toBe('the Kubernetes apiserver at https://10.0.0.1 is unreachable');
    expect(body.failures['cache']).toMatch(/ENOTDIR.*not-a-dir/);
    expect(Object.keys(body.failures).sort()).toEqual(['cache', 'kubernetes']);
    await app.close();
  });
});
