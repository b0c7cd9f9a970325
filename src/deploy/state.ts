import { z } from 'zod';
import type { ServiceConfig } from '../config/load.js';
import { InputError } from '../errors.js';
import { nameOf, parseImageRef } from '../registry/image-ref.js';
import { readKey, type Keys } from '../core/keys.js';
import { canaryName } from './rewrite.js';
import type { DeployKind, KubeObject, LiveDeployment, Replicas } from '../core/types.js';
import type { LiveReader } from '../core/ports.js';

/**
 * The service's state as the cluster holds it (issue "used-by flows"): the deployer stores nothing, so the version
 * of every Deployment is read back from the annotations its rewrite wrote, and the last-known-good stable version,
 * which a rollback after a bad promotion needs, is written by every stable deploy as `DOMAIN/previous-*`. Every read takes the keys (src/core/keys.ts) and
 * falls back to those an earlier release wrote.
 */

/** A version as read back from the cluster. */
export interface LiveVersion {
  readonly tag: string;
  readonly commit: string;
  /** Digest per untagged image, keyed by the image as written in the manifests; empty without digest pinning. */
  readonly digests: Readonly<Record<string, string>>;
  /** The one digest, when the service has one untagged image (the usual case). */
  readonly digest?: string | undefined;
  /** The token name of whoever deployed it. */
  readonly deployedBy?: string | undefined;
  /** Who ran depctl, as that caller claimed it. */
  readonly executor?: string | undefined;
  /** ISO 8601. */
  readonly deployedAt?: string | undefined;
  readonly requestId?: string | undefined;
}

export interface TrackState {
  readonly name: string;
  /** Undefined for a Deployment the deployer did not version (no untagged image). */
  readonly version?: LiveVersion | undefined;
  readonly images: readonly string[];
  readonly replicas: Replicas;
}

export interface CanaryState extends TrackState {
  /** Since the canary's version was deployed. */
  readonly ageSeconds?: number | undefined;
}

/** `GET /:service`: one entry per Deployment of the service (a stable one and its canary share an entry). */
export interface DeploymentState {
  readonly namespace: string;
  /** The stable Deployment's name. */
  readonly name: string;
  readonly stable?: TrackState | undefined;
  readonly canary?: CanaryState | undefined;
  /** The last-known-good stable version, which `rollback?to=previous` deploys. */
  readonly previous?: LiveVersion | undefined;
}

const DIGEST = /^[a-z0-9]+(?:[.+_-][a-z0-9]+)*:[a-zA-Z0-9=_-]{32,}$/;
const Digests = z.record(z.string(), z.string().regex(DIGEST));

/** The label selectors of the objects the deployer applied for `service`: this release's, then an earlier one's. */
export function serviceSelectors(keys: Keys, service: string): string[] {
  const labels = [keys.serviceLabel, ...(keys.legacy === undefined ? [] : [keys.legacy.serviceLabel])];
  return [...new Set(labels)].map((label) => `${label}=${service}`);
}

/** The namespaces a service's objects may live in. */
export function serviceNamespaces(service: ServiceConfig): string[] {
  return [...new Set([service.namespace, ...service.allowNamespaces])];
}

/** Every Deployment the deployer applied for the service, in its namespaces. */
export async function serviceDeployments(keys: Keys, live: LiveReader, service: ServiceConfig): Promise<LiveDeployment[]> {
  // A label selector cannot say "this label or that one": one list per selector, each Deployment once.
  const lists = await Promise.all(
    serviceNamespaces(service).flatMap((ns) => serviceSelectors(keys, service.name).map((selector) => live.listDeployments(ns, selector))),
  );
  const unique = new Map(lists.flat().map((d) => [`${d.namespace}/${d.name}`, d]));
  return [...unique.values()].sort((a, b) => a.namespace.localeCompare(b.namespace) || a.name.localeCompare(b.name));
}

export function isCanary(keys: Keys, d: LiveDeployment): boolean {
  const track = readKey(keys, d.annotations, (k) => k.annotations.track) ?? readKey(keys, d.labels, (k) => k.trackLabel);
  return track === 'canary' || readKey(keys, d.labels, (k) => k.canaryOfLabel) !== undefined;
}

