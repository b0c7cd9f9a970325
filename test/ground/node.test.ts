import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ground } from '../env/ground.js';
import { adminClient, createNamespace } from '../env/kube-helpers.js';
import { httpGet, waitFor } from '../env/processes.js';
import { getSample, pushSample, runningPods } from '../node/real-pods.js';

const run = promisify(execFile);

describe('test ground: the node', () => {
  let namespace: string;
  let image: string;

  beforeAll(async () => {
    namespace = await createNamespace('ground-node');
    image = await pushSample(`ground/node-${Date.now().toString(36)}`, ['v1']);
  });

  afterAll(async () => {
    await adminClient().core.deleteNamespace({ name: namespace }).catch(() => undefined);
  });

  it('runs a pod placed by the ground scheduler; its IP answers from the test process', async () => {
    const node = ground('node');
    await adminClient().core.createNamespacedPod({
      namespace,
      body: {
        metadata: { name: 'runs', labels: { app: 'runs' } },
        spec: { schedulerName: node.schedulerName, containers: [{ name: 'app', image: `${image}:v1`, env: [{ name: 'VERSION', value: 'ground' }] }] },
      },
    });
    let pods: Awaited<ReturnType<typeof runningPods>> = [];
    await waitFor(
      async () => {
        pods = await runningPods(namespace, 'runs');
        return pods.length === 1;
      },
      { what: 'pod runs to run', timeoutMs: 90_000, intervalMs: 500 },
    );
    expect(pods[0]).toMatchObject({ node: node.name, ready: true });
    expect(pods[0]?.ip.startsWith(node.podCidr.split('.').slice(0, 3).join('.'))).toBe(true);
    expect(await getSample(`${pods[0]?.ip ?? ''}:8080`)).toMatchObject({ status: 200, version: 'ground', pod: 'runs' });
  }, 120_000);

  it('leaves a pod for the default scheduler Pending, its status untouched (the hand-driven tests rely on it)', async () => {
    await adminClient().core.createNamespacedPod({
      namespace,
      body: { metadata: { name: 'waits' }, spec: { containers: [{ name: 'app', image: `${image}:v1` }] } },
    });
    await new Promise((r) => setTimeout(r, 2_000));
    const pod = await adminClient().core.readNamespacedPod({ name: 'waits', namespace });
    expect(pod.spec?.nodeName).toBeUndefined();
    expect(pod.status?.phase).toBe('Pending');
    expect(pod.status?.conditions).toBeUndefined();
  });

  it('serves the apiserver to pods through the kubernetes Service: its endpoint is the ground address', async () => {
    const node = ground('node');
    const kube = ground('kube');
    const endpoints = await adminClient().core.readNamespacedEndpoints({ name: 'kubernetes', namespace: 'default' });
    expect(endpoints.subsets?.[0]?.addresses?.map((a) => a.ip)).toEqual([node.hostAddress]);
    const service = await adminClient().core.readNamespacedService({ name: 'kubernetes', namespace: 'default' });
    // Through kube-proxy's rules in the ground's namespace, to the forwarder, to the apiserver on loopback.
    const res = await httpGet(`https://${service.spec?.clusterIP ?? ''}:443/readyz`, {
      headers: { authorization: `Bearer ${kube.adminToken}` },
      ca: readFileSync(kube.caFile),
    });
    expect(res).toEqual({ status: 200, body: 'ok' });
  });

  it('keeps its iptables rules and bridge out of the machine: they live in the ground network namespace', async () => {
    const node = ground('node');
    const { stdout: rules } = await run('iptables-save', []);
    expect(rules).not.toMatch(/KUBE-|CNI-/);
    const { stdout: links } = await run('ip', ['-o', 'link', 'show']);
    expect(links).not.toContain('cni0');
    expect(links).toContain(`${node.hostLink}@`);
  });
});
