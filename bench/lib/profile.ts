import { subscribe, unsubscribe } from 'node:diagnostics_channel';
import type { ClientRequest } from 'node:http';
import { createRequire, syncBuiltinESMExports } from 'node:module';
import { basename } from 'node:path';
import { pino } from 'pino';
import type { Config, ServiceConfig } from '../../src/config/load.js';
import type { Metrics } from '../../src/report/metrics.js';
import { wire, type Wired } from '../../src/wire.js';
import { since } from './stats.js';

/**
 * Where a deploy's time goes: the deployer in this process, built by src/wire.ts, whose adapter calls are timed into
 * its metrics at the boundary. Steps are named `adapter.method`; calls of one step within one deploy are summed. Used to say what dominates a missed target, not for the headline figures (those go through
 * HTTP to the deployer's own process).
 */
export interface StepProfile {
  /** Time of the deploy in the domain (inside `Deployer.deploy`). */
  totalMs: number;
  /** Summed milliseconds per step. */
  steps: Record<string, number>;
  /** Calls per step. */
  calls: Record<string, number>;
  /** Child processes started during the deploy, by command (git, ...). */
  processes: Record<string, number>;
  /** Requests the git server answered during the deploy (each one a `git http-backend` process there). */
  gitRequests?: number;
  /** HTTP requests this process sent during the deploy, by server (`host:port`: the apiserver, the registry). */
  httpRequests: Record<string, number>;
  /** TCP connections this process opened during the deploy (TLS handshakes included); kept-alive ones are reused. */
  connections: number;
}

/** Counts the HTTP requests (by their Host header) and new TCP connections of this process while `fn` runs. */
async function countingRequests<T>(profile: StepProfile, fn: () => Promise<T>): Promise<T> {
  const onRequest = (message: unknown): void => {
    const host = String((message as { request: ClientRequest }).request.getHeader('host') ?? '?');
    profile.httpRequests[host] = (profile.httpRequests[host] ?? 0) + 1;
  };
  const onSocket = (): void => {
    profile.connections++;
  };
  subscribe('http.client.request.start', onRequest);
  subscribe('net.client.socket', onSocket);
  try {
    return await fn();
  } finally {
    unsubscribe('http.client.request.start', onRequest);
    unsubscribe('net.client.socket', onSocket);
  }
}

type Spawn = typeof import('node:child_process').spawn;

/**
 * Counts the child processes this process starts while `fn` runs, by command. simple-git imports `spawn` from
 * node:child_process as an ESM binding; `syncBuiltinESMExports` carries a replaced CJS export over to such bindings.
 */
async function countingProcesses<T>(counts: Record<string, number>, fn: () => Promise<T>): Promise<T> {
  const cp = createRequire(import.meta.url)('node:child_process') as { spawn: Spawn };
  const original = cp.spawn;
  const counting = function (this: unknown, ...args: Parameters<Spawn>): ReturnType<Spawn> {
    const command = basename(String(args[0]));
    counts[command] = (counts[command] ?? 0) + 1;
    return Reflect.apply(original, this, args);
  };
  cp.spawn = counting as Spawn;
  syncBuiltinESMExports();
  try {
    return await fn();
  } finally {
    cp.spawn = original;
    syncBuiltinESMExports();
  }
}

/** The upstream call histogram's sums and counts, per step (`source.resolve`, `kube.apply`, ...). */
async function callTotals(metrics: Metrics): Promise<Map<string, { sum: number; count: number }>> {
  const totals = new Map<string, { sum: number; count: number }>();
  const metric = metrics.registry.getSingleMetric('deployer_upstream_call_duration_seconds');
  if (metric === undefined) return totals;
  const { values } = await metric.get();
  for (const v of values as Array<(typeof values)[number] & { metricName?: string }>) {
    // A histogram's values carry the series name: NAME_bucket, NAME_sum, NAME_count.
    const kind = v.metricName?.endsWith('_sum') === true ? 'sum' : v.metricName?.endsWith('_count') === true ? 'count' : undefined;
    if (kind === undefined) continue;
    const system = String(v.labels['system']);
    const step = `${STEP_PREFIX[system] ?? system}.${String(v.labels['operation'])}`;
    const entry = totals.get(step) ?? { sum: 0, count: 0 };
    entry[kind] += v.value;
    totals.set(step, entry);
  }
  return totals;
}

const STEP_PREFIX: Record<string, string> = { git: 'source', svn: 'source', registry: 'registry', kubernetes: 'kube' };

/**
 * The deployer as main.ts builds it (src/wire.ts), in this process; the steps of a deploy are read from its own
 * upstream call metrics, before and after.
 */
export class Profiler {
  readonly #wired: Wired;

  constructor(config: Config) {
    this.#wired = wire({ config, logger: pino({ level: 'silent' }), version: 'bench', identity: 'bench' });
  }

  /** One deploy of `commit`, timed by step. */
  async deploy(service: ServiceConfig, commit: string): Promise<StepProfile> {
    const profile: StepProfile = { totalMs: 0, steps: {}, calls: {}, processes: {}, httpRequests: {}, connections: 0 };
    const { deployer, metrics } = this.#wired;
    const before = await callTotals(metrics);
    const start = performance.now();
    try {
      await countingRequests(profile, () =>
        countingProcesses(profile.processes, () =>
          deployer.deploy({ service, kind: 'deploy', commit, caller: { token: 'bench' }, requestId: `bench-${commit}` }),
        ),
      );
    } finally {
      profile.totalMs = since(start);
    }
    for (const [step, after] of await callTotals(metrics)) {
      const was = before.get(step) ?? { sum: 0, count: 0 };
      if (after.count === was.count) continue;
      profile.steps[step] = (after.sum - was.sum) * 1000;
      profile.calls[step] = after.count - was.count;
    }
    return profile;
  }
}
