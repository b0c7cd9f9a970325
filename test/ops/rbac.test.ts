import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseConfig, type Config } from '../../src/config/load.js';
import { wire } from '../../src/wire.js';
import type { DeployRequest } from '../../src/deploy/types.js';
import { UpstreamError } from '../../src/errors.js';
import { Kubernetes } from '../../src/kube/kubernetes.js';
import { createRepo } from '../env/git-fixtures.js';
import { ground } from '../env/ground.js';
import { adminClient, createNamespace, kubeRequest, uniqueName } from '../env/kube-helpers.js';
import { serviceManifests } from '../env/manifests.js';
import { pushImage } from '../env/registry-helpers.js';
import { applyAsAdmin, find, manifestsIn, rbacObjects, serviceAccountKubeconfig, short, silentLogger } from './helpers.js';

/**
 * kubernetes/rbac/ applied to the test control plane, then the real engine authenticated as the deployer's
 * ServiceAccount (its token, as a pod would have it): the Role is enough for a deploy, a canary and the canary's
 * removal in the target namespace, and too little for anything else.
 */
describe("the deployer's RBAC (kubernetes/rbac)", () => {
  const work = mkdtempSync(join(tmpdir(), 'ops-rbac-'));
  afterAll(() => rmSync(work, { recursive: true, force: true }));

  let own: string;
  let target: string;
  let other: string;
  let token: string;
  let config: Config;
  let image: string;
  let shas: string[];
  const digests: string[] = [];
  const account = find(manifestsIn('rbac'), 'ServiceAccount').metadata.name;

  beforeAll(async () => {
    own = uniqueName('deployer');
    target = uniqueName('apps');
    other = await createNamespace('other');
    await applyAsAdmin(rbacObjects(own, target));
    const identity = await serviceAccountKubeconfig(own, account);
    token = identity.token;

    const git = ground('git');
    const registry = ground('registry').anonymous;
    const name = uniqueName('hello');
    image = `${registry}/ops/${name}`;
    const repo = await createRepo(git.root, name, [
      { files: serviceManifests({ name: 'hello', image, replicas: 2, value: 'one' }) },
      { files: serviceManifests({ name: 'hello', image, replicas: 2, value: 'two' }) },
      // A service that ships a Secret: a kind the Role does not open.
      { files: { 'kubernetes/secret.yaml': 'apiVersion: v1\nkind: Secret\nmetadata:\n  name: hello-secret\nstringData:\n  k: v\n' } },
    ]);
    shas = repo.shas;
    for (const sha of shas) digests.push((await pushImage({ host: registry, repository: `ops/${name}`, tag: `main-${short(sha)}` })).digest);
    const repository = { url: `${git.baseUrl}${repo.urlPath}`, credentials: { username: git.username, password: { value: git.password } } };
    config = parseConfig(
      {
        tokens: { ci: { secret: { value: 'ci-secret' } } },
        services: {
          hello: { repository, namespace: target },
          // The same repository aimed at a namespace without a Role for the deployer.
          elsewhere: { repository, namespace: other },
        },
        registries: { [registry]: { insecure: true } },
        cache: { dir: join(work, 'cache') },
        // As the shipped ConfigMap: the deploy locks in the deployer's own namespace.
        kubernetes: { kubeconfig: identity.kubeconfig, leaseNamespace: own },
        versions: { registryWaitSeconds: 0 },
      },
      {},
    );
  });

  const request = (service: string, kind: DeployRequest['kind'], commit: string): DeployRequest => ({
    service: config.services[service] as DeployRequest['service'],
    kind,
    commit,
    caller: { token: 'ci', userAgent: 'depctl/1' },
    requestId: uniqueName('req'),
  });

  const asDeployer = (method: string, path: string, body?: unknown) =>
    kubeRequest(method, path, { token, ...(body === undefined ? {} : { body: JSON.stringify(body) }) });

  it('is enough for a deploy, a canary, and the next deploy that deletes the canary', async () => {
    const engine = wire({ config, logger: silentLogger(), version: 't' }).deployer;
    const { apps, core } = adminClient();
    const [c1, c2] = shas as [string, string];

    const first = await engine.deploy(request('hello', 'deploy', c1));
    expect(first.objects.map((o) => `${o.kind}:${o.action}`).sort()).toEqual(['ConfigMap:created', 'Deployment:created', 'Service:created']);
    const canary = await engine.deploy(request('hello', 'canary', c2));
    expect(canary.objects).toEqual([expect.objectContaining({ kind: 'Deployment', name: 'hello-canary', action: 'created' })]);
    const second = await engine.deploy(request('hello', 'deploy', c2));
    expect(second.objects.map((o) => `${o.kind}:${o.action}`).sort()).toEqual([
      'ConfigMap:configured',
      'Deployment:configured',
      'Deployment:deleted',
      'Service:unchanged',
    ]);

    const deployment = await apps.readNamespacedDeployment({ name: 'hello', namespace: target });
    expect(deployment.spec?.template.spec?.containers[0]?.image).toBe(`${image}:main-${short(c2)}@${digests[1]}`);
    expect((await core.readNamespacedConfigMap({ name: 'hello-config', namespace: target })).data).toEqual({ value: 'two' });
    await expect(apps.readNamespacedDeployment({ name: 'hello-canary', namespace: target })).rejects.toThrow();
  });

  it('does not open kinds the services do not ship: a Secret in the manifests fails the dry-run with 502, nothing applied', async () => {
    const engine = wire({ config, logger: silentLogger(), version: 't' }).deployer;
    const before = await adminClient().apps.readNamespacedDeployment({ name: 'hello', namespace: target });
    const err = await engine.deploy(request('hello', 'deploy', shas[2] ?? '')).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(UpstreamError);
    expect((err as UpstreamError).message).toMatch(new RegExp(`may not (get|patch|create) secrets in namespace ${target}`));
    const after = await adminClient().apps.readNamespacedDeployment({ name: 'hello', namespace: target });
    // generation moves only with the spec (the controller manager may still be writing the status).
    expect(after.metadata?.generation).toBe(before.metadata?.generation);
    expect(after.spec?.template).toEqual(before.spec?.template);
  });

  it('does not reach namespaces without its Role: a deploy there is refused by RBAC', async () => {
    const engine = wire({ config, logger: silentLogger(), version: 't' }).deployer;
    const err = await engine.deploy(request('elsewhere', 'deploy', shas[0] ?? '')).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(UpstreamError);
    expect((err as UpstreamError).message).toMatch(new RegExp(`may not (get|patch|create) (deployments\\.apps|services|configmaps) in namespace ${other}`));
    await expect(adminClient().apps.readNamespacedDeployment({ name: 'hello', namespace: other })).rejects.toThrow();
  });

  it.each([
    ['reading Secrets of another namespace', 'GET', () => `/api/v1/namespaces/${other}/secrets`],
    ['reading Secrets of its target namespace', 'GET', () => `/api/v1/namespaces/${target}/secrets`],
    ['reading Secrets of its own namespace', 'GET', () => `/api/v1/namespaces/${own}/secrets`],
    ['listing pods of another namespace', 'GET', () => `/api/v1/namespaces/${other}/pods`],
    ['reading a pod log in its target namespace', 'GET', () => `/api/v1/namespaces/${target}/pods/any/log`],
    ['listing namespaces', 'GET', () => '/api/v1/namespaces'],
    ['listing nodes', 'GET', () => '/api/v1/nodes'],
  ])('is too little for %s (403)', async (_what, method, path) => {
    const res = await asDeployer(method, path());
    expect(res.status).toBe(403);
  });

  it('is enough for the live reads (state, rollout verdict) in its target namespace, and only there', async () => {
    const live = new Kubernetes({ kubeconfig: config.kubernetes.kubeconfig, fieldManager: 'deployer-test', logger: silentLogger() });
    const deployment = await live.getDeployment(target, 'hello');
    expect(deployment?.name).toBe('hello');
    expect((await live.listDeployments(target, 'app=hello')).map((d) => d.name)).toEqual(['hello']);
    expect((await live.listReplicaSets(target, 'app=hello')).length).toBeGreaterThan(0);
    expect(Array.isArray(await live.listPods(target, 'app=hello'))).toBe(true);
    await expect(live.listPods(other, 'app=hello')).rejects.toBeInstanceOf(UpstreamError);
    await expect(live.listReplicaSets(other, 'app=hello')).rejects.toBeInstanceOf(UpstreamError);
  });

  it('is too little to create a pod or exec into one, even in its target namespace (403)', async () => {
    const pod = { apiVersion: 'v1', kind: 'Pod', metadata: { name: 'sneaky' }, spec: { containers: [{ name: 'c', image: 'busybox' }] } };
    expect((await asDeployer('POST', `/api/v1/namespaces/${target}/pods`, pod)).status).toBe(403);
    expect((await asDeployer('POST', `/api/v1/namespaces/${target}/pods/any/exec?command=sh`)).status).toBe(403);
  });

  it('is too little to create a ClusterRoleBinding (403), which stays absent', async () => {
    const name = uniqueName('takeover');
    const res = await asDeployer('POST', '/apis/rbac.authorization.k8s.io/v1/clusterrolebindings', {
      apiVersion: 'rbac.authorization.k8s.io/v1',
      kind: 'ClusterRoleBinding',
      metadata: { name },
      roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: 'cluster-admin' },
      subjects: [{ kind: 'ServiceAccount', name: account, namespace: own }],
    });
    expect(res.status).toBe(403);
    await expect(adminClient().rbac.readClusterRoleBinding({ name })).rejects.toThrow();
  });

  it('is too little to widen its own Role or bind another one (403)', async () => {
    const patch = await kubeRequest('PATCH', `/apis/rbac.authorization.k8s.io/v1/namespaces/${target}/roles/deployer`, {
      token,
      contentType: 'application/merge-patch+json',
      body: JSON.stringify({ rules: [{ apiGroups: ['*'], resources: ['*'], verbs: ['*'] }] }),
    });
    expect(patch.status).toBe(403);
    const bind = await asDeployer('POST', `/apis/rbac.authorization.k8s.io/v1/namespaces/${target}/rolebindings`, {
      apiVersion: 'rbac.authorization.k8s.io/v1',
      kind: 'RoleBinding',
      metadata: { name: 'admin-for-me' },
      roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: 'admin' },
      subjects: [{ kind: 'ServiceAccount', name: account, namespace: own }],
    });
    expect(bind.status).toBe(403);
  });

  it('may get, create and update Leases (locks) in its own namespace only, and not delete them', async () => {
    const leases = `/apis/coordination.k8s.io/v1/namespaces/${own}/leases`;
    const lease = { apiVersion: 'coordination.k8s.io/v1', kind: 'Lease', metadata: { name: 'lock-hello' }, spec: { holderIdentity: 'pod-a', leaseDurationSeconds: 30 } };
    expect((await asDeployer('POST', leases, lease)).status).toBe(201);
    const read = await asDeployer('GET', `${leases}/lock-hello`);
    expect(read.status).toBe(200);
    const current = read.body as { metadata: Record<string, unknown> };
    const update = await asDeployer('PUT', `${leases}/lock-hello`, { ...lease, metadata: current.metadata, spec: { ...lease.spec, holderIdentity: 'pod-b' } });
    expect(update.status).toBe(200);
    expect((await asDeployer('DELETE', `${leases}/lock-hello`)).status).toBe(403);
    expect((await asDeployer('GET', `${leases}`)).status).toBe(403);
    expect((await asDeployer('POST', `/apis/coordination.k8s.io/v1/namespaces/${target}/leases`, lease)).status).toBe(403);
  });
});
