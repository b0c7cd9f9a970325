import { z } from 'zod';
import { ConflictError, UpstreamError } from '../errors.js';
import type { LabelledObject, ObjectAction, ObjectRef, ObjectResult } from '../core/types.js';
import type { Scope } from './client.js';
import { failureReason, isManifestFault, refusal } from './failures.js';
import type { KubeTransport } from './transport.js';

/**
 * Listing objects of any kind by label and deleting them: what pruning and the replacement of a Job need
 * (src/deploy/prune.ts, jobs.ts). Kinds are found through the client's discovery (`scopeOf`).
 */

const Listed = z.object({
  items: z.array(
    z.looseObject({
      metadata: z.looseObject({
        name: z.string(),
        namespace: z.string().optional(),
        uid: z.string(),
        labels: z.record(z.string(), z.string()).optional(),
        annotations: z.record(z.string(), z.string()).optional(),
        ownerReferences: z.array(z.unknown()).optional(),
      }),
    }),
  ),
  metadata: z.object({ continue: z.string().optional() }).optional(),
});

/** `/api` (APIVersions: `versions: [v1]`) or `/apis/GROUP` (APIGroup: `versions: [{groupVersion}]`). */
const ApiGroup = z.object({ versions: z.union([z.array(z.string()), z.array(z.looseObject({ groupVersion: z.string() }))]) });

/** How often `waitGone` asks whether the object is gone. */
const GONE_POLL_MS = 250;

export interface KubeObjectsOptions {
  readonly transport: KubeTransport;
  readonly scopeOf: (apiVersion: string, kind: string) => Promise<Scope | undefined>;
}

export class KubeObjects {
  readonly #transport: KubeTransport;
  readonly #scopeOf: KubeObjectsOptions['scopeOf'];

  constructor(options: KubeObjectsOptions) {
    this.#transport = options.transport;
    this.#scopeOf = options.scopeOf;
  }

  /**
   * The objects of `kind` with the labels of `labelSelector`, in `namespace` (ignored for a cluster-scoped kind);
   * empty for a kind the cluster does not serve. Follows `continue` pages.
   */
  async listLabelled(apiVersion: string, kind: string, namespace: string | undefined, labelSelector: string): Promise<LabelledObject[]> {
    const scope = await this.#scopeOf(apiVersion, kind);
    if (scope === undefined) return [];
    const path = this.#collection(apiVersion, scope, namespace);
    const out: LabelledObject[] = [];
    let next: string | undefined;
    do {
      const res = await this.#transport.send({ method: 'GET', path, query: { labelSelector, limit: '500', continue: next } });
      if (res.status !== 200) throw refusal(res, { verb: 'list', resource: scope.resource, group: groupOf(apiVersion), namespace });
      const list = Listed.safeParse(res.body);
      if (!list.success) {
        throw new UpstreamError('kubernetes', `the Kubernetes apiserver answered something unexpected for the list of ${scope.resource}`, { cause: list.error });
      }
      for (const { metadata: m } of list.data.items) {
        out.push({
          apiVersion,
          kind,
          namespace: scope.namespaced ? m.namespace : undefined,
          name: m.name,
          uid: m.uid,
          labels: m.labels ?? {},
          annotations: m.annotations ?? {},
          controlled: (m.ownerReferences ?? []).length > 0,
        });
      }
      next = list.data.metadata?.continue || undefined;
    } while (next !== undefined);
    return out;
  }