/** The name of the stable Deployment a canary stands beside. */
export function stableNameOf(keys: Keys, d: LiveDeployment): string {
  if (!isCanary(keys, d)) return d.name;
  const of = readKey(keys, d.labels, (k) => k.canaryOfLabel);
  if (of !== undefined) return of;
  const suffix = canaryName('');
  return d.name.endsWith(suffix) ? d.name.slice(0, -suffix.length) : d.name;
}

/** Digest per untagged image: the applied images that carry the version's tag and a digest. */
function digestsOf(images: readonly string[], tag: string): Record<string, string> {
  const digests: Record<string, string> = {};
  for (const image of images) {
    try {
      const ref = parseImageRef(image);
      if (ref.tag === tag && ref.digest !== undefined && DIGEST.test(ref.digest)) digests[nameOf(ref)] = ref.digest;
    } catch (err) {
      // An image the apiserver accepted but we cannot parse is not one the deployer wrote.
      if (!(err instanceof InputError)) throw err;
    }
  }
  return digests;
}

function withDigest(version: Omit<LiveVersion, 'digest'>): LiveVersion {
  const distinct = [...new Set(Object.values(version.digests))];
  return distinct.length === 1 ? { ...version, digest: distinct[0] } : version;
}

/** The version the deployer wrote on a Deployment; undefined for one it did not version. */
export function versionOf(keys: Keys, d: LiveDeployment): LiveVersion | undefined {
  const read = (pick: (k: Keys) => string): string | undefined => readKey(keys, d.annotations, pick);
  const tag = read((k) => k.annotations.tag);
  const commit = read((k) => k.annotations.commit);
  if (tag === undefined || commit === undefined) return undefined;
  return withDigest({
    tag,
    commit,
    digests: digestsOf(d.images, tag),
    deployedBy: read((k) => k.annotations.caller),
    executor: read((k) => k.annotations.executor),
    deployedAt: read((k) => k.annotations.deployedAt),
    requestId: read((k) => k.annotations.requestId),
  });
}

/** The last-known-good version recorded on a stable Deployment. */
export function previousOf(keys: Keys, annotations: Readonly<Record<string, string>>): LiveVersion | undefined {
  const read = (pick: (k: Keys) => string): string | undefined => readKey(keys, annotations, pick);
  const tag = read((k) => k.previous.tag);
  const commit = read((k) => k.previous.commit);
  if (tag === undefined || commit === undefined) return undefined;
  let digests: Record<string, string> = {};
  try {
    const parsed = Digests.safeParse(JSON.parse(read((k) => k.previous.digests) ?? '{}'));
    if (parsed.success) digests = parsed.data;
  } catch {
    // Someone edited the annotation by hand: deploy by tag, and let the registry name the digest.
  }
  return withDigest({
    tag,
    commit,
    digests,
    deployedBy: read((k) => k.previous.caller),
    executor: read((k) => k.previous.executor),
    deployedAt: read((k) => k.previous.deployedAt),
  });
}

/** Whether two versions are the same build: same tag and commit, and the same digests. */
export function sameVersion(
  a: { tag: string; commit: string; digests: Readonly<Record<string, string>> },
  b: { tag: string; commit: string; digests: Readonly<Record<string, string>> },
): boolean {
  const digests = (d: Readonly<Record<string, string>>): string => JSON.stringify(Object.entries(d).sort(([x], [y]) => x.localeCompare(y)));
  return a.tag === b.tag && a.commit === b.commit && digests(a.digests) === digests(b.digests);
}

/**
 * The `previous-*` annotations of a stable Deployment about to be applied, given the live one it replaces:
 * - the same version again: the live one's record is kept (a redeploy must not forget the last-known-good);
 * - another version: the live version becomes the previous one, except on a rollback, which replaces a version
 *   that was bad (rolling back again must not bring it back);
 * - no live version: nothing.
 */
