import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ground } from '../env/ground.js';
import { adminClient, createNamespace, kubeRequest } from '../env/kube-helpers.js';
import { pushImage } from '../env/registry-helpers.js';
import { configMapYaml, deploymentYaml } from '../env/manifests.js';
import { send } from './flows-setup.js';
import { basic, memoryLogger, serviceRepo, startDeployer, type RunningDeployer } from './setup.js';

const SECRET = 'ci-secret-1ea5e';
const auth = basic('ci', SECRET);
const short = (sha: string): string => sha.slice(0, 7);
type Line = Record<string, unknown>;

/** A Lease as a crashed or busy deployer replica would have left it. */
async function plantLease(namespace: string, name: string, holder: string, renewedSecondsAgo: number, durationSeconds: number): Promise<void> {
  const at = new Date(Date.now() - renewedSecondsAgo * 1000).toISOString().replace(/\.(\d{3})Z$/, '.$1000Z');
  const res = await kubeRequest('POST', `/apis/coordination.k8s.io/v1/namespaces/${namespace}/leases`, {
    body: JSON.stringify({
      apiVersion: 'coordination.k8s.io/v1',
      kind: 'Lease',
      metadata: { name, namespace },
      spec: { holderIdentity: holder, leaseDurationSeconds: durationSeconds, acquireTime: at, renewTime: at, leaseTransitions: 3 },
    }),
  });
  if (res.status !== 201) throw new Error(`creating lease ${namespace}/${name}: ${res.status} ${JSON.stringify(res.body)}`);
}

async function leaseSpec(namespace: string, name: string): Promise<Record<string, unknown>> {
  const res = await kubeRequest('GET', `/apis/coordination.k8s.io/v1/namespaces/${namespace}/leases/${name}`);
  expect(res.status).toBe(200);
  return (res.body as { spec: Record<string, unknown> }).spec;
}

