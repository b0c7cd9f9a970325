import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { dump, loadAll } from 'js-yaml';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { send, sleep } from '../e2e/flows-setup.js';
import { basic, startDeployer, type RunningDeployer } from '../e2e/setup.js';
import { createRepo, type FixtureRepo } from '../env/git-fixtures.js';
import { ground } from '../env/ground.js';
import { adminClient, kubeRequest } from '../env/kube-helpers.js';
import { deployerImageLayout, pushOciLayout } from '../env/node-images.js';
import { waitFor } from '../env/processes.js';
import { clusterIp, podLogs, pushSample, readyPods, runningPods, sampleManifests } from './real-pods.js';

/**
 * The deployer as a pod, for real: its image built from the project's Dockerfile (deployer-image.sh), run from the
 * project's kubernetes/app and kubernetes/rbac on the ground's node, with its own ServiceAccount through in-cluster
 * config. It deploys the sample service and itself; it survives SIGTERM mid-deploy, and after a `kill -9`
 * mid-deploy the next deploy converges once the dead holder's Lease expires.
 *
 * The manifests are the project's, changed only where the ground differs from a real cluster: the configuration's
 * addresses (git and registry on the ground network), the image's registry, the node's scheduler, 2 replicas, and
 * the PodDisruptionBudget's API version (the ground's apiserver is v1.20).
 */

const ROOT = join(dirname(new URL(import.meta.url).pathname), '..', '..');
const OPS = 'ops-secret-p0d-deployer';
const CI = 'ci-secret-p0d-deployer';
const ops = basic('ops', OPS);
const short = (sha: string): string => sha.slice(0, 7);
type KubeObject = { kind: string; metadata: { name: string; namespace?: string }; [key: string]: unknown };

function projectObjects(dir: string): KubeObject[] {
  const folder = join(ROOT, 'kubernetes', dir);
  return readdirSync(folder)
    .filter((f) => f.endsWith('.yaml'))
    .sort()
    .flatMap((f) => loadAll(readFileSync(join(folder, f), 'utf8')) as KubeObject[])
    .filter((o) => o !== null);
}

/** A step into parsed YAML: the object at `key` (created when missing, so that a changed layout fails loudly later). */
function at(o: Record<string, unknown>, ...keys: Array<string | number>): Record<string, unknown> {
  let current: unknown = o;
  for (const key of keys) {
    const next = (current as Record<string | number, unknown>)[key];
    if (typeof next !== 'object' || next === null) throw new Error(`no object at ${keys.join('.')}`);
    current = next;
  }
  return current as Record<string, unknown>;
}

/** The project's kubernetes/app, pointed at the ground; `logLevel` differs between commits. */
function appFiles(options: { gitBase: string; registry: string; logLevel: string }): Record<string, string> {
  const files: Record<string, string> = {};
  const folder = join(ROOT, 'kubernetes', 'app');
  for (const file of readdirSync(folder).filter((f) => f.endsWith('.yaml'))) {
    const [object] = loadAll(readFileSync(join(folder, file), 'utf8')) as Array<Record<string, unknown>>;
    if (object === undefined) continue;
    if (object['kind'] === 'ConfigMap') {
      const data = at(object, 'data');
      const config = loadAll(String(data['config.yaml']))[0] as Record<string, unknown>;
      config['logLevel'] = options.logLevel;
      const credentials = { username: ground('git').username, password: { file: '/var/run/secrets/deployer/git-password' } };
      at(config, 'services', 'deployer')['repository'] = { url: `${options.gitBase}deployer-self.git`, credentials };
      at(config, 'services', 'hello')['repository'] = { url: `${options.gitBase}hello-pod.git`, credentials };
      config['registries'] = { [options.registry]: { insecure: true } };
      at(config, 'versions')['registryWaitSeconds'] = 0;
      data['config.yaml'] = dump(config);
    }
    // The ground's apiserver is v1.20: PodDisruptionBudget is policy/v1beta1 there (policy/v1 came with 1.21).
    if (object['kind'] === 'PodDisruptionBudget') object['apiVersion'] = 'policy/v1beta1';
    if (object['kind'] === 'Deployment') {
      at(object, 'spec')['replicas'] = 2;
      at(object, 'spec', 'template', 'spec')['schedulerName'] = ground('node').schedulerName;
      at(object, 'spec', 'template', 'spec', 'containers', 0)['image'] = `${options.registry}/ops/deployer`;
    }
    files[`kubernetes/app/${file}`] = dump(object);
  }
  return files;
}

async function apply(object: KubeObject): Promise<void> {
  const res = await kubeRequest('PATCH', `${pathOf(object)}?fieldManager=ground-admin&force=true`, {
    body: JSON.stringify(object),
    contentType: 'application/apply-patch+yaml',
  });
  if (res.status >= 300) throw new Error(`apply ${object.kind} ${object.metadata.name}: ${res.status} ${JSON.stringify(res.body)}`);
}

