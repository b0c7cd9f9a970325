import { subscribe, unsubscribe } from 'node:diagnostics_channel';
import type { ClientRequest } from 'node:http';
import { pino } from 'pino';
import { beforeAll, describe, expect, it } from 'vitest';
import type { ObjectResult } from '../../src/core/types.js';
import { Deployer, type DeployerDeps } from '../../src/deploy/deployer.js';
import { Kubernetes } from '../../src/kube/kubernetes.js';
import { ground } from '../env/ground.js';
import { adminClient, createNamespace } from '../env/kube-helpers.js';

/**
 * The verdict waits' apiserver reads, counted as the apiserver receives them (found by bench/hardening-load.ts
 * --components: 64 waiting callers of one deploy made 64 times the reads of one wait, and the apiserver, slowed by
 * them, slowed the CI deploy's own calls 3-6 times). The callers of one deploy poll in step; the Kubernetes transport
 * sends identical reads in flight once (src/kube/transport.ts), so N waits cost the reads of one.
 */

const logger = pino({ level: 'silent' });

function unused<T extends object>(what: string): T {
  return new Proxy({} as T, {
    get: (_target, property) => {
      throw new Error(`a verdict does not use ${what}.${String(property)}`);
    },
  });
}

/** The GET requests this process sends while `fn` runs, by path (node publishes each client request). */
async function getsDuring<T>(fn: () => Promise<T>): Promise<{ result: T; gets: string[] }> {
  const gets: string[] = [];
  const onRequest = (message: unknown): void => {
    const request = (message as { request: ClientRequest }).request;
    if (request.method === 'GET') gets.push(request.path.split('?')[0] ?? '');
  };
  subscribe('http.client.request.start', onRequest);
  try {
    return { result: await fn(), gets };
  } finally {
    unsubscribe('http.client.request.start', onRequest);
  }
}

describe('verdict waits against the apiserver', () => {
  let namespace: string;
  let applied: ObjectResult[];
  let deployer: Deployer;
  const POLL_MS = 200;
  const WAIT_MS = 1_000;

  beforeAll(async () => {
    namespace = await createNamespace('verdict-reads');
    // Its image is never pulled here: the rollout never completes, and each wait polls until its time is up.
    await adminClient().apps.createNamespacedDeployment({
      namespace,
      body: {
        metadata: { name: 'web' },
        spec: {
          replicas: 1,
          selector: { matchLabels: { app: 'web' } },
          template: { metadata: { labels: { app: 'web' } }, spec: { containers: [{ name: 'app', image: 'registry.invalid/web:v1' }] } },
        },
      },
    });
    applied = [{ apiVersion: 'apps/v1', kind: 'Deployment', namespace, name: 'web', action: 'configured' }];
    const deps: DeployerDeps = {
      config: unused('config'),
      keys: unused('keys'),
      logger,
      source: unused('source'),
      registry: unused('registry'),
      cluster: unused('cluster'),
      live: new Kubernetes({ kubeconfig: ground('kube').adminKubeconfig, fieldManager: 'deployer-test', logger }),
      lock: unused('lock'),
      reporter: unused('reporter'),
      analysis: unused('analysis'),
      verdictPollMs: POLL_MS,
    };
    deployer = new Deployer(deps);
  });

  it('20 callers waiting for one deploy send the reads of one wait, not 20 times as many', async () => {
    const deploymentPath = `/apis/apps/v1/namespaces/${namespace}/deployments/web`;
    const one = await getsDuring(() => deployer.verdict(namespace, applied, WAIT_MS));
    const twenty = await getsDuring(() => Promise.all(Array.from({ length: 20 }, () => deployer.verdict(namespace, applied, WAIT_MS))));

    expect(one.result).toMatchObject({ result: 'timeout' });
    for (const verdict of twenty.result) expect(verdict).toMatchObject({ result: 'timeout' });
    const reads = (gets: string[]): number => gets.filter((path) => path === deploymentPath).length;
    // One wait reads the Deployment once per poll; 20 in step read it as often (a poll may fall apart by a timer tick).
    expect(reads(one.gets)).toBeGreaterThanOrEqual(2);
    expect(reads(twenty.gets)).toBeLessThanOrEqual(reads(one.gets) + 2);
    // Every other read (ReplicaSets, pods) is shared the same way.
    expect(twenty.gets.length).toBeLessThan(2 * one.gets.length + 5);
  });
});
