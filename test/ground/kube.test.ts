import { describe, expect, it } from 'vitest';
import { ground } from '../env/ground.js';
import {
  adminClient,
  createNamespace,
  createRestrictedIdentity,
  currentReplicaSet,
  kubeRequest,
  markDeploymentReady,
  setPodsWaiting,
} from '../env/kube-helpers.js';
import { readFileSync } from 'node:fs';

function deployment(namespace: string, name: string, image: string, replicas = 1): Record<string, unknown> {
  return {
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    metadata: { name, namespace, labels: { app: name } },
    spec: {
      replicas,
      selector: { matchLabels: { app: name } },
      template: { metadata: { labels: { app: name } }, spec: { containers: [{ name: 'web', image }] } },
    },
  };
}

function applyPath(namespace: string, name: string): string {
  return `/apis/apps/v1/namespaces/${namespace}/deployments/${name}?fieldManager=ground-test&force=true`;
}

describe('test ground: Kubernetes control plane', () => {
  it('writes an admin kubeconfig that points at the apiserver with its CA', () => {
    const kube = ground('kube');
    const config = JSON.parse(readFileSync(kube.adminKubeconfig, 'utf8')) as {
      clusters: Array<{ cluster: { server: string; 'certificate-authority': string } }>;
    };
    expect(config.clusters[0]?.cluster).toEqual({ server: kube.server, 'certificate-authority': kube.caFile });
  });

  it('server-side applies a Deployment; the controller manager creates its ReplicaSet', async () => {
    const namespace = await createNamespace('ground-apply');
    const body = JSON.stringify(deployment(namespace, 'web', 'registry.example/web:1.0.0'));

    const created = await kubeRequest('PATCH', applyPath(namespace, 'web'), { body, contentType: 'application/apply-patch+yaml' });
    expect(created.status).toBe(201);

    const read = await adminClient().apps.readNamespacedDeployment({ name: 'web', namespace });
    expect(read.spec?.template.spec?.containers[0]?.image).toBe('registry.example/web:1.0.0');
    expect(read.metadata?.managedFields?.map((f) => [f.manager, f.operation])).toContainEqual(['ground-test', 'Apply']);

    const rs = await currentReplicaSet(namespace, 'web');
    expect(rs.metadata?.ownerReferences?.[0]).toMatchObject({ kind: 'Deployment', name: 'web', uid: read.metadata?.uid });
    expect(rs.spec?.template?.spec?.containers[0]?.image).toBe('registry.example/web:1.0.0');

    const again = await kubeRequest('PATCH', applyPath(namespace, 'web'), { body, contentType: 'application/apply-patch+yaml' });
    expect(again.status).toBe(200);
  });

  it('marks a Deployment ready, through a rolling update to a new ReplicaSet', async () => {
    const namespace = await createNamespace('ground-ready');
    const apply = (image: string) =>
      kubeRequest('PATCH', applyPath(namespace, 'api'), {
        body: JSON.stringify(deployment(namespace, 'api', image, 2)),
        contentType: 'application/apply-patch+yaml',
      });
    expect((await apply('registry.example/api:1')).status).toBe(201);

    const first = await markDeploymentReady(namespace, 'api');
    expect(first.status).toMatchObject({ replicas: 2, readyReplicas: 2, availableReplicas: 2, updatedReplicas: 2 });

    expect((await apply('registry.example/api:2')).status).toBe(200);
    const second = await markDeploymentReady(namespace, 'api');
    expect(second.status).toMatchObject({ replicas: 2, availableReplicas: 2, updatedReplicas: 2 });
    const rs = await currentReplicaSet(namespace, 'api');
    expect(rs.spec?.template?.spec?.containers[0]?.image).toBe('registry.example/api:2');
    expect(rs.status?.readyReplicas).toBe(2);
  });

  it('puts pods in a waiting state, not ready', async () => {
    const namespace = await createNamespace('ground-waiting');
    const body = JSON.stringify(deployment(namespace, 'crashy', 'registry.example/crashy:1'));
    expect((await kubeRequest('PATCH', applyPath(namespace, 'crashy'), { body, contentType: 'application/apply-patch+yaml' })).status).toBe(201);

    const names = await setPodsWaiting(namespace, 'crashy', 'CrashLoopBackOff');

    expect(names).toHaveLength(1);
    const pod = await adminClient().core.readNamespacedPod({ name: names[0] ?? '', namespace });
    expect(pod.status?.containerStatuses?.[0]).toMatchObject({ ready: false, restartCount: 3, state: { waiting: { reason: 'CrashLoopBackOff' } } });
    const dep = await adminClient().apps.readNamespacedDeployment({ name: 'crashy', namespace });
    expect(dep.status?.availableReplicas ?? 0).toBe(0);
  });

  it('gives a restricted identity exactly its rules: 403 outside them', async () => {
    const namespace = await createNamespace('ground-rbac');
    const other = await createNamespace('ground-rbac-other');
    const kubeconfig = await createRestrictedIdentity({
      namespace,
      rules: [{ apiGroups: ['apps'], resources: ['deployments'], verbs: ['get', 'list'] }],
    });
    const config = JSON.parse(readFileSync(kubeconfig, 'utf8')) as { users: Array<{ user: { token: string } }> };
    const token = config.users[0]?.user.token ?? '';

    const allowed = await kubeRequest('GET', `/apis/apps/v1/namespaces/${namespace}/deployments`, { token });
    expect(allowed.status).toBe(200);

    const body = JSON.stringify(deployment(namespace, 'web', 'registry.example/web:1'));
    const write = await kubeRequest('PATCH', applyPath(namespace, 'web'), { body, contentType: 'application/apply-patch+yaml', token });
    expect(write.status).toBe(403);
    expect(write.body).toMatchObject({ kind: 'Status', reason: 'Forbidden', details: { kind: 'deployments', group: 'apps' } });

    const elsewhere = await kubeRequest('GET', `/apis/apps/v1/namespaces/${other}/deployments`, { token });
    expect(elsewhere.status).toBe(403);
  });

  it('refuses requests without a valid token', async () => {
    const res = await kubeRequest('GET', '/api/v1/namespaces', { token: 'not-a-token' });
    expect(res.status).toBe(401);
  });
});
