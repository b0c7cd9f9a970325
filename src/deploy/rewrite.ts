import { InputError, ManifestError } from '../errors.js';
import { isUntagged, isValidTag, parseImageRef, withVersion } from '../registry/image-ref.js';
import { asRecord, containersOf, podTemplateOf, workloadKindOf } from './pod-template.js';
import { imageMatcher } from './globs.js';
import { ENV, MANAGED_BY, MANAGED_BY_LABEL, VERSION_LABEL, type Keys } from '../core/keys.js';
import type { KubeObject, Track } from '../core/types.js';

export interface RewriteOptions {
  readonly track: Track;
  /** The image tag to deploy (the version reference CI tagged the image with). */
  readonly tag: string;
  /** The full commit id (or svn revision) the manifests were read at. */
  readonly commit: string;
  /** Digest (`sha256:...`) of each untagged image at `tag`, keyed by the image as written in the manifests. */
  readonly digests: Readonly<Record<string, string>>;
  /** The token name of the caller. */
  readonly caller: string;
  /** Who ran depctl, as the caller claims it (already cleaned); not written when undefined. */
  readonly executor?: string | undefined;
  readonly requestId: string;
  /** ISO 8601 time of the deploy; default now. */
  readonly now?: string | undefined;
  /** The service's namespace. Not used here: putting objects into namespaces is the engine's step, before this. */
  readonly namespace?: string | undefined;
  /** The service's name: when given, every object returned gets the service label with it, and `managed-by`. */
  readonly service?: string | undefined;
  /** The label and annotation keys to write (src/core/keys.ts). */
  readonly keys: Keys;
  /** Globs of the service's own images (its `images` option): other untagged images are left as written. Unset: all. */
  readonly ownImages?: readonly string[] | undefined;
  /** Replicas of each canary Deployment (the service's `canary.replicas`); default 1, as in the thesis. */
  readonly canaryReplicas?: number | undefined;
}

const LABEL_VALUE = /^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$/;
const DNS_SUBDOMAIN_MAX = 253;

function isLabelValue(value: string): boolean {
  return value.length <= 63 && LABEL_VALUE.test(value);
}

export function canaryName(name: string): string {
  return `${name}-canary`;
}

/**
 * The deployer's modifications of the manifests (thesis 5.3.4, 5.4), on copies: the input is not changed.
 *
 * A workload (Deployment, StatefulSet, DaemonSet, ReplicaSet, Job, CronJob, bare Pod) is versioned when at least
 * one of its containers has an image without tag and digest: those images get `:TAG` (and `@DIGEST` when known),
 * and the workload and its pods are labelled and annotated with the version. Images that carry a tag or digest are
 * left as written (a statsd sidecar, thesis 5.3.4), and so are untagged images no glob of `ownImages` matches. A workload with no untagged image is not built for this version
 * and is left unchanged, like every other object: stamping it would restart someone else's software on every deploy.
 *
 * For `track: 'canary'` only versioned Deployments are returned, each turned into `NAME-canary` with one replica.
 */
export function rewrite(objects: readonly KubeObject[], opts: RewriteOptions): KubeObject[] {
  if (!isValidTag(opts.tag)) throw new InputError(`invalid tag "${opts.tag}"`, { field: 'tag' });
  const now = opts.now ?? new Date().toISOString();
  const out: KubeObject[] = [];
  for (const original of objects) {
    const object = structuredClone(original);
    const template = podTemplateOf(object);
    const versioned = template !== undefined && tagImages(object, template, opts);
    if (opts.track === 'canary') {
      if (versioned && workloadKindOf(object) === 'Deployment') out.push(toCanary(object, template, opts, now));
      continue;
    }
    if (versioned) stamp(object, template, opts, now);
    out.push(object);
  }
  // Object metadata only, never a pod template: a label there would restart the pods of an unversioned workload.
  if (opts.service !== undefined) {
    const owned = { [opts.keys.serviceLabel]: opts.service, [MANAGED_BY_LABEL]: MANAGED_BY };
    for (const object of out) setStrings(object, object.metadata, 'labels', owned);
  }
  return out;
}

/** Versions the untagged images of the template's containers; whether there was one. */
function tagImages(object: KubeObject, template: Record<string, unknown>, opts: RewriteOptions): boolean {
  const own = opts.ownImages === undefined ? () => true : imageMatcher(opts.ownImages);
  let tagged = false;
  for (const container of containersOf(template)) {
    const image = container['image'];
    if (typeof image !== 'string') continue;
    let ref;
    try {
      ref = parseImageRef(image);
    } catch (err) {
      if (!(err instanceof InputError)) throw err;
      throw new ManifestError(`${object.kind} "${object.metadata.name}": ${err.message}`, { cause: err });
    }
    if (!isUntagged(ref) || !own(image)) continue;
    // hasOwn: an image may be named like an Object.prototype member (`constructor` is a valid Docker Hub name).
    const digest = Object.hasOwn(opts.digests, image) ? opts.digests[image] : undefined;
    container['image'] = withVersion(ref, opts.tag, digest);
    tagged = true;
  }
  return tagged;
}

