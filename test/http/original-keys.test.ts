import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AS, call, startServer, testConfig, type TestServer } from './helpers.js';

/**
 * Old clients of the original deployer (its depctl, scripts reading its JSON) keep working: beside our keys, every
 * answer carries the original's where ours differ (gapfish/deployer lib/deploy_server_creator.rb): `GET /` →
 * `repositories`, `GET /:service` → `repository.name`/`github`/`kube_resource`, `GET /:service/tags` → `count`, `names`.
 */

let server: TestServer;
beforeAll(async () => {
  const config = testConfig({
    services: {
      api: { repository: { url: 'https://deployer:s3cret@github.com/acme/api.git' }, manifestsDir: 'deploy/k8s' },
      web: { repository: { url: 'git@github.com:acme/web.git' } },
      worker: { repository: { url: 'https://git.example.com/acme/worker.git' } },
    },
  });
  server = await startServer({ config });
});
afterAll(async () => {
  await server.close();
});

describe("the original deployer's answer keys", () => {
  it('GET / names the services as `repositories` too', async () => {
    const res = await call(`${server.url}/`, { headers: AS.ops });

    expect(res.status).toBe(200);
    expect(res.body).toEqual({ services: ['api', 'web', 'worker'], repositories: ['api', 'web', 'worker'] });
  });

  it.each([
    ['api', { name: 'api', github: 'acme/api', kube_resource: 'deploy/k8s' }],
    ['web', { name: 'web', github: 'acme/web', kube_resource: 'kubernetes' }],
    ['worker', { name: 'worker', github: 'https://git.example.com/acme/worker.git', kube_resource: 'kubernetes' }],
  ])('GET /%s carries the repository as the original showed it, without secrets', async (name, original) => {
    const res = await call(`${server.url}/${name}`, { headers: AS.ops });

    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({ repository: original });
    expect(res.text).not.toContain('s3cret');
  });

  it('GET /:service/tags counts and names every tag once, as the original did', async () => {
    server.engine.tagResult = [
      { image: 'registry.example.com/api', tags: ['main-abc1234', 'main-def5678'] },
      { image: 'registry.example.com/api-worker', tags: ['main-def5678', 'main-0123456'] },
    ];

    const res = await call(`${server.url}/api/tags`, { headers: AS.ops });

    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({ count: 3, names: ['main-0123456', 'main-abc1234', 'main-def5678'] });
  });
});
