import type { Logger } from 'pino';
import type { ServiceConfig } from '../config/load.js';
import { ConflictError, DeployerError } from '../errors.js';
import type { LiveDeployment, LiveReader } from '../kube/live.js';
import type { ObjectResult } from '../kube/types.js';
import { logDeployEvent } from '../report/event-log.js';
import type { DeployEvent, Notifier } from '../report/types.js';
import {
  ageSeconds,
  canaryDeployedAt,
  isCanary,
  previousOf,
  serviceDeployments,
  serviceState,
  versionOf,
  type DeploymentState,
  type LiveVersion,
} from './state.js';
import type { Caller, DeployEngine, DeployRequest, DeployResult, DeployedImage } from './types.js';
import { awaitVerdict, rolloutTargets, type Verdict } from './verdict.js';
import { shortCommit } from './versions.js';

/**
 * The flows that use the deploy engine (issue "used-by flows", thesis 4.2.4): the live state of a service, the
 * rollback a monitor or a person asks for, the promotion a scheduled job asks for, and the rollout verdict. Each
 * flow reads the cluster and acts under the service's deploy lock, so that what it read is still true when it acts.
 */

/** The engine as the flows need it: deploys, and the service lock, held across a read and the deploy it decides. */
export interface FlowEngine extends DeployEngine {
  exclusive<T>(service: ServiceConfig, fn: () => Promise<T>, context?: { requestId?: string }): Promise<T>;
}

export interface FlowDeps {
  readonly engine: FlowEngine;
  readonly live: LiveReader;
  readonly cluster: { deleteDeployments(namespace: string, names: string[]): Promise<ObjectResult[]> };
  readonly notifier: Notifier;
  readonly logger: Logger;
  readonly now?: (() => number) | undefined;
  /** How often a verdict looks at the rollout. */
  readonly verdictPollMs?: number | undefined;
}

export interface RollbackRequest {
  readonly service: ServiceConfig;
  /** With commit and/or tag: deploy that version as stable (the thesis' rollback message). */
  readonly commit?: string | undefined;
  readonly tag?: string | undefined;
  /** `previous`: deploy the recorded last-known-good stable version (after a bad promotion). */
  readonly to?: 'previous' | undefined;
  readonly caller: Caller;
  readonly requestId: string;
}

export interface PromoteRequest {
  readonly service: ServiceConfig;
  /** Refuse (409) while the canary is younger. */
  readonly minAgeSeconds?: number | undefined;
  readonly caller: Caller;
  readonly requestId: string;
}

export type FlowOutcome = 'rolled-back' | 'promoted' | 'nothing-to-roll-back';

export interface FlowResult {
  readonly message: string;
  readonly service: string;
  readonly kind: 'rollback' | 'promote';
  readonly outcome: FlowOutcome;
  /** The stable version that runs afterwards (the one deployed, if one was); absent when no stable version runs. */
  readonly commit?: string | undefined;
  readonly tag?: string | undefined;
  /** The canary version that was removed, if one was. */
  readonly canary?: { readonly tag: string; readonly commit: string } | undefined;
  readonly images: readonly DeployedImage[];
  readonly objects: readonly ObjectResult[];
  readonly durationMs: number;
}

/** Joins identical requests while one is in flight: the second caller gets the first one's answer. */
class InFlight {
  readonly #pending = new Map<string, Promise<unknown>>();

