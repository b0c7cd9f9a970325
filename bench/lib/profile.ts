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
    const profile: StepProfile = { totalMs: 0, steps: {}, calls: {} };
    this.#current = profile;
    const start = performance.now();
    try {
      await this.#engine.run({ service, kind: 'deploy', commit, caller: { token: 'bench' }, requestId: 'bench' });
    } finally {
      profile.totalMs = since(start);
      this.#current = undefined;
    }
    return profile;
  }
}
