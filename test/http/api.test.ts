import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { AS, call, FORM, form, JSON_TYPE, SECRETS, startServer, testConfig, type TestServer } from './helpers.js';

let server: TestServer;
beforeAll(async () => {
  server = await startServer();
});
afterAll(async () => {
  await server.close();
});
beforeEach(() => {
  server.engine.runs.length = 0;
  server.engine.tagCalls.length = 0;
  server.engine.failure = undefined;
});

describe('read endpoints', () => {
  it('GET /healthz answers without credentials', async () => {
    const res = await call(`${server.url}/healthz`);
    expect(res.status).toBe(200);
    expect(res.body).toEqual({ status: 'ok' });
  });

  it('GET /version answers the deployer version', async () => {
    const res = await call(`${server.url}/version`, { headers: AS.ops });
    expect(res.status).toBe(200);
    expect(res.body).toEqual({ name: 'deployer', version: '1.2.3-test' });
  });

  it('GET / lists every service for a token scoped to all', async () => {
    const res = await call(`${server.url}/`, { headers: AS.ops });
    expect(res.status).toBe(200);
    expect(res.body).toEqual({ services: ['api', 'web', 'worker'], repositories: ['api', 'web', 'worker'] });
  });

  it('GET / lists only the services the token may read', async () => {
    const res = await call(`${server.url}/`, { headers: AS.ci });
    expect(res.status).toBe(200);
    expect(res.body).toEqual({ services: ['api'], repositories: ['api'] });
  });

  it('GET /:service shows the configuration without secrets or URL userinfo', async () => {
    const res = await call(`${server.url}/api`, { headers: AS.ops });
    expect(res.status).toBe(200);
    expect(res.body).toEqual({
      name: 'api',
      repository: {
        url: 'https://git.example.com/acme/api.git',
        type: 'git',
        defaultBranch: 'main',
        username: 'deployer',
        credentials: ['password'],
        name: 'api',
        github: 'https://git.example.com/acme/api.git',
        kube_resource: 'kubernetes',
      },
      manifestsDir: 'kubernetes',
      namespace: 'api',
      allowNamespaces: [],
      allowClusterScoped: false,
      // What runs, as the domain reads it from the cluster (the fake runs nothing).
      deployments: [],
    });
    for (const secret of Object.values(SECRETS)) expect(res.text).not.toContain(secret);
  });

  it('GET /:service keeps an scp-like git address as it is', async () => {
    const res = await call(`${server.url}/worker`, { headers: AS.reader });
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({ repository: { url: 'git@git.example.com:acme/worker.git', credentials: [] } });
  });

  it('GET /:service/tags asks the engine for the default branch', async () => {
    const res = await call(`${server.url}/api/tags`, { headers: AS.ci });
    expect(res.status).toBe(200);
    expect(res.body).toEqual({
      service: 'api',
      ref: 'main',
      images: [{ image: 'registry.example.com/api', tags: ['main-abc1234', 'main-def5678'] }],
      count: 2,
      names: ['main-abc1234', 'main-def5678'],
    });
    expect(server.engine.tagCalls).toEqual([{ service: 'api', ref: undefined }]);
  });

  it('GET /:service/tags?commit= passes the commit on', async () => {
    const res = await call(`${server.url}/web/tags?commit=1234`, { headers: AS.reader });
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({ service: 'web', ref: '1234' });
    expect(server.engine.tagCalls).toEqual([{ service: 'web', ref: '1234' }]);
  });

  it('GET /:service/tags refuses a bad commit, naming the field', async () => {
    const res = await call(`${server.url}/api/tags?commit=${encodeURIComponent('--upload-pack=x')}`, { headers: AS.ops });
    expect(res.status).toBe(400);
    expect(res.body).toEqual({
      error: 'commit must be a commit SHA (4 to 40 hex digits), a revision number or a branch name',
      field: 'commit',
    });
    expect(server.engine.tagCalls).toEqual([]);
  });

  it.each(['/nope', '/nope/tags', '/constructor', '/__proto__', '/hasOwnProperty/tags'])(
    'GET %s of an unknown service answers 404',
    async (path) => {
      const res = await call(`${server.url}${path}`, { headers: AS.ops });
      expect(res.status).toBe(404);
      const name = path.split('/')[1];
      expect(res.body).toEqual({ error: `service "${name}" is not configured`, service: name });
    },
  );

  it('an unknown endpoint answers 404 in the same shape', async () => {
    const res = await call(`${server.url}/api/tags/extra`, { headers: AS.ops });
    expect(res.status).toBe(404);
    expect(res.body).toEqual({ error: 'no such endpoint' });
  });
});

