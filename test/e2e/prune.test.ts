import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createNamespace, kubeRequest } from '../env/kube-helpers.js';
import { configMapYaml } from '../env/manifests.js';
import { basic, call, serviceRepo, startDeployer, type RunningDeployer } from './setup.js';

// Pruning (`prune: true`) on the ground, with the guestbook of test/corpus/ (the shape of kubernetes/examples'
// guestbook): the next commit removes the redis follower (its Deployment and Service), as a project that drops a
// component does. The deployer deletes exactly those after the apply; never another service's object, never one
// without its ownership annotation, and an object labelled as this service's but owned by another refuses the deploy
// before anything is applied.

const CI_SECRET = 'prune-ci-secret-0123456789';
const GUESTBOOK = join(import.meta.dirname, '..', 'corpus', 'guestbook', 'kubernetes');
const FOLLOWER = ['redis-follower-deployment.yaml', 'redis-follower-service.yaml'];

function guestbook(): Record<string, string> {
  const files: Record<string, string> = {};
  for (const name of readdirSync(GUESTBOOK)) files[`kubernetes/${name}`] = readFileSync(join(GUESTBOOK, name), 'utf8');
  return files;
}

const path = (namespace: string, kind: 'Deployment' | 'Service' | 'ConfigMap', name: string): string =>
  kind === 'Deployment'
    ? `/apis/apps/v1/namespaces/${namespace}/deployments/${name}`
    : `/api/v1/namespaces/${namespace}/${kind === 'Service' ? 'services' : 'configmaps'}/${name}`;

async function exists(namespace: string, kind: 'Deployment' | 'Service' | 'ConfigMap', name: string): Promise<boolean> {
  const res = await kubeRequest('GET', path(namespace, kind, name));
  expect([200, 404]).toContain(res.status);
  return res.status === 200;
}

async function createConfigMap(namespace: string, name: string, labels: Record<string, string>, annotations: Record<string, string>): Promise<void> {
  const body = { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name, namespace, labels, annotations }, data: { made: 'by hand' } };
  const res = await kubeRequest('POST', `/api/v1/namespaces/${namespace}/configmaps`, { body: JSON.stringify(body) });
  expect(res.status).toBe(201);
}

