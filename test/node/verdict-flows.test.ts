import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { send } from '../e2e/flows-setup.js';
import { basic } from '../e2e/setup.js';
import { configMapYaml } from '../env/manifests.js';
import { getSample, podLogs, readyPods, runningPods, sampleManifests, startSampleService, type SampleService } from './real-pods.js';

/**
 * `wait=` through the flows (deploy, canary, rollback, promote) on pods that really run: readiness from the
 * kubelet's probes, a timeout from a readiness probe that never passes. The cases test/e2e/verdict.test.ts drove by
 * writing pod status by hand.
 */

const SECRET = 'ops-secret-fl0ws-real';
const auth = basic('ops', SECRET);

interface VerdictView {
  result: string;
  message: string;
  deployments: Array<{ kind: string; namespace: string; name: string; state: string; reason: string }>;
  waitedMs: number;
}

describe('rollout verdict through deploy, canary, rollback and promote, on real pods', () => {
  let rollout: SampleService;
  let namespace: string;
  let svc: SampleService['svc'];
  const tag = (i: number): string => rollout.tag(i);
  const url = (path: string): string => rollout.url(path);
  const verdictOf = (body: Record<string, unknown>): VerdictView => body['verdict'] as VerdictView;
  /** The versions the Ready pods of `app=api` (stable and canary alike) answer with. */
  const versions = async (): Promise<string[]> => {
    const pods = (await runningPods(namespace, 'api')).filter((p) => p.ready);
    return (await Promise.all(pods.map(async (p) => (await getSample(`${p.ip}:8080`)).version))).sort();
  };

  /** The canary's pod once it is Running. */
  const runningCanary = async (): Promise<{ ip: string; ready: boolean }> => {
    const deadline = Date.now() + 120_000;
    for (;;) {
      const pod = (await runningPods(namespace, 'api')).find((p) => p.name.startsWith('api-canary-'));
      if (pod !== undefined) return pod;
      if (Date.now() > deadline) throw new Error(`the canary pod is not Running:\n${await podLogs(namespace, 'api')}`);
      await new Promise((r) => setTimeout(r, 500));
    }
  };

  beforeAll(async () => {
    rollout = await startSampleService({
      prefix: 'rollout',
      commits: (image) => [
        { files: sampleManifests({ name: 'api', image, replicas: 2 }) },
        { files: { 'kubernetes/config.yaml': configMapYaml('api-config', { value: 'two' }) } },
        // A version whose pods run but never pass their readiness probe.
        { files: sampleManifests({ name: 'api', image, replicas: 2, env: { READY: 'false' } }) },
        { files: sampleManifests({ name: 'api', image, replicas: 2 }) },
      ],
      tokens: { ops: { secret: { value: SECRET } } },
    });
    ({ namespace, svc } = rollout);
  });

  afterAll(async () => {
    await rollout?.close();
  });

  it('a deploy over a running version → success once the new pods are ready and the old ones gone', async () => {
    const first = await send(url('deploy'), { auth, json: { tag: tag(0), wait: '3m' } });
    expect(first.status, `${JSON.stringify(first.body)}\n${await podLogs(namespace, 'api')}`).toBe(200);

    const answer = await send(url('deploy'), { auth, json: { tag: tag(1), wait: '3m' } });
    expect(answer.status, JSON.stringify(answer.body)).toBe(200);
    expect(verdictOf(answer.body)).toMatchObject({
      result: 'success',
      message: 'rolled out: api: 2/2 available',
      deployments: [{ kind: 'Deployment', namespace, name: 'api', state: 'done', reason: '2/2 available' }],
    });
    expect(answer.body['message']).toBe(`${svc.name} ${tag(1)} is deployed`);
    expect(await versions()).toEqual([tag(1), tag(1)]);
  }, 400_000);

  it('a canary whose readiness probe never passes → timeout (202) after the short wait, not a failure', async () => {
    const answer = await send(url('canary'), { auth, json: { tag: tag(2), wait: '3s' } });
    expect(answer.status, JSON.stringify(answer.body)).toBe(202);
    const verdict = verdictOf(answer.body);
    expect(verdict.result).toBe('timeout');
    expect(verdict.message).toMatch(/^the rollout did not finish within 3s: api-canary: /);
    expect(verdict.deployments).toEqual([expect.objectContaining({ kind: 'Deployment', name: 'api-canary', state: 'progressing' })]);
    expect(verdict.waitedMs).toBeGreaterThanOrEqual(3000);
    expect(answer.body['error']).toBeUndefined();
    // The canary pod runs (perhaps a moment after the answer); its probe is what fails, the kubelet's, not a status
    // written by the test.
    const canary = await runningCanary();
    expect(canary.ready).toBe(false);
    expect((await getSample(`${canary.ip}:8080`, '/ready')).status).toBe(503);
  }, 120_000);

  it('rollback with wait: the canary removed and stable rolled back to an older version → success once its pods are ready', async () => {
    const answer = await send(url('rollback?wait=3m'), { auth, json: { tag: tag(0) } });
    expect(answer.status, JSON.stringify(answer.body)).toBe(200);
    expect(answer.body['message']).toBe(`${svc.name} is rolled back to ${tag(0)}`);
    expect(verdictOf(answer.body)).toMatchObject({ result: 'success', message: 'rolled out: api: 2/2 available' });
    expect(await versions()).toEqual([tag(0), tag(0)]);
  }, 240_000);

  it('promote with wait → success once the promoted pods are ready', async () => {
    const canary = await send(url('canary'), { auth, json: { tag: tag(3), wait: '3m' } });
    expect(canary.status, JSON.stringify(canary.body)).toBe(200);
    expect(verdictOf(canary.body)).toMatchObject({ result: 'success', message: 'rolled out: api-canary: 1/1 available' });

    const answer = await send(url('promote'), { auth, json: { wait: '3m' } });
    expect(answer.status, JSON.stringify(answer.body)).toBe(200);
    expect(answer.body).toMatchObject({ outcome: 'promoted', tag: tag(3), verdict: { result: 'success' } });
    await readyPods(namespace, 'api', 2);
    expect(await versions()).toEqual([tag(3), tag(3)]);
  }, 400_000);
});
