import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { AuthError, BusyError, NotFoundError, UpstreamError } from '../../src/errors.js';
import { basic, call, JSON_TYPE, startServer, testConfig, type Answer, type TestServer } from '../http/helpers.js';

/**
 * Finding 9, the generic hook's half: the one hook rule (200 with a result per item; 503 with Retry-After only when
 * the rollback of a known, permitted service could not run yet) held for /hooks/alertmanager, while /hooks/generic
 * still answered 404 for an unknown service and 403 for one outside the token's scope, or for a version only the
 * deploy scope may deploy — a 4xx, which a monitor does not send again and counts as a failed notification. Through
 * the HTTP layer with the small fake of the domain, which answers or throws what a test tells it.
 */

const MONITOR_SECRET = 'monitor-secret-h00ks-42';
const MONITOR = { authorization: basic('monitor', MONITOR_SECRET), ...JSON_TYPE };

describe('/hooks/generic follows the one hook rule', () => {
  let server: TestServer;

  beforeAll(async () => {
    server = await startServer({
      config: testConfig({
        tokens: {
          monitor: { secret: { value: MONITOR_SECRET }, services: ['api'], actions: ['rollback'] },
          reader: { secret: { value: 'reader-secret-h00ks-42' }, actions: ['read'] },
        },
      }),
    });
  });

  afterEach(() => {
    server.engine.failure = undefined;
  });

  afterAll(async () => {
    await server?.close();
  });

  const hook = (json: Record<string, unknown>, headers: Record<string, string> = MONITOR): Promise<Answer> =>
    call(`${server.url}/hooks/generic`, { method: 'POST', headers, body: JSON.stringify(json) });

  it('a rollback that ran: 200 with its result and what PUT /SERVICE/rollback answers', async () => {
    const answer = await hook({ service: 'api', action: 'rollback' });
    expect(answer.status, answer.text).toBe(200);
    expect(answer.body).toEqual({
      service: 'api',
      kind: 'rollback',
      outcome: 'nothing-to-roll-back',
      result: 'nothing-to-roll-back',
      message: 'nothing to roll back',
      images: [],
      objects: [],
      durationMs: 1,
    });
  });

  it.each([
    ['an unknown service', { service: 'no-such-service', action: 'rollback' }, undefined, { service: 'no-such-service', result: 'unknown-service', message: 'service "no-such-service" is not configured' }],
    ['a service outside the token', { service: 'web', action: 'rollback' }, undefined, { service: 'web', result: 'forbidden', message: 'token "monitor" may not rollback service "web"' }],
    [
      'a version only the deploy scope may deploy',
      { service: 'api', action: 'rollback', commit: 'some-branch' },
      new AuthError(403, 'token "monitor" may not deploy service "api": some-branch is neither the running stable version nor the recorded previous one'),
      { service: 'api', result: 'forbidden', message: 'token "monitor" may not deploy service "api": some-branch is neither the running stable version nor the recorded previous one' },
    ],
    [
      'a rollback that cannot succeed (nothing deployed)',
      { service: 'api', action: 'rollback', to: 'previous' },
      new NotFoundError('api has no Deployment to roll back'),
      { service: 'api', result: 'failed', message: 'api has no Deployment to roll back' },
    ],
  ])('%s is a result: 200, not a 4xx the monitor would drop', async (_what, json, failure, expected) => {
    server.engine.failure = failure;
    const answer = await hook(json);
    expect(answer.status, answer.text).toBe(200);
    expect(answer.headers.get('retry-after')).toBeNull();
    expect(answer.body).toEqual(expected);
  });

  it.each([
    ['the service is busy', new BusyError('another deploy of api is running (lock held by pod-1); try again later'), 'another deploy of api is running (lock held by pod-1); try again later; send the alert again'],
    ['the apiserver is down', new UpstreamError('kubernetes', 'the apiserver did not answer'), "rollback failed (502); see the deployer's log; send the alert again"],
  ])('a permitted rollback that could not run yet (%s): 503 with Retry-After, its result in the body', async (_what, failure, message) => {
    server.engine.failure = failure;
    const answer = await hook({ service: 'api', action: 'rollback' });
    expect(answer.status, answer.text).toBe(503);
    expect(answer.headers.get('retry-after')).toBe('10');
    expect(answer.body).toEqual({ service: 'api', result: 'failed', message });
  });

  it('what is not an item stays refused: a token without the rollback scope (403), a malformed notification (400)', async () => {
    const reader = await hook({ service: 'api', action: 'rollback' }, { authorization: basic('reader', 'reader-secret-h00ks-42'), ...JSON_TYPE });
    expect(reader.status).toBe(403);
    expect(reader.body).toEqual({ error: 'token "reader" may not rollback', token: 'reader', action: 'rollback' });
    const both = await hook({ service: 'api', action: 'rollback', to: 'previous', tag: 'main-abc1234' });
    expect(both.status).toBe(400);
    expect(both.body).toEqual({ error: 'to=previous and a commit or tag exclude each other', field: 'to' });
    const promote = await hook({ service: 'api', action: 'promote' });
    expect(promote.status).toBe(400);
    expect(promote.body).toEqual({ error: 'action must be "rollback"', field: 'action' });
  });
});