function pathOf(o: KubeObject): string {
  const plural = `${o.kind.toLowerCase()}s`;
  const api = ['Role', 'RoleBinding', 'ClusterRole', 'ClusterRoleBinding'].includes(o.kind) ? '/apis/rbac.authorization.k8s.io/v1' : '/api/v1';
  const ns = o.metadata.namespace === undefined ? '' : `/namespaces/${o.metadata.namespace}`;
  return `${api}${ns}/${plural}/${o.metadata.name}`;
}

/** `count` small ConfigMaps in one multi-document file, as a service with much configuration has. */
function settings(count: number): Record<string, string> {
  const docs = Array.from({ length: count }, (_, i) => dump({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: `hello-setting-${i}` }, data: { value: String(i) } }));
  return { 'kubernetes/settings.yaml': docs.join('---\n') };
}

/** The host PID of the deployer's node process in pod `pod` (the ground's PID namespace is visible from the host). */
function nodeProcessOf(pod: string): number {
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const cmd = readFileSync(`/proc/${entry}/cmdline`, 'utf8');
      if (!cmd.startsWith('node\0dist/main.js')) continue;
      if (readFileSync(`/proc/${entry}/environ`, 'utf8').split('\0').includes(`POD_NAME=${pod}`)) return Number(entry);
    } catch {
      // gone meanwhile
    }
  }
  throw new Error(`no deployer process of pod ${pod}`);
}