describe('the deploy lock across deployer replicas (Lease)', () => {
  const memory = memoryLogger();
  const logs: Line[] = memory.logs;
  let a: RunningDeployer;
  let b: RunningDeployer;
  let impatient: RunningDeployer;
  let svc: Awaited<ReturnType<typeof serviceRepo>>;
  const namespaces: Record<'hammer' | 'killed' | 'stalled' | 'busy', string> = { hammer: '', killed: '', stalled: '', busy: '' };
  const names = (kind: keyof typeof namespaces): string => `${svc.name}-${kind}`;
  let tags: string[] = [];
  /** Where the replicas keep their locks (kubernetes.leaseNamespace), away from the services' namespaces. */
  let locks = '';

  beforeAll(async () => {
    const registry = ground('registry').anonymous;
    const repository = `team/lease-${Date.now().toString(36)}`;
    svc = await serviceRepo('locked', [
      { files: { 'kubernetes/deployment.yaml': deploymentYaml({ name: 'web', image: `${registry}/${repository}`, port: false }) } },
      { files: { 'kubernetes/config.yaml': configMapYaml('web-config', { value: 'two' }) } },
      { files: { 'kubernetes/config.yaml': configMapYaml('web-config', { value: 'three' }) } },
      { files: { 'kubernetes/config.yaml': configMapYaml('web-config', { value: 'four' }) } },
    ]);
    tags = svc.repo.shas.map((sha) => `main-${short(sha)}`);
    for (const tag of tags) await pushImage({ host: registry, repository, tag });
    for (const kind of Object.keys(namespaces) as Array<keyof typeof namespaces>) namespaces[kind] = await createNamespace(`lease-${kind}`);
    const services = Object.fromEntries(
      (Object.keys(namespaces) as Array<keyof typeof namespaces>).map((kind) => [names(kind), { repository: svc.repository, namespace: namespaces[kind] }]),
    );
    locks = await createNamespace('lease-locks');
    const raw = {
      tokens: { ci: { secret: { value: SECRET } } },
      services,
      versions: { registryWaitSeconds: 0 },
      kubernetes: { kubeconfig: ground('kube').adminKubeconfig, leaseNamespace: locks },
    };
    // Two replicas: separate engines, caches and in-process queues, one apiserver; one log, in the order of events.
    a = await startDeployer(raw, { identity: 'deployer-a', log: { ...memory, logger: memory.logger.child({ replica: 'a' }) } });
    b = await startDeployer(raw, { identity: 'deployer-b', log: { ...memory, logger: memory.logger.child({ replica: 'b' }) } });
    impatient = await startDeployer({ ...raw, deploy: { lockWaitSeconds: 1 } }, { identity: 'deployer-c' });
  });

  afterAll(async () => {
    await Promise.all([a?.close(), b?.close(), impatient?.close()]);
  });

  it('concurrent deploys of one service through two replicas never interleave, and the last holder wins', async () => {
    const service = names('hammer');
    const lease = `${locks}/deployer-${service}`;
    const requests = [
      { replica: a, name: 'a', tag: tags[0] },
      { replica: b, name: 'b', tag: tags[1] },
      { replica: a, name: 'a', tag: tags[2] },
      { replica: b, name: 'b', tag: tags[3] },
      { replica: a, name: 'a', tag: tags[1] },
      { replica: b, name: 'b', tag: tags[0] },
    ].map((r, i) => ({ ...r, requestId: `hammer-${r.name}-${i}` }));

    const answers = await Promise.all(
      requests.map((r) => send(`${r.replica.url}/${service}/deploy`, { auth, json: { tag: r.tag }, requestId: r.requestId })),
    );
    // Of the deploys waiting in one replica's queue, only the newest runs; the others answer from its outcome with
    // `supersededBy` (200 when it contains theirs, else 409: here the tags go back and forth, so mostly 409).
    const ran = requests.filter((_, i) => answers[i]?.status === 200 && answers[i]?.body['supersededBy'] === undefined);
    for (const answer of answers) {
      if (answer.body['supersededBy'] === undefined) expect(answer.status, JSON.stringify(answer.body)).toBe(200);
      else expect([200, 409]).toContain(answer.status);
    }
    expect(ran.length).toBeGreaterThanOrEqual(2);

    // The lock's own lines: strictly acquired, released, acquired, released ..., each pair one request.
    const lockLines = logs
      .map((line, index) => ({ line, index }))
      .filter(({ line }) => line['module'] === 'lease' && line['lease'] === lease && /^lease (acquired|released)$/.test(String(line['msg'])));
    expect(lockLines.map(({ line }) => line['msg'])).toEqual(Array.from({ length: 2 * ran.length }, (_, i) => (i % 2 === 0 ? 'lease acquired' : 'lease released')));
    const holders: string[] = [];
    for (let i = 0; i < lockLines.length; i += 2) {
      const acquired = lockLines[i]?.line;
      const released = lockLines[i + 1]?.line;
      expect(released?.['requestId']).toBe(acquired?.['requestId']);
      expect(acquired?.['holder']).toBe(`deployer-${String(acquired?.['replica'])}`);
      holders.push(String(acquired?.['requestId']));
    }
    expect([...holders].sort()).toEqual(ran.map((r) => r.requestId).sort());

    // Every write to the cluster happened while its replica held the lock.
    const applied = logs
      .map((line, index) => ({ line, index }))
      .filter(({ line }) => line['module'] === 'kube' && (line['msg'] === 'applied' || line['msg'] === 'deleted') && line['namespace'] === namespaces.hammer);
    expect(applied.length).toBeGreaterThanOrEqual(ran.length);
    for (const { line, index } of applied) {
      const lastLock = [...lockLines].reverse().find((l) => l.index < index);
      expect(lastLock?.line['msg'], JSON.stringify(line)).toBe('lease acquired');
      expect(lastLock?.line['replica']).toBe(line['replica']);
    }

    // The final state is the version of the request that held the lock last.
    const last = requests.find((r) => r.requestId === holders.at(-1));
    const web = await adminClient().apps.readNamespacedDeployment({ name: 'web', namespace: namespaces.hammer });
    expect(web.metadata?.annotations?.['deployer.internal/tag']).toBe(last?.tag);
    expect(web.metadata?.annotations?.['deployer.internal/request-id']).toBe(last?.requestId);
    // Released: free for the next deploy, by any replica.
    expect((await leaseSpec(locks, `deployer-${service}`))['holderIdentity']).toBeUndefined();
  });

  it('identical requests in flight are joined: one deploy, one answer for both', async () => {
    const service = names('hammer');
    const [first, second] = await Promise.all(
      ['join-1', 'join-2'].map((requestId) => send(`${a.url}/${service}/deploy`, { auth, json: { tag: tags[2] }, requestId })),
    );
    expect(first?.status, JSON.stringify(first?.body)).toBe(200);
    expect(second?.body).toEqual(first?.body);
    expect(logs).toContainEqual(expect.objectContaining({ msg: 'joined an identical request in flight', requestId: 'join-2', kind: 'deploy' }));
    const acquired = logs.filter((l) => l['msg'] === 'lease acquired' && String(l['requestId']).startsWith('join-'));
    expect(acquired.map((l) => l['requestId'])).toEqual(['join-1']);
    await a.settled();
    const events = logs.filter((l) => l['event'] === 'deploy' && String(l['requestId']).startsWith('join-'));
    expect(events).toHaveLength(1);
  });

  it("a crashed holder's lease (old renewTime) has expired: the next deploy takes it over at once", async () => {
    const service = names('killed');
    await plantLease(locks, `deployer-${service}`, 'dead-pod-7f9c', 600, 15);

    const answer = await send(`${a.url}/${service}/deploy`, { auth, json: { tag: tags[0] }, requestId: 'after-crash' });
    expect(answer.status, JSON.stringify(answer.body)).toBe(200);
    expect(logs).toContainEqual(
      expect.objectContaining({ msg: 'lease taken over from a holder that stopped renewing it', previousHolder: 'dead-pod-7f9c', holder: 'deployer-a', requestId: 'after-crash' }),
    );
    const spec = await leaseSpec(locks, `deployer-${service}`);
    expect(spec['holderIdentity']).toBeUndefined();
    expect(spec['leaseTransitions']).toBe(4);
  });

  it('a holder that stops renewing loses its lease by itself after leaseDurationSeconds', async () => {
    const service = names('stalled');
    // Renewed just now, for 2 seconds, and never again.
    await plantLease(locks, `deployer-${service}`, 'stalled-pod', 0, 2);

    const answer = await send(`${b.url}/${service}/deploy`, { auth, json: { tag: tags[1] }, requestId: 'after-stall' });
    expect(answer.status, JSON.stringify(answer.body)).toBe(200);
    expect(logs).toContainEqual(
      expect.objectContaining({ msg: 'lease taken over from a holder that stopped renewing it', previousHolder: 'stalled-pod', requestId: 'after-stall' }),
    );
  });

  it('a lease another live replica holds makes a deploy wait, then 409 naming the holder; nothing applied', async () => {
    const service = names('busy');
    await plantLease(locks, `deployer-${service}`, 'busy-pod', 0, 3600);

    const answer = await send(`${impatient.url}/${service}/deploy`, { auth, json: { tag: tags[0] } });
    expect(answer.status).toBe(409);
    expect(answer.body).toEqual({
      error: `another deploy of ${service} is running (lock held by busy-pod); try again later`,
      service,
      holder: 'busy-pod',
    });
    await expect(adminClient().apps.readNamespacedDeployment({ name: 'web', namespace: namespaces.busy })).rejects.toThrow();
    expect((await leaseSpec(locks, `deployer-${service}`))['holderIdentity']).toBe('busy-pod');
  });
});
