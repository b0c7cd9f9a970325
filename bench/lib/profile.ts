import { createRequire, syncBuiltinESMExports } from 'node:module';
import { basename } from 'node:path';
import { pino } from 'pino';
import type { Config, ServiceConfig } from '../../src/config/load.js';
import { Engine } from '../../src/deploy/engine.js';
import { KubeClient } from '../../src/kube/client.js';
import { RegistryClient } from '../../src/registry/client.js';
import { createNotifier } from '../../src/report/notifier.js';
import { createSource } from '../../src/source/index.js';
import { since } from './stats.js';

/**
 * Where a deploy's time goes: the deploy engine in this process, built like `createEngine` builds it, with every
 * adapter call timed (a Proxy around each adapter). Steps are named `adapter.method`; calls of one step within one
 * deploy are summed. Used to say what dominates a missed target, not for the headline figures (those go through
 * HTTP to the deployer's own process).
 */
export interface StepProfile {
  /** Engine time of the deploy (inside `run`). */
  totalMs: number;
  /** Summed milliseconds per step. */
  steps: Record<string, number>;
  /** Calls per step. */
  calls: Record<string, number>;
  /** Child processes started during the deploy, by command (git, ...). */
  processes: Record<string, number>;
  /** Requests the git server answered during the deploy (each one a `git http-backend` process there). */
  gitRequests?: number;
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

function timedAdapter<T extends object>(name: string, adapter: T, record: (step: string, ms: number) => void): T {
  return new Proxy(adapter, {
    get(target, prop, receiver) {
      const value: unknown = Reflect.get(target, prop, receiver);
      if (typeof value !== 'function' || typeof prop !== 'string') return value;
      return (...args: unknown[]): unknown => {
        const start = performance.now();
        // The adapters keep #private fields: call with the real object as `this`, not the proxy.
        const result: unknown = Reflect.apply(value as (...a: unknown[]) => unknown, target, args);
        if (result instanceof Promise) {
          return result.finally(() => record(`${name}.${prop}`, since(start)));
        }
        record(`${name}.${prop}`, since(start));
        return result;
      };
    },
  });
}

export class Profiler {
  readonly #engine: Engine;
  #current: StepProfile | undefined;

  constructor(config: Config) {
    const logger = pino({ level: 'silent' });
    const timeoutMs = config.versions.remoteTimeoutSeconds * 1000;
    const record = (step: string, ms: number): void => {
      const p = this.#current;
      if (p === undefined) return;
      p.steps[step] = (p.steps[step] ?? 0) + ms;
      p.calls[step] = (p.calls[step] ?? 0) + 1;
    };
    this.#engine = new Engine({
      config,
      logger,
      source: timedAdapter('source', createSource({ cacheDir: config.cache.dir, timeoutMs, logger }), record),
      registry: timedAdapter('registry', new RegistryClient({ credentials: config.registries, timeoutMs, logger }), record),
      cluster: timedAdapter(
        'kube',
        new KubeClient({ kubeconfig: config.kubernetes.kubeconfig, fieldManager: config.kubernetes.fieldManager, logger }),
        record,
      ),
      notifier: createNotifier({ config, logger }),
    });
  }

  /** One deploy of `commit`, timed by step. */
  async deploy(service: ServiceConfig, commit: string): Promise<StepProfile> {
    const profile: StepProfile = { totalMs: 0, steps: {}, calls: {}, processes: {} };
    this.#current = profile;
    const start = performance.now();
    try {
      await countingProcesses(profile.processes, () =>
        this.#engine.run({ service, kind: 'deploy', commit, caller: { token: 'bench' }, requestId: 'bench' }),
      );
    } finally {
      profile.totalMs = since(start);
      this.#current = undefined;
    }
    return profile;
  }
}
