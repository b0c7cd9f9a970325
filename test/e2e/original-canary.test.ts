import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createNamespace, kubeRequest } from '../env/kube-helpers.js';
import { basic, call, serviceRepo, startDeployer, type RunningDeployer } from './setup.js';

// Coming from the original deployer: the canary it left (`NAME-canary`, no ownership annotation, pods labelled with
// the stable's selector plus track=canary) goes with the first stable deploy, as our own canaries do; a Deployment
// that only has such a name is left alone. With the guestbook of test/corpus/.

const CI_SECRET = 'original-ci-secret-0123456789';
const GUESTBOOK = join(import.meta.dirname, '..', 'corpus', 'guestbook', 'kubernetes');

function deploymentBody(namespace: string, name: string, selector: Record<string, string>, podLabels: Record<string, string>): string {
  return JSON.stringify({
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    metadata: { name, namespace },
    spec: {
      replicas: 1,
      selector: { matchLabels: selector },
      template: { metadata: { labels: podLabels }, spec: { containers: [{ name: 'app', image: 'docker.io/corelab/gb-frontend:v4' }] } },
    },
  });
}

describe("the original deployer's canaries", () => {
  let deployer: RunningDeployer;
  let namespace: string;
  let repo: Awaited<ReturnType<typeof serviceRepo>>;

  beforeAll(async () => {
    namespace = await createNamespace('original');
    const files: Record<string, string> = {};
    for (const name of readdirSync(GUESTBOOK)) files[`kubernetes/${name}`] = readFileSync(join(GUESTBOOK, name), 'utf8');
    repo = await serviceRepo('guestbook', [{ files }]);
    deployer = await startDeployer({
      tokens: { ci: { secret: { value: CI_SECRET }, services: [repo.name], actions: ['read', 'deploy'] } },
      services: { [repo.name]: { repository: repo.repository, namespace } },
      versions: { registryWaitSeconds: 0 },
    });
  });

  afterAll(async () => {
    await deployer?.close();
  });

  it('removes the canary the original left, and only that one', async () => {
    const create = async (body: string): Promise<void> => {
      const res = await kubeRequest('POST', `/apis/apps/v1/namespaces/${namespace}/deployments`, { body });
      expect(res.status, JSON.stringify(res.body)).toBe(201);
    };
    const canarySelector = { app: 'guestbook', tier: 'frontend', track: 'canary' };
    // The original's: exactly the stable's selector labels plus track=canary.
    await create(deploymentBody(namespace, 'frontend-canary', canarySelector, canarySelector));
    // Named like a canary of redis-leader, but its pods are not the stable's selector plus track=canary.
    await create(deploymentBody(namespace, 'redis-leader-canary', { app: 'redis', track: 'canary' }, { app: 'redis', track: 'canary', role: 'cache' }));

    const answer = await call(`${deployer.url}/${repo.name}/deploy`, { auth: basic('ci', CI_SECRET), form: { commit: repo.repo.shas[0] as string } });

    expect(answer.status, JSON.stringify(answer.body)).toBe(200);
    const deleted = (answer.body['objects'] as { name: string; action: string }[]).filter((o) => o.action === 'deleted').map((o) => o.name);
    expect(deleted).toEqual(['frontend-canary']);
    const status = async (name: string) => (await kubeRequest('GET', `/apis/apps/v1/namespaces/${namespace}/deployments/${name}`)).status;
    expect(await status('frontend-canary')).toBe(404);
    expect(await status('redis-leader-canary')).toBe(200);
  });
});