describe('deploy and canary', () => {
  it('PUT /:service/deploy with a form body reaches the engine with the right values', async () => {
    const res = await call(`${server.url}/api/deploy`, {
      method: 'PUT',
      headers: { ...AS.ci, ...FORM, 'user-agent': 'ci-runner/1.0', 'x-request-id': 'ci-build-42' },
      body: form({ commit: '025838f' }),
    });
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({ message: 'api main-025838f is deployed', service: 'api', kind: 'deploy', commit: '025838f' });
    expect(res.headers.get('x-request-id')).toBe('ci-build-42');
    expect(server.engine.runs).toHaveLength(1);
    const run = server.engine.runs[0];
    expect(run?.service.name).toBe('api');
    expect(run).toMatchObject({
      kind: 'deploy',
      commit: '025838f',
      tag: undefined,
      caller: { token: 'ci', userAgent: 'ci-runner/1.0' },
      requestId: 'ci-build-42',
    });
  });

  it('POST /:service/deploy (curl --data) works like PUT', async () => {
    const res = await call(`${server.url}/api/deploy`, {
      method: 'POST',
      headers: { ...AS.ops, ...FORM },
      body: form({ commit: 'feature/login-2', tag: 'feature-login-2-abc1234' }),
    });
    expect(res.status).toBe(200);
    expect(server.engine.runs[0]).toMatchObject({ kind: 'deploy', commit: 'feature/login-2', tag: 'feature-login-2-abc1234' });
  });

  it('a form with a charset parameter works (fetch sends URLSearchParams so)', async () => {
    const res = await call(`${server.url}/api/deploy`, {
      method: 'PUT',
      headers: AS.ops,
      body: new URLSearchParams({ commit: 'abc1234' }),
    });
    expect(res.status).toBe(200);
    expect(server.engine.runs[0]).toMatchObject({ commit: 'abc1234' });
  });

  it('a JSON body works', async () => {
    const res = await call(`${server.url}/api/canary`, {
      method: 'PUT',
      headers: { ...AS.ops, ...JSON_TYPE },
      body: JSON.stringify({ tag: 'main-abc1234' }),
    });
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({ message: 'api main-abc1234 is deployed as canary', kind: 'canary' });
    expect(server.engine.runs[0]).toMatchObject({ kind: 'canary', commit: undefined, tag: 'main-abc1234' });
  });

  it('the query string works, without a body', async () => {
    const res = await call(`${server.url}/web/deploy?commit=4711&tag=trunk-4711`, { method: 'PUT', headers: AS.ops });
    expect(res.status).toBe(200);
    expect(server.engine.runs[0]).toMatchObject({ kind: 'deploy', commit: '4711', tag: 'trunk-4711' });
    expect(server.engine.runs[0]?.service.name).toBe('web');
  });

  it('body and query combine when they agree', async () => {
    const res = await call(`${server.url}/api/deploy?tag=main-abc1234`, {
      method: 'PUT',
      headers: { ...AS.ops, ...FORM },
      body: form({ commit: 'abc1234' }),
    });
    expect(res.status).toBe(200);
    expect(server.engine.runs[0]).toMatchObject({ commit: 'abc1234', tag: 'main-abc1234' });
  });

  it('an empty form field counts as not given', async () => {
    const res = await call(`${server.url}/api/deploy`, {
      method: 'POST',
      headers: { ...AS.ops, ...FORM },
      body: 'commit=&tag=main-abc1234',
    });
    expect(res.status).toBe(200);
    expect(server.engine.runs[0]).toMatchObject({ commit: undefined, tag: 'main-abc1234' });
  });

  it.each([
    ['PUT', '/api/canary'],
    ['POST', '/api/canary'],
    ['PUT', '/api/deploy_canary'],
    ['POST', '/api/deploy_canary'],
  ])('%s %s deploys a canary', async (method, path) => {
    const res = await call(`${server.url}${path}`, { method, headers: { ...AS.ops, ...FORM }, body: form({ commit: 'abc1234' }) });
    expect(res.status).toBe(200);
    expect(server.engine.runs.map((r) => r.kind)).toEqual(['canary']);
  });

  it('the auth_token user with its own secret deploys as auth_token', async () => {
    const res = await call(`${server.url}/worker/deploy`, { method: 'POST', headers: { ...AS.legacy, ...FORM }, body: form({ commit: 'abc1234' }) });
    expect(res.status).toBe(200);
    expect(server.engine.runs[0]?.caller.token).toBe('auth_token');
  });
});

