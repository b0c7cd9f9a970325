import { AsyncLocalStorage } from 'node:async_hooks';
import type { Logger } from 'pino';
import type { Config, ServiceConfig } from '../config/load.js';
import { ConflictError, DeployerError, ManifestError } from '../errors.js';
import type { KubeObject, ObjectFailure, ObjectResult } from '../kube/types.js';
import { parseImageRef, withVersion } from '../registry/image-ref.js';
import type { ImageRef, Registry } from '../registry/types.js';
import { logDeployEvent } from '../report/event-log.js';
import type { DeployEvent, Notifier } from '../report/types.js';
import type { CommitFacts, Source } from '../source/types.js';
import type { LiveReader } from '../kube/live.js';
import type { LeaseLock } from './lease.js';
import { ServiceLocks } from './lock.js';
import { resolvePinned } from './pinned.js';
import { recordPrevious } from './state.js';
import { withApiDefaults } from './defaults.js';
import { parseManifests } from './manifests.js';
import { untaggedImages } from './pod-template.js';
import { applyOrder } from './order.js';
import { canaryName, rewrite } from './rewrite.js';
import type { DeployEngine, DeployRequest, DeployResult, ImageTags, Track } from './types.js';
import { resolveVersion, shortCommit, type ResolvedVersion } from './versions.js';

/** What the engine needs of the cluster (src/kube's KubeClient provides it). */
export interface Cluster {
  scopeOf(apiVersion: string, kind: string): Promise<{ namespaced: boolean } | undefined>;
  /** The value of annotation `key` on each object's live counterpart (undefined: none, or not annotated). */
  liveAnnotations(objects: KubeObject[], key: string): Promise<(string | undefined)[]>;
  dryRun(objects: KubeObject[]): Promise<ObjectFailure[]>;
  apply(objects: KubeObject[]): Promise<ObjectResult[]>;
  deleteDeployments(namespace: string, names: string[]): Promise<ObjectResult[]>;
}

export interface EngineDeps {
  readonly config: Pick<Config, 'versions' | 'deploy'>;
  readonly logger: Logger;
  readonly source: Source;
  readonly registry: Registry;
  readonly cluster: Cluster;
  readonly notifier: Notifier;
  readonly locks?: ServiceLocks;
  /** The lock across deployer replicas, behind the in-process queue; without it, only the process is locked. */
  readonly lease?: LeaseLock | undefined;
  /** Reads live Deployments, to record each stable deploy's previous version; without it, none is recorded. */
  readonly live?: Pick<LiveReader, 'getDeployment'> | undefined;
  /** For tests of the registry wait. */
  readonly sleep?: (ms: number) => Promise<void>;
}

/**
 * The deploy flow of thesis 5.3: resolve the version (commit ↔ tag, registry), read the manifests at the commit from
 * the cache, rewrite them, refuse what the service may not touch, dry-run everything, then apply; report the result.
 */
export class Engine implements DeployEngine {
  readonly #deps: EngineDeps;
  readonly #locks: ServiceLocks;
  readonly #log: Logger;
  /** The services whose lock the current async context holds: a flow that holds one may deploy within it. */
  readonly #held = new AsyncLocalStorage<ReadonlySet<string>>();
  /** The services whose Lease the current async context holds. */
  readonly #leasedHere = new AsyncLocalStorage<ReadonlySet<string>>();

  constructor(deps: EngineDeps) {
    this.#deps = deps;
    this.#locks = deps.locks ?? new ServiceLocks();
    this.#log = deps.logger.child({ module: 'deploy' });
  }

