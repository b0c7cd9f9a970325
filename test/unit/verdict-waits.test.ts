import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import type { LiveReader } from '../../src/core/ports.js';
import type { LiveDeployment, ObjectResult } from '../../src/core/types.js';
import { Deployer, type DeployerDeps } from '../../src/deploy/deployer.js';

/**
 * The verdict waits' apiserver reads, counted (found by bench/hardening-load.ts --components: 64 waiting callers of
 * one deploy made 64 times the reads of one wait, and the apiserver, slowed by them, slowed the CI deploy's own
 * calls 3-6 times). Only `live` is used by a verdict; every other dependency throws if touched.
 */

function unused<T extends object>(what: string): T {
  return new Proxy({} as T, {
    get: (_target, property) => {
      throw new Error(`a verdict does not use ${what}.${String(property)}`);
    },
  });
}

/** A LiveReader whose Deployment reads wait for `release()` and then find the Deployment gone (the wait ends). */
function countingLive(): { live: LiveReader; reads: () => number; release: () => void } {
  let reads = 0;
  let release!: () => void;
  const gate = new Promise<void>((resolve) => (release = resolve));
  const live: LiveReader = {
    getDeployment: async (): Promise<LiveDeployment | undefined> => {
      reads++;
      await gate;
      return undefined;
    },
    listDeployments: () => Promise.resolve([]),
    listReplicaSets: () => Promise.resolve([]),
    listPods: () => Promise.resolve([]),
    getStatefulSet: () => Promise.resolve(undefined),
    getDaemonSet: () => Promise.resolve(undefined),
    getJob: () => Promise.resolve(undefined),
    jobLogs: () => Promise.resolve([]),
  };
  return { live, reads: () => reads, release };
}

function deployerOver(live: LiveReader): Deployer {
  const deps: DeployerDeps = {
    config: unused('config'),
    keys: unused('keys'),
    logger: pino({ level: 'silent' }),
    source: unused('source'),
    registry: unused('registry'),
    cluster: unused('cluster'),
    live,
    lock: unused('lock'),
    reporter: unused('reporter'),
    analysis: unused('analysis'),
    verdictPollMs: 1_000,
  };
  return new Deployer(deps);
}

const applied: ObjectResult[] = [{ apiVersion: 'apps/v1', kind: 'Deployment', namespace: 'shop', name: 'web', action: 'configured' }];

describe('verdict waits and the apiserver', () => {
  it('the waiting callers of one deploy share each read: 20 waits, one Deployment read in flight', async () => {
    const { live, reads, release } = countingLive();
    const deployer = deployerOver(live);

    const waits = Array.from({ length: 20 }, () => deployer.verdict('shop', applied, 60_000));
    expect(reads()).toBe(1);

    release();
    for (const verdict of await Promise.all(waits)) expect(verdict).toMatchObject({ result: 'failure', message: 'the rollout failed: web: the Deployment was deleted' });
  });

  it('a read that starts after the shared one answered is sent again (nothing is cached)', async () => {
    const { live, reads, release } = countingLive();
    const deployer = deployerOver(live);
    release();

    await deployer.verdict('shop', applied, 60_000);
    await deployer.verdict('shop', applied, 60_000);
    expect(reads()).toBe(2);
  });

  it('a wait whose caller left before it began reads nothing', async () => {
    const { live, reads, release } = countingLive();
    release();
    const caller = new AbortController();
    caller.abort();

    const verdict = await deployerOver(live).verdict('shop', applied, 60_000, caller.signal);
    expect(reads()).toBe(0);
    expect(verdict).toMatchObject({ result: 'timeout', message: 'stopped waiting after 0s: the caller left before the wait began' });
  });
});