describe('insecureNoAuth', () => {
  let open: TestServer;
  beforeAll(async () => {
    open = await startServer({ config: testConfig({ tokens: {}, insecureNoAuth: true }, {}) });
  });
  afterAll(async () => {
    await open.close();
  });

  it('allows every request as token "anonymous" and warned at start', async () => {
    const list = await call(`${open.url}/`);
    expect(list.status).toBe(200);
    expect(list.body).toEqual({ services: ['api', 'web', 'worker'], repositories: ['api', 'web', 'worker'] });
    const res = await call(`${open.url}/api/deploy?commit=abc1234`, { method: 'PUT' });
    expect(res.status).toBe(200);
    expect(open.engine.runs[0]?.caller.token).toBe('anonymous');
    const warning = open.logs.map((l) => JSON.parse(l) as { level: number; msg: string }).find((l) => l.level === 40);
    expect(warning?.msg).toContain('insecureNoAuth');
  });
});

describe('request ids', () => {
  it('generates one when none is given', async () => {
    const res = await call(`${server.url}/healthz`);
    expect(res.headers.get('x-request-id')).toMatch(/^[0-9a-f-]{36}$/);
  });

  it('replaces an insane incoming one', async () => {
    const res = await call(`${server.url}/healthz`, { headers: { 'x-request-id': 'a b\tc'.repeat(3) } });
    expect(res.headers.get('x-request-id')).toMatch(/^[0-9a-f-]{36}$/);
  });

  it.each([
    ['401', '/', {}],
    ['404', '/nope', AS.ops],
    ['400', '/api/deploy?commit=a..b', AS.ops],
  ])('is on error responses too (%s)', async (_status, path, headers) => {
    const res = await call(`${server.url}${path}`, { method: path.includes('deploy') ? 'PUT' : 'GET', headers: { ...headers, 'x-request-id': 'trace-1' } });
    expect(res.headers.get('x-request-id')).toBe('trace-1');
  });
});

describe('logs', () => {
  it('never hold the Authorization header or a secret', async () => {
    await call(`${server.url}/api/deploy`, { method: 'PUT', headers: { ...AS.ci, ...FORM }, body: form({ commit: 'abc1234' }) });
    await call(`${server.url}/`, { headers: { authorization: 'Basic bm9wZTpub3Bl' } });
    await call(`${server.url}/web/deploy?commit=abc1234`, { method: 'PUT', headers: AS.ci });
    expect(server.logs.length).toBeGreaterThan(3);
    const all = server.logs.join('\n');
    expect(all).not.toMatch(/authorization/i);
    expect(all).not.toContain('bm9wZTpub3Bl');
    for (const secret of Object.values(SECRETS)) expect(all).not.toContain(secret);
  });
});