  /**
   * Deletes each object, only if it is still the one seen (its uid, a precondition), one by one. `dryRun`: the
   * apiserver checks each deletion (admission, RBAC) and stores nothing. An object already gone is skipped.
   * `Foreground`: the object goes only once its dependents (a Job's pods) are gone.
   */
  async deleteObjects(
    objects: readonly ObjectRef[],
    options: { readonly dryRun: boolean; readonly propagation: 'Background' | 'Foreground'; readonly action: ObjectAction },
  ): Promise<ObjectResult[]> {
    const results: ObjectResult[] = [];
    for (const object of objects) {
      const path = await this.#path(object);
      const res = await this.#transport.send({
        method: 'DELETE',
        path,
        // In the body, not the query: the apiserver reads a DELETE's options from its body when it has one, and
        // a `?dryRun=All` next to a body is ignored (the object is deleted for real).
        body: {
          apiVersion: 'v1',
          kind: 'DeleteOptions',
          propagationPolicy: options.propagation,
          ...(options.dryRun ? { dryRun: ['All'] } : {}),
          ...(object.uid === undefined ? {} : { preconditions: { uid: object.uid } }),
        },
      });
      if (res.status === 404) continue;
      if (res.status !== 200 && res.status !== 202) {
        const context = { verb: 'delete', resource: object.kind, group: groupOf(object.apiVersion), namespace: object.namespace, name: object.name };
        if (isManifestFault(res)) {
          throw new ConflictError(`the apiserver refused to delete ${object.kind} ${object.name}: ${failureReason(res)}`, {
            detail: { failures: [{ kind: object.kind, namespace: object.namespace, name: object.name, reason: failureReason(res) }] },
          });
        }
        throw refusal(res, context);
      }
      results.push({ apiVersion: object.apiVersion, kind: object.kind, namespace: object.namespace, name: object.name, action: options.action });
    }
    return results;
  }

  /** Resolves once the object is gone (404), or throws after `timeoutMs`: a Foreground deletion waits for its pods. */
  async waitGone(object: ObjectRef, timeoutMs: number): Promise<void> {
    const path = await this.#path(object);
    const until = Date.now() + timeoutMs;
    for (;;) {
      const res = await this.#transport.send({ method: 'GET', path });
      if (res.status === 404) return;
      if (res.status !== 200) throw refusal(res, { verb: 'get', resource: object.kind, namespace: object.namespace, name: object.name });
      if (Date.now() >= until) {
        throw new UpstreamError('kubernetes', `${object.kind} ${object.name} was still being deleted after ${Math.round(timeoutMs / 1000)} s`, { status: 504 });
      }
      await new Promise((resolve) => setTimeout(resolve, GONE_POLL_MS));
    }
  }

  /**
   * The apiVersions of `apiVersion`'s group in which the cluster serves `kind` (discovery), for a refusal of a version
   * it does not serve to say which to use: `policy/v1beta1` for a PodDisruptionBudget on Kubernetes 1.20.
   */
  async servedVersions(apiVersion: string, kind: string): Promise<string[]> {
    const group = groupOf(apiVersion);
    const res = await this.#transport.send({ method: 'GET', path: group === '' ? '/api' : `/apis/${encodeURIComponent(group)}` });
    if (res.status === 404) return [];
    if (res.status !== 200) throw refusal(res, { verb: 'get', resource: `discovery of ${group === '' ? 'the core API' : group}` });
    const parsed = ApiGroup.safeParse(res.body);
    if (!parsed.success) return [];
    const versions = group === '' ? (parsed.data.versions as string[]) : (parsed.data.versions as { groupVersion: string }[]).map((v) => v.groupVersion);
    const served: string[] = [];
    for (const version of versions) if ((await this.#scopeOf(version, kind)) !== undefined) served.push(version);
    return served;
  }

  async #path(object: ObjectRef): Promise<string> {
    const scope = await this.#scopeOf(object.apiVersion, object.kind);
    if (scope === undefined) throw new UpstreamError('kubernetes', `the cluster no longer serves ${object.apiVersion}/${object.kind}`, { status: 502 });
    return `${this.#collection(object.apiVersion, scope, object.namespace)}/${encodeURIComponent(object.name)}`;
  }

  #collection(apiVersion: string, scope: Scope, namespace: string | undefined): string {
    const base = apiVersion.includes('/') ? `/apis/${apiVersion}` : `/api/${apiVersion}`;
    if (!scope.namespaced) return `${base}/${scope.resource}`;
    if (namespace === undefined) throw new UpstreamError('kubernetes', `${scope.resource} is namespaced: a namespace is needed`, { status: 502 });
    return `${base}/namespaces/${encodeURIComponent(namespace)}/${scope.resource}`;
  }
}

function groupOf(apiVersion: string): string {
  return apiVersion.includes('/') ? (apiVersion.split('/')[0] ?? '') : '';
}
