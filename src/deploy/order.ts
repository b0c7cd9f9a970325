import type { KubeObject } from '../core/types.js';

/**
 * The order objects are applied in, so that what an object refers to exists before it: namespaces and CRDs first,
 * then config and secrets with services (a Service refers to none of them, only to pods by label), identities and
 * RBAC, then everything else, and workloads last (a pod gets the environment variables of the Services that exist
 * when it starts).
 */
const RANK: Readonly<Record<string, number>> = {
  Namespace: 0,
  CustomResourceDefinition: 0,
  PriorityClass: 1,
  StorageClass: 1,
  ResourceQuota: 1,
  LimitRange: 1,
  ConfigMap: 2,
  Secret: 2,
  PersistentVolume: 2,
  PersistentVolumeClaim: 2,
  Service: 2,
  ServiceAccount: 3,
  ClusterRole: 3,
  Role: 3,
  ClusterRoleBinding: 4,
  RoleBinding: 4,
  // Everything not listed: 6.
  Deployment: 7,
  StatefulSet: 7,
  DaemonSet: 7,
  ReplicaSet: 7,
  Pod: 7,
  Job: 7,
  CronJob: 7,
  HorizontalPodAutoscaler: 8,
  PodDisruptionBudget: 8,
};

/** An object's dependency tier: objects of one tier never need each other, so they may be applied at once. */
export function tierOf(object: Pick<KubeObject, 'kind'>): number {
  return RANK[object.kind] ?? 6;
}

/** A stable sort by dependency rank: within a rank the manifests' own order is kept. */
export function applyOrder<T extends Pick<KubeObject, 'kind'>>(objects: readonly T[]): T[] {
  return objects
    .map((object, index) => ({ object, index, rank: tierOf(object) }))
    .sort((a, b) => a.rank - b.rank || a.index - b.index)
    .map((e) => e.object);
}