export function previousAnnotations(
  keys: Keys,
  kind: DeployKind,
  live: LiveDeployment | undefined,
  next: { tag: string; commit: string; digests: Readonly<Record<string, string>> },
): Record<string, string> {
  if (live === undefined) return {};
  const current = versionOf(keys, live);
  if (current === undefined) return {};
  // Kept (a redeploy) or new, the record is written under the current keys, whichever keys it was read from.
  const record = sameVersion(current, next) ? previousOf(keys, live.annotations) : kind === 'rollback' ? undefined : current;
  if (record === undefined) return {};
  const p = keys.previous;
  const out: Record<string, string> = { [p.tag]: record.tag, [p.commit]: record.commit, [p.digests]: JSON.stringify(record.digests) };
  if (record.deployedBy !== undefined) out[p.caller] = record.deployedBy;
  if (record.executor !== undefined) out[p.executor] = record.executor;
  if (record.deployedAt !== undefined) out[p.deployedAt] = record.deployedAt;
  return out;
}

/**
 * Adds the `previous-*` annotations to the versioned stable Deployments of a deploy (those the rewrite stamped),
 * reading each one's live object. Returns copies; other objects pass unchanged.
 */
export async function recordPrevious(
  keys: Keys,
  live: Pick<LiveReader, 'getDeployment'>,
  objects: readonly KubeObject[],
  kind: DeployKind,
  next: { tag: string; commit: string; digests: Readonly<Record<string, string>> },
): Promise<KubeObject[]> {
  return Promise.all(
    objects.map(async (object) => {
      const { metadata } = object;
      if (object.kind !== 'Deployment' || metadata.annotations?.[keys.annotations.track] !== 'stable' || metadata.namespace === undefined) {
        return object;
      }
      const previous = previousAnnotations(keys, kind, await live.getDeployment(metadata.namespace, metadata.name), next);
      // The rewrite copied the annotations already; a copy again keeps this function's input untouched too.
      const annotations = { ...metadata.annotations };
      for (const key of Object.values<string>({ ...keys.previous })) delete annotations[key];
      return { ...object, metadata: { ...metadata, annotations: { ...annotations, ...previous } } };
    }),
  );
}

function trackOf(keys: Keys, d: LiveDeployment): TrackState {
  return { name: d.name, version: versionOf(keys, d), images: d.images, replicas: d.replicas };
}

/** Time since `iso`, in whole seconds; undefined for a missing or unreadable time. */
export function ageSeconds(iso: string | undefined, now: number): number | undefined {
  if (iso === undefined) return undefined;
  const at = Date.parse(iso);
  return Number.isNaN(at) ? undefined : Math.max(0, Math.floor((now - at) / 1000));
}

/** When a canary's version was deployed: its annotation, else when the Deployment was created. */
export function canaryDeployedAt(keys: Keys, d: LiveDeployment): string | undefined {
  return readKey(keys, d.annotations, (k) => k.annotations.deployedAt) ?? d.createdAt;
}

/** The service's Deployments paired up: each stable Deployment with its canary and its last-known-good version. */
export function serviceState(keys: Keys, deployments: readonly LiveDeployment[], now: number): DeploymentState[] {
  const entries = new Map<string, { namespace: string; name: string; stable?: LiveDeployment; canary?: LiveDeployment }>();
  for (const d of deployments) {
    const name = stableNameOf(keys, d);
    const key = `${d.namespace}/${name}`;
    const entry = entries.get(key) ?? { namespace: d.namespace, name };
    if (isCanary(keys, d)) entry.canary = d;
    else entry.stable = d;
    entries.set(key, entry);
  }
  return [...entries.values()]
    .sort((a, b) => a.namespace.localeCompare(b.namespace) || a.name.localeCompare(b.name))
    .map(({ namespace, name, stable, canary }) => ({
      namespace,
      name,
      stable: stable === undefined ? undefined : trackOf(keys, stable),
      canary: canary === undefined ? undefined : { ...trackOf(keys, canary), ageSeconds: ageSeconds(canaryDeployedAt(keys, canary), now) },
      previous: stable === undefined ? undefined : previousOf(keys, stable.annotations),
    }));
}
