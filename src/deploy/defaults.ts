import { asRecord, groupOf, podTemplateOf } from './pod-template.js';
import type { KubeObject } from '../core/types.js';

/**
 * Server-side apply merges an associative list (`x-kubernetes-list-type: map`, or a merge key) element by element on
 * its key fields. Before Kubernetes 1.21 it refuses an applied element that omits a key field, even one the API would
 * default ("associative list with keys has an element that omits key field \"protocol\"", kubernetes#98576), where
 * kubectl's client-side apply deploys the same manifest.
 *
 * The 1.20 OpenAPI of the core, apps and batch types has two such keys that the API defaults, both to TCP: `protocol`
 * of Service ports (keys port + protocol) and of container ports (keys containerPort + protocol). Every other list-map
 * or merge key there is required (`name` of containers, env and volumes, `mountPath`, `devicePath`, `topologyKey` +
 * `whenUnsatisfiable`), so kubectl fails without it too, or has no API default to fill in (`ip` of hostAliases,
 * `name` of imagePullSecrets and of a ServiceAccount's secrets), so it is sent as written. Endpoints, EndpointSlice
 * and NetworkPolicy ports are atomic lists: their protocol is defaulted by the API but is no key.
 */
const DEFAULT_PROTOCOL = 'TCP';

/** The pod's container lists whose `ports` are keyed by containerPort + protocol (ephemeral ones share the type). */
const PORTED_CONTAINER_FIELDS = ['containers', 'initContainers', 'ephemeralContainers'] as const;

/**
 * The objects with the key fields that server-side apply needs and the API would default filled in. Only what is sent
 * changes: an object that needs nothing is returned as it is, any other is a copy; the input is never changed.
 */
export function withApiDefaults(objects: readonly KubeObject[]): KubeObject[] {
  return objects.map(withDefaults);
}

function withDefaults(object: KubeObject): KubeObject {
  if (!portListsOf(object).some((ports) => ports.some(needsProtocol))) return object;
  const copy = structuredClone(object);
  for (const ports of portListsOf(copy)) {
    for (const port of ports) {
      if (needsProtocol(port)) port['protocol'] = DEFAULT_PROTOCOL;
    }
  }
  return copy;
}

/** A port written without `protocol`, or with `protocol:` and no value (null, which the API defaults too). */
function needsProtocol(port: Record<string, unknown>): boolean {
  return port['protocol'] === undefined || port['protocol'] === null;
}

/** The port lists of the object (live references into it), each as its mapping entries; malformed ones are skipped. */
function portListsOf(object: KubeObject): Record<string, unknown>[][] {
  const lists: unknown[] = [];
  if (object.kind === 'Service' && groupOf(object.apiVersion) === '') {
    lists.push(asRecord(object['spec'])?.['ports']);
  }
  const podSpec = asRecord(anyPodTemplateOf(object)?.['spec']);
  if (podSpec !== undefined) {
    for (const field of PORTED_CONTAINER_FIELDS) {
      const containers = podSpec[field];
      if (!Array.isArray(containers)) continue;
      for (const container of containers) lists.push(asRecord(container)?.['ports']);
    }
  }
  return lists.flatMap((list) => (Array.isArray(list) ? [entriesOf(list)] : []));
}

function entriesOf(list: unknown[]): Record<string, unknown>[] {
  return list.flatMap((entry) => {
    const record = asRecord(entry);
    return record === undefined ? [] : [record];
  });
}

/**
 * The pod template of every kind that has one: the workloads the deployer rewrites, and the two core kinds it does
 * not version but the apiserver defaults alike (a PodTemplate's `template`, a ReplicationController's).
 */
function anyPodTemplateOf(object: KubeObject): Record<string, unknown> | undefined {
  const workload = podTemplateOf(object);
  if (workload !== undefined) return workload;
  if (groupOf(object.apiVersion) !== '') return undefined;
  if (object.kind === 'PodTemplate') return asRecord(object['template']);
  if (object.kind === 'ReplicationController') return asRecord(asRecord(object['spec'])?.['template']);
  return undefined;
}
