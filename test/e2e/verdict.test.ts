import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ground } from '../env/ground.js';
import { createNamespace, markDeploymentReady, setPodsWaiting } from '../env/kube-helpers.js';
import { pushImage } from '../env/registry-helpers.js';
import { configMapYaml, deploymentYaml } from '../env/manifests.js';
import { send, waitForTag } from './flows-setup.js';
import { basic, serviceRepo, startDeployer, type RunningDeployer } from './setup.js';

const SECRET = 'ops-secret-ver0ict';
const auth = basic('ops', SECRET);
const short = (sha: string): string => sha.slice(0, 7);

interface VerdictView {
  result: string;
  message: string;
  deployments: Array<{ namespace: string; name: string; state: string; reason: string }>;
  waitedMs: number;
}

describe('rollout verdict: wait= on deploy, canary, rollback and promote', () => {
  let deployer: RunningDeployer;
  let namespace: string;
  let svc: Awaited<ReturnType<typeof serviceRepo>>;
  let shas: string[] = [];
  const tag = (i: number): string => `main-${short(shas[i] ?? '')}`;
  const url = (path: string): string => `${deployer.url}/${svc.name}/${path}`;

  beforeAll(async () => {
    const registry = ground('registry').anonymous;
    namespace = await createNamespace('verdict');
    const repository = `team/verdict-${Date.now().toString(36)}`;
    svc = await serviceRepo('rollout', [
      { files: { 'kubernetes/deployment.yaml': deploymentYaml({ name: 'api', image: `${registry}/${repository}`, replicas: 2, port: false }) } },
      { files: { 'kubernetes/config.yaml': configMapYaml('api-config', { value: 'two' }) } },
      { files: { 'kubernetes/config.yaml': configMapYaml('api-config', { value: 'three' }) } },
      { files: { 'kubernetes/config.yaml': configMapYaml('api-config', { value: 'four' }) } },
    ]);
    shas = svc.repo.shas;
    for (const sha of shas) await pushImage({ host: registry, repository, tag: `main-${short(sha)}` });
    deployer = await startDeployer({
      tokens: { ops: { secret: { value: SECRET } } },
      services: { [svc.name]: { repository: svc.repository, namespace } },
      versions: { registryWaitSeconds: 0 },
    });
  });

  afterAll(async () => {
    await deployer?.close();
  });

  it('without wait, the answer comes once the objects are applied, with no verdict', async () => {
    const answer = await send(url('deploy'), { auth, json: { tag: tag(0) } });
    expect(answer.status, JSON.stringify(answer.body)).toBe(200);
    expect(answer.body['verdict']).toBeUndefined();
    await markDeploymentReady(namespace, 'api');
  });

  it('all new pods Ready and old ones gone → success (200)', async () => {
    const [answer] = await Promise.all([
      send(url('deploy'), { auth, json: { tag: tag(1), wait: '60s' } }),
      waitForTag(namespace, 'api', tag(1)).then(() => markDeploymentReady(namespace, 'api')),
    ]);
    expect(answer.status, JSON.stringify(answer.body)).toBe(200);
    const verdict = answer.body['verdict'] as VerdictView;
    expect(verdict).toMatchObject({
      result: 'success',
      message: 'rolled out: api: 2/2 available',
      deployments: [{ namespace, name: 'api', state: 'done', reason: '2/2 available' }],
    });
    expect(answer.body['message']).toBe(`${svc.name} ${tag(1)} is deployed`);
  });

  it('CrashLoopBackOff on every new pod → failure (422), as soon as it shows', async () => {
    const [answer] = await Promise.all([
      send(url('deploy'), { auth, json: { tag: tag(2), wait: '5m' } }),
      waitForTag(namespace, 'api', tag(2)).then(() => setPodsWaiting(namespace, 'api', 'CrashLoopBackOff')),
    ]);
    expect(answer.status, JSON.stringify(answer.body)).toBe(422);
    const verdict = answer.body['verdict'] as VerdictView;
    expect(verdict.result).toBe('failure');
    expect(verdict.deployments).toEqual([
      expect.objectContaining({ name: 'api', state: 'failed', reason: expect.stringMatching(/^pod api-[a-z0-9-]+: container app: CrashLoopBackOff \(test ground: CrashLoopBackOff\)$/) as unknown }),
    ]);
    expect(answer.body['error']).toBe(verdict.message);
    expect(verdict.message).toMatch(/^the rollout failed: api: pod api-/);
    // The deploy itself went through: the answer still says what was applied.
    expect(answer.body['tag']).toBe(tag(2));
    expect(verdict.waitedMs).toBeLessThan(5 * 60_000);
  });

  it('ImagePullBackOff on the canary pod → failure of the canary rollout', async () => {
    const [answer] = await Promise.all([
      send(url('canary'), { auth, json: { tag: tag(3), wait: true } }),
      waitForTag(namespace, 'api-canary', tag(3)).then(() => setPodsWaiting(namespace, 'api-canary', 'ImagePullBackOff')),
    ]);
    expect(answer.status, JSON.stringify(answer.body)).toBe(422);
    expect((answer.body['verdict'] as VerdictView).deployments).toEqual([
      expect.objectContaining({ name: 'api-canary', state: 'failed', reason: expect.stringContaining('ImagePullBackOff') as unknown }),
    ]);
  });

  it('rollback with wait: removing the canary and rolling stable back to a ready version → success', async () => {
    const [answer] = await Promise.all([
      send(url('rollback?wait=60s'), { auth, json: { tag: tag(1) } }),
      waitForTag(namespace, 'api', tag(1)).then(() => markDeploymentReady(namespace, 'api')),
    ]);
    expect(answer.status, JSON.stringify(answer.body)).toBe(200);
    expect(answer.body['message']).toBe(`${svc.name} is rolled back to ${tag(1)}`);
    expect((answer.body['verdict'] as VerdictView).result).toBe('success');
  });

  it('nothing happens → timeout (202), reported as a timeout, not a failure', async () => {
    const answer = await send(url('canary'), { auth, json: { tag: tag(3), wait: '2s' } });
    expect(answer.status, JSON.stringify(answer.body)).toBe(202);
    const verdict = answer.body['verdict'] as VerdictView;
    expect(verdict.result).toBe('timeout');
    expect(verdict.message).toBe('the rollout did not finish within 2s: api-canary: 1/1 updated, 0 available');
    expect(verdict.deployments).toEqual([expect.objectContaining({ name: 'api-canary', state: 'progressing' })]);
    expect(verdict.waitedMs).toBeGreaterThanOrEqual(2000);
    expect(answer.body['error']).toBeUndefined();
  });

  it('promote with wait → success once the promoted pods are ready', async () => {
    const [answer] = await Promise.all([
      send(url('promote'), { auth, json: { wait: '60s' } }),
      waitForTag(namespace, 'api', tag(3)).then(() => markDeploymentReady(namespace, 'api')),
    ]);
    expect(answer.status, JSON.stringify(answer.body)).toBe(200);
    expect(answer.body).toMatchObject({ outcome: 'promoted', tag: tag(3), verdict: { result: 'success' } });
  });

  it('a wait longer than 30 minutes is refused (400)', async () => {
    const answer = await send(url('deploy?wait=2h'), { auth, json: { tag: tag(3) } });
    expect(answer.status).toBe(400);
    expect(answer.body).toEqual({ error: 'wait must be at most 30m', field: 'wait' });
  });
});
