import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ground } from '../env/ground.js';
import { addCommit } from '../env/git-fixtures.js';
import { adminClient, createNamespace, kubeRequest } from '../env/kube-helpers.js';
import { pushImage } from '../env/registry-helpers.js';
import { configMapYaml, deploymentYaml } from '../env/manifests.js';
import { send, type JsonAnswer } from './flows-setup.js';
import { basic, serviceRepo, startDeployer, type RunningDeployer } from './setup.js';

/**
 * A burst of deploys of one service: the one running finishes, the newest (by arrival) runs next in the place of
 * those waiting, and each of those answers from the newest's outcome — 200 with `supersededBy` when the deployed
 * commit contains its own (its change is live), else 409 naming the newer request. Arrival order is made certain by
 * a Lease another replica holds: the first request waits for it while the others queue behind it, and each request
 * is sent once the one before it is counted in flight.
 */
const SECRET = 'ci-secret-b0257';
const auth = basic('ci', SECRET);
const short = (sha: string): string => sha.slice(0, 7);

describe('a burst of deploys of one service', () => {
  let deployer: RunningDeployer;
  let svc: Awaited<ReturnType<typeof serviceRepo>>;
  let namespace = '';
  let locks = '';
  let registry = '';
  let repository = '';

  const commit = async (value: string, options: { from?: string; branch?: string } = {}): Promise<string> => {
    const sha = await addCommit(ground('git').root, svc.name, { 'kubernetes/config.yaml': configMapYaml('web-config', { value }) }, options);
    await pushImage({ host: registry, repository, tag: `main-${short(sha)}` });
    return sha;
  };

  const inFlight = async (): Promise<number> => {
    const text = await (await fetch(`${deployer.url}/metrics`)).text();
    return Number(/^deployer_deploys_in_flight (\d+)$/m.exec(text)?.[1] ?? 'NaN');
  };

  /** Sends the deploys one after the other, each once the one before it is in the deployer's queue. */
  const burst = async (requests: Array<{ id: string; commit: string }>): Promise<Map<string, JsonAnswer>> => {
    const answers = new Map<string, Promise<JsonAnswer>>();
    for (const [i, r] of requests.entries()) {
      answers.set(r.id, send(`${deployer.url}/${svc.name}/deploy`, { auth, json: { commit: r.commit }, requestId: r.id }));
      while ((await inFlight()) < i + 1) await new Promise((resolve) => setTimeout(resolve, 20));
    }
    await kubeRequest('DELETE', `/apis/coordination.k8s.io/v1/namespaces/${locks}/leases/deployer-${svc.name}`);
    return new Map(await Promise.all([...answers].map(async ([id, answer]) => [id, await answer] as const)));
  };

  /** The service's Lease as another live replica holds it (the deployer's own, released one, is replaced). */
  const holdLease = async (): Promise<void> => {
    await kubeRequest('DELETE', `/apis/coordination.k8s.io/v1/namespaces/${locks}/leases/deployer-${svc.name}`);
    const at = new Date().toISOString().replace(/\.(\d{3})Z$/, '.$1000Z');
    const res = await kubeRequest('POST', `/apis/coordination.k8s.io/v1/namespaces/${locks}/leases`, {
      body: JSON.stringify({
        apiVersion: 'coordination.k8s.io/v1',
        kind: 'Lease',
        metadata: { name: `deployer-${svc.name}`, namespace: locks },
        spec: { holderIdentity: 'other-replica', leaseDurationSeconds: 3600, acquireTime: at, renewTime: at },
      }),
    });
    expect(res.status).toBe(201);
  };

  const configValue = async (): Promise<string | undefined> =>
    (await adminClient().core.readNamespacedConfigMap({ name: 'web-config', namespace })).data?.['value'];

  beforeAll(async () => {
    registry = ground('registry').anonymous;
    repository = `team/burst-${Date.now().toString(36)}`;
    svc = await serviceRepo('burst', [
      {
        files: {
          'kubernetes/deployment.yaml': deploymentYaml({ name: 'web', image: `${registry}/${repository}`, port: false }),
          'kubernetes/config.yaml': configMapYaml('web-config', { value: 'zero' }),
        },
      },
    ]);
    await pushImage({ host: registry, repository, tag: `main-${short(svc.repo.shas[0] ?? '')}` });
    namespace = await createNamespace('burst');
    locks = await createNamespace('burst-locks');
    deployer = await startDeployer({
      tokens: { ci: { secret: { value: SECRET } } },
      services: { [svc.name]: { repository: svc.repository, namespace } },
      versions: { registryWaitSeconds: 0 },
      kubernetes: { kubeconfig: ground('kube').adminKubeconfig, leaseNamespace: locks },
    });
    expect((await send(`${deployer.url}/${svc.name}/deploy`, { auth, json: { commit: svc.repo.shas[0] } })).status).toBe(200);
  });

  afterAll(async () => {
    await deployer?.close();
  });

  it('runs the newest in the place of those waiting: 200 supersededBy for a contained commit, 409 for one on another branch', async () => {
    const root = svc.repo.shas[0] ?? '';
    const c1 = await commit('one');
    const c2 = await commit('two');
    const side = await commit('side', { from: root, branch: 'side' });
    const c3 = await commit('three', { branch: 'main', from: c2 });
    const c4 = await commit('four', { branch: 'main', from: c3 });
    await holdLease();

    const answers = await burst([
      { id: 'burst-1', commit: c1 },
      { id: 'burst-2', commit: c2 },
      { id: 'burst-side', commit: side },
      { id: 'burst-3', commit: c3 },
      { id: 'burst-4', commit: c4 },
    ]);

    // The first was running (it held the queue while it waited for the Lease): it deploys its own commit.
    expect(answers.get('burst-1')).toMatchObject({ status: 200, body: { commit: c1 } });
    expect(answers.get('burst-1')?.body['supersededBy']).toBeUndefined();
    // The newest ran in the place of the three waiting before it.
    expect(answers.get('burst-4')).toMatchObject({ status: 200, body: { commit: c4, tag: `main-${short(c4)}` } });
    expect(answers.get('burst-4')?.body['supersededBy']).toBeUndefined();
    const supersededBy = { requestId: 'burst-4', commit: c4, tag: `main-${short(c4)}` };
    for (const id of ['burst-2', 'burst-3']) {
      expect(answers.get(id)).toMatchObject({ status: 200, body: { commit: c4, supersededBy } });
      expect(String(answers.get(id)?.body['message'])).toContain('newer request burst-4 took the place of this one');
    }
    expect(answers.get('burst-side')).toEqual({
      status: 409,
      body: {
        error:
          `${svc.name} ${side} was not deployed: newer request burst-4 took its place and deployed main-${short(c4)} ` +
          `(commit ${c4}), which does not contain it`,
        supersededBy,
      },
    });
    expect(await configValue()).toBe('four');
    // Only the two deploys that ran are in the event log (its lines come after the answers).
    await deployer.settled();
    const lines = deployer.logs.map((l) => String(l['msg'])).filter((m) => m.startsWith(`${svc.name};`) && m.includes(';deploy success;'));
    expect(lines.map((l) => l.split(';')[1])).toEqual([short(root), short(c1), short(c4)]);
    const superseded = deployer.logs.filter((l) => l['msg'] === 'superseded by a newer request');
    expect(superseded.map((l) => [l['requestId'], l['supersededBy'], l['live']])).toEqual(
      expect.arrayContaining([
        ['burst-2', 'burst-4', true],
        ['burst-side', 'burst-4', false],
        ['burst-3', 'burst-4', true],
      ]),
    );
  });

  it('when the newest fails, those it took the place of answer 409 naming it and its error; nothing of theirs is applied', async () => {
    const before = await configValue();
    const good = await commit('five');
    const broken = await addCommit(ground('git').root, svc.name, { 'kubernetes/config.yaml': 'kind: ConfigMap\nmetadata: [unclosed\n' });
    await pushImage({ host: registry, repository, tag: `main-${short(broken)}` });
    const running = await commit('six');
    await holdLease();

    const answers = await burst([
      { id: 'fail-running', commit: running },
      { id: 'fail-good', commit: good },
      { id: 'fail-broken', commit: broken },
    ]);

    expect(answers.get('fail-running')).toMatchObject({ status: 200, body: { commit: running } });
    expect(answers.get('fail-broken')?.status).toBe(422);
    const failed = answers.get('fail-good');
    expect(failed?.status).toBe(409);
    expect(failed?.body['error']).toMatch(new RegExp(`^${svc.name} ${good} was not deployed: newer request fail-broken took its place and failed: `));
    expect(failed?.body['supersededBy']).toEqual({ requestId: 'fail-broken' });
    expect(before).toBe('four');
    expect(await configValue()).toBe('six');
  });
});
