import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { authenticate, authorize, parseBasicAuth } from '../../src/http/auth.js';
import { AuthError } from '../../src/errors.js';
import { AS, basic, call, FORM, form, SECRETS, startServer, testConfig, type TestServer } from './helpers.js';

const CHALLENGE = 'Basic realm="deployer", charset="UTF-8"';

describe('authentication over HTTP', () => {
  let server: TestServer;
  beforeAll(async () => {
    server = await startServer();
  });
  afterAll(async () => {
    await server.close();
  });

  it.each([
    ['no Authorization header', {}, 'authentication required'],
    ['a wrong password', { authorization: basic('ci', SECRETS.ops) }, 'unknown token or wrong secret'],
    ['an unknown user', { authorization: basic('nobody', SECRETS.ops) }, 'unknown token or wrong secret'],
    ['an inherited property as user', { authorization: basic('constructor', '') }, 'unknown token or wrong secret'],
    ['auth_token with no token\'s secret', { authorization: basic('auth_token', 'guess') }, 'unknown token or wrong secret'],
    ['bad base64', { authorization: 'Basic %%%not-base64%%%' }, 'the Authorization header is not valid basic authentication'],
    ['base64 without a colon', { authorization: `Basic ${Buffer.from('nocolon').toString('base64')}` }, 'the Authorization header is not valid basic authentication'],
    ['another scheme', { authorization: `Bearer ${SECRETS.ops}` }, 'the Authorization header is not valid basic authentication'],
  ])('%s gives 401 with the challenge header', async (_case, headers, message) => {
    const res = await call(`${server.url}/`, { headers });
    expect(res.status).toBe(401);
    expect(res.headers.get('www-authenticate')).toBe(CHALLENGE);
    expect(res.body).toEqual({ error: message });
  });

  it('401 comes before 404 for an unknown service', async () => {
    const res = await call(`${server.url}/nope/deploy?commit=abc1234`, { method: 'PUT' });
    expect(res.status).toBe(401);
    expect(res.headers.get('www-authenticate')).toBe(CHALLENGE);
  });

  it('401 comes before the body is read (no 413 for an anonymous large body)', async () => {
    const res = await call(`${server.url}/api/deploy`, { method: 'PUT', headers: FORM, body: form({ commit: 'a'.repeat(70_000) }) });
    expect(res.status).toBe(401);
  });

  it('the auth_token user works with its own secret', async () => {
    const res = await call(`${server.url}/`, { headers: AS.legacy });
    expect(res.status).toBe(200);
    expect(res.body).toEqual({ services: ['api', 'web', 'worker'], repositories: ['api', 'web', 'worker'] });
  });

  it('the auth_token user with another token\'s secret acts as that token, in its scope', async () => {
    const headers = { authorization: basic('auth_token', SECRETS.ci) };
    const list = await call(`${server.url}/`, { headers });
    expect(list.body).toEqual({ services: ['api'], repositories: ['api'] });
    const deploy = await call(`${server.url}/api/deploy`, { method: 'POST', headers: { ...headers, ...FORM }, body: form({ commit: 'abc1234' }) });
    expect(deploy.status).toBe(200);
    expect(server.engine.runs.at(-1)?.caller.token).toBe('ci');
    const refused = await call(`${server.url}/web/deploy?commit=abc1234`, { method: 'PUT', headers });
    expect(refused.status).toBe(403);
    expect(refused.body).toEqual({ error: 'token "ci" may not deploy service "web"', token: 'ci', action: 'deploy', service: 'web' });
  });

  it.each([
    ['deploy another service', 'PUT', '/web/deploy?commit=abc1234', 'token "ci" may not deploy service "web"', 'deploy', 'web'],
    ['read another service', 'GET', '/web', 'token "ci" may not read service "web"', 'read', 'web'],
    ['list tags of another service', 'GET', '/worker/tags', 'token "ci" may not read service "worker"', 'read', 'worker'],
    ['deploy a canary of its service', 'PUT', '/api/canary?commit=abc1234', 'token "ci" may not canary service "api"', 'canary', 'api'],
    ['use the deploy_canary alias', 'POST', '/api/deploy_canary?commit=abc1234', 'token "ci" may not canary service "api"', 'canary', 'api'],
    ['name an unknown service (no hint that it does not exist)', 'GET', '/nope', 'token "ci" may not read service "nope"', 'read', 'nope'],
  ])('a CI token scoped to one service gets 403 to %s', async (_case, method, path, message, action, service) => {
    const res = await call(`${server.url}${path}`, { method, headers: AS.ci });
    expect(res.status).toBe(403);
    expect(res.headers.get('www-authenticate')).toBeNull();
    expect(res.body).toEqual({ error: message, token: 'ci', action, service });
    expect(res.text).not.toContain(SECRETS.ci);
  });

  it('a read-only token may read but not deploy', async () => {
    expect((await call(`${server.url}/api`, { headers: AS.reader })).status).toBe(200);
    const res = await call(`${server.url}/api/deploy?commit=abc1234`, { method: 'PUT', headers: AS.reader });
    expect(res.status).toBe(403);
    expect(res.body).toMatchObject({ error: 'token "reader" may not deploy service "api"' });
  });

  it('/version needs a token but no scope', async () => {
    expect((await call(`${server.url}/version`)).status).toBe(401);
    expect((await call(`${server.url}/version`, { headers: AS.ci })).status).toBe(200);
  });
});

describe('auth functions', () => {
  const config = testConfig();

  it('parseBasicAuth splits at the first colon, so a password may hold colons', () => {
    expect(parseBasicAuth(basic('ops', 'a:b:c'))).toEqual({ user: 'ops', password: 'a:b:c' });
  });

  it('parseBasicAuth accepts the scheme in any case', () => {
    expect(parseBasicAuth(`basic ${Buffer.from('u:p').toString('base64')}`)).toEqual({ user: 'u', password: 'p' });
  });

  it.each([
    ['unpadded base64', 'Basic b3BzOng'],
    ['base64 with padding inside', 'Basic b3=zOng='],
    ['invalid UTF-8', `Basic ${Buffer.from([0x6f, 0x3a, 0xff, 0xfe]).toString('base64')}`],
    ['an empty value', 'Basic '],
  ])('parseBasicAuth refuses %s with 401', (_case, header) => {
    expect(() => parseBasicAuth(header)).toThrow(AuthError);
  });

  it('authenticate gives the principal with its scope', () => {
    expect(authenticate(basic('ci', SECRETS.ci), config)).toEqual({ token: 'ci', services: ['api'], actions: ['read', 'deploy'] });
  });

  it('authenticate prefers the auth_token itself when another token shares its secret', () => {
    const shared = testConfig(
      { tokens: { twin: { secret: { value: SECRETS.legacy }, actions: ['read'] } } },
      { DEPLOYER_AUTH_TOKEN: SECRETS.legacy },
    );
    expect(authenticate(basic('auth_token', SECRETS.legacy), shared).token).toBe('auth_token');
    expect(authenticate(basic('twin', SECRETS.legacy), shared).token).toBe('twin');
  });

  it('authorize throws 403 naming the missing scope', () => {
    const principal = authenticate(basic('ci', SECRETS.ci), config);
    expect(() => authorize(principal, 'deploy', 'api')).not.toThrow();
    try {
      authorize(principal, 'rollback', 'api');
      expect.unreachable();
    } catch (err) {
      expect(err).toBeInstanceOf(AuthError);
      expect((err as AuthError).status).toBe(403);
      expect((err as AuthError).message).toBe('token "ci" may not rollback service "api"');
    }
  });
});
