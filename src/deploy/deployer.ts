import type { Logger } from 'pino';
import type { Config, ServiceConfig } from '../config/load.js';
import type { Keys } from '../core/keys.js';
import type { CanaryAnalysis, Cluster, LiveReader, Registry, Reporter, Source } from '../core/ports.js';
import type { CanaryAnalysisResult, CommitFacts, DeployEvent, ObjectResult } from '../core/types.js';
import { ConflictError, DeployerError } from '../errors.js';
import { promote, rollback, type FlowDeps, type FlowDone } from './flows.js';
import { within, type DeployLock, type Hold } from './lock.js';
import { manifestsAt, runPipeline, type PipelineDeps } from './pipeline.js';
import { serviceDeployments, serviceState, type DeploymentState } from './state.js';
import { untaggedImages } from './pod-template.js';
import { parseImageRef } from '../registry/image-ref.js';
import type { DeployRequest, DeployResult, DeployRun, DeployService, FlowResult, ImageTags, PromoteRequest, RollbackRequest } from './types.js';
import { awaitVerdict, rolloutTargets, type Verdict } from './verdict.js';

export interface DeployerDeps {
  readonly config: Pick<Config, 'versions' | 'deploy'>;
  /** The label and annotation keys (src/core/keys.ts), built from the configuration. */
  readonly keys: Keys;
  readonly logger: Logger;
  readonly source: Source;
  readonly registry: Registry;
  readonly cluster: Cluster;
  readonly live: LiveReader;
  readonly lock: DeployLock;
  readonly reporter: Reporter;
  /** The canary analysis of a gated promotion (Prometheus). */
  readonly analysis: CanaryAnalysis;
  readonly now?: (() => number) | undefined;
  /** How often a verdict looks at the rollout. */
  readonly verdictPollMs?: number | undefined;
  /** For tests of the registry wait. */
  readonly sleep?: ((ms: number) => Promise<void>) | undefined;
}

/** The facts of the one report of a request: what the event line names, and the commit facts when a deploy ran. */
interface Reportable<T> {
  readonly answer: T;
  /** Undefined: nothing was done, so there is no event line (a rollback with nothing to roll back). */
  readonly event?:
    | {
        readonly commit?: string | undefined;
        readonly tag?: string | undefined;
        readonly facts?: Promise<CommitFacts | undefined>;
        readonly failingSince?: string | undefined;
        readonly analysis?: CanaryAnalysisResult | undefined;
      }
    | undefined;
}

/** What every request reports: its service, kind, caller and the version it asked for. */
interface Reported {
  readonly service: ServiceConfig;
  readonly kind: DeployEvent['kind'];
  readonly commit?: string | undefined;
  readonly tag?: string | undefined;
  readonly caller: DeployEvent['caller'];
  readonly requestId: string;
}

/**
 * The deployer's domain in one object: each request runs under the service's lock (lock.ts), through the deploy
 * pipeline (pipeline.ts) or a flow (flows.ts), and is reported once, here — event log line, metrics, Bugsnag and
 * Slack — whatever it did.
 */
export class Deployer implements DeployService {
  readonly #deps: DeployerDeps;
  readonly #pipeline: PipelineDeps;
  readonly #log: Logger;
  readonly #now: () => number;
  readonly #inFlight = new Map<string, Promise<unknown>>();

  constructor(deps: DeployerDeps) {
    this.#deps = deps;
    this.#log = deps.logger.child({ module: 'deploy' });
    this.#now = deps.now ?? Date.now;
    this.#pipeline = { config: deps.config, keys: deps.keys, source: deps.source, registry: deps.registry, cluster: deps.cluster, live: deps.live, logger: this.#log, sleep: deps.sleep };
  }

