import { InputError, ManifestError } from '../errors.js';
import { isUntagged, parseImageRef } from '../registry/image-ref.js';
import { imageMatcher } from './globs.js';
import type { KubeObject } from '../core/types.js';

// Where the pods of each workload kind are described, and the containers and images in them: what the rewrite, the
// defaults and the image checks of the manifests have to find, in one place.

export type WorkloadKind = 'Deployment' | 'StatefulSet' | 'DaemonSet' | 'ReplicaSet' | 'Job' | 'CronJob' | 'Pod';

/** The API groups each kind of the deployer's concern lives in (a custom resource may reuse a kind's name). */
const WORKLOAD_GROUPS = new Map<string, readonly string[]>([
  ['Deployment', ['apps', 'extensions']],
  ['StatefulSet', ['apps']],
  ['DaemonSet', ['apps', 'extensions']],
  ['ReplicaSet', ['apps', 'extensions']],
  ['Job', ['batch']],
  ['CronJob', ['batch']],
  ['Pod', ['']],
]);

/** The containers the deployer versions; ephemeral containers are debugging tools added later, never versioned. */
export const CONTAINER_FIELDS = ['containers', 'initContainers'] as const;

/** The API group of an `apiVersion`: `apps` for `apps/v1`, `` for the core `v1`. */
export function groupOf(apiVersion: string): string {
  const slash = apiVersion.indexOf('/');
  return slash === -1 ? '' : apiVersion.slice(0, slash);
}

/** The workload kind of an object, or undefined for any other object (a Service, a custom resource). */
export function workloadKindOf(object: KubeObject): WorkloadKind | undefined {
  const groups = WORKLOAD_GROUPS.get(object.kind);
  return groups?.includes(groupOf(object.apiVersion)) === true ? (object.kind as WorkloadKind) : undefined;
}

/**
 * The pod template of a workload (a mapping with `metadata` and `spec`) as a live reference into `object`, so a
 * caller working on a copy can change it; a bare Pod is its own template. Undefined for other objects.
 */
export function podTemplateOf(object: KubeObject): Record<string, unknown> | undefined {
  const kind = workloadKindOf(object);
  if (kind === undefined) return undefined;
  if (kind === 'Pod') return object;
  const spec = asRecord(object['spec']);
  if (kind === 'CronJob') return asRecord(asRecord(asRecord(spec?.['jobTemplate'])?.['spec'])?.['template']);
  return asRecord(spec?.['template']);
}

/** Containers whose image the deployer would misread: the image must be a reference Docker accepts. */
export function podImageProblems(object: KubeObject): string[] {
  const template = podTemplateOf(object);
  if (template === undefined) return [];
  const base = templatePath(object);
  const spec = template['spec'];
  if (spec === undefined) return [];
  if (asRecord(spec) === undefined) return [`${base}spec: must be a mapping`];
  const problems: string[] = [];
  for (const field of CONTAINER_FIELDS) {
    const list = (spec as Record<string, unknown>)[field];
    if (list === undefined || list === null) continue;
    if (!Array.isArray(list)) {
      problems.push(`${base}spec.${field}: must be a list`);
      continue;
    }
    list.forEach((item: unknown, i) => {
      const at = `${base}spec.${field}[${i}]`;
      const container = asRecord(item);
      if (container === undefined) {
        problems.push(`${at}: must be a mapping`);
        return;
      }
      const image = container['image'];
      if (image === undefined || image === null) return;
      if (typeof image !== 'string') {
        problems.push(`${at}.image: must be a string`);
        return;
      }
      try {
        parseImageRef(image);
      } catch (err) {
        if (!(err instanceof InputError)) throw err;
        problems.push(`${at}.image: ${err.message}`);
      }
    });
  }
  return problems;
}

/** Where the pod template of a workload is, as a path prefix for messages. */
function templatePath(object: KubeObject): string {
  const kind = workloadKindOf(object);
  return kind === 'Pod' ? '' : kind === 'CronJob' ? 'spec.jobTemplate.spec.template.' : 'spec.template.';
}

/** The containers and init containers of a pod template (live references), skipping malformed entries. */
export function containersOf(template: Record<string, unknown>): Record<string, unknown>[] {
  const spec = asRecord(template['spec']);
  if (spec === undefined) return [];
  return CONTAINER_FIELDS.flatMap((field) => {
    const list = spec[field];
    if (!Array.isArray(list)) return [];
    return list.flatMap((c: unknown): Record<string, unknown>[] => {
      const container = asRecord(c);
      return container === undefined ? [] : [container];
    });
  });
}

/** Every image of every container and init container in the objects' pod templates, each once, in order. */
export function imagesOf(objects: readonly KubeObject[]): string[] {
  const images = new Set<string>();
  for (const object of objects) {
    const template = podTemplateOf(object);
    if (template === undefined) continue;
    for (const container of containersOf(template)) {
      const image = container['image'];
      if (typeof image === 'string') images.add(image);
    }
  }
  return [...images];
}

/**
 * The images the deployer versions (no tag and no digest in the manifest, thesis 5.3.4), each once, as written:
 * rewrite looks digests up by that spelling, so `web` and `docker.io/library/web` stay two entries.
 * With `ownImages` (the service's `images` globs), only the untagged images that match one.
 * Throws `ManifestError` for an image reference Docker would refuse.
 */
export function untaggedImages(objects: readonly KubeObject[], ownImages?: readonly string[]): string[] {
  const own = ownImages === undefined ? () => true : imageMatcher(ownImages);
  return imagesOf(objects).filter((image) => {
    try {
      return isUntagged(parseImageRef(image)) && own(image);
    } catch (err) {
      if (!(err instanceof InputError)) throw err;
      throw new ManifestError(err.message, { cause: err, detail: { image } });
    }
  });
}

/** The value as a mapping, or undefined when it is not one (a list, a scalar, null). */
export function asRecord(value: unknown): Record<string, unknown> | undefined {
  return typeof value === 'object' && value !== null && !Array.isArray(value) ? (value as Record<string, unknown>) : undefined;
}
