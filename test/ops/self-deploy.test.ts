import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { parseConfig } from '../../src/config/load.js';
import { wire } from '../../src/wire.js';
import { createRepo } from '../env/git-fixtures.js';
import { ground } from '../env/ground.js';
import { adminClient, currentReplicaSet, markDeploymentReady, uniqueName } from '../env/kube-helpers.js';
import { pushImage } from '../env/registry-helpers.js';
import { applyAsAdmin, basic, filesBelow, KUBERNETES_DIR, rbacObjects, ROOT, serviceAccountKubeconfig, short, shippedConfig, silentLogger } from './helpers.js';

const SHIPPED_IMAGE = 'registry.example.com/deployer';

/**
 * The deployer deploys its own repository's kubernetes/app, as its own ServiceAccount (kubernetes/rbac applied by an
 * administrator first): the repository's kubernetes/ copied into a git fixture, CI's tag `main-<sha7>` pushed, a
 * deploy request over HTTP, and the Deployment that results runs that tag pinned to its digest.
 */
describe('self-deploy: the deployer deploys kubernetes/ of its own repository', () => {
  const work = mkdtempSync(join(tmpdir(), 'ops-self-'));
  afterAll(() => rmSync(work, { recursive: true, force: true }));

  it('applies kubernetes/app with its own rights, and the Deployment runs main-<sha7>@digest', async () => {
    const git = ground('git');
    const registry = ground('registry').anonymous;
    const own = uniqueName('deployer');
    const target = uniqueName('apps');
    await applyAsAdmin(rbacObjects(own, target));
    const identity = await serviceAccountKubeconfig(own, 'deployer');

    // The repository's own files, with two changes for the test ground: the image lives in the anonymous test
    // registry, and the ground's Kubernetes 1.20 serves PodDisruptionBudget as policy/v1beta1 only (policy/v1 came
    // with 1.21; current clusters serve only policy/v1).
    const repository = `ops/${uniqueName('deployer')}`;
    const files: Record<string, string> = {};
    for (const path of filesBelow(KUBERNETES_DIR)) {
      let text = readFileSync(join(ROOT, path), 'utf8');
      text = text.replaceAll(`image: ${SHIPPED_IMAGE}\n`, `image: ${registry}/${repository}\n`);
      if (path.endsWith('pdb.yaml')) text = text.replace('apiVersion: policy/v1\n', 'apiVersion: policy/v1beta1\n');
      files[path] = text;
    }
    expect(files['kubernetes/app/deployment.yaml']).toContain(`image: ${registry}/${repository}\n`);
    const name = uniqueName('deployer-repo');
    const repo = await createRepo(git.root, name, [{ files: { ...files, 'README.md': 'the deployer\n' }, message: 'the deployer' }]);
    const sha = repo.shas[0] ?? '';
    const tag = `main-${short(sha)}`;
    const { digest } = await pushImage({ host: registry, repository, tag });

    // The deployer's service entry as the shipped ConfigMap has it; repository and namespace are the test's.
    const shipped = shippedConfig().services['deployer'];
    const config = parseConfig(
      {
        tokens: { ops: { secret: { value: 'ops-secret' } } },
        services: {
          deployer: {
            ...shipped,
            repository: { url: `${git.baseUrl}${repo.urlPath}`, credentials: { username: git.username, password: { value: git.password } } },
            namespace: own,
          },
        },
        registries: { [registry]: { insecure: true } },
        cache: { dir: join(work, 'cache') },
        kubernetes: { kubeconfig: identity.kubeconfig, leaseNamespace: own },
        versions: { registryWaitSeconds: 0 },
      },
      {},
    );
    const logger = silentLogger();
    const { app } = wire({ config, logger, version: 't' });
    try {
      const res = await app.inject({
        method: 'PUT',
        url: '/deployer/deploy',
        headers: { authorization: basic('ops', 'ops-secret'), 'content-type': 'application/x-www-form-urlencoded' },
        payload: `commit=${short(sha)}`,
      });
      expect(res.statusCode, res.body).toBe(200);
      const body = res.json<{ message: string; objects: Array<{ kind: string; namespace: string; action: string }> }>();
      expect(body.message).toBe(`deployer ${tag} is deployed`);
      expect(body.objects.map((o) => `${o.kind}:${o.action}`).sort()).toEqual([
        'ConfigMap:created',
        'Deployment:created',
        'PodDisruptionBudget:created',
        'Service:created',
      ]);
      expect(new Set(body.objects.map((o) => o.namespace))).toEqual(new Set([own]));
    } finally {
      await app.close();
    }

    const { apps, core } = adminClient();
    const deployment = await apps.readNamespacedDeployment({ name: 'deployer', namespace: own });
    const pinned = `${registry}/${repository}:${tag}@${digest}`;
    expect(deployment.spec?.template.spec?.containers[0]?.image).toBe(pinned);
    expect(deployment.spec?.replicas).toBe(3);
    expect(deployment.spec?.strategy?.rollingUpdate).toEqual({ maxUnavailable: 0, maxSurge: 1 });
    expect(deployment.spec?.template.spec?.serviceAccountName).toBe('deployer');
    // The ConfigMap carries the configuration the pods will read; the example Secret was not applied.
    const cm = await core.readNamespacedConfigMap({ name: 'deployer-config', namespace: own });
    expect(cm.data?.['config.yaml']).toContain('manifestsDir: kubernetes/app');
    await expect(core.readNamespacedSecret({ name: 'deployer-secrets', namespace: own })).rejects.toThrow();

    // The rollout: the controller manager makes the ReplicaSet of that image; its pods (marked ready here, there
    // is no kubelet) make the Deployment available with all three replicas.
    const rs = await currentReplicaSet(own, 'deployer');
    expect(rs.spec?.template?.spec?.containers[0]?.image).toBe(pinned);
    const ready = await markDeploymentReady(own, 'deployer');
    expect(ready.status?.availableReplicas).toBe(3);
  });
});