  deploy(request: DeployRequest): Promise<DeployResult> {
    const key = JSON.stringify([request.kind, request.service.name, request.commit, request.tag, request.digests]);
    return this.#join(key, request, () =>
      this.#reported(request, { notifyConflicts: true }, async () => {
        const { service, requestId } = request;
        const result = await this.#deps.lock.queued(service, () => this.#run(request, this.#deps.lock.leased(service, requestId)));
        return { answer: result, event: { commit: result.commit, tag: result.tag, facts: result.facts } };
      }).then(({ facts: _facts, ...result }) => result),
    );
  }

  rollback(request: RollbackRequest): Promise<FlowResult> {
    const key = JSON.stringify(['rollback', request.service.name, request.commit, request.tag, request.to]);
    return this.#join(key, { ...request, kind: 'rollback' }, () => this.#flow({ ...request, kind: 'rollback' }, (deps) => rollback(deps, request)));
  }

  promote(request: PromoteRequest): Promise<FlowResult> {
    const key = JSON.stringify(['promote', request.service.name, request.minAgeSeconds, request.analysis]);
    return this.#join(key, { ...request, kind: 'promote' }, () => this.#flow({ ...request, kind: 'promote' }, (deps) => promote(deps, request)));
  }

  async state(service: ServiceConfig): Promise<DeploymentState[]> {
    const { keys, live } = this.#deps;
    return serviceState(keys, await serviceDeployments(keys, live, service), this.#now());
  }

  async tags(service: ServiceConfig, ref?: string): Promise<readonly ImageTags[]> {
    const { source, registry } = this.#deps;
    const commit = await source.resolve(service, ref ?? service.repository.defaultBranch);
    const objects = await manifestsAt(source, service, commit);
    return Promise.all(
      untaggedImages(objects).map(async (original) => ({ image: original, tags: (await registry.tags(parseImageRef(original))).sort() })),
    );
  }

  async verdict(service: string, objects: readonly ObjectResult[], timeoutMs: number, signal?: AbortSignal): Promise<Verdict> {
    const verdict = await awaitVerdict(this.#deps.live, rolloutTargets(objects), { timeoutMs, pollMs: this.#deps.verdictPollMs, now: this.#now, signal });
    const fields = { service, verdict: verdict.result, waitedMs: verdict.waitedMs };
    if (signal?.aborted === true) {
      this.#log.info(fields, 'verdict wait abandoned: the caller left');
      return verdict;
    }
    if (verdict.result === 'success') this.#log.info(fields, verdict.message);
    else this.#log.warn(fields, verdict.message);
    return verdict;
  }

  /** The pipeline, its result in the answer's shape; `hold` takes the Lease for the cluster phase. */
  async #run(request: DeployRequest, hold: Hold): Promise<DeployRun> {
    const started = performance.now();
    const applied = await runPipeline(this.#pipeline, request, hold);
    const { tag, commit } = applied.version;
    return {
      message: `${request.service.name} ${tag} is deployed${request.kind === 'canary' ? ' as canary' : ''}`,
      service: request.service.name,
      kind: request.kind,
      commit,
      tag,
      images: applied.images,
      objects: applied.results,
      durationMs: Math.round(performance.now() - started),
      facts: applied.facts,
    };
  }

  /** A rollback or promote: read and act under the whole lock; a stable deploy within it needs no second Lease. */
  #flow(request: Reported, flow: (deps: FlowDeps) => Promise<FlowDone>): Promise<FlowResult> {
    const { service, requestId } = request;
    const started = performance.now();
    return this.#reported(request, { notifyConflicts: false }, async () => {
      const done = await this.#deps.lock.exclusive(service, requestId, (deadline) =>
        flow({
          keys: this.#deps.keys,
          live: this.#deps.live,
          cluster: this.#deps.cluster,
          now: this.#now,
          analysis: this.#deps.analysis,
          deploy: (r) => this.#run(r, within(deadline)),
        }),
      );
      const answer: FlowResult = { ...done.result, service: service.name, kind: request.kind === 'promote' ? 'promote' : 'rollback', durationMs: Math.round(performance.now() - started) };
      if (done.result.outcome === 'nothing-to-roll-back') {
        this.#log.info({ service: service.name, kind: request.kind, requestId }, done.result.message);
        return { answer };
      }
      const version = done.deployed ?? done.removed;
      return {
        answer,
        event: { commit: version?.commit, tag: version?.tag, facts: done.deployed?.facts, failingSince: done.failingSince, analysis: done.analysis },
      };
    });
  }

  /**
   * The one report of every request: counted in flight while it runs; on success the event line, metrics and the
   * notifiers with the version done and its commit facts; on failure the same with the error. A conflict of a flow
   * (no canary to promote, a young canary) is the state of things: logged and counted, not notified.
   */
  async #reported<T>(request: Reported, options: { notifyConflicts: boolean }, run: () => Promise<Reportable<T>>): Promise<T> {
    const { reporter } = this.#deps;
    const started = performance.now();
    const done = reporter.started();
    const base = { service: request.service.name, kind: request.kind, caller: request.caller, requestId: request.requestId };
    try {
      const { answer, event } = await run();
      if (event !== undefined) {
        const facts = await event.facts;
        reporter.succeeded({
          ...base,
          commit: event.commit,
          tag: event.tag,
          result: 'success',
          durationMs: Math.round(performance.now() - started),
          author: facts?.author,
          insertions: facts?.insertions,
          deletions: facts?.deletions,
          committedAt: facts?.date,
          failingSince: event.failingSince,
          analysis: event.analysis,
        });
      }
      return answer;
    } catch (err) {
      const error = err instanceof Error ? err : new Error(String(err));
      reporter.failed(
        {
          ...base,
          commit: request.commit,
          tag: request.tag,
          result: 'failure',
          durationMs: Math.round(performance.now() - started),
          error: { name: error.name, message: error.message, status: error instanceof DeployerError ? error.status : 500 },
          // A refused gated promotion: the figures it was refused on.
          analysis: error instanceof DeployerError ? (error.detail?.['analysis'] as CanaryAnalysisResult | undefined) : undefined,
        },
        error,
        { notify: options.notifyConflicts || !(error instanceof ConflictError) },
      );
      throw error;
    } finally {
      done();
    }
  }

  /** Joins identical requests while one is in flight: the second caller gets the first one's answer. */
  #join<T>(key: string, request: { service: ServiceConfig; kind: string; requestId: string }, fn: () => Promise<T>): Promise<T> {
    const pending = this.#inFlight.get(key);
    if (pending !== undefined) {
      this.#log.info({ service: request.service.name, kind: request.kind, requestId: request.requestId }, 'joined an identical request in flight');
      return pending as Promise<T>;
    }
    const promise = fn().finally(() => this.#inFlight.delete(key));
    this.#inFlight.set(key, promise);
    return promise;
  }
}
