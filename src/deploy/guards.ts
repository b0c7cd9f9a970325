import type { ServiceConfig } from '../config/load.js';
import type { Keys } from '../core/keys.js';
import type { Cluster } from '../core/ports.js';
import type { KubeObject, ObjectFailure } from '../core/types.js';
import { ConflictError, ManifestError } from '../errors.js';
import { LEASE_PREFIX } from './lease.js';
import { canaryName } from './rewrite.js';

/**
 * The checks of a deploy that refuse what a repository may not ask for, before anything is applied: its
 * `kubernetes/` directory is input from whoever may push to it.
 */

const CANARY_SUFFIX = canaryName('');
const groupOf = (apiVersion: string): string => (apiVersion.includes('/') ? (apiVersion.split('/')[0] ?? '') : '');
const isLease = (o: KubeObject): boolean => o.kind === 'Lease' && groupOf(o.apiVersion) === 'coordination.k8s.io';

function refuse(failures: readonly ObjectFailure[]): void {
  if (failures.length === 0) return;
  const reasons = failures.slice(0, 5).map((f) => f.reason);
  const more = failures.length > reasons.length ? `; and ${failures.length - reasons.length} more` : '';
  throw new ManifestError(`${reasons.join('; ')}${more}; nothing was applied`, { detail: { failures } });
}

/** The most objects one deploy of the service may apply: its own limit, else the global one. */
export function maxObjectsOf(service: ServiceConfig, globalMax: number): number {
  return service.limits?.maxObjects ?? globalMax;
}

/**
 * A deploy applies at most `maxObjects` objects: each is a round trip under the lock, and a repository with
 * thousands of them would hold the service's lock (and the apiserver) for many minutes.
 */
export function refuseTooMany(service: ServiceConfig, objects: readonly KubeObject[], globalMax: number): void {
  const limit = maxObjectsOf(service, globalMax);
  if (objects.length <= limit) return;
  throw new ManifestError(
    `${service.manifestsDir}/ holds ${objects.length} objects, more than the limit of ${limit} for service ${service.name} ` +
      `(deploy.maxObjects or the service's limits.maxObjects); nothing was applied`,
    { detail: { objects: objects.length, limit } },
  );
}

/**
 * Names the deployer keeps for itself: its Leases (`deployer-SERVICE`, the deploy locks: a repository shipping one
 * held until 2099 would lock another service out for good), and Deployments named `NAME-canary`, which are the
 * canaries the deployer makes (a repository holding both `X` and `X-canary` would replace its own `X-canary` on
 * every deploy; one service could claim another's canary name in a shared namespace).
 */
export function refuseReserved(service: ServiceConfig, objects: readonly KubeObject[]): void {
  const failures: ObjectFailure[] = [];
  for (const o of objects) {
    const { name, namespace } = o.metadata;
    if (isLease(o) && name.startsWith(LEASE_PREFIX)) {
      failures.push({ kind: o.kind, namespace, name, reason: `Lease "${name}": names starting with "${LEASE_PREFIX}" are the deployer's own locks; service ${service.name} may not write them` });
    } else if (o.kind === 'Deployment' && name.endsWith(CANARY_SUFFIX)) {
      failures.push({ kind: o.kind, namespace, name, reason: `Deployment "${name}": names ending in "${CANARY_SUFFIX}" are the deployer's canaries; rename it` });
    }
  }
  refuse(failures);
}

/**
 * An object may appear once, namespaces filled in: `name` without a namespace and `name` in the service's namespace
 * are the same object, and the second would silently win over the first.
 */
export function refuseDuplicates(objects: readonly KubeObject[]): void {
  const seen = new Set<string>();
  const failures: ObjectFailure[] = [];
  for (const o of objects) {
    const { name, namespace } = o.metadata;
    const key = [groupOf(o.apiVersion), o.kind, namespace ?? '', name].join('\n');
    if (!seen.has(key)) {
      seen.add(key);
      continue;
    }
    const where = namespace === undefined ? '' : ` in namespace ${namespace}`;
    failures.push({ kind: o.kind, namespace, name, reason: `${o.kind} "${name}"${where} is defined twice (a namespace left out is the service's namespace)` });
  }
  refuse(failures);
}

/**
 * Two services must not write the same object: one would silently take over the other's Deployment or Service
 * (server-side apply with one field manager and `force` cannot tell them apart). An object another service deployed
 * is refused (409); one without the annotation (deployed before it existed, or by hand) is taken over. A canary is
 * its stable Deployment's: a service may not put a canary next to another service's Deployment (422, a name that
 * collides).
 */
export async function refuseForeign(
  deps: { readonly cluster: Pick<Cluster, 'liveAnnotations'>; readonly keys: Keys },
  service: ServiceConfig,
  objects: readonly KubeObject[],
): Promise<void> {
  const canaries = objects.filter((o) => o.kind === 'Deployment' && o.metadata.name.endsWith(CANARY_SUFFIX));
  const stables = canaries.map((o) => ({ ...o, metadata: { name: o.metadata.name.slice(0, -CANARY_SUFFIX.length), namespace: o.metadata.namespace } }));
  const owners = await ownersOf(deps, [...objects, ...stables]);
  const foreignOf = (i: number): string | undefined => {
    const owner = owners[i];
    return owner === undefined || owner === service.name ? undefined : owner;
  };
  const collisions: ObjectFailure[] = [];
  canaries.forEach((canary, i) => {
    const owner = foreignOf(objects.length + i);
    if (owner === undefined) return;
    const { name, namespace } = canary.metadata;
    collisions.push({
      kind: 'Deployment',
      namespace,
      name,
      reason: `Deployment "${name}" would be the canary of Deployment "${stables[i]?.metadata.name ?? ''}", which belongs to service ${owner}; service ${service.name} may not deploy it`,
    });
  });
  refuse(collisions);
  const foreign: ObjectFailure[] = [];
  objects.forEach((o, i) => {
    const owner = foreignOf(i);
    if (owner === undefined) return;
    const { name, namespace } = o.metadata;
    foreign.push({ kind: o.kind, namespace, name, reason: `${o.kind} "${name}" belongs to service ${owner}; service ${service.name} may not change it` });
  });
  if (foreign.length > 0) {
    throw new ConflictError(`${foreign.map((f) => f.reason).join('; ')}; nothing was applied`, { detail: { failures: foreign } });
  }
}

/** The service that deployed each object, by its annotation under the configured keys, else the old ones. */
export async function ownersOf(
  deps: { readonly cluster: Pick<Cluster, 'liveAnnotations'>; readonly keys: Keys },
  objects: readonly KubeObject[],
): Promise<(string | undefined)[]> {
  const { keys, cluster } = deps;
  const owners = await cluster.liveAnnotations([...objects], keys.serviceAnnotation);
  if (keys.legacy === undefined || keys.legacy.serviceAnnotation === keys.serviceAnnotation) return owners;
  const missing = owners.flatMap((owner, i) => (owner === undefined ? [i] : []));
  if (missing.length === 0) return owners;
  const legacy = await cluster.liveAnnotations(
    missing.map((i) => objects[i] as KubeObject),
    keys.legacy.serviceAnnotation,
  );
  const out = [...owners];
  missing.forEach((i, j) => (out[i] = legacy[j]));
  return out;
}
