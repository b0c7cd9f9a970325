import type { ServiceConfig } from '../config/load.js';
import type { Registry, Source } from '../core/ports.js';
import type { ImageRef } from '../core/types.js';
import { shortCommit, sleep } from '../core/util.js';
import { ConflictError, InputError, NotFoundError } from '../errors.js';

/** The version a request names, made whole: full commit, tag, and each untagged image's digest (thesis 5.3.2). */
export interface ResolvedVersion {
  readonly commit: string;
  /** The image tag; for a service without untagged images and no tag given, the short commit. */
  readonly tag: string;
  /** Digest of `image:tag` per untagged image, keyed by the image as written in the manifests. */
  readonly digests: Readonly<Record<string, string>>;
}

export interface VersionDeps {
  readonly source: Source;
  readonly registry: Registry;
  /** Waits between registry polls; injectable so tests of the waiting logic need not sleep. */
  readonly sleep?: (ms: number) => Promise<void>;
}

export interface VersionOptions {
  /** Total time to wait for CI's tag to appear in the registry; 0 turns waiting off. */
  readonly registryWaitSeconds: number;
  readonly pinDigests: boolean;
}

/**
 * The commit a tag names: the hex suffix of `<branch>-<sha>` (the original deployer's convention), or the tag
 * itself when it is all hex. svn revisions are numbers, which the same rule finds.
 */
export function commitOfTag(tag: string, type: 'git' | 'svn' = 'git'): string | undefined {
  const m = (type === 'svn' ? /(?:^|-)([0-9]+)$/ : /(?:^|-)([0-9a-fA-F]{4,40})$/).exec(tag);
  return m?.[1]?.toLowerCase();
}

/** Whether `tag` was built from `commit` (a full SHA or svn revision): its hex suffix is a prefix of the commit. */
export function tagMatchesCommit(tag: string, commit: string, type: 'git' | 'svn'): boolean {
  const suffix = commitOfTag(tag, type);
  if (suffix === undefined) return false;
  if (type === 'svn') return suffix === commit;
  return suffix.length >= 7 && commit.toLowerCase().startsWith(suffix);
}

/** The version a request names before it is resolved; `digests` with both commit and tag: a pinned version. */
export interface VersionRequest {
  readonly commit?: string | undefined;
  readonly tag?: string | undefined;
  /**
   * The exact digests to deploy, per untagged image as written in the manifests: a promotion or a rollback to the
   * previous version deploys the build that ran, even if its tag moved since.
   */
  readonly digests?: Readonly<Record<string, string>> | undefined;
}

/**
 * The reference to look up in the repository (original `Deployer#commit_to_deploy`): the commit, else the commit a
 * tag names (its hex suffix).
 */
export function refOf(service: ServiceConfig, request: VersionRequest): string {
  if (request.commit === undefined && request.tag === undefined) {
    throw new InputError('commit or tag must be given', { field: 'commit' });
  }
  if (request.commit !== undefined) return request.commit;
  const ref = commitOfTag(request.tag ?? '', service.repository.type);
  if (ref === undefined) {
    throw new InputError(`tag "${request.tag}" does not end in a commit (BRANCH-SHA); give the commit too`, {
      field: 'commit',
    });
  }
  return ref;
}

/**
 * The whole version at `commit` (thesis 5.3.2), given the untagged images of the manifests there, so that images
 * added in the new commit are checked too:
 * - commit only: the tag is the one registry tag, shared by every untagged image, that was built from the commit;
 *   the registry may lag behind CI, so it is polled with back-off for up to `registryWaitSeconds`;
 * - tag only: the commit is the tag's hex suffix (see `refOf`), and the tag must exist for every untagged image;
 * - both: the tag must exist for every untagged image;
 * - pinned (both, with digests): each image keeps the digest that ran; only an image without a recorded digest
 *   (digest pinning was off) is looked up by tag.
 */
export async function versionAt(
  deps: VersionDeps,
  options: VersionOptions,
  service: ServiceConfig,
  request: VersionRequest,
  commit: string,
  images: readonly ImageRef[],
): Promise<ResolvedVersion> {
  const pinned = request.digests !== undefined && request.commit !== undefined && request.tag !== undefined ? request.digests : {};
  let tag = request.tag;
  if (tag === undefined) {
    tag = images.length === 0 ? shortCommit(commit) : await findTag(deps, options, service, images, commit);
  } else if (request.digests === undefined && request.commit !== undefined && commitOfTag(tag, service.repository.type) !== undefined) {
    // Both given: a tag that names a commit must name this one, or the request contradicts itself.
    if (!tagMatchesCommit(tag, commit, service.repository.type)) {
      throw new InputError(`tag "${tag}" was not built from commit ${shortCommit(commit)}`, { field: 'tag' });
    }
  }

  const digests: Record<string, string> = {};
  await Promise.all(
    images.map(async (image) => {
      const recorded = Object.hasOwn(pinned, image.original) ? pinned[image.original] : undefined;
      if (recorded !== undefined) {
        digests[image.original] = recorded;
        return;
      }
      const digest = await deps.registry.digestOf(image, tag);
      if (digest === undefined) {
        throw new NotFoundError(`tag "${tag}" not found for image ${image.original}`, {
          detail: { image: image.original, tag },
        });
      }
      if (options.pinDigests) digests[image.original] = digest;
    }),
  );
  return { commit, tag, digests };
}

async function findTag(
  deps: VersionDeps,
  options: VersionOptions,
  service: ServiceConfig,
  images: readonly ImageRef[],
  commit: string,
): Promise<string> {
  const wait = deps.sleep ?? sleep;
  const start = Date.now();
  const budget = options.registryWaitSeconds * 1000;
  let slept = 0;
  let delay = 1000;
  for (;;) {
    const perImage = await Promise.all(
      images.map(async (image) =>
        (await tagsOrNone(deps.registry, image)).filter((t) => tagMatchesCommit(t, commit, service.repository.type)),
      ),
    );
    const [first, ...rest] = perImage;
    const common = (first ?? []).filter((t) => rest.every((tags) => tags.includes(t))).sort();
    if (common.length === 1 && common[0] !== undefined) return common[0];
    if (common.length > 1) {
      throw new ConflictError(`several tags were built from commit ${shortCommit(commit)}: ${common.join(', ')}; give the tag`, {
        detail: { tags: common },
      });
    }
    // Time spent counts as the larger of the clock and the sleeps, so an injected sleep still ends the wait.
    const remaining = budget - Math.max(Date.now() - start, slept);
    if (remaining <= 0) {
      const missing = images.filter((_, i) => (perImage[i] ?? []).length === 0).map((i) => i.original);
      const detail = { commit, images: images.map((i) => i.original) };
      if (missing.length > 0) {
        throw new NotFoundError(`no tag for commit ${shortCommit(commit)} in the registry for ${missing.join(', ')}`, {
          detail,
        });
      }
      throw new ConflictError(
        `the images do not agree on a tag for commit ${shortCommit(commit)}: ${images
          .map((img, i) => `${img.original}: ${(perImage[i] ?? []).join(', ')}`)
          .join('; ')}`,
        { detail },
      );
    }
    const pause = Math.min(delay, remaining);
    await wait(pause);
    slept += pause;
    delay = Math.min(delay * 2, 10_000);
  }
}

/** A repository the registry does not know yet has no tags: CI's first push of a new image may still be running. */
async function tagsOrNone(registry: Registry, image: ImageRef): Promise<string[]> {
  try {
    return await registry.tags(image);
  } catch (err) {
    if (err instanceof NotFoundError) return [];
    throw err;
  }
}
