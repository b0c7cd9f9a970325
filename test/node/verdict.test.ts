import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { send } from '../e2e/flows-setup.js';
import { basic, serviceRepo, type RunningDeployer } from '../e2e/setup.js';
import { ground } from '../env/ground.js';
import { createNamespace } from '../env/kube-helpers.js';
import { pushProgramImage } from '../env/node-images.js';
import { registryFetch } from '../env/registry-helpers.js';
import { getSample, pushSample, runningPods, sampleManifests, startNodeDeployer, type NodeDeployer } from './real-pods.js';

/**
 * The rollout verdict against pods that really run: readiness comes from the kubelet's probes, CrashLoopBackOff
 * from a container that exits, the pull failure from containerd, the progress deadline from the deployment
 * controller. Nobody writes pod status here.
 */

const SECRET = 'ops-secret-real-n0de';
const auth = basic('ops', SECRET);
const short = (sha: string): string => sha.slice(0, 7);

interface VerdictView {
  result: string;
  message: string;
  deployments: Array<{ namespace: string; name: string; state: string; reason: string }>;
}

/** How long a step took, printed for the record (speed is measured, never asserted). */
function timed<T>(what: string, run: () => Promise<T>): Promise<T> {
  const start = Date.now();
  return run().finally(() => {
    process.stdout.write(`[real node] ${what}: ${((Date.now() - start) / 1000).toFixed(1)} s\n`);
  });
}

