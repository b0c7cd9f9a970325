import { writeFileSync } from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import { join } from 'node:path';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ManifestError, UpstreamError } from '../../src/errors.js';
import { Kubernetes } from '../../src/kube/kubernetes.js';
import { ground } from '../env/ground.js';
import { adminClient, createNamespace, createRestrictedIdentity, kubeRequest, uniqueName } from '../env/kube-helpers.js';
import { tokenKubeconfig } from '../env/kube-plane.js';
import { freePort } from '../env/processes.js';
import type { KubeObject } from '../../src/core/types.js';

const kube = ground('kube');
const logger = pino({ level: 'silent' });
const client = new Kubernetes({ kubeconfig: kube.adminKubeconfig, fieldManager: 'deployer-test', logger });

function configMap(namespace: string, name: string, data: Record<string, string>): KubeObject {
  return { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name, namespace }, data };
}

function deployment(namespace: string, name: string, image: string | undefined): KubeObject {
  const container: Record<string, unknown> = { name: 'web' };
  if (image !== undefined) container['image'] = image;
  return {
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    metadata: { name, namespace, labels: { app: name, track: 'stable' } },
    spec: {
      replicas: 1,
      selector: { matchLabels: { app: name } },
      template: { metadata: { labels: { app: name } }, spec: { containers: [container] } },
    },
  };
}

async function exists(path: string): Promise<boolean> {
  const res = await kubeRequest('GET', path);
  if (res.status !== 200 && res.status !== 404) throw new Error(`GET ${path}: ${res.status}`);
  return res.status === 200;
}

/** A kubeconfig for the ground's CA and admin token, pointing at another server. */
function kubeconfigFor(server: string): string {
  const path = join(kube.dir, `${uniqueName('elsewhere')}.kubeconfig`);
  writeFileSync(path, tokenKubeconfig({ server, caFile: kube.caFile, user: 'admin', token: kube.adminToken }));
  return path;
}

describe('KubeClient.scopeOf', () => {
  it.each([
    ['apps/v1', 'Deployment', { namespaced: true, resource: 'deployments' }],
    ['v1', 'ConfigMap', { namespaced: true, resource: 'configmaps' }],
    ['v1', 'Namespace', { namespaced: false, resource: 'namespaces' }],
    ['rbac.authorization.k8s.io/v1', 'ClusterRole', { namespaced: false, resource: 'clusterroles' }],
  ])('discovers %s %s', async (apiVersion, kind, scope) => {
    expect(await client.scopeOf(apiVersion, kind)).toEqual(scope);
  });

  it.each([
    ['apps/v1', 'Deploymnet'],
    ['example.com/v1', 'Widget'],
    ['v2', 'ConfigMap'],
    ['../../api/v1', 'Pod'],
  ])('answers undefined for an unknown kind (%s %s)', async (apiVersion, kind) => {
    expect(await client.scopeOf(apiVersion, kind)).toBeUndefined();
  });
});

