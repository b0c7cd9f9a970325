import { InputError } from '../errors.js';
import type { ImageRef } from '../core/types.js';

// The grammar of github.com/distribution/reference, which Docker and Kubernetes use.
const COMPONENT = /^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$/;
const TAG = /^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$/;
const DIGEST = /^[a-z0-9]+(?:[.+_-][a-z0-9]+)*:[0-9a-fA-F]{32,}$/;
const DOMAIN = /^(?:localhost|(?:[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*|\[[0-9A-Fa-f:]+\])(?::[0-9]+)?$/;

/** Docker Hub as image references name it; its API lives at `registry-1.docker.io`. */
export const DOCKER_HUB = 'docker.io';

export function isValidTag(tag: string): boolean {
  return TAG.test(tag);
}

/**
 * Parses an image reference as Docker does: `[host[:port]/]path[:tag][@digest]`; a first component is a host only
 * when it has a `.` or `:` or is `localhost`; Docker Hub's official images get `library/`.
 * Throws `InputError` for a reference Docker would refuse.
 */
export function parseImageRef(reference: string): ImageRef {
  const fail = (why: string): never => {
    throw new InputError(`invalid image reference "${reference}": ${why}`, { field: 'image' });
  };
  if (reference.length === 0 || reference.length > 512) fail('empty or too long');

  let rest = reference;
  let digest: string | undefined;
  const at = rest.indexOf('@');
  if (at !== -1) {
    digest = rest.slice(at + 1);
    rest = rest.slice(0, at);
    if (!DIGEST.test(digest)) fail('bad digest');
  }

  let tag: string | undefined;
  const colon = rest.lastIndexOf(':');
  if (colon > rest.lastIndexOf('/')) {
    tag = rest.slice(colon + 1);
    rest = rest.slice(0, colon);
    if (!TAG.test(tag)) fail('bad tag');
  }

  let registry = DOCKER_HUB;
  let path = rest;
  const slash = rest.indexOf('/');
  if (slash !== -1) {
    const first = rest.slice(0, slash);
    if (first.includes('.') || first.includes(':') || first === 'localhost' || first.startsWith('[')) {
      if (!DOMAIN.test(first)) fail('bad registry host');
      registry = first;
      path = rest.slice(slash + 1);
    }
  }
  if (registry === 'index.docker.io') registry = DOCKER_HUB;
  if (path.split('/').some((c) => !COMPONENT.test(c))) fail('bad repository name (lower-case letters, digits, separators)');
  if (registry === DOCKER_HUB && !path.includes('/')) path = `library/${path}`;

  return { registry, repository: path, tag, digest, original: reference };
}

/** The name as written in the manifest, without tag or digest (so a rewrite changes nothing else). */
export function nameOf(ref: ImageRef): string {
  let name = ref.original;
  const at = name.indexOf('@');
  if (at !== -1) name = name.slice(0, at);
  const colon = name.lastIndexOf(':');
  if (colon > name.lastIndexOf('/')) name = name.slice(0, colon);
  return name;
}

/** `name:tag`, or `name:tag@digest` when a digest is given (a moved tag cannot change what runs). */
export function withVersion(ref: ImageRef, tag: string, digest?: string): string {
  return digest === undefined ? `${nameOf(ref)}:${tag}` : `${nameOf(ref)}:${tag}@${digest}`;
}

/** Whether the manifest leaves the version to the deployer: no tag and no digest (thesis 5.3.4). */
export function isUntagged(ref: ImageRef): boolean {
  return ref.tag === undefined && ref.digest === undefined;
}