describe('rollout verdict on real pods', () => {
  let deployer: RunningDeployer;
  let node: NodeDeployer;
  let namespace: string;
  let svc: Awaited<ReturnType<typeof serviceRepo>>;
  let broken: Awaited<ReturnType<typeof serviceRepo>>;
  let stuck: Awaited<ReturnType<typeof serviceRepo>>;
  const tagOf = (s: Awaited<ReturnType<typeof serviceRepo>>, i: number): string => `main-${short(s.repo.shas[i] ?? '')}`;
  const url = (s: Awaited<ReturnType<typeof serviceRepo>>, path: string): string => `${deployer.url}/${s.name}/${path}`;

  beforeAll(async () => {
    namespace = await createNamespace('real-verdict');
    const repository = `real/verdict-${Date.now().toString(36)}`;
    const image = `${ground('registry').anonymous}/${repository}`;
    svc = await serviceRepo('real', [
      { files: sampleManifests({ name: 'web', image, replicas: 2, env: { VERSION: 'v1' } }) },
      { files: sampleManifests({ name: 'web', image, replicas: 2, env: { VERSION: 'v2', CRASH_AT_START: 'true' } }) },
    ]);
    await pushSample(repository, svc.repo.shas.map((sha) => `main-${short(sha)}`));

    // An image whose config blob is gone from the registry: the tag resolves, containerd's pull fails.
    const brokenRepository = `${repository}-broken`;
    broken = await serviceRepo('broken', [
      { files: sampleManifests({ name: 'broken', image: `${ground('registry').anonymous}/${brokenRepository}` }) },
    ]);
    const host = ground('registry').anonymous;
    await pushProgramImage({ host, repository: brokenRepository, tag: tagOf(broken, 0), program: 'sample', env: { BROKEN: brokenRepository } });
    const manifest = (await (
      await registryFetch(host, `/v2/${brokenRepository}/manifests/${tagOf(broken, 0)}`, { headers: { accept: 'application/vnd.oci.image.manifest.v1+json' } })
    ).json()) as { config: { digest: string } };
    const deleted = await registryFetch(host, `/v2/${brokenRepository}/blobs/${manifest.config.digest}`, { method: 'DELETE' });
    expect(deleted.status).toBe(202);

    // Pods that run but never pass their readiness probe, with a short progress deadline.
    const stuckRepository = `${repository}-stuck`;
    stuck = await serviceRepo('stuck', [
      {
        files: sampleManifests({
          name: 'stuck',
          image: `${ground('registry').anonymous}/${stuckRepository}`,
          env: { READY: 'false' },
          progressDeadlineSeconds: 10,
        }),
      },
    ]);
    await pushSample(stuckRepository, [tagOf(stuck, 0)]);

    node = await startNodeDeployer({
      namespace,
      tokens: { ops: { secret: { value: SECRET } } },
      services: [{ repo: svc }, { repo: broken }, { repo: stuck }],
    });
    ({ deployer } = node);
  });

  afterAll(async () => {
    await node?.close();
  });

  it('a 2-replica service → success once both pods pass their readiness probe; they answer on their pod IPs', async () => {
    const answer = await timed('deploy to success verdict, 2 replicas', () => send(url(svc, 'deploy'), { auth, json: { tag: tagOf(svc, 0), wait: '3m' } }));
    expect(answer.status, JSON.stringify(answer.body)).toBe(200);
    expect(answer.body['verdict']).toMatchObject({
      result: 'success',
      message: 'rolled out: web: 2/2 available',
      deployments: [{ namespace, name: 'web', state: 'done', reason: '2/2 available' }],
    });
    const pods = await runningPods(namespace, 'web');
    expect(pods).toHaveLength(2);
    for (const pod of pods) {
      expect(pod).toMatchObject({ ready: true, node: ground('node').name });
      const reply = await getSample(`${pod.ip}:8080`);
      // The deployer sets VERSION to the tag it deploys, which the sample service answers with.
      expect(reply).toMatchObject({ status: 200, version: tagOf(svc, 0), pod: pod.name });
    }
  }, 240_000);

  it('a canary that crashes at start → failure by a real CrashLoopBackOff; the stable pods keep serving', async () => {
    const answer = await timed('crashing canary deploy to failure verdict', () =>
      send(url(svc, 'canary'), { auth, json: { tag: tagOf(svc, 1), wait: '5m' } }),
    );
    expect(answer.status, JSON.stringify(answer.body)).toBe(422);
    const verdict = answer.body['verdict'] as VerdictView;
    expect(verdict.result).toBe('failure');
    expect(verdict.deployments).toEqual([
      expect.objectContaining({ name: 'web-canary', state: 'failed', reason: expect.stringMatching(/^pod web-canary-[a-z0-9-]+: container app: CrashLoopBackOff/) as unknown }),
    ]);
    expect(answer.body['error']).toBe(verdict.message);
    expect(verdict.message).toMatch(/^the rollout failed: web-canary: pod web-canary-/);
    // The canary itself was applied: the answer still says what.
    expect(answer.body['tag']).toBe(tagOf(svc, 1));
    const stable = (await runningPods(namespace, 'web')).filter((p) => !p.name.startsWith('web-canary'));
    expect(stable.filter((p) => p.ready)).toHaveLength(2);
  }, 360_000);

  it('an image containerd cannot pull → failure by a real ErrImagePull or ImagePullBackOff', async () => {
    const answer = await send(url(broken, 'deploy'), { auth, json: { tag: tagOf(broken, 0), wait: '3m' } });
    expect(answer.status, JSON.stringify(answer.body)).toBe(422);
    const verdict = answer.body['verdict'] as VerdictView;
    expect(verdict.deployments).toEqual([
      expect.objectContaining({ name: 'broken', state: 'failed', reason: expect.stringMatching(/^pod broken-[a-z0-9-]+: container app: (ErrImagePull|ImagePullBackOff)/) as unknown }),
    ]);
  }, 240_000);

  it('pods that never become ready → failure by the real progress deadline', async () => {
    const answer = await send(url(stuck, 'deploy'), { auth, json: { tag: tagOf(stuck, 0), wait: '3m' } });
    expect(answer.status, JSON.stringify(answer.body)).toBe(422);
    const verdict = answer.body['verdict'] as VerdictView;
    expect(verdict.deployments).toEqual([
      expect.objectContaining({ name: 'stuck', state: 'failed', reason: expect.stringMatching(/^ProgressDeadlineExceeded/) as unknown }),
    ]);
    // The pod itself runs: it is the probe that fails.
    const pods = await runningPods(namespace, 'stuck');
    expect(pods).toEqual([expect.objectContaining({ ready: false })]);
    const probe = await getSample(`${pods[0]?.ip ?? ''}:8080`, '/ready');
    expect(probe.status).toBe(503);
  }, 240_000);
});
