import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { waitFor } from '../env/processes.js';
import { send } from '../e2e/flows-setup.js';
import { basic } from '../e2e/setup.js';
import { clusterIp, getSample, runningPods, sampleManifests, startSampleService, type SampleService } from './real-pods.js';

/**
 * The canary's share of real traffic: kube-proxy spreads connections to the Service's ClusterIP over every ready
 * pod the Service selects, so 3 stable pods and 1 canary pod get about 3/4 and 1/4 of the requests.
 */

const SECRET = 'ops-secret-can4ry-traffic';
const auth = basic('ops', SECRET);
const REQUESTS = 400;

describe('canary traffic through the Service ClusterIP', () => {
  let shop: SampleService;
  let namespace: string;
  const tag = (i: number): string => shop.tag(i);
  const url = (path: string): string => shop.url(path);

  beforeAll(async () => {
    shop = await startSampleService({
      prefix: 'canary',
      commits: (image) => [
        { files: sampleManifests({ name: 'shop', image, replicas: 3, env: { VERSION: 'stable' } }) },
        { files: sampleManifests({ name: 'shop', image, replicas: 3, env: { VERSION: 'canary', LATENCY_MS: '5' } }) },
      ],
      tokens: { ops: { secret: { value: SECRET } } },
    });
    namespace = shop.namespace;
  });

  afterAll(async () => {
    await shop?.close();
  });

  it('requests to the ClusterIP reach stable and canary pods in about the replica ratio (3:1)', async () => {
    const stable = await send(url('deploy'), { auth, json: { tag: tag(0), wait: '3m' } });
    expect(stable.status, JSON.stringify(stable.body)).toBe(200);
    const canary = await send(url('canary'), { auth, json: { tag: tag(1), wait: '3m' } });
    expect(canary.status, JSON.stringify(canary.body)).toBe(200);
    expect(canary.body['verdict']).toMatchObject({ result: 'success' });
    expect((await runningPods(namespace, 'shop')).filter((p) => p.ready)).toHaveLength(4);

    const ip = await clusterIp(namespace, 'shop');
    // Ready pods reach kube-proxy's rules a moment later (endpoints controller, then kube-proxy's sync: seconds on a
    // loaded machine): the share is counted once the canary answers through the ClusterIP, all four pods in the rules.
    const synced = Date.now();
    let probes = 0;
    await waitFor(
      async () => {
        probes++;
        return (await getSample(`${ip}:80`)).version === tag(1);
      },
      { what: 'the canary behind the ClusterIP', timeoutMs: 60_000, intervalMs: 50 },
    );
    process.stdout.write(`[real node] the canary answered through the ClusterIP after ${probes} requests, ${Date.now() - synced} ms\n`);
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
