import type { Logger } from 'pino';
import { ManifestError, UpstreamError } from '../errors.js';
import { changedByApply } from './applied-change.js';
import { ApiResourceList, LiveObject } from './schemas.js';
import type { KubeResponse, KubeTransport } from './transport.js';
import { failureReason, isManifestFault, refusal, type RequestContext } from './failures.js';
import type { KubeObject, ObjectFailure, ObjectResult } from '../core/types.js';

export interface KubeClientOptions {
  /** The one connection to the apiserver (src/kube/kubernetes.ts builds it). */
  transport: KubeTransport;
  /** Server-side apply's field manager: the owner of the fields the deployer sets. */
  fieldManager: string;
  logger: Logger;
}

export interface Scope {
  namespaced: boolean;
  /** The plural resource name used in URLs and RBAC rules (`deployments`). */
  resource: string;
}

/** `v1`, `apps/v1`, `example.com/v1beta1`: also keeps anything path-like out of request URLs. */
const API_VERSION = /^(?:[a-z0-9]([-a-z0-9.]*[a-z0-9])?\/)?v[0-9]+(?:(?:alpha|beta)[0-9]+)?$/;
/** How long a discovery answer that lacks a kind is trusted before asking again (a CRD may just have been added). */
const DISCOVERY_MISS_TTL_MS = 30_000;
/** How long an object seen by the ownership read stands in for the apply's own GET. */
const SEEN_TTL_MS = 10_000;
/** Dry-runs in flight at once. */
const DRY_RUN_CONCURRENCY = 4;
/** Applies of one dependency tier in flight at once. */
const APPLY_CONCURRENCY = 4;

interface DiscoveredGroup {
  at: number;
  kinds: Map<string, Scope>;
}

interface Target {
  path: string;
  context: RequestContext;
  /** The body to apply: the object, without a namespace when its kind is cluster-scoped (as kubectl ignores it). */
  body: KubeObject;
}

/**
 * The deployer's Kubernetes adapter: discovery, dry-run, server-side apply, canary deletion and reads, over the
 * apiserver's REST API (thesis 5.3.4). Failures become the deployer's errors: `UpstreamError('kubernetes')` when
 * the apiserver is unreachable (503), refuses the deployer's identity (RBAC, 401/403) or fails (5xx);
 * `ManifestError` when it refuses an object on apply (dry-run returns those as failures instead).
 */
export class KubeClient {
  readonly #transport: KubeTransport;
  readonly #fieldManager: string;
  readonly #log: Logger;
  readonly #groups = new Map<string, DiscoveredGroup>();
  readonly #pending = new Map<string, Promise<DiscoveredGroup | undefined>>();
  /** resourceVersions the ownership read just saw, by object path, so the apply right after needs no GET of its own. */
  readonly #seen = new Map<string, { object: LiveObject | undefined; at: number }>();

  constructor(options: KubeClientOptions) {
    this.#transport = options.transport;
    this.#fieldManager = options.fieldManager;
    this.#log = options.logger.child({ module: 'kube' });
  }

  /** The apiserver's URL, for logs. */
  get server(): string {
    return this.#transport.server;
  }

  /** Whether `kind` of `apiVersion` is namespaced, and its resource name; undefined for a kind the cluster does not serve. */
  async scopeOf(apiVersion: string, kind: string): Promise<Scope | undefined> {
    if (!API_VERSION.test(apiVersion)) return undefined;
    const cached = this.#groups.get(apiVersion);
    const hit = cached?.kinds.get(kind);
    if (hit !== undefined) return hit;
    if (cached !== undefined && Date.now() - cached.at < DISCOVERY_MISS_TTL_MS) return undefined;
    const group = await this.#discover(apiVersion);
    return group?.kinds.get(kind);
  }