describe('pruning: what a service removed from its manifests is deleted after the apply', () => {
  let deployer: RunningDeployer;
  let namespace: string;
  let gb: Awaited<ReturnType<typeof serviceRepo>>;
  let other: Awaited<ReturnType<typeof serviceRepo>>;
  const auth = basic('ci', CI_SECRET);
  const deploy = (service: string, commit: string) => call(`${deployer.url}/${service}/deploy`, { auth, form: { commit } });

  beforeAll(async () => {
    namespace = await createNamespace('prune');
    const withoutFollower = Object.fromEntries(FOLLOWER.map((f) => [`kubernetes/${f}`, null]));
    gb = await serviceRepo('guestbook', [
      { files: { ...guestbook(), 'README.md': 'guestbook' } },
      { files: withoutFollower, message: 'Drop the redis follower' },
      { files: { 'kubernetes/frontend-deployment.yaml': guestbook()['kubernetes/frontend-deployment.yaml']?.replace('replicas: 3', 'replicas: 2') ?? '' } },
    ]);
    other = await serviceRepo('other', [{ files: { 'kubernetes/settings.yaml': configMapYaml('other-settings', { a: '1' }) } }, { files: { 'kubernetes/settings.yaml': null, 'kubernetes/more.yaml': configMapYaml('other-more', { b: '2' }) } }]);
    deployer = await startDeployer({
      tokens: { ci: { secret: { value: CI_SECRET }, services: [gb.name, other.name], actions: ['read', 'deploy', 'canary'] } },
      services: {
        [gb.name]: { repository: gb.repository, namespace, prune: true },
        [other.name]: { repository: other.repository, namespace, prune: true },
      },
      versions: { registryWaitSeconds: 0 },
    });
  });

  afterAll(async () => {
    await deployer?.close();
  });

  it('deletes the removed Deployment and Service, lists them, and leaves other services and unannotated objects alone', async () => {
    expect((await deploy(other.name, other.repo.shas[0] as string)).status).toBe(200);
    const first = await deploy(gb.name, gb.repo.shas[0] as string);
    expect(first.status, JSON.stringify(first.body)).toBe(200);
    expect(await exists(namespace, 'Deployment', 'redis-follower')).toBe(true);
    // Labelled as the guestbook's (as a copy-paste would), but without the ownership annotation: never pruned.
    await createConfigMap(namespace, 'hand-made', { 'deployer.internal/service': gb.name, 'app.kubernetes.io/managed-by': 'deployer' }, {});

    const second = await deploy(gb.name, gb.repo.shas[1] as string);

    expect(second.status, JSON.stringify(second.body)).toBe(200);
    const pruned = (second.body['objects'] as { kind: string; name: string; action: string }[]).filter((o) => o.action === 'pruned');
    expect(pruned.map((o) => `${o.kind} ${o.name}`)).toEqual(['Deployment redis-follower', 'Service redis-follower']);
    expect(await exists(namespace, 'Deployment', 'redis-follower')).toBe(false);
    expect(await exists(namespace, 'Service', 'redis-follower')).toBe(false);
    for (const name of ['frontend', 'redis-leader']) expect(await exists(namespace, 'Deployment', name)).toBe(true);
    expect(await exists(namespace, 'ConfigMap', 'other-settings')).toBe(true);
    expect(await exists(namespace, 'ConfigMap', 'hand-made')).toBe(true);

    // The same commit again: nothing left to prune.
    const again = await deploy(gb.name, gb.repo.shas[1] as string);
    expect(again.status).toBe(200);
    expect((again.body['objects'] as { action: string }[]).filter((o) => o.action === 'pruned')).toEqual([]);

    // The other service prunes its own removed ConfigMap, not the guestbook's objects.
    const otherNext = await deploy(other.name, other.repo.shas[1] as string);
    expect(otherNext.status).toBe(200);
    expect((otherNext.body['objects'] as { kind: string; name: string; action: string }[]).filter((o) => o.action === 'pruned')).toEqual([
      expect.objectContaining({ kind: 'ConfigMap', name: 'other-settings', action: 'pruned' }),
    ]);
    expect(await exists(namespace, 'Deployment', 'frontend')).toBe(true);
  });

  it('refuses, with nothing applied, when an object labelled as this service\'s belongs to another service', async () => {
    await createConfigMap(
      namespace,
      'stray',
      { 'deployer.internal/service': gb.name, 'app.kubernetes.io/managed-by': 'deployer' },
      { 'deployer.internal/service': other.name },
    );
    const before = await kubeRequest('GET', path(namespace, 'Deployment', 'frontend'));

    const refused = await deploy(gb.name, gb.repo.shas[2] as string);

    expect(refused.status, JSON.stringify(refused.body)).toBe(409);
    expect(refused.body['error']).toContain(`ConfigMap "stray" in ${namespace} (owned by service ${other.name})`);
    expect(refused.body['error']).toContain('pruning never deletes another service\'s object');
    const after = await kubeRequest('GET', path(namespace, 'Deployment', 'frontend'));
    // The new commit's frontend (2 replicas) was not applied, and the stray object is still there.
    expect((after.body as { spec: { replicas: number } }).spec.replicas).toBe(3);
    expect((after.body as { metadata: { resourceVersion: string } }).metadata.resourceVersion).toBe(
      (before.body as { metadata: { resourceVersion: string } }).metadata.resourceVersion,
    );
    expect(await exists(namespace, 'ConfigMap', 'stray')).toBe(true);

    // Once the label is fixed, the deploy goes through.
    expect((await kubeRequest('DELETE', path(namespace, 'ConfigMap', 'stray'))).status).toBe(200);
    const next = await deploy(gb.name, gb.repo.shas[2] as string);
    expect(next.status, JSON.stringify(next.body)).toBe(200);
  });
});
