import type { Logger } from 'pino';
import type { ServiceConfig } from '../config/load.js';
import { MANAGED_BY, MANAGED_BY_LABEL, type Keys } from '../core/keys.js';
import type { Cluster } from '../core/ports.js';
import type { KubeObject, LabelledObject, ObjectResult, Track } from '../core/types.js';
import { ConflictError } from '../errors.js';
import { applyOrder } from './order.js';
import { groupOf } from './pod-template.js';

/**
 * Pruning (a service's `prune: true`): after a successful stable deploy, the objects this service deployed before
 * and that its manifests at the deployed commit no longer hold are deleted.
 *
 * How it differs from `kubectl apply --prune -l LABEL`: kubectl deletes every object of its allow-listed kinds that
 * carries the label and lacks from the files, whoever applied it, Namespaces and PVCs included. Here an object is
 * deleted only when it carries this service's label AND its ownership annotation (an object labelled as this
 * service's but annotated as another's refuses the deploy, before anything is applied); never a canary, never an
 * object a controller made (ownerReferences), never a Namespace (it holds other services' objects) nor a
 * PersistentVolume(Claim) (data: delete it by hand). The deletions are dry-run before the apply, so a refused one
 * fails the deploy with nothing applied.
 */

/**
 * The kinds looked at besides those of the manifests, each with the apiVersions to list it by (the first one the
 * cluster serves): what `kubectl apply --prune` lists by default, with the kinds it leaves out that deploy
 * manifests commonly hold.
 */
const PRUNED_KINDS: readonly (readonly [string, readonly string[]])[] = [
  ['ConfigMap', ['v1']],
  ['Secret', ['v1']],
  ['Service', ['v1']],
  ['ServiceAccount', ['v1']],
  ['Pod', ['v1']],
  ['ReplicationController', ['v1']],
  ['Deployment', ['apps/v1']],
  ['StatefulSet', ['apps/v1']],
  ['DaemonSet', ['apps/v1']],
  ['Job', ['batch/v1']],
  ['CronJob', ['batch/v1', 'batch/v1beta1']],
  ['Ingress', ['networking.k8s.io/v1', 'networking.k8s.io/v1beta1']],
  ['HorizontalPodAutoscaler', ['autoscaling/v1']],
  ['PodDisruptionBudget', ['policy/v1', 'policy/v1beta1']],
  ['NetworkPolicy', ['networking.k8s.io/v1']],
  ['Role', ['rbac.authorization.k8s.io/v1']],
  ['RoleBinding', ['rbac.authorization.k8s.io/v1']],
  ['ClusterRole', ['rbac.authorization.k8s.io/v1']],
  ['ClusterRoleBinding', ['rbac.authorization.k8s.io/v1']],
];

/** Never deleted by pruning, whatever their labels say. */
const NEVER_PRUNED = new Set(['Namespace', 'PersistentVolumeClaim', 'PersistentVolume', 'CustomResourceDefinition', 'Lease']);

export interface PruneDeps {
  readonly keys: Keys;
  readonly cluster: Cluster;
  readonly logger: Logger;
}

/** What the live objects found by the service's label come to. */
export interface PruneSelection {
  /** This service's, and no longer in the manifests: to delete. */
  readonly prune: readonly LabelledObject[];
  /** Labelled as this service's but annotated as another's: pruning refuses to go on. */
  readonly foreign: readonly (LabelledObject & { readonly owner: string })[];
}

const identity = (kind: string, namespace: string | undefined, name: string): string => `${kind}\n${namespace ?? ''}\n${name}`;

/**
 * Pure: which of the live objects (listed by the service's label) to delete. The manifests' objects are matched by
 * kind, namespace and name, not by API group: an Ingress applied as extensions/v1beta1 is listed as networking's.
 */
export function pruneSelection(
  live: readonly LabelledObject[],
  manifests: readonly KubeObject[],
  service: string,
  keys: Keys,
): PruneSelection {
  // Also by kind and name alone: a cluster-scoped object is listed without a namespace, whatever its manifest says.
  const kept = new Set(
    manifests.flatMap((o) => [identity(o.kind, o.metadata.namespace, o.metadata.name), identity(o.kind, undefined, o.metadata.name)]),
  );
  const seen = new Set<string>();
  const prune: LabelledObject[] = [];
  const foreign: (LabelledObject & { owner: string })[] = [];
  for (const object of live) {
    if (seen.has(object.uid)) continue;
    seen.add(object.uid);
    if (NEVER_PRUNED.has(object.kind) || object.controlled) continue;
    if (object.annotations[keys.annotations.track] === 'canary' || object.labels[keys.canaryOfLabel] !== undefined) continue;
    const owner = ownerOf(object, keys);
    // No annotation: not known to be this service's (labelled by hand, or by someone else's tool).
    if (owner === undefined) continue;
    if (owner !== service) {
      foreign.push({ ...object, owner });
      continue;
    }
    if (!kept.has(identity(object.kind, object.namespace, object.name))) prune.push(object);
  }
  // Dependents before what they use: the reverse of the apply order.
  return { prune: applyOrder(prune).reverse(), foreign };
}

