import type { Logger } from 'pino';
import type { Config, ServiceConfig } from '../config/load.js';
import type { Keys } from '../core/keys.js';
import type { CanaryAnalysis, Cluster, LiveReader, Registry, Reporter, Source } from '../core/ports.js';
import type { CanaryAnalysisResult, CommitFacts, DeployEvent, ObjectResult } from '../core/types.js';
import { ConflictError, DeployerError } from '../errors.js';
import { promote, rollback, type FlowDeps, type FlowDone } from './flows.js';
import { within, type DeployLock, type Hold, type Outcome } from './lock.js';
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
        /** A deploy ran: the event line carries its commit facts, read after the answer. */
        readonly deployed?: boolean | undefined;
        readonly failingSince?: string | undefined;
        readonly flow?: DeployEvent['flow'];
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
  /** Reports made after the answer, still waiting for their commit facts. */
  readonly #reports = new Set<Promise<void>>();

  constructor(deps: DeployerDeps) {
    this.#deps = deps;
    this.#log = deps.logger.child({ module: 'deploy' });
    this.#now = deps.now ?? Date.now;
    this.#pipeline = { config: deps.config, keys: deps.keys, source: deps.source, registry: deps.registry, cluster: deps.cluster, live: deps.live, logger: this.#log, sleep: deps.sleep };
  }

  /**
   * A deploy or canary. Of a burst of them for one service, the newest (by arrival) runs in the place of those still
   * waiting (lock.ts); each of those answers from the newest's outcome (`#superseded`).
   */
  deploy(request: DeployRequest): Promise<DeployResult> {
    const key = JSON.stringify([request.kind, request.service.name, request.commit, request.tag, request.digests]);
    return this.#join(key, request, () =>
      this.#reported(request, { notifyConflicts: true }, async () => {
        const { service, requestId } = request;
        const result = await this.#deps.lock.queued(service, () => this.#run(request, this.#deps.lock.leased(service, requestId)), {
          group: request.kind,
          id: requestId,
          superseded: (by) => this.#superseded(request, by),
        });
        // A superseded request deployed nothing itself: the request that ran reports the deploy.
        if (result.supersededBy !== undefined) return { answer: result };
        return { answer: result, event: { commit: result.commit, tag: result.tag, deployed: true } };
      }).then(({ requestId: _requestId, ...result }) => result),
    );
  }

  /**
   * The answer of a request a newer one took the place of: 200 with `supersededBy` when the deployed commit contains
   * the requested one (the change is live), else 409 naming the newer request (CI's `curl --fail-with-body` fails
   * that build: its change is not what runs). Nothing is lost silently: each is logged, and a 409 reported.
   */
  async #superseded(request: DeployRequest, by: Outcome<DeployRun>): Promise<DeployRun> {
    const { service, requestId } = request;
    const asked = request.commit ?? request.tag ?? '';
    const fields = { service: service.name, kind: request.kind, requestId, supersededBy: by.id };
    if (!by.ok) {
      this.#log.info(fields, 'superseded by a newer request, which failed');
      const error = by.error instanceof Error ? by.error : new Error(String(by.error));
      throw new ConflictError(`${service.name} ${asked} was not deployed: newer request ${by.id} took its place and failed: ${error.message}`, {
        detail: { supersededBy: { requestId: by.id }, failure: { status: error instanceof DeployerError ? error.status : 500, message: error.message } },
      });
    }
    const run = by.value;
    const supersededBy = { requestId: by.id, commit: run.commit, tag: run.tag };
    const live = request.commit === undefined ? request.tag === run.tag : await this.#deps.source.contains(service, request.commit, run.commit);
    this.#log.info({ ...fields, commit: run.commit, live }, 'superseded by a newer request');
    if (!live) {
      throw new ConflictError(
        `${service.name} ${asked} was not deployed: newer request ${by.id} took its place and deployed ${run.tag} ` +
          `(commit ${run.commit}), which does not contain it`,
        { detail: { supersededBy } },
      );
    }
    const what = request.kind === 'canary' ? ' as canary' : '';
    return { ...run, requestId, message: `${service.name} ${run.tag} is deployed${what} (newer request ${by.id} took the place of this one; it contains ${asked})`, supersededBy };
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
    // A read: its fetches go after every deploy's, and only a few may wait (503 beyond), so reads cannot stall deploys.
    const read = { purpose: 'read' } as const;
    const commit = await source.resolve(service, ref ?? service.repository.defaultBranch, read);
    const objects = await manifestsAt(source, service, commit, read);
    return Promise.all(
      untaggedImages(objects, service.images).map(async (original) => ({ image: original, tags: (await registry.tags(parseImageRef(original))).sort() })),
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
      requestId: request.requestId,
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
      const moved = { removedCanary: done.result.canary, deployedStable: done.deployed !== undefined };
      return {
        answer,
        event: { commit: version?.commit, tag: version?.tag, deployed: done.deployed !== undefined, failingSince: done.failingSince, flow: moved, analysis: done.analysis },
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
        const durationMs = Math.round(performance.now() - started);
        // The facts (author, line counts) cost git work the caller need not wait for: the line comes a moment later.
        const facts = event.deployed === true && event.commit !== undefined ? this.#factsOf(request.service, event.commit) : Promise.resolve(undefined);
        this.#later(
          facts.then((f) =>
            reporter.succeeded({
              ...base,
              commit: event.commit,
              tag: event.tag,
              result: 'success',
              durationMs,
              author: f?.author,
              insertions: f?.insertions,
              deletions: f?.deletions,
              committedAt: f?.date,
              failingSince: event.failingSince,
              flow: event.flow,
              analysis: event.analysis,
            }),
          ),
        );
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

  /** Resolves once every report still waiting for its commit facts is made (at shutdown, and for tests). */
  async settled(): Promise<void> {
    while (this.#reports.size > 0) await Promise.all([...this.#reports]);
  }

  /** The event log's commit facts; nice to have, so their lack never fails a deploy that went through. */
  async #factsOf(service: ServiceConfig, commit: string): Promise<CommitFacts | undefined> {
    try {
      return await this.#deps.source.commitFacts(service, commit);
    } catch (err) {
      this.#log.warn({ err, service: service.name, commit }, 'commit facts unavailable');
      return undefined;
    }
  }

  #later(report: Promise<void>): void {
    const tracked = report.catch((err: unknown) => this.#log.error({ err }, 'report failed')).finally(() => this.#reports.delete(tracked));
    this.#reports.add(tracked);
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
