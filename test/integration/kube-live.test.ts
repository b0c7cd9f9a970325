import { pino } from 'pino';
import { beforeAll, describe, expect, it } from 'vitest';
import { UpstreamError } from '../../src/errors.js';
import { microTime } from '../../src/kube/leases.js';
import { Kubernetes } from '../../src/kube/kubernetes.js';
import { ground } from '../env/ground.js';
import { adminClient, createNamespace, createRestrictedIdentity, kubeRequest, markDeploymentReady, setPodsWaiting } from '../env/kube-helpers.js';

const logger = pino({ level: 'silent' });

describe('KubeLeases', () => {
  const leases = new Kubernetes({ kubeconfig: ground('kube').adminKubeconfig, fieldManager: 'deployer-test', logger }).leases;
  let namespace: string;
  beforeAll(async () => {
    namespace = await createNamespace('kl-lease');
  });

  it('creates, reads and updates a lease with optimistic concurrency; times keep their microseconds', async () => {
    const renewTime = new Date('2024-05-06T07:08:09.123Z');
    const spec = { holder: 'pod-a', durationSeconds: 15, acquireTime: renewTime, renewTime, transitions: 0 };
    const created = await leases.create(namespace, 'lock', spec);
    expect(created).toMatchObject({ namespace, name: 'lock', holder: 'pod-a', durationSeconds: 15, transitions: 0 });
    if (created === 'conflict') throw new Error('unexpected conflict');
    expect(created.renewTime?.toISOString()).toBe(renewTime.toISOString());

    expect(await leases.create(namespace, 'lock', spec)).toBe('conflict');
    expect(await leases.get(namespace, 'lock')).toEqual(created);

    const updated = await leases.update(created, { ...spec, holder: undefined, transitions: 1 });
    if (updated === 'conflict') throw new Error('unexpected conflict');
    expect(updated).toMatchObject({ holder: undefined, transitions: 1 });
    // The version read before the update is stale now.
    expect(await leases.update(created, { ...spec, holder: 'pod-b' })).toBe('conflict');
    expect((await leases.get(namespace, 'lock'))?.holder).toBeUndefined();
    expect(await leases.get(namespace, 'missing')).toBeUndefined();
  });

  it('an update of a lease deleted since it was read writes it again (the apiserver creates a Lease on PUT)', async () => {
    const at = new Date('2024-05-06T07:08:09.123Z');
    const spec = { holder: undefined, durationSeconds: 15, acquireTime: undefined, renewTime: at, transitions: 3 };
    const created = await leases.create(namespace, 'gone', spec);
    if (created === 'conflict') throw new Error('unexpected conflict');
    expect((await kubeRequest('DELETE', `/apis/coordination.k8s.io/v1/namespaces/${namespace}/leases/gone`)).status).toBe(200);

    const updated = await leases.update(created, { ...spec, holder: 'pod-a', acquireTime: at });

    expect(updated).toMatchObject({ namespace, name: 'gone', holder: 'pod-a', transitions: 3 });
    expect((await leases.get(namespace, 'gone'))?.holder).toBe('pod-a');
  });

  it('writes MicroTime with six fractional digits, as the apiserver requires', () => {
    expect(microTime(new Date('2024-05-06T07:08:09.123Z'))).toBe('2024-05-06T07:08:09.123000Z');
  });

  it('names the missing RBAC rule when the deployer may not use leases', async () => {
    const kubeconfig = await createRestrictedIdentity({
      namespace,
      rules: [{ apiGroups: ['coordination.k8s.io'], resources: ['leases'], verbs: ['get'] }],
    });
    const restricted = new Kubernetes({ kubeconfig, fieldManager: 'deployer-test', logger }).leases;
    const err = await restricted
      .create(namespace, 'denied', { holder: 'x', durationSeconds: 15, acquireTime: undefined, renewTime: undefined, transitions: 0 })
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(UpstreamError);
    expect((err as UpstreamError).message).toBe(
      `Kubernetes RBAC refused the deployer: it may not create leases.coordination.k8s.io in namespace ${namespace}`,
    );
  });
});

describe('KubeLive', () => {
  const live = new Kubernetes({ kubeconfig: ground('kube').adminKubeconfig, fieldManager: 'deployer-test', logger });
  let namespace: string;
  beforeAll(async () => {
    namespace = await createNamespace('kl-live');
    const { apps } = adminClient();
    for (const [name, service] of [['web', 'shop'], ['other', 'elsewhere']] as const) {
      await apps.createNamespacedDeployment({
        namespace,
        body: {
          metadata: { name, labels: { app: name, 'deployer.io/service': service }, annotations: { 'deployer.io/tag': 'v1' } },
          spec: {
            replicas: 2,
            selector: { matchLabels: { app: name } },
            template: {
              metadata: { labels: { app: name } },
              spec: { initContainers: [{ name: 'init', image: 'busybox:1' }], containers: [{ name: 'app', image: `registry.example/${name}:v1` }] },
            },
          },
        },
      });
    }
  });

  it('reads a Deployment with its images and status; undefined for a missing one', async () => {
    const status = await markDeploymentReady(namespace, 'web');
    const d = await live.getDeployment(namespace, 'web');
    expect(d).toMatchObject({
      namespace,
      name: 'web',
      uid: status.metadata?.uid,
      labels: { app: 'web', 'deployer.io/service': 'shop' },
      annotations: expect.objectContaining({ 'deployer.io/tag': 'v1' }) as unknown,
      selector: { app: 'web' },
      images: ['busybox:1', 'registry.example/web:v1'],
      replicas: { desired: 2, total: 2, updated: 2, ready: 2, available: 2 },
    });
    expect(await live.getDeployment(namespace, 'missing')).toBeUndefined();
  });

  it('lists by label selector, and the replica sets and pods of a rollout with their waiting reasons', async () => {
    expect((await live.listDeployments(namespace, 'deployer.io/service=shop')).map((d) => d.name)).toEqual(['web']);
    await setPodsWaiting(namespace, 'other', 'ErrImagePull');
    const other = await live.getDeployment(namespace, 'other');
    const sets = await live.listReplicaSets(namespace, 'app=other');
    expect(sets).toHaveLength(1);
    expect(sets[0]?.ownerUids).toEqual([other?.uid]);
    const hash = sets[0]?.labels['pod-template-hash'] ?? '';
    const pods = await live.listPods(namespace, `pod-template-hash=${hash}`);
    expect(pods).toHaveLength(2);
    for (const pod of pods) {
      expect(pod.ownerUids).toEqual([sets[0]?.uid]);
      expect(pod.containers).toContainEqual(expect.objectContaining({ name: 'app', ready: false, waiting: 'ErrImagePull' }));
    }
  });
});
