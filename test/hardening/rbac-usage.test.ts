import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { KubeObject } from '../../src/core/types.js';
import { send } from '../e2e/flows-setup.js';
import { basic, serviceRepo, startDeployer, type RunningDeployer } from '../e2e/setup.js';
import { ground } from '../env/ground.js';
import { uniqueName } from '../env/kube-helpers.js';
import { tokenKubeconfig } from '../env/kube-plane.js';
import { serviceManifests } from '../env/manifests.js';
import { pushImage } from '../env/registry-helpers.js';
import { applyAsAdmin, find, manifestsIn, rbacObjects, serviceAccountKubeconfig } from '../ops/helpers.js';
import { startApiserverFront, type ApiserverFront } from './fault-servers.js';

/**
 * The shipped RBAC (kubernetes/rbac) against what the code uses: the deployer runs as its ServiceAccount through a
 * front of the apiserver that records every call, through every flow (deploy, canary, state, rollback, promote,
 * rollback to=previous, a verdict wait, and its own deploy into its namespace), with the deploy locks where the
 * shipped ConfigMap puts them. Each call, as the verb RBAC checks, must be granted by the Role of its namespace, and
 * each granted verb must be one the code used: Leases in the deployer's own namespace only (the locks moved there in
 * the second hardening round), nothing granted that no flow needs.
 */

const CI = basic('ci', 'ci-secret-rbac-usage-01');
const OPS = basic('ops', 'ops-secret-rbac-usage-02');
const short = (sha: string): string => sha.slice(0, 7);

interface Rule {
  readonly apiGroups: readonly string[];
  readonly resources: readonly string[];
  readonly verbs: readonly string[];
}

/** `where group/resource verb` for each rule of the Role in `namespace`, `where` naming the namespace's part. */
function granted(objects: readonly KubeObject[], namespace: string, where: string): string[] {
  const role = objects.find((o) => o.kind === 'Role' && o.metadata.namespace === namespace) as (KubeObject & { rules: Rule[] }) | undefined;
  if (role === undefined) throw new Error(`no Role in ${namespace}`);
  return role.rules.flatMap((r) => r.apiGroups.flatMap((g) => r.resources.flatMap((res) => r.verbs.map((v) => `${where} ${g === '' ? 'core' : g}/${res} ${v}`))));
}

/**
 * The verbs RBAC checks for one answered call `METHOD path?query STATUS`, as `namespace group/resource verb`; none
 * for discovery. A server-side apply is a PATCH; when it creates the object (201) the apiserver checks create too.
 */
function verbsOf(call: string): Array<{ namespace: string; what: string }> {
  const [method = '', target = '', status = ''] = call.split(' ');
  const path = target.split('?')[0] ?? '';
  const m = /^\/(?:api\/v1|apis\/([^/]+)\/[^/]+)\/namespaces\/([^/]+)\/([^/]+)(?:\/([^/]+))?(?:\/([^/]+))?$/.exec(path);
  if (m === null) return [];
  const [, group = 'core', namespace = '', resource = '', name, sub] = m;
  const res = `${group}/${sub === undefined ? resource : `${resource}/${sub}`}`;
  const verb = (v: string) => ({ namespace, what: `${res} ${v}` });
  switch (method) {
    case 'GET':
      return [verb(name === undefined ? 'list' : 'get')];
    case 'POST':
      return [verb('create')];
    case 'PUT':
      return [verb('update')];
    case 'DELETE':
      return [verb(name === undefined ? 'deletecollection' : 'delete')];
    case 'PATCH':
      return status === '201' ? [verb('patch'), verb('create')] : [verb('patch')];
    default:
      return [verb(method.toLowerCase())];
  }
}