  join<T>(key: string, fn: () => Promise<T>, onJoin: () => void): Promise<T> {
    const pending = this.#pending.get(key);
    if (pending !== undefined) {
      onJoin();
      return pending as Promise<T>;
    }
    const promise = fn().finally(() => this.#pending.delete(key));
    this.#pending.set(key, promise);
    return promise;
  }
}

const FULL_SHA = /^[0-9a-f]{40}$/;
const SHORT_SHA = /^[0-9a-f]{7,40}$/i;

/** Whether `live` is the commit a request names (a full or abbreviated SHA, or the same svn revision). */
function sameCommit(live: string, wanted: string): boolean {
  if (live === wanted) return true;
  return FULL_SHA.test(live) && SHORT_SHA.test(wanted) && live.startsWith(wanted.toLowerCase());
}

/** Whether every versioned stable Deployment runs the version a request names. */
function runsVersion(stables: readonly LiveDeployment[], wanted: { commit?: string | undefined; tag?: string | undefined }): boolean {
  const versions = stables.map(versionOf).filter((v): v is LiveVersion => v !== undefined);
  if (versions.length === 0) return false;
  return versions.every(
    (v) => (wanted.tag === undefined || v.tag === wanted.tag) && (wanted.commit === undefined || sameCommit(v.commit, wanted.commit)),
  );
}

/** The canary deployed last, with its version; canaries of one deploy share one. */
function newestCanary(canaries: readonly LiveDeployment[]): { deployment: LiveDeployment; version: LiveVersion } | undefined {
  let newest: { deployment: LiveDeployment; version: LiveVersion; at: string } | undefined;
  for (const deployment of canaries) {
    const version = versionOf(deployment);
    if (version === undefined) continue;
    const at = canaryDeployedAt(deployment) ?? '';
    if (newest === undefined || at > newest.at) newest = { deployment, version, at };
  }
  return newest;
}

function formatAge(seconds: number): string {
  if (seconds < 60) return `${seconds}s`;
  const m = Math.floor(seconds / 60);
  if (m < 60) return `${m}m${seconds % 60 === 0 ? '' : `${seconds % 60}s`}`;
  return `${Math.floor(m / 60)}h${m % 60 === 0 ? '' : `${m % 60}m`}`;
}

export class Flows {
  readonly #deps: FlowDeps;
  readonly #log: Logger;
  readonly #now: () => number;
  readonly #inFlight = new InFlight();

  constructor(deps: FlowDeps) {
    this.#deps = deps;
    this.#log = deps.logger.child({ module: 'flows' });
    this.#now = deps.now ?? Date.now;
  }