  async #discover(apiVersion: string): Promise<DiscoveredGroup | undefined> {
    const pending = this.#pending.get(apiVersion);
    if (pending !== undefined) return pending;
    const promise = (async () => {
      const path = apiVersion.includes('/') ? `/apis/${apiVersion}` : `/api/${apiVersion}`;
      const res = await this.#transport.send({ method: 'GET', path });
      if (res.status === 404) {
        // An unknown group/version: remembered like a known group without the kind.
        const group = { at: Date.now(), kinds: new Map<string, Scope>() };
        this.#groups.set(apiVersion, group);
        return group;
      }
      if (res.status !== 200) throw refusal(res, { verb: 'get', resource: `discovery of ${apiVersion}` });
      const list = ApiResourceList.safeParse(res.body);
      if (!list.success) throw unexpected(`discovery of ${apiVersion}`, list.error);
      const kinds = new Map<string, Scope>();
      for (const r of list.data.resources) {
        // Subresources (deployments/status) share their parent's kind.
        if (!r.name.includes('/')) kinds.set(r.kind, { namespaced: r.namespaced, resource: r.name });
      }
      const group = { at: Date.now(), kinds };
      this.#groups.set(apiVersion, group);
      return group;
    })();
    this.#pending.set(apiVersion, promise);
    try {
      return await promise;
    } finally {
      this.#pending.delete(apiVersion);
    }
  }

  /**
   * Server-side applies every object with dryRun=All (admission and validation run, nothing is stored) and returns
   * every object the apiserver refused, with its reason; empty when all would apply. The deployer's own access
   * problems (RBAC) and outages throw instead: they are not the manifests' fault.
   */
  async dryRun(objects: KubeObject[]): Promise<ObjectFailure[]> {
    // A namespace the same set creates does not exist during the dry-run: its objects' NotFound is expected.
    const created = new Set(objects.filter((o) => o.apiVersion === 'v1' && o.kind === 'Namespace').map((o) => o.metadata.name));
    const outcomes = await mapLimit(objects, DRY_RUN_CONCURRENCY, async (object): Promise<ObjectFailure | undefined> => {
      const target = await this.#target(object);
      if (!('path' in target)) return target;
      const res = await this.#apply(target, true);
      if (res.status === 200 || res.status === 201) return undefined;
      if (res.status === 404 && target.context.namespace !== undefined && created.has(target.context.namespace)) return undefined;
      if (isManifestFault(res)) return failureOf(object, target.context.namespace, failureReason(res));
      throw refusal(res, target.context);
    });
    const failures = outcomes.filter((f): f is ObjectFailure => f !== undefined);
    this.#log.debug({ objects: objects.length, failures: failures.length }, 'dry-run done');
    return failures;
  }

  /**
   * Server-side applies the objects in the order given (namespaces and CRDs before what uses them) and says for each
   * whether it was created, configured or unchanged. Consecutive objects of one dependency tier (`tierOf`, e.g. the
   * ConfigMaps, then the Deployments) go at once, since none of them needs another; without `tierOf`, one by one.
   * Stops at the first refusal: no later tier starts, and the error lists what was applied.
   */
  async apply(objects: KubeObject[], tierOf?: (object: KubeObject) => number): Promise<ObjectResult[]> {
    const results: ObjectResult[] = [];
    for (const tier of tiers(objects, tierOf)) {
      let failure: { err: unknown } | undefined;
      const outcomes = await mapLimit(tier, APPLY_CONCURRENCY, async (object) => {
        // After a refusal no further object of the tier starts; those under way finish and are listed.
        if (failure !== undefined) return undefined;
        try {
          return await this.#applyOne(object);
        } catch (err) {
          failure ??= { err };
          return undefined;
        }
      });
      results.push(...outcomes.filter((r): r is ObjectResult => r !== undefined));
      if (failure === undefined) continue;
      const { err } = failure;
      if (err instanceof ManifestError && err.detail !== undefined && 'failures' in err.detail) {
        // The failing object's error names what was applied before it, in this tier too.
        throw new ManifestError(err.message, { detail: { failures: err.detail['failures'], applied: results } });
      }
      throw err;
    }
    return results;
  }

  async #applyOne(object: KubeObject): Promise<ObjectResult> {
    const target = await this.#target(object);
    if (!('path' in target)) {
      throw new ManifestError(`${object.kind} ${object.metadata.name}: ${target.reason}`, { detail: { failures: [target] } });
    }
    const before = await this.#objectBefore(target);
    const res = await this.#apply(target, false);
    if (res.status !== 200 && res.status !== 201) {
      if (isManifestFault(res)) {
        const failure = failureOf(object, target.context.namespace, failureReason(res));
        throw new ManifestError(`the apiserver refused ${object.kind} ${object.metadata.name}: ${failure.reason}`, {
          detail: { failures: [failure] },
        });
      }
      throw refusal(res, target.context);
    }
    const after = liveObjectOf(res, target.context);
    const action = res.status === 201 ? 'created' : before !== undefined && !changedByApply(before, after, this.#fieldManager) ? 'unchanged' : 'configured';
    const result: ObjectResult = { apiVersion: object.apiVersion, kind: object.kind, namespace: target.context.namespace, name: object.metadata.name, action };
    this.#log.info(result, 'applied');
    return result;
  }

  /**
   * The object before the apply, to tell `configured` from `unchanged`: what the ownership read right before saw
   * (`liveAnnotations`, consumed once and only for a few seconds), else a GET.
   */
  async #objectBefore(target: Target): Promise<LiveObject | undefined> {
    const seen = this.#seen.get(target.path);
    this.#seen.delete(target.path);
    if (seen !== undefined && Date.now() - seen.at < SEEN_TTL_MS) return seen.object;
    const before = await this.#transport.send({ method: 'GET', path: target.path });
    if (before.status !== 200 && before.status !== 404) throw refusal(before, { ...target.context, verb: 'get' });
    return before.status === 200 ? liveObjectOf(before, target.context) : undefined;
  }

  #apply(target: Target, dryRun: boolean): Promise<KubeResponse> {
    return this.#transport.send({
      method: 'PATCH',
      path: target.path,
      query: {
        fieldManager: this.#fieldManager,
        // force: the deployer is the source of truth for what the repository declares. Without it, a field last
        // set by someone else (kubectl edit, kubectl scale, an older client-side apply) is a conflict and the
        // deploy fails; with it, the deployer takes the field over, as the thesis' `kubectl apply` did.
        force: 'true',
        dryRun: dryRun ? 'All' : undefined,
      },
      body: target.body,
      // JSON is YAML: the apply patch type takes it as is.
      contentType: 'application/apply-patch+yaml',
    });
  }

  /** Where an object lives, or why it cannot be applied (unknown kind, no namespace). */
  async #target(object: KubeObject): Promise<Target | ObjectFailure> {
    const { apiVersion, kind, metadata } = object;
    const scope = await this.scopeOf(apiVersion, kind);
    if (scope === undefined) {
      return failureOf(object, metadata.namespace, `unknown kind ${apiVersion}/${kind}: the cluster does not serve it`);
    }
    const base = apiVersion.includes('/') ? `/apis/${apiVersion}` : `/api/${apiVersion}`;
    const group = apiVersion.includes('/') ? apiVersion.split('/')[0] : '';
    const name = encodeURIComponent(metadata.name);
    if (!scope.namespaced) {
      const { namespace: _ignored, ...clusterMetadata } = metadata;
      return {
        path: `${base}/${scope.resource}/${name}`,
        context: { verb: 'patch', resource: scope.resource, group, name: metadata.name },
        body: { ...object, metadata: clusterMetadata },
      };
    }
    const namespace = metadata.namespace;
    if (namespace === undefined || namespace === '') {
      return failureOf(object, undefined, `${kind} is namespaced but has no metadata.namespace`);
    }
    return {
      path: `${base}/namespaces/${encodeURIComponent(namespace)}/${scope.resource}/${name}`,
      context: { verb: 'patch', resource: scope.resource, group, namespace, name: metadata.name },
      body: object,
    };
  }

  /**
   * The value of annotation `key` on the live object of each of `objects` (same order); undefined where the object
   * does not exist yet or lacks the annotation. Unknown kinds count as not existing: dry-run reports them.
   */
  async liveAnnotations(objects: KubeObject[], key: string): Promise<(string | undefined)[]> {
    return mapLimit(objects, DRY_RUN_CONCURRENCY, async (object): Promise<string | undefined> => {
      const target = await this.#target(object);
      if (!('path' in target)) return undefined;
      const res = await this.#transport.send({ method: 'GET', path: target.path });
      if (res.status === 404) {
        this.#seen.set(target.path, { object: undefined, at: Date.now() });
        return undefined;
      }
      if (res.status !== 200) throw refusal(res, { ...target.context, verb: 'get' });
      const parsed = LiveObject.safeParse(res.body);
      if (!parsed.success) throw unexpected(`${target.context.resource} ${object.metadata.name}`, parsed.error);
      this.#seen.set(target.path, { object: parsed.data, at: Date.now() });
      const annotations = parsed.data.metadata.annotations ?? {};
      return Object.hasOwn(annotations, key) ? annotations[key] : undefined;
    });
  }

  /**
   * Deletes the named Deployments of `namespace` (their replica sets and pods go in the background). A Deployment
   * that does not exist is skipped: the result lists only what was deleted.
   */
  async deleteDeployments(namespace: string, names: string[]): Promise<ObjectResult[]> {
    const results: ObjectResult[] = [];
    for (const name of names) {
      const path = `/apis/apps/v1/namespaces/${encodeURIComponent(namespace)}/deployments/${encodeURIComponent(name)}`;
      const res = await this.#transport.send({
        method: 'DELETE',
        path,
        body: { apiVersion: 'v1', kind: 'DeleteOptions', propagationPolicy: 'Background' },
      });
      if (res.status === 404) continue;
      if (res.status !== 200 && res.status !== 202) {
        throw refusal(res, { verb: 'delete', resource: 'deployments', group: 'apps', namespace, name });
      }
      const result: ObjectResult = { apiVersion: 'apps/v1', kind: 'Deployment', namespace, name, action: 'deleted' };
      this.#log.info(result, 'deleted');
      results.push(result);
    }
    return results;
  }
}