function ownerOf(object: LabelledObject, keys: Keys): string | undefined {
  const a = object.annotations;
  if (Object.hasOwn(a, keys.serviceAnnotation)) return a[keys.serviceAnnotation];
  const legacy = keys.legacy?.serviceAnnotation;
  return legacy !== undefined && Object.hasOwn(a, legacy) ? a[legacy] : undefined;
}

/**
 * Before the apply: the objects a stable deploy of a pruning service will delete, each deletion dry-run. Empty for
 * a canary, or a service without `prune`. Throws `ConflictError` (nothing applied) for an object labelled as this
 * service's that another service owns.
 */
export async function planPrune(
  deps: PruneDeps,
  service: ServiceConfig,
  track: Track,
  manifests: readonly KubeObject[],
): Promise<readonly LabelledObject[]> {
  if (service.prune !== true || track !== 'stable') return [];
  const selector = `${deps.keys.serviceLabel}=${service.name},${MANAGED_BY_LABEL}=${MANAGED_BY}`;
  const namespaces = [service.namespace, ...service.allowNamespaces];
  const live: LabelledObject[] = [];
  for (const [apiVersion, kind] of await kindsToList(deps.cluster, manifests)) {
    const scope = await deps.cluster.scopeOf(apiVersion, kind);
    if (scope === undefined) continue;
    if (!scope.namespaced) {
      if (service.allowClusterScoped) live.push(...(await deps.cluster.listLabelled(apiVersion, kind, undefined, selector)));
      continue;
    }
    for (const ns of namespaces) live.push(...(await deps.cluster.listLabelled(apiVersion, kind, ns, selector)));
  }
  const { prune, foreign } = pruneSelection(live, manifests, service.name, deps.keys);
  if (foreign.length > 0) {
    const names = foreign.map((o) => `${o.kind} "${o.name}"${o.namespace === undefined ? '' : ` in ${o.namespace}`} (owned by service ${o.owner})`);
    throw new ConflictError(
      `pruning refused: ${names.join(', ')} carries the label ${deps.keys.serviceLabel}=${service.name} but another service's ` +
        'ownership annotation; pruning never deletes another service\'s object. Remove the label from it; nothing was applied',
      { detail: { failures: foreign.map((o) => ({ kind: o.kind, namespace: o.namespace, name: o.name, reason: `owned by service ${o.owner}` })) } },
    );
  }
  if (prune.length > 0) await deps.cluster.deleteObjects(prune, { dryRun: true, propagation: 'Background', action: 'pruned' });
  return prune;
}

/** After the apply: deletes what `planPrune` chose (only the objects seen then, by uid); logs each. */
export async function prune(deps: PruneDeps, service: string, objects: readonly LabelledObject[]): Promise<ObjectResult[]> {
  if (objects.length === 0) return [];
  const results = await deps.cluster.deleteObjects(objects, { dryRun: false, propagation: 'Background', action: 'pruned' });
  for (const r of results) deps.logger.info({ service, kind: r.kind, namespace: r.namespace, name: r.name }, 'pruned');
  return results;
}

/** The default kinds (the first apiVersion of each the cluster serves) and the manifests' own, each once by group and kind. */
async function kindsToList(cluster: Cluster, manifests: readonly KubeObject[]): Promise<[string, string][]> {
  const out = new Map<string, [string, string]>();
  for (const [kind, versions] of PRUNED_KINDS) {
    for (const apiVersion of versions) {
      if ((await cluster.scopeOf(apiVersion, kind)) === undefined) continue;
      out.set(`${groupOf(apiVersion)}/${kind}`, [apiVersion, kind]);
      break;
    }
  }
  for (const o of manifests) {
    const key = `${groupOf(o.apiVersion)}/${o.kind}`;
    if (!out.has(key) && !NEVER_PRUNED.has(o.kind)) out.set(key, [o.apiVersion, o.kind]);
  }
  return [...out.values()];
}