/** Labels, annotations and environment of a versioned workload and its pod template. */
function stamp(object: KubeObject, template: Record<string, unknown>, opts: RewriteOptions, now: string): void {
  const { keys } = opts;
  const labelTag = isLabelValue(opts.tag) ? opts.tag : undefined;
  const labels: Record<string, string | undefined> = {
    [keys.trackLabel]: opts.track,
    // A tag that is no valid label value (longer than 63, or starting with `_`) is only in the annotation; a `tag`
    // label left from the manifest would then name a wrong version, so it goes.
    [keys.tagLabel]: labelTag,
    [VERSION_LABEL]: labelTag,
  };
  const a = keys.annotations;
  const version = { [a.tag]: opts.tag, [a.commit]: opts.commit, [a.track]: opts.track };

  // The pod template gets only what the version determines. A changed template rolls every pod (and a Job's
  // template cannot change at all), so per-request data (caller, request id, time) there would restart all pods
  // on a deploy of the version already running. The service never changes: on versioned pods it lets monitoring
  // tell whose canary a pod is (kubernetes/monitoring relabels it into the `service` target label).
  const podMeta = mappingAt(object, template, 'metadata');
  setStrings(object, podMeta, 'labels', opts.service === undefined ? labels : { ...labels, [keys.serviceLabel]: opts.service });
  setStrings(object, podMeta, 'annotations', version);

  setStrings(object, object.metadata, 'labels', labels);
  setStrings(object, object.metadata, 'annotations', {
    ...version,
    [a.caller]: opts.caller,
    [a.executor]: opts.executor,
    [a.requestId]: opts.requestId,
    [a.deployedAt]: now,
  });

  // A running pod's containers cannot change except their image, so a bare Pod gets no environment: setting it
  // would make every later deploy of the Pod fail.
  if (workloadKindOf(object) === 'Pod') return;
  const env: [string, string][] = [
    [ENV.track, opts.track],
    [ENV.version, opts.tag],
    [ENV.commit, opts.commit],
  ];
  for (const container of containersOf(template)) setEnv(object, container, env);
}

/**
 * The canary of a Deployment (thesis 5.4): another Deployment, `NAME-canary`, with one replica (or the service's
 * `canary.replicas`), whose pods carry
 * `track=canary`. Its selector gets `track: canary`, so it never claims the stable pods, while the Service, which
 * selects neither track, reaches both.
 *
 * The stable Deployment's selector is never given `track: stable`: a Deployment's selector cannot change, so adding
 * it would break every Deployment created before. The stable selector may therefore match canary pods too; that is
 * harmless, because a controller only manages pods whose owner reference points to it.
 */
function toCanary(object: KubeObject, template: Record<string, unknown>, opts: RewriteOptions, now: string): KubeObject {
  const stable = object.metadata.name;
  const name = canaryName(stable);
  if (name.length > DNS_SUBDOMAIN_MAX) {
    throw new ManifestError(`Deployment "${stable}": the canary's name "${name}" is longer than ${DNS_SUBDOMAIN_MAX} characters`);
  }
  const spec = mappingAt(object, object, 'spec');
  const selector = asRecord(spec['selector']);
  if (selector === undefined) {
    throw new ManifestError(`Deployment "${stable}" has no spec.selector, so its canary cannot be told apart from it`);
  }

  stamp(object, template, opts, now);
  object.metadata.name = name;
  // A label value holds at most 63 characters; a longer name is still found by the canary's name.
  if (isLabelValue(stable)) setStrings(object, object.metadata, 'labels', { [opts.keys.canaryOfLabel]: stable });
  spec['replicas'] = opts.canaryReplicas ?? 1;
  setStrings(object, selector, 'matchLabels', { [opts.keys.trackLabel]: 'canary' });
  // An expression on `track` (say `track In (stable)`) would not match the canary's own pods.
  if (Array.isArray(selector['matchExpressions'])) {
    selector['matchExpressions'] = selector['matchExpressions'].filter(
      (e: unknown) => asRecord(e)?.['key'] !== opts.keys.trackLabel,
    );
  }
  return object;
}

/** The mapping at `parent[key]`, created when missing. */
function mappingAt(object: KubeObject, parent: Record<string, unknown>, key: string): Record<string, unknown> {
  const value = parent[key];
  if (value === undefined || value === null) {
    const created: Record<string, unknown> = {};
    parent[key] = created;
    return created;
  }
  const mapping = asRecord(value);
  if (mapping === undefined) throw new ManifestError(`${object.kind} "${object.metadata.name}": "${key}" must be a mapping`);
  return mapping;
}

/** Sets (or, for undefined, removes) string entries of the mapping at `parent[key]`; a new mapping, not shared. */
function setStrings(
  object: KubeObject,
  parent: Record<string, unknown>,
  key: string,
  entries: Readonly<Record<string, string | undefined>>,
): void {
  const next: Record<string, unknown> = { ...mappingAt(object, parent, key) };
  for (const [k, v] of Object.entries(entries)) {
    if (v === undefined) delete next[k];
    else next[k] = v;
  }
  parent[key] = next;
}

/**
 * Sets the variables in the container's `env`: an existing entry of the same name is replaced where it stands (a
 * later `$(VERSION)` reference must still come after it) and further entries of that name dropped; the others keep
 * their order; missing ones are appended.
 */
function setEnv(object: KubeObject, container: Record<string, unknown>, vars: readonly [string, string][]): void {
  const current: unknown = container['env'] ?? [];
  if (!Array.isArray(current)) {
    throw new ManifestError(`${object.kind} "${object.metadata.name}": a container's env must be a list`);
  }
  const wanted = new Map(vars);
  const placed = new Set<string>();
  const env: unknown[] = [];
  for (const entry of current as unknown[]) {
    const name = asRecord(entry)?.['name'];
    if (typeof name !== 'string' || !wanted.has(name)) {
      env.push(entry);
      continue;
    }
    if (placed.has(name)) continue;
    env.push({ name, value: wanted.get(name) });
    placed.add(name);
  }
  for (const [name, value] of vars) if (!placed.has(name)) env.push({ name, value });
  container['env'] = env;
}
