import type { V1Deployment } from '@kubernetes/client-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ground } from '../env/ground.js';
import { adminClient, createNamespace, kubeRequest } from '../env/kube-helpers.js';
import { configMapYaml, deploymentYaml } from '../env/manifests.js';
import { pushImage } from '../env/registry-helpers.js';
import { sampleValue } from '../ops/prometheus.js';
import { send } from './flows-setup.js';
import { basic, serviceRepo, startDeployer, type RunningDeployer } from './setup.js';

/**
 * Objects deployed by the previous release, whose keys lived under `deployer.io/`, keep working: the deployer reads
 * them (state, previous version, canary, ownership) and writes its own keys, `deployer.internal/` by default, over
 * them; server-side apply with the same field manager drops the old ones.
 */
const SECRET = 'ops-secret-1e9acy';
const AS = basic('ops', SECRET);
const short = (sha: string): string => sha.slice(0, 7);

interface View {
  stable?: { version?: { tag: string; commit: string; deployedBy?: string } };
  canary?: { name: string; version?: { tag: string } };
  previous?: { tag: string; commit: string };
}

describe('objects written under the previous release keys (deployer.io/...)', () => {
  let deployer: RunningDeployer;
  let namespace: string;
  let image: string;
  let svc: Awaited<ReturnType<typeof serviceRepo>>;
  let shas: string[] = [];
  const digests: Record<string, string> = {};

  /** A Deployment as the previous release's rewrite left it, applied with its field manager. */
  async function applyAsPreviousRelease(name: string, sha: string, track: 'stable' | 'canary', owner: string): Promise<void> {
    const tag = `main-${short(sha)}`;
    const version = { 'deployer.io/tag': tag, 'deployer.io/commit': sha, 'deployer.io/track': track };
    const labels = { app: 'shop', track, tag, 'deployer.io/service': owner, ...(track === 'canary' ? { 'deployer.io/canary-of': 'shop' } : {}) };
    const body = {
      apiVersion: 'apps/v1',
      kind: 'Deployment',
      metadata: {
        name,
        namespace,
        labels,
        annotations: {
          ...version,
          'deployer.io/service': owner,
          'deployer.io/caller': 'old-ci',
          'deployer.io/request-id': 'old-req',
          'deployer.io/deployed-at': '2026-01-02T03:04:05.000Z',
        },
      },
      spec: {
        replicas: track === 'canary' ? 1 : 2,
        selector: { matchLabels: { app: 'shop', ...(track === 'canary' ? { track: 'canary' } : {}) } },
        template: {
          metadata: { labels: { app: 'shop', track, tag }, annotations: version },
          spec: {
            containers: [
              {
                name: 'app',
                image: `${image}:${tag}@${digests[sha]}`,
                env: [
                  { name: 'TRACK', value: track },
                  { name: 'VERSION', value: tag },
                  { name: 'COMMIT', value: sha },
                ],
              },
            ],
          },
        },
      },
    };
    const path = `/apis/apps/v1/namespaces/${namespace}/deployments/${name}?fieldManager=deployer&force=true`;
    const res = await kubeRequest('PATCH', path, { body: JSON.stringify(body), contentType: 'application/apply-patch+yaml' });
    expect(res.status, JSON.stringify(res.body)).toBeLessThan(300);
  }

  const read = async (name: string): Promise<V1Deployment | undefined> => {
    try {
      return await adminClient().apps.readNamespacedDeployment({ name, namespace });
    } catch {
      return undefined;
    }
  };
  const keysOf = (d: V1Deployment | undefined): string[] =>
    [...Object.keys(d?.metadata?.labels ?? {}), ...Object.keys(d?.metadata?.annotations ?? {})].sort();
  const state = async (): Promise<View | undefined> => {
    const answer = await send(`${deployer.url}/${svc.name}`, { method: 'GET', auth: AS });
    expect(answer.status, JSON.stringify(answer.body)).toBe(200);
    return (answer.body['deployments'] as View[])[0];
  };

  beforeAll(async () => {
    const registry = ground('registry').anonymous;
    namespace = await createNamespace('legacy');
    const repository = `team/legacy-${Date.now().toString(36)}`;
    image = `${registry}/${repository}`;
    svc = await serviceRepo('shop', [
      { files: { 'kubernetes/deployment.yaml': deploymentYaml({ name: 'shop', image, replicas: 2, port: false }), 'kubernetes/config.yaml': configMapYaml('shop-config', { value: 'one' }) } },
      { files: { 'kubernetes/config.yaml': configMapYaml('shop-config', { value: 'two' }) } },
    ]);
    shas = svc.repo.shas;
    for (const sha of shas) digests[sha] = (await pushImage({ host: registry, repository, tag: `main-${short(sha)}` })).digest;
    deployer = await startDeployer({
      tokens: { ops: { secret: { value: SECRET } } },
      services: { [svc.name]: { repository: svc.repository, namespace } },
      versions: { registryWaitSeconds: 0 },
    });
  });

  afterAll(async () => {
    await deployer?.close();
  });

  it('GET /:service reads the version the previous release wrote', async () => {
    const [c1] = shas as [string];
    await applyAsPreviousRelease('shop', c1, 'stable', svc.name);
    expect((await state())?.stable?.version).toMatchObject({ tag: `main-${short(c1)}`, commit: c1, deployedBy: 'old-ci' });
  });

  it('a deploy records the old version as previous, under the new keys, and drops the old keys', async () => {
    const [c1, c2] = shas as [string, string];
    const answer = await send(`${deployer.url}/${svc.name}/deploy`, { auth: AS, json: { commit: c2 } });
    expect(answer.status, JSON.stringify(answer.body)).toBe(200);

    const live = await read('shop');
    expect(live?.metadata?.annotations).toMatchObject({
      'deployer.internal/tag': `main-${short(c2)}`,
      'deployer.internal/service': svc.name,
      'deployer.internal/previous-tag': `main-${short(c1)}`,
      'deployer.internal/previous-commit': c1,
      'deployer.internal/previous-caller': 'old-ci',
    });
    expect(live?.metadata?.labels).toMatchObject({
      'deployer.internal/service': svc.name,
      'app.kubernetes.io/managed-by': 'deployer',
      'app.kubernetes.io/version': `main-${short(c2)}`,
      track: 'stable',
    });
    expect(live?.spec?.template.metadata?.labels).toMatchObject({ 'app.kubernetes.io/version': `main-${short(c2)}`, track: 'stable' });
    expect(keysOf(live).filter((k) => k.startsWith('deployer.io/'))).toEqual([]);
    expect((await state())?.previous).toMatchObject({ tag: `main-${short(c1)}`, commit: c1 });
  });

  it('rollback to=previous deploys the version the previous release had deployed', async () => {
    const [c1] = shas as [string];
    const answer = await send(`${deployer.url}/${svc.name}/rollback`, { auth: AS, json: { to: 'previous' } });
    expect(answer.status, JSON.stringify(answer.body)).toBe(200);
    expect(answer.body).toMatchObject({ outcome: 'rolled-back', tag: `main-${short(c1)}`, commit: c1 });
    expect((await read('shop'))?.spec?.template.spec?.containers[0]?.image).toBe(`${image}:main-${short(c1)}@${digests[c1]}`);

    // The DORA figures: the deploy's lead time from its commit, the rollback's time to restore (reported just after
    // the answer).
    await deployer.settled();
    const metrics = await (await fetch(`${deployer.url}/metrics`)).text();
    expect(sampleValue(metrics, 'deployer_lead_time_seconds_count', { deployer_service: svc.name, kind: 'deploy' })).toBe(1);
    expect(sampleValue(metrics, 'deployer_time_to_restore_seconds_count', { deployer_service: svc.name })).toBe(1);
  });

  it('promote deploys a canary the previous release started, and removes it', async () => {
    const [, c2] = shas as [string, string];
    await applyAsPreviousRelease('shop-canary', c2, 'canary', svc.name);
    expect((await state())?.canary).toMatchObject({ name: 'shop-canary', version: { tag: `main-${short(c2)}` } });

    const answer = await send(`${deployer.url}/${svc.name}/promote`, { auth: AS });
    expect(answer.status, JSON.stringify(answer.body)).toBe(200);
    expect(answer.body).toMatchObject({ outcome: 'promoted', tag: `main-${short(c2)}`, canary: { tag: `main-${short(c2)}` } });
    expect(answer.body['objects']).toContainEqual(expect.objectContaining({ kind: 'Deployment', name: 'shop-canary', action: 'deleted' }));
    expect(await read('shop-canary')).toBeUndefined();
    expect((await read('shop'))?.metadata?.annotations?.['deployer.internal/tag']).toBe(`main-${short(c2)}`);
  });

  it('an object another service owns under the old key is still refused', async () => {
    const [c1] = shas as [string];
    await applyAsPreviousRelease('shop-canary', c1, 'canary', 'someone-else');
    const answer = await send(`${deployer.url}/${svc.name}/canary`, { auth: AS, json: { commit: c1 } });
    expect(answer.status, JSON.stringify(answer.body)).toBe(409);
    expect(String(answer.body['error'])).toContain('belongs to service someone-else');
  });
});