  /** The service's Deployments as they run: stable and canary version, replicas, canary age, last-known-good. */
  async state(service: ServiceConfig): Promise<DeploymentState[]> {
    return serviceState(await serviceDeployments(this.#deps.live, service), this.#now());
  }

  /** A deploy or canary, joined with an identical one in flight. */
  deploy(request: DeployRequest): Promise<DeployResult> {
    const key = JSON.stringify([request.kind, request.service.name, request.commit, request.tag, request.digests]);
    return this.#inFlight.join(key, () => this.#deps.engine.run(request), () => this.#joined(request.service, request.kind, request.requestId));
  }

  /**
   * Removes the service's canaries; with a version, deploys it as stable; with `to: 'previous'`, deploys the
   * last-known-good stable version. Nothing left to roll back is an answer, not an error.
   */
  rollback(request: RollbackRequest): Promise<FlowResult> {
    const key = JSON.stringify(['rollback', request.service.name, request.commit, request.tag, request.to]);
    return this.#inFlight.join(key, () => this.#rollback(request), () => this.#joined(request.service, 'rollback', request.requestId));
  }

  /** Deploys the running canary's exact version as stable, which removes the canary; 409 when none runs. */
  promote(request: PromoteRequest): Promise<FlowResult> {
    const key = JSON.stringify(['promote', request.service.name, request.minAgeSeconds]);
    return this.#inFlight.join(key, () => this.#promote(request), () => this.#joined(request.service, 'promote', request.requestId));
  }

  /** Waits for the rollout of the Deployments a deploy applied; see verdict.ts. */
  async verdict(service: string, objects: readonly ObjectResult[], timeoutMs: number): Promise<Verdict> {
    const verdict = await awaitVerdict(this.#deps.live, rolloutTargets(objects), { timeoutMs, pollMs: this.#deps.verdictPollMs, now: this.#now });
    const fields = { service, verdict: verdict.result, waitedMs: verdict.waitedMs };
    if (verdict.result === 'success') this.#log.info(fields, verdict.message);
    else this.#log.warn(fields, verdict.message);
    return verdict;
  }

  #joined(service: ServiceConfig, kind: string, requestId: string): void {
    this.#log.info({ service: service.name, kind, requestId }, 'joined an identical request in flight');
  }

  async #rollback(request: RollbackRequest): Promise<FlowResult> {
    const { service } = request;
    const { engine, live } = this.#deps;
    return this.#reported(request, 'rollback', async (markDeployed) => {
      const deployments = await serviceDeployments(live, service);
      const canaries = deployments.filter(isCanary);
      const stables = deployments.filter((d) => !isCanary(d));
      const canary = newestCanary(canaries)?.version;
      const stable = stables.map(versionOf).find((v) => v !== undefined);
      const stays = stable === undefined ? {} : { commit: stable.commit, tag: stable.tag };

      let target: { commit?: string | undefined; tag?: string | undefined; digests?: Readonly<Record<string, string>> } | undefined;
      if (request.to === 'previous') {
        const previous = stables.map((d) => previousOf(d.annotations)).find((v) => v !== undefined);
        target = previous === undefined ? undefined : { commit: previous.commit, tag: previous.tag, digests: previous.digests };
      } else if (request.commit !== undefined || request.tag !== undefined) {
        target = { commit: request.commit, tag: request.tag };
      }
      // A version that runs already needs no deploy: a monitor sending the stable commit again changes nothing.
      const running = target !== undefined && request.to !== 'previous' && runsVersion(stables, target);

      if (canaries.length === 0 && (target === undefined || running)) {
        const why =
          request.to === 'previous'
            ? ' and no previous version is recorded'
            : running
              ? ` and runs ${target?.tag ?? shortCommit(target?.commit ?? '')} already`
              : '';
        return {
          outcome: 'nothing-to-roll-back',
          message: `nothing to roll back: ${service.name} runs no canary${why}`,
          ...stays,
          images: [],
          objects: [],
        };
      }

      const removed = await this.#deleteCanaries(canaries);
      const removedVersion = canary === undefined ? undefined : { tag: canary.tag, commit: canary.commit };
      if (target === undefined || running) {
        return {
          outcome: 'rolled-back',
          message: `${service.name} canary ${canary === undefined ? '' : `${canary.tag} `}is rolled back`,
          ...stays,
          canary: removedVersion,
          images: [],
          objects: removed,
          // The event line names the version that was rolled back.
          eventVersion: canary,
        };
      }

      markDeployed();
      const deployed = await engine.run({
        service,
        kind: 'rollback',
        commit: target.commit,
        tag: target.tag,
        digests: target.digests,
        caller: request.caller,
        requestId: request.requestId,
      });
      return {
        outcome: 'rolled-back',
        message: `${service.name} is rolled back to ${deployed.tag}`,
        commit: deployed.commit,
        tag: deployed.tag,
        canary: removedVersion,
        images: deployed.images,
        objects: [...removed, ...deployed.objects],
      };
    });
  }

