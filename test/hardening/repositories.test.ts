import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { deployerNamespace } from '../../src/deploy/lease.js';
import { ground } from '../env/ground.js';
import { createNamespace, kubeRequest } from '../env/kube-helpers.js';
import { configMapYaml, deploymentYaml } from '../env/manifests.js';
import { pushImage } from '../env/registry-helpers.js';
import { send } from '../e2e/flows-setup.js';
import { basic, serviceRepo, startDeployer, type RunningDeployer } from '../e2e/setup.js';
import { snapshot } from './harness.js';

/**
 * Hardening, second round, end to end on the ground: what a hostile repository or an over-powerful monitor token
 * could do to another service. Each case is refused before anything is applied, with an answer naming why.
 */

const CI = basic('ci', 'ci-secret-r0und2');
const MONITOR = basic('monitor', 'monitor-secret-r0und2');
const short = (sha: string): string => sha.slice(0, 7);
const OTHER_TAG = 'release-candidate';

/** A Lease as a squatting repository or a busy replica writes it. */
const leaseYaml = (name: string, holder: string): string =>
  [
    'apiVersion: coordination.k8s.io/v1',
    'kind: Lease',
    `metadata: { name: ${name} }`,
    `spec: { holderIdentity: ${holder}, leaseDurationSeconds: 2000000000, acquireTime: "2026-01-01T00:00:00.000000Z", renewTime: "2099-01-01T00:00:00.000000Z" }`,
    '',
  ].join('\n');

async function plantLease(namespace: string, name: string, holder: string): Promise<void> {
  const at = new Date().toISOString().replace(/\.(\d{3})Z$/, '.$1000Z');
  const res = await kubeRequest('POST', `/apis/coordination.k8s.io/v1/namespaces/${namespace}/leases`, {
    body: JSON.stringify({
      apiVersion: 'coordination.k8s.io/v1',
      kind: 'Lease',
      metadata: { name, namespace },
      spec: { holderIdentity: holder, leaseDurationSeconds: 3600, acquireTime: at, renewTime: at },
    }),
  });
  if (res.status !== 201) throw new Error(`creating lease ${namespace}/${name}: ${res.status} ${JSON.stringify(res.body)}`);
}

const leaseStatus = async (namespace: string, name: string): Promise<number> =>
  (await kubeRequest('GET', `/apis/coordination.k8s.io/v1/namespaces/${namespace}/leases/${name}`)).status;

const deploymentStatus = async (namespace: string, name: string): Promise<number> =>
  (await kubeRequest('GET', `/apis/apps/v1/namespaces/${namespace}/deployments/${name}`)).status;

describe('deployerNamespace: where the locks live by default', () => {
  it.each([
    ['POD_NAMESPACE', { POD_NAMESPACE: 'ops' }, 'cd', 'ops'],
    ["the service account's namespace", {}, 'deployer\n', 'deployer'],
    ['outside a cluster', {}, undefined, 'default'],
  ] as const)('%s', (_where, env, file, expected) => {
    expect(deployerNamespace(env, () => file)).toBe(expected);
  });
});