describe('KubeClient.apply', () => {
  let namespace: string;
  beforeAll(async () => {
    namespace = await createNamespace('kc-apply');
  });

  it('creates, then reports unchanged, then configured', async () => {
    const objects = [configMap(namespace, 'settings', { level: 'info' }), deployment(namespace, 'web', 'registry.example/web:1')];

    const first = await client.apply(objects);
    expect(first).toEqual([
      { apiVersion: 'v1', kind: 'ConfigMap', namespace, name: 'settings', action: 'created' },
      { apiVersion: 'apps/v1', kind: 'Deployment', namespace, name: 'web', action: 'created' },
    ]);
    const live = await adminClient().apps.readNamespacedDeployment({ name: 'web', namespace });
    expect(live.spec?.template.spec?.containers[0]?.image).toBe('registry.example/web:1');
    expect(live.metadata?.managedFields?.map((f) => [f.manager, f.operation])).toContainEqual(['deployer-test', 'Apply']);

    const second = await client.apply(objects);
    expect(second.map((r) => r.action)).toEqual(['unchanged', 'unchanged']);

    const third = await client.apply([
      configMap(namespace, 'settings', { level: 'debug' }),
      deployment(namespace, 'web', 'registry.example/web:1'),
    ]);
    expect(third.map((r) => r.action)).toEqual(['configured', 'unchanged']);
    const settings = await adminClient().core.readNamespacedConfigMap({ name: 'settings', namespace });
    expect(settings.data).toEqual({ level: 'debug' });
  });

  it('an apply that changes nothing is unchanged though a controller wrote the object meanwhile', async () => {
    // The deployment controller writes a new Deployment's status and its revision annotation within moments of its
    // creation; the action was told by resourceVersion, and an apply between those writes said "configured" (CI).
    const objects = [deployment(namespace, 'busy', 'registry.example/busy:1')];
    await client.apply(objects);
    // The ownership read of a deploy, which the apply's before-image comes from.
    await client.liveAnnotations(objects, 'example.com/owner');
    const path = `/apis/apps/v1/namespaces/${namespace}/deployments/busy`;
    const controller = async (revision: string): Promise<void> => {
      const annotated = await kubeRequest('PATCH', `${path}?fieldManager=kube-controller-manager`, {
        body: JSON.stringify({ metadata: { annotations: { 'deployment.kubernetes.io/revision': revision } } }),
        contentType: 'application/merge-patch+json',
      });
      expect(annotated.status).toBe(200);
      const status = await kubeRequest('PATCH', `${path}/status?fieldManager=kube-controller-manager`, {
        body: JSON.stringify({ status: { observedGeneration: 1, unavailableReplicas: 1, replicas: 1 } }),
        contentType: 'application/merge-patch+json',
      });
      expect(status.status).toBe(200);
    };
    await controller('7');

    expect((await client.apply(objects)).map((r) => r.action)).toEqual(['unchanged']);

    // A change of the deployer's own still counts, with the controller writing in between again.
    await client.liveAnnotations(objects, 'example.com/owner');
    await controller('8');
    const changed = [deployment(namespace, 'busy', 'registry.example/busy:2')];
    expect((await client.apply(changed)).map((r) => r.action)).toEqual(['configured']);
    // So does a label the deployer no longer sets (server-side apply removes it).
    const unlabelled = deployment(namespace, 'busy', 'registry.example/busy:2');
    unlabelled.metadata.labels = { app: 'busy' };
    expect((await client.apply([unlabelled])).map((r) => r.action)).toEqual(['configured']);
    const live = await adminClient().apps.readNamespacedDeployment({ name: 'busy', namespace });
    expect(live.metadata?.labels).toEqual({ app: 'busy' });
  });

  it('takes over fields another manager set (force)', async () => {
    await client.apply([configMap(namespace, 'shared', { owner: 'deployer' })]);
    const other = await kubeRequest('PATCH', `/api/v1/namespaces/${namespace}/configmaps/shared?fieldManager=someone-else&force=true`, {
      body: JSON.stringify(configMap(namespace, 'shared', { owner: 'someone-else' })),
      contentType: 'application/apply-patch+yaml',
    });
    expect(other.status).toBe(200);

    const results = await client.apply([configMap(namespace, 'shared', { owner: 'deployer' })]);

    expect(results.map((r) => r.action)).toEqual(['configured']);
    const live = await adminClient().core.readNamespacedConfigMap({ name: 'shared', namespace });
    expect(live.data).toEqual({ owner: 'deployer' });
  });

  it('applies a cluster-scoped object, ignoring a namespace written on it', async () => {
    const name = uniqueName('kc-cluster');
    const role: KubeObject = {
      apiVersion: 'rbac.authorization.k8s.io/v1',
      kind: 'ClusterRole',
      metadata: { name, namespace },
      rules: [{ apiGroups: [''], resources: ['configmaps'], verbs: ['get'] }],
    };

    const results = await client.apply([role]);

    expect(results).toEqual([{ apiVersion: 'rbac.authorization.k8s.io/v1', kind: 'ClusterRole', namespace: undefined, name, action: 'created' }]);
    expect(await exists(`/apis/rbac.authorization.k8s.io/v1/clusterroles/${name}`)).toBe(true);
  });

  it('throws a ManifestError naming the object the apiserver refuses, after applying those before it', async () => {
    const objects = [configMap(namespace, 'before-bad', { a: '1' }), deployment(namespace, 'no-image', undefined)];

    const error = await client.apply(objects).catch((e: unknown) => e);

    expect(error).toBeInstanceOf(ManifestError);
    const manifestError = error as ManifestError;
    expect(manifestError.message).toMatch(/^the apiserver refused Deployment no-image: .*spec\.template\.spec\.containers\[0\]\.image: Required value/);
    expect(manifestError.detail).toEqual({
      failures: [{ kind: 'Deployment', namespace, name: 'no-image', reason: expect.stringContaining('Required value') as unknown }],
      applied: [{ apiVersion: 'v1', kind: 'ConfigMap', namespace, name: 'before-bad', action: 'created' }],
    });
  });

  it('refuses a namespaced object without a namespace and an unknown kind', async () => {
    const noNamespace: KubeObject = { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'floating' }, data: {} };
    const error = await client.apply([noNamespace]).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ManifestError);
    expect((error as Error).message).toBe('ConfigMap floating: ConfigMap is namespaced but has no metadata.namespace');
    const widget: KubeObject = { apiVersion: 'example.com/v1', kind: 'Widget', metadata: { name: 'w', namespace } };
    await expect(client.apply([widget])).rejects.toThrow(/^Widget w: unknown kind example.com\/v1\/Widget/);
  });
});