describe('the shipped RBAC against the calls the code makes', () => {
  const work = mkdtempSync(join(tmpdir(), 'hardening-rbac-'));
  let own = '';
  let target = '';
  let shipped: KubeObject[] = [];
  let front: ApiserverFront;
  let deployer: RunningDeployer;
  let app: Awaited<ReturnType<typeof serviceRepo>>;
  let self: Awaited<ReturnType<typeof serviceRepo>>;

  beforeAll(async () => {
    own = uniqueName('deployer');
    target = uniqueName('apps');
    shipped = rbacObjects(own, target);
    await applyAsAdmin(shipped);
    const account = find(manifestsIn('rbac'), 'ServiceAccount').metadata.name;
    const { token } = await serviceAccountKubeconfig(own, account);
    const kube = ground('kube');
    front = await startApiserverFront({ upstream: kube.server, certFile: kube.caFile, keyFile: join(kube.dir, 'certs', 'apiserver.key') });
    const kubeconfig = join(work, 'deployer.kubeconfig');
    writeFileSync(kubeconfig, tokenKubeconfig({ server: front.url, caFile: kube.caFile, user: account, token }), { mode: 0o600 });

    const registry = ground('registry').anonymous;
    const repository = `hardening/rbac-${Date.now().toString(36)}`;
    const image = `${registry}/${repository}`;
    app = await serviceRepo('rbac-app', ['one', 'two', 'three'].map((value) => ({ files: serviceManifests({ name: 'hello', image, value }) })));
    // The deployer's own kinds, in its own namespace: a PodDisruptionBudget besides (policy/v1beta1 on the 1.20 ground).
    const pdb = `apiVersion: policy/v1beta1\nkind: PodDisruptionBudget\nmetadata:\n  name: myself\nspec:\n  maxUnavailable: 1\n  selector:\n    matchLabels: { app: myself }\n`;
    self = await serviceRepo('rbac-self', ['one', 'two'].map((value) => ({ files: { ...serviceManifests({ name: 'myself', image, value }), 'kubernetes/pdb.yaml': pdb } })));
    for (const sha of [...app.repo.shas, ...self.repo.shas]) await pushImage({ host: registry, repository, tag: `main-${short(sha)}` });

    deployer = await startDeployer({
      tokens: {
        ci: { secret: { value: 'ci-secret-rbac-usage-01' }, actions: ['read', 'deploy', 'canary'] },
        ops: { secret: { value: 'ops-secret-rbac-usage-02' } },
      },
      services: { [app.name]: { repository: app.repository, namespace: target }, [self.name]: { repository: self.repository, namespace: own } },
      versions: { registryWaitSeconds: 0 },
      // As the shipped ConfigMap: the deploy locks in the deployer's own namespace.
      kubernetes: { kubeconfig, leaseNamespace: own },
    });
  }, 120_000);

  afterAll(async () => {
    await deployer?.close();
    await front?.close();
    rmSync(work, { recursive: true, force: true });
  });

  it('every flow works as the ServiceAccount; every call is granted, and every grant is used', async () => {
    const [a1, a2, a3] = app.repo.shas as [string, string, string];
    const [s1, s2] = self.repo.shas as [string, string];
    const steps: Array<[string, string, Record<string, unknown>, string, number]> = [
      ['deploy', app.name, { commit: a1 }, CI, 200],
      ['canary', app.name, { commit: a2 }, CI, 200],
      ['rollback', app.name, {}, OPS, 200],
      ['deploy', app.name, { commit: a2 }, CI, 200],
      ['canary', app.name, { commit: a3 }, CI, 200],
      ['promote', app.name, {}, OPS, 200],
      ['rollback', app.name, { to: 'previous' }, OPS, 200],
      // The verdict of a rollout that never finishes here (no kubelet): 202 when the wait is over.
      ['deploy', app.name, { commit: a3, wait: '1s' }, CI, 202],
      ['deploy', self.name, { commit: s1 }, OPS, 200],
      ['canary', self.name, { commit: s2 }, OPS, 200],
      ['deploy', self.name, { commit: s2 }, OPS, 200],
      ['deploy', self.name, { commit: s2, wait: '1s' }, OPS, 202],
    ];
    for (const [kind, service, json, auth, status] of steps) {
      const answer = await send(`${deployer.url}/${service}/${kind}`, { auth, json });
      expect(answer.status, `${kind} ${service} ${JSON.stringify(json)}: ${JSON.stringify(answer.body)}`).toBe(status);
    }
    for (const service of [app.name, self.name]) {
      const state = await send(`${deployer.url}/${service}`, { method: 'GET', auth: OPS });
      expect(state.status, JSON.stringify(state.body)).toBe(200);
    }

    // No call was refused ...
    expect(front.answered.filter((c) => c.endsWith(' 403'))).toEqual([]);
    // ... and the verbs used are exactly the verbs granted, namespace by namespace.
    const used = new Set<string>();
    const elsewhere: string[] = [];
    for (const call of front.answered) {
      for (const { namespace, what } of verbsOf(call)) {
        if (namespace === own) used.add(`own ${what}`);
        else if (namespace === target) used.add(`target ${what}`);
        else elsewhere.push(call);
      }
    }
    expect(elsewhere).toEqual([]);
    const grants = [...granted(shipped, own, 'own'), ...granted(shipped, target, 'target')];
    expect([...used].filter((u) => !grants.includes(u)).sort(), 'used but not granted').toEqual([]);
    expect(grants.filter((g) => !used.has(g)).sort(), 'granted but never used').toEqual([]);
    // The locks: in the deployer's own namespace, and nowhere else.
    expect([...used].filter((u) => u.includes('coordination.k8s.io/leases')).sort()).toEqual([
      'own coordination.k8s.io/leases create',
      'own coordination.k8s.io/leases get',
      'own coordination.k8s.io/leases update',
    ]);
  });
});