describe('hostile repositories and over-powerful tokens, round two', () => {
  let deployer: RunningDeployer;
  let namespace: string;
  let image: string;
  const tags = new Map<string, string>();
  type Repo = Awaited<ReturnType<typeof serviceRepo>>;
  let victim: Repo;
  const repos: Record<string, Repo> = {};

  /** The victim by its tag; the others' repositories did not build the image: their commit and a tag of no commit. */
  const deploy = (service: string, kind = 'deploy', tag = tags.get('v1') ?? '') =>
    send(`${deployer.url}/${service}/${kind}`, { auth: CI, json: service === victim.name ? { tag } : { commit: 'main', tag: OTHER_TAG } });

  beforeAll(async () => {
    const registry = ground('registry').anonymous;
    namespace = await createNamespace('round2');
    const repository = `hardening/round2-${Date.now().toString(36)}`;
    image = `${registry}/${repository}`;
    victim = await serviceRepo('victim', [
      { files: { 'kubernetes/deployment.yaml': deploymentYaml({ name: 'app', image, port: false }) } },
      { files: { 'kubernetes/config.yaml': configMapYaml('app-config', { value: 'unreviewed' }) } },
    ]);
    for (const [i, sha] of victim.repo.shas.entries()) {
      const tag = `main-${short(sha)}`;
      tags.set(`v${i + 1}`, tag);
      await pushImage({ host: registry, repository, tag });
    }
    await pushImage({ host: registry, repository, tag: OTHER_TAG });
    const own = (name: string): string => deploymentYaml({ name, image, port: false });
    const files: Record<string, Record<string, string>> = {
      squatter: { 'kubernetes/deployment.yaml': own('squatter'), 'kubernetes/lease.yaml': leaseYaml(`deployer-${victim.name}`, 'squatter') },
      many: Object.fromEntries<string>([
        ['kubernetes/deployment.yaml', own('many')],
        ...[1, 2, 3, 4, 5].map((i): [string, string] => [`kubernetes/cm-${i}.yaml`, configMapYaml(`many-${i}`, { i: String(i) })]),
      ]),
      slow: { 'kubernetes/deployment.yaml': own('slow'), 'kubernetes/config.yaml': configMapYaml('slow-config', { a: '1' }) },
      twin: { 'kubernetes/deployment.yaml': own('twin'), 'kubernetes/canary.yaml': own('twin-canary') },
      claimer: { 'kubernetes/deployment.yaml': own('app') },
      dup: {
        'kubernetes/deployment.yaml': own('dup'),
        'kubernetes/a.yaml': configMapYaml('dup-config', { a: '1' }),
        'kubernetes/b.yaml': configMapYaml('dup-config', { a: '2' }).replace('metadata:\n', `metadata:\n  namespace: ${namespace}\n`),
      },
    };
    for (const [name, content] of Object.entries(files)) repos[name] = await serviceRepo(name, [{ files: content }]);
    const services: Record<string, unknown> = { [victim.name]: { repository: victim.repository, namespace } };
    const limits: Record<string, unknown> = { many: { maxObjects: 5 }, slow: { maxLockSeconds: 0.001 } };
    for (const [name, repo] of Object.entries(repos)) {
      services[repo.name] = { repository: repo.repository, namespace, ...(limits[name] === undefined ? {} : { limits: limits[name] }) };
    }
    // No kubernetes.leaseNamespace: the locks live in the deployer's own namespace.
    deployer = await startDeployer({
      tokens: {
        ci: { secret: { value: 'ci-secret-r0und2' }, actions: ['read', 'deploy', 'canary'] },
        monitor: { secret: { value: 'monitor-secret-r0und2' }, actions: ['rollback'] },
      },
      services,
      versions: { registryWaitSeconds: 0 },
      deploy: { lockWaitSeconds: 1 },
    });
    const first = await deploy(victim.name);
    expect(first.status, JSON.stringify(first.body)).toBe(200);
  });

  afterAll(async () => {
    await deployer?.close();
  });

  it("finding 1: the locks live in the deployer's namespace, and no repository may ship a deployer-* Lease", async () => {
    const own = deployerNamespace(process.env);
    expect(await leaseStatus(own, `deployer-${victim.name}`)).toBe(200);
    expect(await leaseStatus(namespace, `deployer-${victim.name}`)).toBe(404);

    const before = await snapshot(namespace);
    const answer = await deploy(repos['squatter']?.name ?? '');
    expect(answer.status, JSON.stringify(answer.body)).toBe(422);
    expect(answer.body['error']).toBe(
      `Lease "deployer-${victim.name}": names starting with "deployer-" are the deployer's own locks; service ${repos['squatter']?.name} may not write them; nothing was applied`,
    );
    expect(await leaseStatus(namespace, `deployer-${victim.name}`)).toBe(404);
    expect(await snapshot(namespace)).toEqual(before);
    // The victim still deploys.
    expect((await deploy(victim.name)).status).toBe(200);
  });

  it('finding 2: a rollback token may not deploy a version the service never ran, by PUT or by the generic hook', async () => {
    const [v1, v2] = [tags.get('v1') ?? '', tags.get('v2') ?? ''];
    const before = await snapshot(namespace);
    const forbidden = {
      error: `token "monitor" may not deploy service "${victim.name}": ${v2} is neither the running stable version nor the recorded previous one, and deploying it needs the deploy scope (rollback alone may remove the canary, redeploy the running stable version or roll back with to=previous)`,
      token: 'monitor',
      action: 'deploy',
      service: victim.name,
    };
    const put = await send(`${deployer.url}/${victim.name}/rollback`, { auth: MONITOR, json: { tag: v2 } });
    expect(put.status, JSON.stringify(put.body)).toBe(403);
    expect(put.body).toEqual(forbidden);
    const hook = await send(`${deployer.url}/hooks/generic`, { method: 'POST', auth: MONITOR, json: { service: victim.name, action: 'rollback', tag: v2 } });
    // The hook answers by the one hook rule: outside the scope is a result (200), which a monitor does not send again.
    expect(hook.status, JSON.stringify(hook.body)).toBe(200);
    expect(hook.body).toEqual({ service: victim.name, result: 'forbidden', message: forbidden.error });
    const byCommit = await send(`${deployer.url}/hooks/generic`, { method: 'POST', auth: MONITOR, json: { service: victim.name, action: 'rollback', commit: 'main' } });
    expect(byCommit.status, JSON.stringify(byCommit.body)).toBe(200);
    expect(byCommit.body['result']).toBe('forbidden');
    expect(await snapshot(namespace)).toEqual(before);

    // What a rollback may do: the running stable version, and to=previous.
    const running = await send(`${deployer.url}/${victim.name}/rollback`, { auth: MONITOR, json: { tag: v1 } });
    expect(running.status, JSON.stringify(running.body)).toBe(200);
    expect(running.body['outcome']).toBe('nothing-to-roll-back');
    const previous = await send(`${deployer.url}/hooks/generic`, { method: 'POST', auth: MONITOR, json: { service: victim.name, action: 'rollback', to: 'previous' } });
    expect(previous.status, JSON.stringify(previous.body)).toBe(200);
  });

  it('finding 10: Deployments X and X-canary in one repository are refused (422), nothing applied', async () => {
    const before = await snapshot(namespace);
    const answer = await deploy(repos['twin']?.name ?? '');
    expect(answer.status, JSON.stringify(answer.body)).toBe(422);
    expect(answer.body['error']).toBe('Deployment "twin-canary": names ending in "-canary" are the deployer\'s canaries; rename it; nothing was applied');
    expect(await snapshot(namespace)).toEqual(before);
  });

  it("finding 10: a service may not put a canary next to another service's Deployment in a shared namespace (422)", async () => {
    const claimer = repos['claimer']?.name ?? '';
    const before = await snapshot(namespace);
    const answer = await deploy(claimer, 'canary');
    expect(answer.status, JSON.stringify(answer.body)).toBe(422);
    expect(answer.body['error']).toBe(
      `Deployment "app-canary" would be the canary of Deployment "app", which belongs to service ${victim.name}; service ${claimer} may not deploy it; nothing was applied`,
    );
    expect(await deploymentStatus(namespace, 'app-canary')).toBe(404);
    expect(await snapshot(namespace)).toEqual(before);
    // The victim's own canary still goes through.
    const canary = await deploy(victim.name, 'canary', tags.get('v2'));
    expect(canary.status, JSON.stringify(canary.body)).toBe(200);
  });

  it('finding 10: two objects that differ only by an omitted namespace are duplicates (422)', async () => {
    const before = await snapshot(namespace);
    const answer = await deploy(repos['dup']?.name ?? '');
    expect(answer.status, JSON.stringify(answer.body)).toBe(422);
    expect(answer.body['error']).toBe(
      `ConfigMap "dup-config" in namespace ${namespace} is defined twice (a namespace left out is the service's namespace); nothing was applied`,
    );
    expect(await snapshot(namespace)).toEqual(before);
  });

  it('finding 7: more objects than the service may deploy are refused, naming the count and the limit', async () => {
    const many = repos['many']?.name ?? '';
    const before = await snapshot(namespace);
    const answer = await deploy(many);
    expect(answer.status, JSON.stringify(answer.body)).toBe(422);
    expect(answer.body).toEqual({
      error: `kubernetes/ holds 6 objects, more than the limit of 5 for service ${many} (deploy.maxObjects or the service's limits.maxObjects); nothing was applied`,
      objects: 6,
      limit: 5,
    });
    expect(await snapshot(namespace)).toEqual(before);
  });

  it('finding 7: time under the lock is bounded: past the limit no further step starts, with a clear 504', async () => {
    const slow = repos['slow']?.name ?? '';
    const answer = await deploy(slow);
    expect(answer.status, JSON.stringify(answer.body)).toBe(504);
    expect(answer.body['error']).toMatch(
      new RegExp(`^${slow} held its deploy lock for \\d+\\.\\ds, longer than its limit of 0\\.001s \\(deploy\\.maxLockSeconds or the service's limits\\.maxLockSeconds\\): stopped before the (ownership check|dry-run|apply)$`),
    );
    expect(answer.body).toMatchObject({ service: slow, maxLockSeconds: 0.001 });
    expect(await deploymentStatus(namespace, 'slow')).toBe(404);
  });

  it('finding 9: a busy lock answers the Alertmanager hook 503 with Retry-After; other alerts are results, 200 otherwise', async () => {
    const own = deployerNamespace(process.env);
    await kubeRequest('DELETE', `/apis/coordination.k8s.io/v1/namespaces/${own}/leases/deployer-${victim.name}`);
    await plantLease(own, `deployer-${victim.name}`, 'busy-pod');
    try {
      const alerts = (services: string[]) => ({
        version: '4',
        alerts: services.map((service, i) => ({ status: 'firing', labels: { alertname: `A${i}`, service }, fingerprint: `f${i}` })),
      });
      const res = await fetch(`${deployer.url}/hooks/alertmanager`, {
        method: 'POST',
        headers: { authorization: MONITOR, 'content-type': 'application/json' },
        body: JSON.stringify(alerts([victim.name, 'no-such-service'])),
      });
      expect(res.status).toBe(503);
      expect(res.headers.get('retry-after')).toBe('10');
      expect(((await res.json()) as { results: unknown[] }).results).toEqual([
        {
          alert: 'A0',
          fingerprint: 'f0',
          status: 'firing',
          service: victim.name,
          result: 'failed',
          message: `another deploy of ${victim.name} is running (lock held by busy-pod); try again later; send the alert again`,
        },
        { alert: 'A1', fingerprint: 'f1', status: 'firing', service: 'no-such-service', result: 'unknown-service', message: 'service "no-such-service" is not configured' },
      ]);
      const generic = await fetch(`${deployer.url}/hooks/generic`, {
        method: 'POST',
        headers: { authorization: MONITOR, 'content-type': 'application/json' },
        body: JSON.stringify({ service: victim.name, action: 'rollback' }),
      });
      expect(generic.status).toBe(503);
      expect(generic.headers.get('retry-after')).toBe('10');
      // The canary deployed above is still there: nothing was rolled back while busy.
      expect(await deploymentStatus(namespace, 'app-canary')).toBe(200);

      const unknownOnly = await send(`${deployer.url}/hooks/alertmanager`, { method: 'POST', auth: MONITOR, json: alerts(['no-such-service']) });
      expect(unknownOnly.status).toBe(200);
    } finally {
      await kubeRequest('DELETE', `/apis/coordination.k8s.io/v1/namespaces/${own}/leases/deployer-${victim.name}`);
    }
    // Free again: the notification sent again rolls the canary back.
    const again = await send(`${deployer.url}/hooks/alertmanager`, { method: 'POST', auth: MONITOR, json: { version: '4', alerts: [{ status: 'firing', labels: { service: victim.name } }] } });
    expect(again.status, JSON.stringify(again.body)).toBe(200);
    expect(await deploymentStatus(namespace, 'app-canary')).toBe(404);
  });
});
