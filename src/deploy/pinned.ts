import type { ServiceConfig } from '../config/load.js';
import { NotFoundError } from '../errors.js';
import type { ImageRef } from '../registry/types.js';
import type { ResolvedVersion, VersionDeps, VersionOptions } from './versions.js';

/** A version known in full: what a canary or the last-known-good stable Deployment ran. */
export interface PinnedVersion {
  readonly commit: string;
  readonly tag: string;
  readonly digests: Readonly<Record<string, string>>;
}

/**
 * Resolves a version read back from the cluster (promotion, rollback to the previous version): the commit must
 * still exist (it is fetched into the cache), and each untagged image of the manifests at it keeps the digest that
 * ran. Only an image without a recorded digest (digest pinning was off) is looked up by tag in the registry.
 */
export async function resolvePinned(
  deps: VersionDeps,
  options: Pick<VersionOptions, 'pinDigests'>,
  service: ServiceConfig,
  pinned: PinnedVersion,
  imagesAt: (commit: string) => Promise<readonly ImageRef[]>,
): Promise<ResolvedVersion> {
  const commit = await deps.source.resolve(service, pinned.commit);
  const images = await imagesAt(commit);
  const digests: Record<string, string> = {};
  await Promise.all(
    images.map(async (image) => {
      const recorded = Object.hasOwn(pinned.digests, image.original) ? pinned.digests[image.original] : undefined;
      if (recorded !== undefined) {
        digests[image.original] = recorded;
        return;
      }
      const digest = await deps.registry.digestOf(image, pinned.tag);
      if (digest === undefined) {
        throw new NotFoundError(`tag "${pinned.tag}" not found for image ${image.original}`, {
          detail: { image: image.original, tag: pinned.tag },
        });
      }
      if (options.pinDigests) digests[image.original] = digest;
    }),
  );
  return { commit, tag: pinned.tag, digests };
}
