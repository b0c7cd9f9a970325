import { pino } from 'pino';
import { beforeAll, describe, expect, it } from 'vitest';
import { UpstreamError } from '../../src/errors.js';
import { Kubernetes } from '../../src/kube/kubernetes.js';
import { ground } from '../env/ground.js';
import { adminClient, createNamespace, createRestrictedIdentity } from '../env/kube-helpers.js';

const logger = pino({ level: 'silent' });

/**
 * The StatefulSet and DaemonSet reads of the rollout verdict against the ground's apiserver: the strategies as the
 * apiserver defaults them, and the names of the newest revision. The control plane alone: the controllers write the
 * status, no pod needs to run (their pods stay Pending without the node's scheduler).
 */
describe('KubeLive: StatefulSets and DaemonSets', () => {
  const live = new Kubernetes({ kubeconfig: ground('kube').adminKubeconfig, fieldManager: 'deployer-test', logger });
  let namespace: string;
  const template = (name: string) => ({
    metadata: { labels: { app: name } },
    spec: { containers: [{ name: 'app', image: `registry.example/${name}:v1` }] },
  });

  beforeAll(async () => {
    namespace = await createNamespace('kl-workloads');
    const apps = adminClient().apps;
    await apps.createNamespacedStatefulSet({
      namespace,
      body: { metadata: { name: 'db' }, spec: { serviceName: 'db', replicas: 3, selector: { matchLabels: { app: 'db' } }, template: template('db') } },
    });
    await apps.createNamespacedStatefulSet({
      namespace,
      body: {
        metadata: { name: 'cache' },
        spec: {
          serviceName: 'cache',
          selector: { matchLabels: { app: 'cache' } },
          updateStrategy: { type: 'RollingUpdate', rollingUpdate: { partition: 2 } },
          template: template('cache'),
        },
      },
    });
    await apps.createNamespacedDaemonSet({ namespace, body: { metadata: { name: 'agent' }, spec: { selector: { matchLabels: { app: 'agent' } }, template: template('agent') } } });
    await apps.createNamespacedDaemonSet({
      namespace,
      body: { metadata: { name: 'manual' }, spec: { selector: { matchLabels: { app: 'manual' } }, updateStrategy: { type: 'OnDelete' }, template: template('manual') } },
    });
  });

  it('reads a StatefulSet with the defaulted strategy (RollingUpdate, partition 0) and, once synced, its revisions', async () => {
    const read = async () => live.getStatefulSet(namespace, 'db');
    let db = await read();
    // The StatefulSet controller writes observedGeneration and the revisions a moment after the create.
    for (let i = 0; i < 100 && (db?.status.updateRevision === undefined || db.status.observedGeneration < 1); i++) {
      await new Promise((r) => setTimeout(r, 200));
      db = await read();
    }
    expect(db).toMatchObject({ namespace, name: 'db', generation: 1, selector: { app: 'db' }, desired: 3, updateStrategy: { type: 'RollingUpdate', partition: 0 } });
    expect(db?.uid).toMatch(/^[0-9a-f-]{36}$/);
    expect(db?.status.observedGeneration).toBe(1);
    expect(db?.status.updateRevision).toMatch(/^db-[0-9a-z]+$/);
    expect(await live.getStatefulSet(namespace, 'cache')).toMatchObject({ desired: 1, updateStrategy: { type: 'RollingUpdate', partition: 2 } });
    expect(await live.getStatefulSet(namespace, 'missing')).toBeUndefined();
  });

  it('reads a DaemonSet with its strategy and template generation', async () => {
    expect(await live.getDaemonSet(namespace, 'agent')).toMatchObject({
      name: 'agent',
      generation: 1,
      selector: { app: 'agent' },
      templateGeneration: '1',
      updateStrategy: { type: 'RollingUpdate' },
    });
    expect(await live.getDaemonSet(namespace, 'manual')).toMatchObject({ updateStrategy: { type: 'OnDelete' } });
    expect(await live.getDaemonSet(namespace, 'missing')).toBeUndefined();
  });

  it('names the missing RBAC rule when the deployer may not get StatefulSets', async () => {
    const kubeconfig = await createRestrictedIdentity({ namespace, rules: [{ apiGroups: ['apps'], resources: ['deployments'], verbs: ['get'] }] });
    const restricted = new Kubernetes({ kubeconfig, fieldManager: 'deployer-test', logger });
    const err = await restricted.getStatefulSet(namespace, 'db').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(UpstreamError);
    expect((err as UpstreamError).message).toBe(`Kubernetes RBAC refused the deployer: it may not get statefulsets.apps in namespace ${namespace}`);
  });
});