  async #promote(request: PromoteRequest): Promise<FlowResult> {
    const { service } = request;
    const { engine, live } = this.#deps;
    return this.#reported(request, 'promote', async (markDeployed) => {
      const canaries = (await serviceDeployments(live, service)).filter(isCanary);
      const newest = newestCanary(canaries);
      // The thesis' scheduled job promotes "in case the new version still exists ... and was not rolled back".
      if (newest === undefined) throw new ConflictError(`no canary of ${service.name} to promote`, { detail: { service: service.name } });
      const { version } = newest;
      if (request.minAgeSeconds !== undefined) {
        const age = ageSeconds(canaryDeployedAt(newest.deployment), this.#now()) ?? 0;
        if (age < request.minAgeSeconds) {
          throw new ConflictError(
            `the canary of ${service.name} (${version.tag}) is ${formatAge(age)} old, younger than ${formatAge(request.minAgeSeconds)}: not promoted`,
            { detail: { service: service.name, tag: version.tag, ageSeconds: age, minAgeSeconds: request.minAgeSeconds } },
          );
        }
      }

      markDeployed();
      const deployed = await engine.run({
        service,
        kind: 'promote',
        commit: version.commit,
        tag: version.tag,
        digests: version.digests,
        caller: request.caller,
        requestId: request.requestId,
      });
      // The stable deploy removed the canaries of the Deployments in its manifests; one whose Deployment is no longer
      // there would stay behind, next to a stable version it was never a canary of.
      const deleted = new Set(deployed.objects.filter((o) => o.action === 'deleted').map((o) => `${o.namespace ?? ''}/${o.name}`));
      const leftover = await this.#deleteCanaries(canaries.filter((c) => !deleted.has(`${c.namespace}/${c.name}`)));
      return {
        outcome: 'promoted',
        message: `${service.name} ${deployed.tag} is promoted`,
        commit: deployed.commit,
        tag: deployed.tag,
        canary: { tag: version.tag, commit: version.commit },
        images: deployed.images,
        objects: [...deployed.objects, ...leftover],
      };
    });
  }

  async #deleteCanaries(canaries: readonly LiveDeployment[]): Promise<ObjectResult[]> {
    const byNamespace = new Map<string, string[]>();
    for (const c of canaries) byNamespace.set(c.namespace, [...(byNamespace.get(c.namespace) ?? []), c.name]);
    const results: ObjectResult[] = [];
    for (const [namespace, names] of byNamespace) results.push(...(await this.#deps.cluster.deleteDeployments(namespace, names)));
    return results;
  }

  /**
   * Runs a flow under the service's lock and writes its event line, unless the flow deployed: the engine reports
   * its deploy (kind rollback or promote) itself. A flow that found nothing to do writes no event line.
   */
  async #reported(
    request: RollbackRequest | PromoteRequest,
    kind: 'rollback' | 'promote',
    flow: (markDeployed: () => void) => Promise<Omit<FlowResult, 'service' | 'kind' | 'durationMs'> & { eventVersion?: LiveVersion | undefined }>,
  ): Promise<FlowResult> {
    const started = performance.now();
    const { service } = request;
    let deployed = false;
    try {
      const { eventVersion, ...outcome } = await this.#deps.engine.exclusive(
        service,
        () =>
          flow(() => {
            deployed = true;
          }),
        { requestId: request.requestId },
      );
      const durationMs = Math.round(performance.now() - started);
      const result: FlowResult = { ...outcome, service: service.name, kind, durationMs };
      if (result.outcome === 'nothing-to-roll-back') {
        this.#log.info({ service: service.name, kind, requestId: request.requestId }, result.message);
      } else if (!deployed) {
        const event = this.#event(request, kind, 'success', durationMs, eventVersion);
        logDeployEvent(this.#log, event);
        void this.#deps.notifier.deploySucceeded(event);
      }
      return result;
    } catch (err) {
      if (!deployed) {
        const error = err instanceof Error ? err : new Error(String(err));
        const event = this.#event(request, kind, 'failure', Math.round(performance.now() - started), undefined, error);
        logDeployEvent(this.#log, event);
        // A conflict is the state of things (no canary left to promote, a young canary), not a failure to report.
        if (!(error instanceof ConflictError)) void this.#deps.notifier.deployFailed(event, error);
      }
      throw err;
    }
  }

  #event(
    request: RollbackRequest | PromoteRequest,
    kind: 'rollback' | 'promote',
    result: 'success' | 'failure',
    durationMs: number,
    version: LiveVersion | undefined,
    error?: Error,
  ): DeployEvent {
    return {
      service: request.service.name,
      kind,
      commit: version?.commit ?? ('commit' in request ? request.commit : undefined),
      tag: version?.tag ?? ('tag' in request ? request.tag : undefined),
      result,
      durationMs,
      caller: request.caller,
      requestId: request.requestId,
      error:
        error === undefined
          ? undefined
          : { name: error.name, message: error.message, status: error instanceof DeployerError ? error.status : 500 },
    };
  }
}
