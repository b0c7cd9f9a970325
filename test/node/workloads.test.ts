import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { send } from '../e2e/flows-setup.js';
import { basic, serviceRepo, type RunningDeployer } from '../e2e/setup.js';
import { ground } from '../env/ground.js';
import { adminClient, createNamespace } from '../env/kube-helpers.js';
import { deploymentYaml } from '../env/manifests.js';
import {
  createHostPathVolumes,
  daemonSetYaml,
  deleteVolumes,
  getSample,
  podLogs,
  pushSample,
  readyPods,
  runningPods,
  startNodeDeployer,
  statefulSetManifests,
  type NodeDeployer,
} from './real-pods.js';

/**
 * `wait=` for StatefulSets and DaemonSets on pods that really run, judged as `kubectl rollout status` judges them:
 * a StatefulSet whose pods mount volume claims bound to hostPath PersistentVolumes, a DaemonSet on the node, and a
 * service holding a DaemonSet and a Deployment (its verdict is the worst of them and names each). The failures are
 * real CrashLoopBackOffs of the new revision's pods. Nobody writes status here.
 */

const SECRET = 'ops-secret-workl0ads';
const auth = basic('ops', SECRET);
const short = (sha: string): string => sha.slice(0, 7);

interface VerdictView {
  result: string;
  message: string;
  deployments: Array<{ kind: string; namespace: string; name: string; state: string; reason: string }>;
}

type Repo = Awaited<ReturnType<typeof serviceRepo>>;