describe('KubeClient.dryRun', () => {
  let namespace: string;
  beforeAll(async () => {
    namespace = await createNamespace('kc-dry');
  });

  it('returns every refused object with its reason and writes nothing', async () => {
    const objects: KubeObject[] = [
      configMap(namespace, 'fine', { a: '1' }),
      deployment(namespace, 'no-image', undefined),
      deployment(namespace, 'good', 'registry.example/good:1'),
      { apiVersion: 'v1', kind: 'Service', metadata: { name: 'bad-port', namespace }, spec: { ports: [{ port: 70000, protocol: 'TCP' }] } },
      // Kubernetes 1.20's server-side apply needs the key field `protocol` (structured-merge-diff#130): a 500 there.
      { apiVersion: 'v1', kind: 'Service', metadata: { name: 'no-protocol', namespace }, spec: { ports: [{ port: 80 }] } },
      { apiVersion: 'example.com/v1', kind: 'Widget', metadata: { name: 'w', namespace } },
    ];

    const failures = await client.dryRun(objects);

    expect(failures).toEqual([
      { kind: 'Deployment', namespace, name: 'no-image', reason: expect.stringMatching(/containers\[0\]\.image: Required value/) as unknown },
      { kind: 'Service', namespace, name: 'bad-port', reason: expect.stringMatching(/spec\.ports\[0\]\.port: Invalid value: 70000/) as unknown },
      { kind: 'Service', namespace, name: 'no-protocol', reason: expect.stringMatching(/^failed to create typed patch object: .*omits key field "protocol"/) as unknown },
      { kind: 'Widget', namespace, name: 'w', reason: 'unknown kind example.com/v1/Widget: the cluster does not serve it' },
    ]);
    expect(await exists(`/api/v1/namespaces/${namespace}/configmaps/fine`)).toBe(false);
    expect(await exists(`/apis/apps/v1/namespaces/${namespace}/deployments/good`)).toBe(false);
  });

  it('returns nothing for a valid set, including objects in a namespace the set creates', async () => {
    const fresh = uniqueName('kc-dry-new');
    const objects: KubeObject[] = [
      { apiVersion: 'v1', kind: 'Namespace', metadata: { name: fresh } },
      configMap(fresh, 'inside', { a: '1' }),
      deployment(namespace, 'good', 'registry.example/good:1'),
    ];

    expect(await client.dryRun(objects)).toEqual([]);
    expect(await exists(`/api/v1/namespaces/${fresh}`)).toBe(false);
  });

  it('reports a namespace that does not exist', async () => {
    const failures = await client.dryRun([configMap('kc-no-such-namespace', 'x', {})]);
    expect(failures).toEqual([
      { kind: 'ConfigMap', namespace: 'kc-no-such-namespace', name: 'x', reason: 'namespaces "kc-no-such-namespace" not found' },
    ]);
  });
});

