import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { DeployEvent } from '../core/types.js';

/** The outside systems whose calls are timed; a source call counts as git or svn by the service's repository type. */
export type CallSystem = 'git' | 'svn' | 'registry' | 'kubernetes';
export type CallOutcome = 'ok' | 'error';

/** Deploys take seconds to a minute (the registry wait alone may be 55 s). */
const DEPLOY_BUCKETS = [0.5, 1, 2, 5, 10, 20, 30, 60, 120, 300];
/** One call to git, a registry or the apiserver: milliseconds to the remote timeout (30 s by default). */
const CALL_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];
const LINES_BUCKETS = [0, 1, 10, 50, 100, 500, 1000, 5000, 10000];

/**
 * The deployer's Prometheus metrics, in a registry of their own (not prom-client's global one, so that two apps in
 * one process, as in tests, do not share counters). Only this file knows prom-client; the rest of the code calls
 * the methods below. Label values come from the configuration (service names) or from fixed sets, never from a
 * request, so a caller cannot grow the number of series.
 */
export class Metrics {
  readonly registry: Registry;
  readonly #deploys: Counter<'service' | 'kind' | 'result'>;
  readonly #duration: Histogram<'service' | 'kind' | 'result'>;
  readonly #lines: Histogram<'service' | 'kind'>;
  readonly #inFlight: Gauge;
  readonly #calls: Histogram<'system' | 'operation' | 'outcome'>;

  constructor(options: { defaultMetrics?: boolean } = {}) {
    this.registry = new Registry();
    const registers = [this.registry];
    this.#deploys = new Counter({
      name: 'deployer_deploys_total',
      help: 'Finished deploys, canaries, rollbacks and promotes, by service, kind and result (success or failure).',
      labelNames: ['service', 'kind', 'result'],
      registers,
    });
    this.#duration = new Histogram({
      name: 'deployer_deploy_duration_seconds',
      help: 'Time from a deploy request to its answer (lock wait, registry wait and apply included).',
      labelNames: ['service', 'kind', 'result'],
      buckets: DEPLOY_BUCKETS,
      registers,
    });
    this.#lines = new Histogram({
      name: 'deployer_deploy_lines_changed',
      help: 'Lines inserted plus deleted by the commit of each successful deploy, when the source could tell.',
      labelNames: ['service', 'kind'],
      buckets: LINES_BUCKETS,
      registers,
    });
    this.#inFlight = new Gauge({
      name: 'deployer_deploys_in_flight',
      help: 'Deploys running now (waiting for the lock or the registry included).',
      registers,
    });
    this.#calls = new Histogram({
      name: 'deployer_upstream_call_duration_seconds',
      help: 'Calls to git, svn, container registries and the Kubernetes apiserver, by operation and outcome.',
      labelNames: ['system', 'operation', 'outcome'],
      buckets: CALL_BUCKETS,
      registers,
    });
    // Process metrics (CPU, memory, event loop lag, handles) of this registry only.
    if (options.defaultMetrics !== false) collectDefaultMetrics({ register: this.registry, prefix: 'deployer_' });
  }

  /** Counts a deploy as running; call the returned function once when it has finished, whatever the outcome. */
  deployStarted(): () => void {
    this.#inFlight.inc();
    let done = false;
    return () => {
      if (done) return;
      done = true;
      this.#inFlight.dec();
    };
  }

  /** Records a finished deploy from the event the engine reports (the same facts as the event log line). */
  deployFinished(event: DeployEvent): void {
    const labels = { service: event.service, kind: event.kind, result: event.result };
    this.#deploys.inc(labels);
    if (Number.isFinite(event.durationMs) && event.durationMs >= 0) this.#duration.observe(labels, event.durationMs / 1000);
    if (event.result === 'success' && event.insertions !== undefined && event.deletions !== undefined) {
      this.#lines.observe({ service: event.service, kind: event.kind }, event.insertions + event.deletions);
    }
  }

  observeCall(system: CallSystem, operation: string, outcome: CallOutcome, seconds: number): void {
    this.#calls.observe({ system, operation, outcome }, seconds);
  }

  /** The Prometheus text exposition of every metric. */
  render(): Promise<string> {
    return this.registry.metrics();
  }

  get contentType(): string {
    return this.registry.contentType;
  }
}

type Fn = (...args: unknown[]) => unknown;

function isPromiseLike(value: unknown): value is PromiseLike<unknown> {
  return typeof value === 'object' && value !== null && typeof (value as { then?: unknown }).then === 'function';
}

/**
 * `target` with every method that returns a promise timed into `metrics` as a call to `system`; other properties
 * pass through. A proxy rather than a wrapper per interface, so an adapter that gains a method is timed without a
 * change here. Methods run on the target itself, not on the proxy, because adapters keep state in private fields.
 */
export function timed<T extends object>(
  target: T,
  metrics: Metrics,
  system: CallSystem | ((args: readonly unknown[]) => CallSystem),
  /** Before each method's name in the `operation` label, where the name alone would be vague (`lease.get`). */
  prefix = '',
): T {
  return new Proxy(target, {
    get(t, property) {
      const value: unknown = Reflect.get(t, property, t);
      if (typeof value !== 'function' || typeof property !== 'string') return value;
      const method = value as Fn;
      return (...args: unknown[]): unknown => {
        const started = performance.now();
        const result = method.apply(t, args);
        if (!isPromiseLike(result)) return result;
        const observe = (outcome: CallOutcome): void =>
          metrics.observeCall(
            typeof system === 'string' ? system : system(args),
            `${prefix}${property}`,
            outcome,
            (performance.now() - started) / 1000,
          );
        return Promise.resolve(result).then(
          (v) => {
            observe('ok');
            return v;
          },
          (err: unknown) => {
            observe('error');
            throw err;
          },
        );
      };
    },
  });
}

/** git or svn, by the service a Source method is called for (its first argument). */
export function sourceSystemOf(args: readonly unknown[]): CallSystem {
  const service = args[0] as { repository?: { type?: unknown } } | undefined;
  return service?.repository?.type === 'svn' ? 'svn' : 'git';
}