describe('the deployer as a pod on the real node', () => {
  let bootstrap: RunningDeployer;
  let self: FixtureRepo;
  let hello: FixtureRepo;
  let service: string;
  const tagOf = (repo: FixtureRepo, i: number): string => `main-${short(repo.shas[i] ?? '')}`;

  beforeAll(async () => {
    const node = ground('node');
    const git = ground('git');
    const anonymous = ground('registry').anonymous;
    const registry = `${node.hostAddress}:${anonymous.split(':')[1]}`;
    const gitBase = `http://${node.hostAddress}:${new URL(git.baseUrl).port}/`;

    self = await createRepo(git.root, 'deployer-self', [
      { files: appFiles({ gitBase, registry, logLevel: 'info' }) },
      { files: appFiles({ gitBase, registry, logLevel: 'debug' }) },
    ]);
    hello = await createRepo(git.root, 'hello-pod', [
      { files: sampleManifests({ name: 'hello', image: `${registry}/apps/hello`, replicas: 2, env: { VERSION: 'v1', LATENCY_MS: '2' } }) },
      { files: sampleManifests({ name: 'hello', image: `${registry}/apps/hello`, replicas: 2, env: { VERSION: 'v2' } }) },
      // v3 also carries 200 ConfigMaps, so that its deploy holds the service's Lease long enough to be killed in it.
      { files: { ...sampleManifests({ name: 'hello', image: `${registry}/apps/hello`, replicas: 2, env: { VERSION: 'v3' } }), ...settings(200) } },
      { files: sampleManifests({ name: 'hello', image: `${registry}/apps/hello`, replicas: 2, env: { VERSION: 'v4' } }) },
    ]);
    for (const i of [0, 1]) await pushOciLayout(deployerImageLayout(), { host: anonymous, repository: 'ops/deployer', tag: tagOf(self, i) });
    await pushSample('apps/hello', hello.shas.map((sha) => `main-${short(sha)}`));

    // What a cluster administrator does once: kubernetes/rbac, and the Secret kubernetes/examples describes.
    for (const object of projectObjects('rbac')) await apply(object);
    await adminClient().core.createNamespacedSecret({
      namespace: 'deployer',
      body: {
        metadata: { name: 'deployer-secrets' },
        stringData: { 'token-ci': CI, 'token-ops': OPS, 'git-password': git.password },
      },
    });

    // The first install: a deployer outside the cluster deploys kubernetes/app of the deployer's repository.
    bootstrap = await startDeployer({
      tokens: { ops: { secret: { value: OPS } } },
      services: {
        deployer: {
          repository: { url: `${git.baseUrl}deployer-self.git`, credentials: { username: git.username, password: { value: git.password } } },
          manifestsDir: 'kubernetes/app',
          namespace: 'deployer',
        },
      },
      registries: { [registry]: { insecure: true } },
      versions: { registryWaitSeconds: 0 },
    });
    const installed = await send(`${bootstrap.url}/deployer/deploy`, { auth: ops, json: { tag: tagOf(self, 0), wait: '5m' } });
    if (installed.status !== 200) expect.fail(`${JSON.stringify(installed.body)}\n${await podLogs('deployer', 'deployer')}`);
    service = `${await clusterIp('deployer', 'deployer')}:80`;
    // Ready pods reach kube-proxy's rules up to a sync later (its minimum period is 1 s; more on a loaded machine).
    await waitFor(async () => (await fetch(`http://${service}/readyz`, { signal: AbortSignal.timeout(2_000) })).status === 200, {
      what: 'the deployer behind its ClusterIP',
      intervalMs: 100,
    });
  }, 420_000);

  afterAll(async () => {
    await bootstrap?.close();
    for (const name of ['deployer', 'apps']) await adminClient().core.deleteNamespace({ name }).catch(() => undefined);
  });

  it('runs with its ServiceAccount (no kubeconfig) and deploys the sample service through its Service', async () => {
    const pods = await runningPods('deployer', 'deployer');
    expect(pods.filter((p) => p.ready)).toHaveLength(2);
    const ready = await fetch(`http://${service}/readyz`);
    expect(ready.status).toBe(200);

    const answer = await send(`http://${service}/hello/deploy`, { auth: ops, json: { tag: tagOf(hello, 0), wait: '3m' } });
    expect(answer.status, JSON.stringify(answer.body)).toBe(200);
    expect(answer.body['verdict']).toMatchObject({ result: 'success', message: 'rolled out: hello: 2/2 available' });
    expect((await runningPods('apps', 'hello')).filter((p) => p.ready)).toHaveLength(2);
  }, 300_000);

  it('deploys itself: its pods are replaced while the request that replaces them gets its answer', async () => {
    const before = (await runningPods('deployer', 'deployer')).map((p) => p.name).sort();
    const answer = await send(`http://${service}/deployer/deploy`, { auth: ops, json: { tag: tagOf(self, 1), wait: '5m' } });
    expect(answer.status, JSON.stringify(answer.body)).toBe(200);
    expect(answer.body['verdict']).toMatchObject({ result: 'success' });
    const after = (await runningPods('deployer', 'deployer')).filter((p) => p.ready).map((p) => p.name);
    expect(after).toHaveLength(2);
    expect(after.filter((p) => before.includes(p))).toEqual([]);
  }, 420_000);

  it('SIGTERM of the pod during a deploy: the deploy finishes and is answered', async () => {
    const [pod] = (await runningPods('deployer', 'deployer')).filter((p) => p.ready);
    if (pod === undefined) throw new Error('no ready deployer pod');
    const deploying = send(`http://${pod.ip}:8080/hello/deploy`, { auth: ops, json: { tag: tagOf(hello, 1), wait: '3m' } });
    await sleep(1_500);
    // A pod deletion: the kubelet runs preStop, then sends SIGTERM; the deployer finishes what is in flight.
    await adminClient().core.deleteNamespacedPod({ name: pod.name, namespace: 'deployer' });
    const answer = await deploying;
    expect(answer.status, JSON.stringify(answer.body)).toBe(200);
    expect(answer.body['tag']).toBe(tagOf(hello, 1));
  }, 300_000);

  it('kill -9 of the pod mid-deploy: the next deploy converges once the Lease expires', async () => {
    const [pod, other] = await readyPods('deployer', 'deployer', 2);
    if (pod === undefined || other === undefined) throw new Error('no two ready deployer pods');
    const pid = nodeProcessOf(pod.name);
    let answered = false;
    const deploying = send(`http://${pod.ip}:8080/hello/deploy`, { auth: ops, json: { tag: tagOf(hello, 2), wait: '3m' } })
      .catch((err: unknown) => err)
      .finally(() => (answered = true));
    // Wait until it holds the service's Lease, then kill it without a chance to let go. (Its 200 ConfigMaps keep it
    // in the Lease for a while; should it answer first anyway, the test says so instead of waiting forever.)
    for (;;) {
      const leases = (await kubeRequest('GET', '/apis/coordination.k8s.io/v1/namespaces/deployer/leases')).body as {
        items: Array<{ spec?: { holderIdentity?: string } }>;
      };
      if (leases.items.some((l) => l.spec?.holderIdentity === pod.name)) break;
      if (answered) expect.fail(`the deploy was answered before its Lease was seen held: ${JSON.stringify(await deploying)}`);
      await sleep(25);
    }
    process.kill(pid, 'SIGKILL');
    expect(await deploying).toBeInstanceOf(Error);

    // To the other pod: the killed one's address still answers (refused) until its endpoint is withdrawn, and its
    // restarted container would hold the Lease under the same name. The other pod must wait for the Lease to expire.
    const next = await send(`http://${other.ip}:8080/hello/deploy`, { auth: ops, json: { tag: tagOf(hello, 3), wait: '3m' } });
    expect(next.status, JSON.stringify(next.body)).toBe(200);
    expect(next.body['verdict']).toMatchObject({ result: 'success' });
    const pods = (await adminClient().core.listNamespacedPod({ namespace: 'apps', labelSelector: 'app=hello' })).items;
    const images = pods.filter((p) => p.metadata?.deletionTimestamp === undefined).map((p) => p.spec?.containers[0]?.image ?? '');
    expect(images).toHaveLength(2);
    for (const image of images) expect(image).toContain(`:${tagOf(hello, 3)}@sha256:`);
  }, 300_000);
});
