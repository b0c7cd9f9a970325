/**
 * Every label, annotation and environment variable the deployer writes. They are its only storage (it keeps no state
 * but a cache): the version of each Deployment, its last-known-good predecessor and the service that owns an object
 * are read back from these keys, so they live in one place.
 */

/** Label keys and values the thesis names (5.3.4, 5.4): `track=stable|canary` and the version as `tag`. */
export const TRACK_LABEL = 'track';
export const TAG_LABEL = 'tag';
/** On a canary Deployment: the name of the Deployment it is a canary of, to find (and delete) canaries by label. */
export const CANARY_OF_LABEL = 'deployer.io/canary-of';
/** On every object the deployer applies: the service it belongs to, to find a service's Deployments in the cluster. */
export const SERVICE_LABEL = 'deployer.io/service';
/** Names the service that deployed an object on the object itself, so a later deploy of another service is refused. */
export const SERVICE_ANNOTATION = 'deployer.io/service';

/** Annotation keys need a DNS prefix; they hold what a label value cannot (a long tag, a token name, a time). */
export const ANNOTATIONS = {
  tag: 'deployer.io/tag',
  commit: 'deployer.io/commit',
  track: 'deployer.io/track',
  caller: 'deployer.io/caller',
  requestId: 'deployer.io/request-id',
  deployedAt: 'deployer.io/deployed-at',
} as const;

/** The stable version a Deployment ran before its current one (last-known-good), written by every stable deploy. */
export const PREVIOUS = {
  tag: 'deployer.io/previous-tag',
  commit: 'deployer.io/previous-commit',
  /** JSON: digest per untagged image, keyed by the image as written in the manifests. */
  digests: 'deployer.io/previous-digests',
  caller: 'deployer.io/previous-caller',
  deployedAt: 'deployer.io/previous-deployed-at',
} as const;

/** Environment variables set in every container of a versioned pod, so the application knows its version. */
export const ENV = { track: 'TRACK', version: 'VERSION', commit: 'COMMIT' } as const;

/** Written by Kubernetes: a Deployment's revision on its ReplicaSets, and the template hash on their pods. */
export const REVISION_ANNOTATION = 'deployment.kubernetes.io/revision';
export const POD_TEMPLATE_HASH_LABEL = 'pod-template-hash';
