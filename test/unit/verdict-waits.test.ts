import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import type { LiveReader } from '../../src/core/ports.js';
import type { LiveDeployment, ObjectResult } from '../../src/core/types.js';
import { Deployer, type DeployerDeps } from '../../src/deploy/deployer.js';

/**
 * The verdict waits' reads, counted: a wait whose caller has left reads nothing. (That 20 waiting callers send the
 * reads of one is shown against the apiserver: test/integration/verdict-reads.test.ts.) Only `live` is used by a
 * verdict; every other dependency throws if touched.
 */

function unused<T extends object>(what: string): T {
  return new Proxy({} as T, {
    get: (_target, property) => {
      throw new Error(`a verdict does not use ${what}.${String(property)}`);
    },
  });
}

/** A LiveReader that counts its Deployment reads and finds the Deployment gone (the wait ends). */
function countingLive(): { live: LiveReader; reads: () => number } {
  let reads = 0;
  const live: LiveReader = {
    getDeployment: (): Promise<LiveDeployment | undefined> => {
      reads++;
      return Promise.resolve(undefined);
    },
    listDeployments: () => Promise.resolve([]),
    listReplicaSets: () => Promise.resolve([]),
    listPods: () => Promise.resolve([]),
    getStatefulSet: () => Promise.resolve(undefined),
    getDaemonSet: () => Promise.resolve(undefined),
    getJob: () => Promise.resolve(undefined),
    jobLogs: () => Promise.resolve([]),
  };
  return { live, reads: () => reads };
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
  it('a wait whose caller left before it began reads nothing', async () => {
    const { live, reads } = countingLive();
    const caller = new AbortController();
    caller.abort();

    const verdict = await deployerOver(live).verdict('shop', applied, 60_000, caller.signal);
    expect(reads()).toBe(0);
    expect(verdict).toMatchObject({ result: 'timeout', message: 'stopped waiting after 0s: the caller left before the wait began' });
  });
});