describe('KubeClient deployments', () => {
  let namespace: string;
  beforeAll(async () => {
    namespace = await createNamespace('kc-deploys');
  });

  it('lists deployments, by label selector', async () => {
    const canary = deployment(namespace, 'web-canary', 'registry.example/web:2');
    canary.metadata.labels = { app: 'web', track: 'canary' };
    await client.apply([deployment(namespace, 'web', 'registry.example/web:1'), canary]);

    const all = await client.listDeployments(namespace, '');
    const canaries = await client.listDeployments(namespace, 'track=canary');

    expect(all.map((d) => d.name).sort()).toEqual(['web', 'web-canary']);
    expect(all.every((d) => d.namespace === namespace)).toBe(true);
    expect(canaries.map((d) => [d.name, d.labels])).toEqual([['web-canary', { app: 'web', track: 'canary' }]]);
    expect(canaries[0]?.images).toEqual(['registry.example/web:2']);
  });

  it('deletes deployments; one that does not exist is skipped', async () => {
    await client.apply([deployment(namespace, 'doomed', 'registry.example/doomed:1')]);

    const results = await client.deleteDeployments(namespace, ['doomed', 'never-existed']);

    expect(results).toEqual([{ apiVersion: 'apps/v1', kind: 'Deployment', namespace, name: 'doomed', action: 'deleted' }]);
    const names = (await client.listDeployments(namespace, '')).map((d) => d.name);
    expect(names).not.toContain('doomed');
    expect(await client.deleteDeployments(namespace, ['doomed'])).toEqual([]);
  });
});

describe('KubeClient failures', () => {
  let silent: Server;
  const sockets: Socket[] = [];
  beforeAll(async () => {
    silent = createServer((s) => sockets.push(s));
    await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
  });
  afterAll(async () => {
    for (const s of sockets) s.destroy();
    await new Promise((resolve) => silent.close(resolve));
  });

  it('gives a 503 UpstreamError when the apiserver is unreachable', async () => {
    const port = await freePort();
    const down = new Kubernetes({ kubeconfig: kubeconfigFor(`https://127.0.0.1:${port}`), fieldManager: 'deployer-test', logger });

    const error = await down.apply([configMap('default', 'x', {})]).catch((e: unknown) => e);

    expect(error).toBeInstanceOf(UpstreamError);
    expect(error).toMatchObject({ system: 'kubernetes', status: 503 });
    expect((error as Error).message).toBe(`the Kubernetes apiserver at https://127.0.0.1:${port} is unreachable (ECONNREFUSED) during GET /api/v1`);
  });

  it('gives a 503 UpstreamError when the apiserver does not answer in time', async () => {
    const address = silent.address();
    const port = typeof address === 'object' && address !== null ? address.port : 0;
    const slow = new Kubernetes({ kubeconfig: kubeconfigFor(`https://127.0.0.1:${port}`), fieldManager: 'deployer-test', logger, timeoutMs: 300 });

    const error = await slow.listDeployments('default', '').catch((e: unknown) => e);

    expect(error).toBeInstanceOf(UpstreamError);
    expect(error).toMatchObject({ system: 'kubernetes', status: 503 });
    expect((error as Error).message).toMatch(/is unreachable \(ETIMEDOUT\) during GET \/apis\/apps\/v1\/namespaces\/default\/deployments$/);
  });

  it('gives a 502 UpstreamError when the credentials are rejected', async () => {
    const path = join(kube.dir, `${uniqueName('bad-token')}.kubeconfig`);
    writeFileSync(path, tokenKubeconfig({ server: kube.server, caFile: kube.caFile, user: 'nobody', token: 'wrong' }));
    const stranger = new Kubernetes({ kubeconfig: path, fieldManager: 'deployer-test', logger });

    await expect(stranger.listDeployments('default', '')).rejects.toThrow(
      new UpstreamError('kubernetes', "the Kubernetes apiserver rejected the deployer's credentials (401)"),
    );
  });

  it('throws at construction when the kubeconfig file cannot be read', () => {
    expect(() => new Kubernetes({ kubeconfig: join(kube.dir, 'missing.kubeconfig'), fieldManager: 'x', logger })).toThrow(
      /^cannot read the kubeconfig .*missing\.kubeconfig: /,
    );
  });
});