function failureOf(object: KubeObject, namespace: string | undefined, reason: string): ObjectFailure {
  return { kind: object.kind, namespace, name: object.metadata.name, reason };
}

function liveObjectOf(res: KubeResponse, context: RequestContext): LiveObject {
  const parsed = LiveObject.safeParse(res.body);
  if (!parsed.success) throw unexpected(`${context.resource} ${context.name ?? ''}`, parsed.error);
  return parsed.data;
}

function unexpected(what: string, cause: unknown): UpstreamError {
  return new UpstreamError('kubernetes', `the Kubernetes apiserver answered something unexpected for ${what}`, { cause });
}

/** Runs of consecutive objects with the same tier; each object alone without `tierOf`. */
function tiers(objects: readonly KubeObject[], tierOf: ((object: KubeObject) => number) | undefined): KubeObject[][] {
  const out: KubeObject[][] = [];
  let last: number | undefined;
  objects.forEach((object, i) => {
    const tier = tierOf === undefined ? i : tierOf(object);
    const current = out.at(-1);
    if (current !== undefined && tier === last) current.push(object);
    else out.push([object]);
    last = tier;
  });
  return out;
}

/** Like `Promise.all(items.map(fn))`, at most `limit` at a time; results in the items' order. */
async function mapLimit<T, R>(items: readonly T[], limit: number, fn: (item: T) => Promise<R>): Promise<R[]> {
  const results: R[] = new Array<R>(items.length);
  let next = 0;
  let failed = false;
  const worker = async (): Promise<void> => {
    while (next < items.length && !failed) {
      const index = next++;
      try {
        results[index] = await fn(items[index] as T);
      } catch (err) {
        // The first error wins; the other workers take no new items.
        failed = true;
        throw err;
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, () => worker()));
  return results;
}