  async run(request: DeployRequest): Promise<DeployResult> {
    const started = performance.now();
    const { service } = request;
    let version: ResolvedVersion | undefined;
    let facts: CommitFacts | undefined;
    // The event log's commit facts need git (a diff against the parent); they are read while the cluster is busy.
    let pendingFacts: Promise<CommitFacts | undefined> | undefined;
    try {
      const result = await this.#queued(service, async () => {
        const track: Track = request.kind === 'canary' ? 'canary' : 'stable';
        let objects: KubeObject[] = [];
        let untagged: ImageRef[] = [];
        const versionDeps = { source: this.#deps.source, registry: this.#deps.registry, sleep: this.#deps.sleep };
        const imagesAt = async (commit: string): Promise<ImageRef[]> => {
          objects = await this.#manifestsAt(service, commit);
          untagged = untaggedRefs(objects);
          return untagged;
        };
        const { commit: pinCommit, tag: pinTag, digests: pinDigests } = request;
        const v =
          pinDigests !== undefined && pinCommit !== undefined && pinTag !== undefined
            ? await resolvePinned(versionDeps, this.#deps.config.versions, service, { commit: pinCommit, tag: pinTag, digests: pinDigests }, imagesAt)
            : await resolveVersion(versionDeps, this.#deps.config.versions, service, request, imagesAt);
        version = v;
        pendingFacts = this.#facts(service, v.commit);
        const placed = await this.#place(service, objects);
        const rewritten = rewrite(placed, {
          track,
          tag: v.tag,
          commit: v.commit,
          digests: v.digests,
          caller: request.caller.token,
          requestId: request.requestId,
          namespace: service.namespace,
          now: new Date().toISOString(),
          service: service.name,
        });
        // The cluster phase holds the Lease shared by the deployer replicas; resolving and reading the repository
        // above needs only this process's queue, so a slow git fetch does not keep other replicas waiting.
        return this.#leased(
          service,
          async () => {
            // Each stable Deployment remembers the version it replaces (last-known-good), for a rollback to it.
            const remembered = track === 'stable' && this.#deps.live !== undefined ? await recordPrevious(this.#deps.live, rewritten, request.kind, v) : rewritten;
            const ordered = applyOrder(withApiDefaults(remembered)).map((o) => ownedBy(o, service.name));
            if (ordered.length === 0) {
              throw new ManifestError(
                track === 'canary'
                  ? `no Deployment in ${service.manifestsDir}/ at ${shortCommit(v.commit)}: nothing to deploy as canary`
                  : `no objects in ${service.manifestsDir}/ at ${shortCommit(v.commit)}`,
              );
            }

            await this.#refuseForeign(service, ordered);
            const failures = await this.#deps.cluster.dryRun(ordered);
            if (failures.length > 0) {
              throw new ManifestError(`the apiserver refused ${failures.length} object(s); nothing was applied`, {
                detail: { failures },
              });
            }

            const results: ObjectResult[] = [];
            if (track === 'stable') {
              // A deploy removes the canary first, so that never more than two versions run (thesis 5.5).
              results.push(...(await this.#deleteCanaries(service, ordered)));
            }
            results.push(...(await this.#deps.cluster.apply(ordered)));
            return { results, untagged, version: v };
          },
          { requestId: request.requestId },
        );
      });
      const v = result.version;
      facts = await (pendingFacts ?? this.#facts(service, v.commit));
      const durationMs = Math.round(performance.now() - started);
      const images = imagesOf(result.untagged, v);
      const deployResult: DeployResult = {
        message: `${service.name} ${v.tag} is deployed${request.kind === 'canary' ? ' as canary' : ''}`,
        service: service.name,
        kind: request.kind,
        commit: v.commit,
        tag: v.tag,
        images,
        objects: result.results,
        durationMs,
      };
      const event = this.#event(request, 'success', durationMs, v, facts);
      logDeployEvent(this.#log, event);
      void this.#deps.notifier.deploySucceeded(event);
      return deployResult;
    } catch (err) {
      const error = err instanceof Error ? err : new Error(String(err));
      const durationMs = Math.round(performance.now() - started);
      if (pendingFacts !== undefined) facts = await pendingFacts;
      const event = this.#event(request, 'failure', durationMs, version, facts, error);
      logDeployEvent(this.#log, event);
      // Reports never hold the answer up: the caller hears of its failure at once, Bugsnag and Slack as they can.
      void this.#deps.notifier.deployFailed(event, error);
      throw error;
    }
  }

  /**
   * Runs `fn` holding the service's deploy lock: the in-process queue, then (when configured) the Lease shared by
   * every deployer replica; each waits up to `deploy.lockWaitSeconds`, then 409. Re-entrant: a flow that holds the
   * lock (rollback, promote) runs its deploy through `run` without waiting for itself.
   */
  exclusive<T>(service: ServiceConfig, fn: () => Promise<T>, context: { requestId?: string } = {}): Promise<T> {
    return this.#queued(service, () => this.#leased(service, fn, context));
  }

  /** The in-process queue of the service (ServiceLocks), unless this async context holds it already. */
  #queued<T>(service: ServiceConfig, fn: () => Promise<T>): Promise<T> {
    const held = this.#held.getStore();
    if (held?.has(service.name) === true) return fn();
    return this.#locks.run(service.name, this.#deps.config.deploy.lockWaitSeconds * 1000, () =>
      this.#held.run(new Set([...(held ?? []), service.name]), fn),
    );
  }

  /** The service's Lease across deployer replicas, unless there is none or this async context holds it already. */
  #leased<T>(service: ServiceConfig, fn: () => Promise<T>, context: { requestId?: string }): Promise<T> {
    const lease = this.#deps.lease;
    const leased = this.#leasedHere.getStore();
    if (lease === undefined || leased?.has(service.name) === true) return fn();
    const inner = (): Promise<T> => this.#leasedHere.run(new Set([...(leased ?? []), service.name]), fn);
    return lease.hold(service, this.#deps.config.deploy.lockWaitSeconds * 1000, inner, context);
  }

  async tags(service: ServiceConfig, ref?: string): Promise<readonly ImageTags[]> {
    const commit = await this.#deps.source.resolve(service, ref ?? service.repository.defaultBranch);
    const objects = await this.#manifestsAt(service, commit);
    return Promise.all(
      untaggedRefs(objects).map(async (image) => ({
        image: image.original,
        tags: (await this.#deps.registry.tags(image)).sort(),
      })),
    );
  }

  async #manifestsAt(service: ServiceConfig, commit: string): Promise<KubeObject[]> {
    const files = await this.#deps.source.filesAt(service, commit);
    return parseManifests(files, service.manifestsDir).map((m) => m.object);
  }

  /**
   * Puts namespaced objects into the service's namespace and refuses what the service may not touch: other
   * namespaces and cluster-scoped kinds, unless its config allows them (a repository must not grant itself rights).
   */
  async #place(service: ServiceConfig, objects: KubeObject[]): Promise<KubeObject[]> {
    const refused: ObjectFailure[] = [];
    const placed: KubeObject[] = [];
    for (const object of objects) {
      const { kind, metadata } = object;
      const scope = await this.#deps.cluster.scopeOf(object.apiVersion, kind);
      if (scope === undefined) {
        refused.push({ kind, name: metadata.name, reason: `unknown kind ${object.apiVersion}/${kind}` });
        continue;
      }
      if (!scope.namespaced) {
        if (!service.allowClusterScoped) {
          refused.push({ kind, name: metadata.name, reason: `cluster-scoped ${kind} is not allowed for service ${service.name}` });
          continue;
        }
        placed.push(object);
        continue;
      }
      const namespace = metadata.namespace ?? service.namespace;
      if (namespace !== service.namespace && !service.allowNamespaces.includes(namespace)) {
        refused.push({
          kind,
          namespace,
          name: metadata.name,
          reason: `namespace ${namespace} is not allowed for service ${service.name}`,
        });
        continue;
      }
      placed.push({ ...object, metadata: { ...metadata, namespace } });
    }
    if (refused.length > 0) {
      throw new ManifestError(`${refused.length} object(s) refused; nothing was applied`, { detail: { failures: refused } });
    }
    return placed;
  }

  /**
   * Two services must not write the same object: one would silently take over the other's Deployment or Service
   * (server-side apply with one field manager and `force` cannot tell them apart). An object another service
   * deployed is refused; one without the annotation (deployed before it existed, or by hand) is taken over.
   */
  async #refuseForeign(service: ServiceConfig, objects: KubeObject[]): Promise<void> {
    const owners = await this.#deps.cluster.liveAnnotations(objects, SERVICE_ANNOTATION);
    const foreign: ObjectFailure[] = [];
    objects.forEach((o, i) => {
      const owner = owners[i];
      if (owner === undefined || owner === service.name) return;
      foreign.push({
        kind: o.kind,
        namespace: o.metadata.namespace,
        name: o.metadata.name,
        reason: `${o.kind} "${o.metadata.name}" belongs to service ${owner}; service ${service.name} may not change it`,
      });
    });
    if (foreign.length > 0) {
      throw new ConflictError(`${foreign.map((f) => f.reason).join('; ')}; nothing was applied`, { detail: { failures: foreign } });
    }
  }

  /**
   * Removes the canaries of the stable Deployments about to be applied: only those this service deployed (by the
   * ownership annotation), so a Deployment that merely has the name `NAME-canary` is never deleted.
   */
  async #deleteCanaries(service: ServiceConfig, objects: KubeObject[]): Promise<ObjectResult[]> {
    const candidates: KubeObject[] = objects
      .filter((o) => o.kind === 'Deployment')
      .map((o) => ({
        apiVersion: o.apiVersion,
        kind: 'Deployment',
        metadata: { name: canaryName(o.metadata.name), namespace: o.metadata.namespace ?? service.namespace },
      }));
    if (candidates.length === 0) return [];
    const owners = await this.#deps.cluster.liveAnnotations(candidates, SERVICE_ANNOTATION);
    const byNamespace = new Map<string, string[]>();
    candidates.forEach((c, i) => {
      if (owners[i] !== service.name) return;
      const ns = c.metadata.namespace ?? service.namespace;
      byNamespace.set(ns, [...(byNamespace.get(ns) ?? []), c.metadata.name]);
    });
    const results: ObjectResult[] = [];
    for (const [ns, names] of byNamespace) results.push(...(await this.#deps.cluster.deleteDeployments(ns, names)));
    return results;
  }

  async #facts(service: ServiceConfig, commit: string | undefined): Promise<CommitFacts | undefined> {
    if (commit === undefined) return undefined;
    try {
      return await this.#deps.source.commitFacts(service, commit);
    } catch (err) {
      // The event log's facts are nice to have; their lack never fails a deploy that went through.
      this.#log.warn({ err, service: service.name, commit }, 'commit facts unavailable');
      return undefined;
    }
  }

  #event(
    request: DeployRequest,
    result: 'success' | 'failure',
    durationMs: number,
    version: ResolvedVersion | undefined,
    facts: CommitFacts | undefined,
    error?: Error,
  ): DeployEvent {
    return {
      service: request.service.name,
      kind: request.kind,
      commit: version?.commit ?? request.commit,
      tag: version?.tag ?? request.tag,
      result,
      durationMs,
      author: facts?.author,
      insertions: facts?.insertions,
      deletions: facts?.deletions,
      caller: request.caller,
      requestId: request.requestId,
      error:
        error === undefined
          ? undefined
          : { name: error.name, message: error.message, status: error instanceof DeployerError ? error.status : 500 },
    };
  }
}

/** Names the service that deployed an object on the object itself, for `#refuseForeign` of later deploys. */
export const SERVICE_ANNOTATION = 'deployer.io/service';

function ownedBy(object: KubeObject, service: string): KubeObject {
  return { ...object, metadata: { ...object.metadata, annotations: { ...object.metadata.annotations, [SERVICE_ANNOTATION]: service } } };
}

function untaggedRefs(objects: KubeObject[]): ImageRef[] {
  return untaggedImages(objects).map((image) => parseImageRef(image));
}

/** What each untagged image became: the response lists them so a caller sees the exact digest deployed. */
function imagesOf(untagged: readonly ImageRef[], version: ResolvedVersion): DeployResult['images'] {
  return untagged.map((ref) => ({
    original: ref.original,
    applied: withVersion(ref, version.tag, Object.hasOwn(version.digests, ref.original) ? version.digests[ref.original] : undefined),
  }));
}
