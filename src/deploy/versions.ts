import type { ServiceConfig } from '../config/load.js';
import { ConflictError, InputError, NotFoundError } from '../errors.js';
import type { ImageRef, Registry } from '../registry/types.js';
import type { Source } from '../source/types.js';

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

const defaultSleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * Resolves a request's `commit` and/or `tag` into a whole version (original `Deployer#commit_to_deploy`):
 * - commit only: the tag is the one registry tag, shared by every untagged image, that was built from the commit;
 *   the registry may lag behind CI, so it is polled with back-off for up to `registryWaitSeconds`;
 * - tag only: the commit is the tag's hex suffix and must exist;
 * - both: the commit must exist and the tag must exist for every untagged image.
 * `images` lists the untagged images of the manifests at the commit, which the caller reads once it knows the commit
 * (`imagesAt`), so that images added in the new commit are checked too.
 */
export async function resolveVersion(
  deps: VersionDeps,
  options: VersionOptions,
  service: ServiceConfig,
  request: { commit?: string | undefined; tag?: string | undefined },
  imagesAt: (commit: string) => Promise<readonly ImageRef[]>,
): Promise<ResolvedVersion> {
  const { source, registry } = deps;
  if (request.commit === undefined && request.tag === undefined) {
    throw new InputError('commit or tag must be given', { field: 'commit' });
  }
  let ref = request.commit;
  if (ref === undefined) {
    ref = commitOfTag(request.tag ?? '', service.repository.type);
    if (ref === undefined) {
      throw new InputError(`tag "${request.tag}" does not end in a commit (BRANCH-SHA); give the commit too`, {
        field: 'commit',
      });
    }
  }
  const commit = await source.resolve(service, ref);
  const images = await imagesAt(commit);

  let tag = request.tag;
  if (tag === undefined) {
    tag = images.length === 0 ? shortCommit(commit) : await findTag(deps, options, service, images, commit);
  } else if (request.commit !== undefined && commitOfTag(tag, service.repository.type) !== undefined) {
    // Both given: a tag that names a commit must name this one, or the request contradicts itself.
    if (!tagMatchesCommit(tag, commit, service.repository.type)) {
      throw new InputError(`tag "${tag}" was not built from commit ${shortCommit(commit)}`, { field: 'tag' });
    }
  }

  const digests: Record<string, string> = {};
  await Promise.all(
    images.map(async (image) => {
      const digest = await registry.digestOf(image, tag);
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
  const sleep = deps.sleep ?? defaultSleep;
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
    await sleep(pause);
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

export function shortCommit(commit: string): string {
  return /^[0-9a-f]{40}$/.test(commit) ? commit.slice(0, 7) : commit;
}
