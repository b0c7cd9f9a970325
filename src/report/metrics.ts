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
/** Lead time (commit → stable) and time to restore: minutes to weeks. */
const DORA_BUCKETS = [60, 300, 900, 1800, 3600, 2 * 3600, 4 * 3600, 8 * 3600, 86400, 2 * 86400, 7 * 86400, 30 * 86400];

/**
 * The label naming the service. Not `service`: prometheus-operator adds `service` (the scraped Kubernetes
 * Service) to every series and would rename the deployer's own to `exported_service`.
 */
type ServiceLabel = 'deployer_service';
/** Kinds whose success puts a change in production (a canary serves part of the traffic and is not counted). */
const STABLE_CHANGES: readonly DeployEvent['kind'][] = ['deploy', 'promote'];

export interface MetricsOptions {
  /** Process metrics (`process_*`, `nodejs_*`, unprefixed as the stock dashboards expect); default true. */
  readonly defaultMetrics?: boolean | undefined;
  /** The deployer's version, for `deployer_build_info`. */
  readonly version?: string | undefined;
  /** For tests: the time a report is made. */
  readonly now?: (() => number) | undefined;
}

/**
 * The deployer's Prometheus metrics, in a registry of their own (not prom-client's global one, so that two apps in
 * one process, as in tests, do not share counters). Only this file knows prom-client; the rest of the code calls
 * the methods below. Label values come from the configuration (service names) or from fixed sets, never from a
 * request, so a caller cannot grow the number of series.
 */
export class Metrics {
  readonly registry: Registry;
  readonly #deploys: Counter<ServiceLabel | 'kind' | 'result'>;
  readonly #duration: Histogram<ServiceLabel | 'kind' | 'result'>;
  readonly #lines: Histogram<ServiceLabel | 'kind'>;
  readonly #leadTime: Histogram<ServiceLabel | 'kind'>;
  readonly #restore: Histogram<ServiceLabel>;
  readonly #inFlight: Gauge;
  readonly #calls: Histogram<'system' | 'operation' | 'outcome'>;
  readonly #now: () => number;

  constructor(options: MetricsOptions = {}) {
    this.registry = new Registry();
    this.#now = options.now ?? Date.now;
    const registers = [this.registry];
    const histogram = <L extends string>(name: string, help: string, labelNames: readonly L[], buckets: number[]): Histogram<L> =>
      new Histogram({ name, help, labelNames, buckets, registers });
    new Gauge({
      name: 'deployer_build_info',
      help: 'Always 1; the labels name the running build: the deployer version and the Node.js version.',
      labelNames: ['version', 'nodejs_version'],
      registers,
    }).set({ version: options.version ?? 'unknown', nodejs_version: process.versions.node }, 1);
    this.#deploys = new Counter({
      name: 'deployer_deploys_total',
      help: 'Finished deploys, canaries, rollbacks and promotes, by service, kind and result (success or failure).',
      labelNames: ['deployer_service', 'kind', 'result'],
      registers,
    });
    this.#duration = histogram(
      'deployer_deploy_duration_seconds',
      'Time from a deploy request to its answer (lock wait, registry wait and apply included).',
      ['deployer_service', 'kind', 'result'],
      DEPLOY_BUCKETS,
    );
    this.#lines = histogram(
      'deployer_deploy_lines_changed',
      'Lines inserted plus deleted by the commit of each successful deploy, when the source could tell.',
      ['deployer_service', 'kind'],
      LINES_BUCKETS,
    );
    this.#leadTime = histogram(
      'deployer_lead_time_seconds',
      'Lead time for changes (DORA): from the commit time to its successful stable deploy or promotion.',
      ['deployer_service', 'kind'],
      DORA_BUCKETS,
    );
    this.#restore = histogram(
      'deployer_time_to_restore_seconds',
      'Time to restore (DORA): from the deploy of a canary or stable version that was rolled back to the rollback that left a healthy stable version running alone.',
      ['deployer_service'],
      DORA_BUCKETS,
    );
    this.#inFlight = new Gauge({
      name: 'deployer_deploys_in_flight',
      help: 'Deploys running now (waiting for the lock or the registry included).',
      registers,
    });
    this.#calls = histogram(
      'deployer_upstream_call_duration_seconds',
      'Calls to git, svn, container registries and the Kubernetes apiserver, by operation and outcome.',
      ['system', 'operation', 'outcome'],
      CALL_BUCKETS,
    );
    // Process metrics (CPU, memory, event loop lag, handles) of this registry only, under their standard names.
    if (options.defaultMetrics !== false) collectDefaultMetrics({ register: this.registry });
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
    const service = event.service;
    const labels = { deployer_service: service, kind: event.kind, result: event.result };
    this.#deploys.inc(labels);
    if (Number.isFinite(event.durationMs) && event.durationMs >= 0) this.#duration.observe(labels, event.durationMs / 1000);
    if (event.result !== 'success') return;
    if (event.insertions !== undefined && event.deletions !== undefined) {
      this.#lines.observe({ deployer_service: service, kind: event.kind }, event.insertions + event.deletions);
    }
    const now = this.#now();
    const lead = secondsSince(event.committedAt, now);
    if (lead !== undefined && STABLE_CHANGES.includes(event.kind)) this.#leadTime.observe({ deployer_service: service, kind: event.kind }, lead);
    const restore = secondsSince(event.failingSince, now);
    if (restore !== undefined && event.kind === 'rollback') this.#restore.observe({ deployer_service: service }, restore);
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

/** Seconds from an ISO 8601 time to `now`; undefined for a missing or unreadable time (a clock skew counts as 0). */
function secondsSince(iso: string | undefined, now: number): number | undefined {
  if (iso === undefined) return undefined;
  const at = Date.parse(iso);
  return Number.isNaN(at) ? undefined : Math.max(0, (now - at) / 1000);
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