describe('rollout verdict of StatefulSets and DaemonSets on real pods', () => {
  let deployer: RunningDeployer;
  let node: NodeDeployer;
  let namespace: string;
  let volumes: string[] = [];
  let db: Repo;
  let agents: Repo;
  const tagOf = (s: Repo, i: number): string => `main-${short(s.repo.shas[i] ?? '')}`;
  const url = (s: Repo, path: string): string => `${deployer.url}/${s.name}/${path}`;
  const verdictOf = (body: Record<string, unknown>): VerdictView => body['verdict'] as VerdictView;

  beforeAll(async () => {
    namespace = await createNamespace('real-workloads');
    const registry = ground('registry').anonymous;
    const repository = `real/workloads-${Date.now().toString(36)}`;
    const image = `${registry}/${repository}`;
    db = await serviceRepo('db', [
      { files: statefulSetManifests({ name: 'db', image, replicas: 2 }) },
      { files: statefulSetManifests({ name: 'db', image, replicas: 2, env: { CRASH_AT_START: 'true' } }) },
    ]);
    agents = await serviceRepo('agents', [
      {
        files: {
          'kubernetes/daemonset.yaml': daemonSetYaml({ name: 'agent', image }),
          'kubernetes/deployment.yaml': deploymentYaml({ name: 'collector', image, realNode: { schedulerName: ground('node').schedulerName } }),
        },
      },
      { files: { 'kubernetes/daemonset.yaml': daemonSetYaml({ name: 'agent', image, env: { CRASH_AT_START: 'true' } }) } },
    ]);
    await pushSample(repository, [...db.repo.shas, ...agents.repo.shas].map((sha) => `main-${short(sha)}`));
    volumes = await createHostPathVolumes(namespace, ['data-db-0', 'data-db-1']);
    node = await startNodeDeployer({ namespace, tokens: { ops: { secret: { value: SECRET } } }, services: [{ repo: db }, { repo: agents }] });
    ({ deployer } = node);
  });

  afterAll(async () => {
    await node?.close();
    await deleteVolumes(volumes);
  });

  it('a 2-replica StatefulSet with volume claims → success once both pods are ready; the claims are bound to the hostPath volumes', async () => {
    const answer = await send(url(db, 'deploy'), { auth, json: { tag: tagOf(db, 0), wait: '4m' } });
    expect(answer.status, `${JSON.stringify(answer.body)}\n${await podLogs(namespace, 'db')}`).toBe(200);
    expect(verdictOf(answer.body)).toMatchObject({
      result: 'success',
      message: 'rolled out: StatefulSet db: 2/2 ready, 2 updated',
      deployments: [{ kind: 'StatefulSet', namespace, name: 'db', state: 'done', reason: '2/2 ready, 2 updated' }],
    });
    const claims = await adminClient().core.listNamespacedPersistentVolumeClaim({ namespace });
    expect(claims.items.map((c) => [c.metadata?.name, c.status?.phase, c.spec?.volumeName]).sort()).toEqual([
      ['data-db-0', 'Bound', `${namespace}-data-db-0`],
      ['data-db-1', 'Bound', `${namespace}-data-db-1`],
    ]);
    const pods = await runningPods(namespace, 'db');
    expect(pods.map((p) => [p.name, p.ready]).sort()).toEqual([
      ['db-0', true],
      ['db-1', true],
    ]);
    for (const pod of pods) expect(await getSample(`${pod.ip}:8080`)).toMatchObject({ status: 200, version: tagOf(db, 0), pod: pod.name });
  }, 300_000);

  it('a StatefulSet update whose new pod crashes → failure by a real CrashLoopBackOff of the new revision; the older pod keeps serving', async () => {
    const answer = await send(url(db, 'deploy'), { auth, json: { tag: tagOf(db, 1), wait: '5m' } });
    expect(answer.status, JSON.stringify(answer.body)).toBe(422);
    const verdict = verdictOf(answer.body);
    expect(verdict.result).toBe('failure');
    // A rolling update replaces the highest ordinal first, and goes no further while it is not ready.
    expect(verdict.deployments).toEqual([
      expect.objectContaining({ kind: 'StatefulSet', name: 'db', state: 'failed', reason: expect.stringMatching(/^pod db-1: container app: CrashLoopBackOff/) as unknown }),
    ]);
    expect(answer.body['error']).toBe(verdict.message);
    expect(verdict.message).toMatch(/^the rollout failed: StatefulSet db: pod db-1: /);
    const first = (await runningPods(namespace, 'db')).find((p) => p.name === 'db-0');
    expect(first).toMatchObject({ ready: true });
    expect(await getSample(`${first?.ip ?? ''}:8080`)).toMatchObject({ version: tagOf(db, 0) });
  }, 360_000);

  it('a DaemonSet and a Deployment → success once the node runs both; the verdict names each with its kind', async () => {
    const answer = await send(url(agents, 'deploy'), { auth, json: { tag: tagOf(agents, 0), wait: '4m' } });
    expect(answer.status, `${JSON.stringify(answer.body)}\n${await podLogs(namespace, 'agent')}`).toBe(200);
    const verdict = verdictOf(answer.body);
    expect(verdict.result).toBe('success');
    expect(verdict.deployments).toEqual([
      { kind: 'DaemonSet', namespace, name: 'agent', state: 'done', reason: '1/1 available' },
      expect.objectContaining({ kind: 'Deployment', namespace, name: 'collector', state: 'done', reason: '1/1 available' }),
    ]);
    expect(verdict.message).toBe('rolled out: DaemonSet agent: 1/1 available; collector: 1/1 available');
    const [pod] = await readyPods(namespace, 'agent', 1);
    expect(pod).toBeDefined();
    expect(await getSample(`${pod?.ip ?? ''}:8080`)).toMatchObject({ status: 200, version: tagOf(agents, 0) });
  }, 300_000);

  it('a DaemonSet update whose new pod crashes → failure of the service (the worst of its workloads), naming the DaemonSet', async () => {
    const answer = await send(url(agents, 'deploy'), { auth, json: { tag: tagOf(agents, 1), wait: '5m' } });
    expect(answer.status, JSON.stringify(answer.body)).toBe(422);
    const verdict = verdictOf(answer.body);
    expect(verdict.result).toBe('failure');
    expect(verdict.message).toMatch(/^the rollout failed: DaemonSet agent: pod agent-[a-z0-9]+: container app: CrashLoopBackOff/);
    expect(verdict.deployments).toEqual([
      expect.objectContaining({ kind: 'DaemonSet', name: 'agent', state: 'failed' }),
      // The Deployment rolls out the new tag too (its pods run well): done, or still on its way when the verdict came.
      expect.objectContaining({ kind: 'Deployment', name: 'collector', state: expect.stringMatching(/^(done|progressing)$/) as unknown }),
    ]);
  }, 360_000);
});