describe('KubeClient with a restricted identity', () => {
  let namespace: string;
  let restricted: Kubernetes;
  beforeAll(async () => {
    namespace = await createNamespace('kc-rbac');
    const kubeconfig = await createRestrictedIdentity({
      namespace,
      rules: [
        { apiGroups: [''], resources: ['configmaps'], verbs: ['get', 'patch', 'create'] },
        { apiGroups: ['apps'], resources: ['deployments'], verbs: ['get', 'list'] },
        { apiGroups: [''], resources: ['secrets'], verbs: ['get', 'patch'] },
      ],
    });
    restricted = new Kubernetes({ kubeconfig, fieldManager: 'deployer-test', logger });
  });

  it('applies what its rules allow', async () => {
    expect(await restricted.apply([configMap(namespace, 'allowed', { a: '1' })])).toEqual([
      { apiVersion: 'v1', kind: 'ConfigMap', namespace, name: 'allowed', action: 'created' },
    ]);
  });

  it('gives a clear 403 UpstreamError naming the verb and resource RBAC refused', async () => {
    const error = await restricted.apply([deployment(namespace, 'web', 'registry.example/web:1')]).catch((e: unknown) => e);

    expect(error).toBeInstanceOf(UpstreamError);
    expect(error).toMatchObject({
      system: 'kubernetes',
      status: 502,
      message: `Kubernetes RBAC refused the deployer: it may not patch deployments.apps in namespace ${namespace}`,
      detail: { verb: 'patch', resource: 'deployments', group: 'apps', namespace },
    });
    expect(await exists(`/apis/apps/v1/namespaces/${namespace}/deployments/web`)).toBe(false);
  });

  it('names the missing create right when apply would create an object', async () => {
    const secret: KubeObject = { apiVersion: 'v1', kind: 'Secret', metadata: { name: 'new-secret', namespace }, stringData: { a: '1' } };

    const error = await restricted.apply([secret]).catch((e: unknown) => e);

    expect(error).toBeInstanceOf(UpstreamError);
    expect(error).toMatchObject({
      status: 502,
      message: `Kubernetes RBAC refused the deployer: it may not create secrets in namespace ${namespace}`,
      detail: { verb: 'create', resource: 'secrets', group: '', namespace },
    });
  });

  it('throws the refusal from dry-run too, instead of blaming the manifests', async () => {
    await expect(restricted.dryRun([deployment(namespace, 'web', 'registry.example/web:1')])).rejects.toThrow(
      `Kubernetes RBAC refused the deployer: it may not patch deployments.apps in namespace ${namespace}`,
    );
  });

  it('names the namespace it may not read, and the delete it may not do', async () => {
    await expect(restricted.listDeployments('default', '')).rejects.toThrow(
      'Kubernetes RBAC refused the deployer: it may not list deployments.apps in namespace default',
    );
    await expect(restricted.deleteDeployments(namespace, ['web'])).rejects.toThrow(
      `Kubernetes RBAC refused the deployer: it may not delete deployments.apps in namespace ${namespace}`,
    );
  });
});
