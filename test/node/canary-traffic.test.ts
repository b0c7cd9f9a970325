import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { send } from '../e2e/flows-setup.js';
import { basic, serviceRepo, startDeployer, type RunningDeployer } from '../e2e/setup.js';
import { ground } from '../env/ground.js';
import { adminClient, createNamespace } from '../env/kube-helpers.js';
import { clusterIp, getSample, pushSample, runningPods, sampleManifests } from './real-pods.js';

/**
 * The canary's share of real traffic: kube-proxy spreads connections to the Service's ClusterIP over every ready
 * pod the Service selects, so 3 stable pods and 1 canary pod get about 3/4 and 1/4 of the requests.
 */

const SECRET = 'ops-secret-can4ry-traffic';
const auth = basic('ops', SECRET);
const short = (sha: string): string => sha.slice(0, 7);
const REQUESTS = 400;

describe('canary traffic through the Service ClusterIP', () => {
  let deployer: RunningDeployer;
  let namespace: string;
  let svc: Awaited<ReturnType<typeof serviceRepo>>;
  const tag = (i: number): string => `main-${short(svc.repo.shas[i] ?? '')}`;
  const url = (path: string): string => `${deployer.url}/${svc.name}/${path}`;

  beforeAll(async () => {
    namespace = await createNamespace('real-canary');
    const repository = `real/canary-${Date.now().toString(36)}`;
    const image = `${ground('registry').anonymous}/${repository}`;
    svc = await serviceRepo('traffic', [
      { files: sampleManifests({ name: 'shop', image, replicas: 3, env: { VERSION: 'stable' } }) },
      { files: sampleManifests({ name: 'shop', image, replicas: 3, env: { VERSION: 'canary', LATENCY_MS: '5' } }) },
    ]);
    await pushSample(repository, svc.repo.shas.map((sha) => `main-${short(sha)}`));
    deployer = await startDeployer({
      tokens: { ops: { secret: { value: SECRET } } },
      services: { [svc.name]: { repository: svc.repository, namespace } },
      versions: { registryWaitSeconds: 0 },
    });
  });

  afterAll(async () => {
    await deployer?.close();
    await adminClient().core.deleteNamespace({ name: namespace }).catch(() => undefined);
  });

  it('requests to the ClusterIP reach stable and canary pods in about the replica ratio (3:1)', async () => {
    const stable = await send(url('deploy'), { auth, json: { tag: tag(0), wait: '3m' } });
    expect(stable.status, JSON.stringify(stable.body)).toBe(200);
    const canary = await send(url('canary'), { auth, json: { tag: tag(1), wait: '3m' } });
    expect(canary.status, JSON.stringify(canary.body)).toBe(200);
    expect(canary.body['verdict']).toMatchObject({ result: 'success' });
    expect((await runningPods(namespace, 'shop')).filter((p) => p.ready)).toHaveLength(4);

    const ip = await clusterIp(namespace, 'shop');
    const counts = new Map<string, number>();
    const pods = new Set<string>();
    for (let i = 0; i < REQUESTS; i++) {
      const reply = await getSample(`${ip}:80`);
      expect(reply.status).toBe(200);
      counts.set(reply.version, (counts.get(reply.version) ?? 0) + 1);
      pods.add(reply.pod);
    }
    // The deployer sets VERSION to the tag it deploys, which the sample service answers with.
    expect([...counts.keys()].sort()).toEqual([tag(0), tag(1)].sort());
    expect(pods.size).toBe(4);
    const share = (counts.get(tag(1)) ?? 0) / REQUESTS;
    process.stdout.write(`[real node] canary share of ${REQUESTS} requests: ${share.toFixed(3)} (expected 0.25)\n`);
    // 1/4 expected; 400 requests put 3 standard deviations at about ±0.065.
    expect(share).toBeGreaterThan(0.15);
    expect(share).toBeLessThan(0.35);
  }, 360_000);

  it('the sample service counts what it served in its Prometheus metrics', async () => {
    const [pod] = (await runningPods(namespace, 'shop')).filter((p) => p.name.startsWith('shop-canary'));
    expect(pod).toBeDefined();
    const metrics = await getSample(`${pod?.ip ?? ''}:8080`, '/metrics');
    expect(metrics.status).toBe(200);
    expect(metrics.body).toMatch(/^http_requests_total\{code="200"\} [1-9]\d*$/m);
    expect(metrics.body).toMatch(/^http_request_duration_seconds_bucket\{le="0.005"\} 0$/m);
    expect(metrics.body).toMatch(/^http_request_duration_seconds_count [1-9]\d*$/m);
  });
});
