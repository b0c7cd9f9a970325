/**
 * Every label, annotation and environment variable the deployer writes. They are its only storage (it keeps no state
 * but a cache): the version of each Deployment, its last-known-good predecessor and the service that owns an object
 * are read back from these keys, so they live in one place.
 *
 * The keys live under a configurable DNS domain (`labels.domain`): the default `deployer.internal` is under the
 * top-level domain ICANN reserved for private use in 2024, which nobody can register, so the keys cannot clash with
 * anyone's (earlier releases used `deployer.io`, a domain the project does not own). Objects written by an earlier
 * release are still read: `Keys.legacy` names the keys it wrote, and every read looks there when the current key is
 * missing (`readKey`); every write uses the current keys, and server-side apply drops the old ones it owned.
 */

export const DEFAULT_DOMAIN = 'deployer.internal';
/** The domain of the keys earlier releases wrote. */
export const LEGACY_DOMAIN = 'deployer.io';
/** The thesis' label (5.3.4, 5.4) that monitoring queries select on: `track=stable|canary`. */
export const DEFAULT_TRACK_LABEL = 'track';

/** The well-known labels of Kubernetes' recommended set (kubernetes.io/docs/concepts/overview/working-with-objects/common-labels). */
export const MANAGED_BY_LABEL = 'app.kubernetes.io/managed-by';
export const MANAGED_BY = 'deployer';
export const VERSION_LABEL = 'app.kubernetes.io/version';

export interface AnnotationKeys {
  readonly tag: string;
  readonly commit: string;
  readonly track: string;
  readonly caller: string;
  /** Who ran depctl, as the caller claims it (the `Executor` header); the token stays the authority. */
  readonly executor: string;
  readonly requestId: string;
  readonly deployedAt: string;
}

/** The stable version a Deployment ran before its current one (last-known-good), written by every stable deploy. */
export interface PreviousKeys {
  readonly tag: string;
  readonly commit: string;
  /** JSON: digest per untagged image, keyed by the image as written in the manifests. */
  readonly digests: string;
  readonly caller: string;
  readonly executor: string;
  readonly deployedAt: string;
}

export interface Keys {
  readonly domain: string;
  /** `track=stable|canary` on versioned workloads and their pods (thesis). */
  readonly trackLabel: string;
  /** The version as a label value, where it fits one (thesis: `tag`). */
  readonly tagLabel: string;
  /** On a canary Deployment: the name of the Deployment it is a canary of, to find (and delete) canaries by label. */
  readonly canaryOfLabel: string;
  /** On every object the deployer applies: the service it belongs to, to find a service's Deployments in the cluster. */
  readonly serviceLabel: string;
  /** Names the service that deployed an object on the object itself, so a later deploy of another service is refused. */
  readonly serviceAnnotation: string;
  /** Written by users on a Job (`"true"`): the Job runs and must complete before the rest is applied (predeploy.ts). */
  readonly preDeployAnnotation: string;
  /** Annotation keys need a DNS prefix; they hold what a label value cannot (a long tag, a token name, a time). */
  readonly annotations: AnnotationKeys;
  readonly previous: PreviousKeys;
  /** The keys an earlier release wrote, read where the current ones are missing; undefined when they are the same. */
  readonly legacy?: Keys | undefined;
}

const DNS_SUBDOMAIN = /^(?=.{1,253}$)[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;

/** Whether `domain` can prefix a label or annotation key (a DNS subdomain of at most 253 characters). */
export function isKeyDomain(domain: string): boolean {
  return DNS_SUBDOMAIN.test(domain);
}

function keysUnder(domain: string, trackLabel: string): Keys {
  const key = (name: string): string => `${domain}/${name}`;
  return {
    domain,
    trackLabel,
    tagLabel: 'tag',
    canaryOfLabel: key('canary-of'),
    serviceLabel: key('service'),
    serviceAnnotation: key('service'),
    preDeployAnnotation: key('pre-deploy'),
    annotations: {
      tag: key('tag'),
      commit: key('commit'),
      track: key('track'),
      caller: key('caller'),
      executor: key('executor'),
      requestId: key('request-id'),
      deployedAt: key('deployed-at'),
    },
    previous: {
      tag: key('previous-tag'),
      commit: key('previous-commit'),
      digests: key('previous-digests'),
      caller: key('previous-caller'),
      executor: key('previous-executor'),
      deployedAt: key('previous-deployed-at'),
    },
  };
}

/** The keys under `domain` (default `deployer.internal`), with the track label `trackLabel` (default `track`). */
export function keysFor(options: { readonly domain?: string | undefined; readonly trackLabel?: string | undefined } = {}): Keys {
  const domain = options.domain ?? DEFAULT_DOMAIN;
  const current = keysUnder(domain, options.trackLabel ?? DEFAULT_TRACK_LABEL);
  const legacy = keysUnder(LEGACY_DOMAIN, DEFAULT_TRACK_LABEL);
  const same = domain === LEGACY_DOMAIN && current.trackLabel === legacy.trackLabel;
  return same ? current : { ...current, legacy };
}

/** The keys with the defaults; for tests and tools that do not read a configuration. */
export const DEFAULT_KEYS: Keys = keysFor();

/**
 * The value of the key `pick` names in `map` (labels or annotations of a live object), else of the key an earlier
 * release wrote for it.
 */
export function readKey(
  keys: Keys,
  map: Readonly<Record<string, string>> | undefined,
  pick: (k: Keys) => string,
): string | undefined {
  if (map === undefined) return undefined;
  const current = pick(keys);
  if (Object.hasOwn(map, current)) return map[current];
  if (keys.legacy === undefined) return undefined;
  const old = pick(keys.legacy);
  return Object.hasOwn(map, old) ? map[old] : undefined;
}

/** Environment variables set in every container of a versioned pod, so the application knows its version. */
export const ENV = { track: 'TRACK', version: 'VERSION', commit: 'COMMIT' } as const;

/** Written by Kubernetes: a Deployment's revision on its ReplicaSets, and the template hash on their pods. */
export const REVISION_ANNOTATION = 'deployment.kubernetes.io/revision';
export const POD_TEMPLATE_HASH_LABEL = 'pod-template-hash';
