import { describe, expect, it } from 'vitest';
import type { ServiceConfig } from '../../src/config/load.js';
import { ConflictError, InputError, NotFoundError } from '../../src/errors.js';
import { parseImageRef } from '../../src/registry/image-ref.js';
import { commitOfTag, refOf, tagMatchesCommit, versionAt, type ResolvedVersion, type VersionDeps, type VersionOptions } from '../../src/deploy/versions.js';
import type { ImageRef } from '../../src/core/types.js';
import type { Registry, Source } from '../../src/core/ports.js';

const SHA = '0123456789abcdef0123456789abcdef01234567';
const OTHER = 'fedcba9876543210fedcba9876543210fedcba98';

function service(type: 'git' | 'svn' = 'git'): ServiceConfig {
  return {
    name: 'web',
    repository: { url: 'https://git.example/web.git', type, defaultBranch: 'main' },
    manifestsDir: 'kubernetes',
    namespace: 'default',
    allowNamespaces: [],
    allowClusterScoped: false,
  };
}

/** A source knowing a fixed set of commits; short refs resolve by prefix. */
function fakeSource(commits: string[]): Source {
  return {
    resolve: (_s, ref) => {
      const hit = commits.filter((c) => c.startsWith(ref) || ref === 'main');
      if (hit.length === 0 || hit[0] === undefined) return Promise.reject(new NotFoundError(`commit ${ref} not found`));
      return Promise.resolve(hit[0]);
    },
    filesAt: () => Promise.resolve([]),
    commitFacts: () => Promise.reject(new Error('unused')),
    contains: () => Promise.reject(new Error('unused')),
  };
}

/** A registry whose tags per image change over polls: `script[i]` is what the i-th poll sees. */
function fakeRegistry(tagsByImage: Record<string, string[][]>): Registry & { polls: number } {
  const polls: Record<string, number> = {};
  const reg = {
    polls: 0,
    tags: (image: ImageRef) => {
      const script = tagsByImage[image.original] ?? [[]];
      const n = polls[image.original] ?? 0;
      polls[image.original] = n + 1;
      reg.polls = Math.max(reg.polls, n + 1);
      return Promise.resolve(script[Math.min(n, script.length - 1)] ?? []);
    },
    digestOf: (image: ImageRef, tag: string) => {
      const all = (tagsByImage[image.original] ?? []).flat();
      return Promise.resolve(all.includes(tag) ? `sha256:${'a'.repeat(63)}${image.original.length % 10}` : undefined);
    },
  };
  return reg;
}

const images = (...names: string[]) => names.map((n) => parseImageRef(n));

/** The pipeline's first three steps, as the deploy runs them: the ref, the commit, then the version at it. */
async function resolveVersion(
  deps: VersionDeps,
  options: VersionOptions,
  svc: ServiceConfig,
  request: { commit?: string; tag?: string },
  imagesAt: readonly ImageRef[],
): Promise<ResolvedVersion> {
  const commit = await deps.source.resolve(svc, refOf(svc, request));
  return versionAt(deps, options, svc, request, commit, imagesAt);
}
const noSleep = () => Promise.resolve();
const opts = { registryWaitSeconds: 55, pinDigests: true };

describe('commitOfTag / tagMatchesCommit', () => {
  it.each([
    ['main-0123456', '0123456'],
    ['feature-x-0123456789abcdef0123456789abcdef01234567', SHA],
    ['0123456', '0123456'],
    ['v1.2.3', undefined],
    ['latest', undefined],
    ['trunk-1234', '1234'],
  ])('commitOfTag(%s) = %s', (tag, commit) => {
    expect(commitOfTag(tag)).toBe(commit);
  });

  it.each([
    ['main-0123456', SHA, 'git', true],
    ['main-0123457', SHA, 'git', false],
    ['main-0123', SHA, 'git', false], // too short to name a commit
    ['main-01234567', SHA, 'git', true],
    ['trunk-42', '42', 'svn', true],
    ['trunk-421', '42', 'svn', false],
  ] as const)('tagMatchesCommit(%s, %s, %s) = %s', (tag, commit, type, expected) => {
    expect(tagMatchesCommit(tag, commit, type)).toBe(expected);
  });
});

describe('resolveVersion', () => {
  it('commit only: finds the one tag built from the commit for every untagged image, with digests', async () => {
    const registry = fakeRegistry({ web: [['main-0123456', 'main-fedcba9']], 'reg:5000/team/worker': [['main-0123456']] });
    const v = await resolveVersion({ source: fakeSource([SHA]), registry, sleep: noSleep }, opts, service(), { commit: '0123456' }, images('web', 'reg:5000/team/worker'));
    expect(v.commit).toBe(SHA);
    expect(v.tag).toBe('main-0123456');
    expect(Object.keys(v.digests).sort()).toEqual(['reg:5000/team/worker', 'web']);
  });

  it('commit only: waits for the tag that appears in the registry mid-wait', async () => {
    const registry = fakeRegistry({ web: [[], [], ['main-0123456']] });
    const slept: number[] = [];
    const v = await resolveVersion(
      { source: fakeSource([SHA]), registry, sleep: (ms) => (slept.push(ms), Promise.resolve()) },
      opts, service(), { commit: SHA }, images('web'));
    expect(v.tag).toBe('main-0123456');
    expect(registry.polls).toBe(3);
    expect(slept).toEqual([1000, 2000]);
  });

  it('commit only: an image repository the registry does not know yet counts as "no tag yet" and is waited for', async () => {
    const registry = fakeRegistry({ web: [['main-0123456']] });
    let calls = 0;
    const lagging: Registry = {
      ...registry,
      tags: (image) => (++calls === 1 ? Promise.reject(new NotFoundError('repository unknown')) : registry.tags(image)),
    };
    const v = await resolveVersion({ source: fakeSource([SHA]), registry: lagging, sleep: noSleep }, opts, service(), { commit: SHA }, images('web'));
    expect(v.tag).toBe('main-0123456');
    expect(calls).toBe(2);
  });

  it('commit only, waiting off: a missing tag is NotFound naming the image', async () => {
    const registry = fakeRegistry({ web: [['main-fedcba9']] });
    const p = resolveVersion({ source: fakeSource([SHA]), registry, sleep: noSleep }, { ...opts, registryWaitSeconds: 0 }, service(), { commit: SHA }, images('web'));
    await expect(p).rejects.toThrow(NotFoundError);
    await expect(p).rejects.toThrow(/no tag for commit 0123456 in the registry for web/);
  });

  it('commit only: images that disagree on the tag are refused', async () => {
    const registry = fakeRegistry({ web: [['main-0123456']], worker: [['feature-0123456']] });
    const p = resolveVersion({ source: fakeSource([SHA]), registry, sleep: noSleep }, { ...opts, registryWaitSeconds: 0 }, service(), { commit: SHA }, images('web', 'worker'));
    await expect(p).rejects.toThrow(ConflictError);
    await expect(p).rejects.toThrow(/do not agree/);
  });

  it('commit only: two tags from the same commit ask for the tag', async () => {
    const registry = fakeRegistry({ web: [['main-0123456', 'release-0123456']] });
    const p = resolveVersion({ source: fakeSource([SHA]), registry, sleep: noSleep }, opts, service(), { commit: SHA }, images('web'));
    await expect(p).rejects.toThrow(/several tags were built from commit 0123456: main-0123456, release-0123456; give the tag/);
  });

  it('commit only, no untagged image: the tag is the short commit', async () => {
    const v = await resolveVersion({ source: fakeSource([SHA]), registry: fakeRegistry({}), sleep: noSleep }, opts, service(), { commit: SHA }, images());
    expect(v).toEqual({ commit: SHA, tag: '0123456', digests: {} });
  });

  it('tag only: the commit is the tag suffix', async () => {
    const registry = fakeRegistry({ web: [['main-0123456']] });
    const v = await resolveVersion({ source: fakeSource([SHA, OTHER]), registry, sleep: noSleep }, opts, service(), { tag: 'main-0123456' }, images('web'));
    expect(v.commit).toBe(SHA);
    expect(v.tag).toBe('main-0123456');
  });

  it('tag only: a tag without a commit suffix needs the commit', async () => {
    const p = resolveVersion({ source: fakeSource([SHA]), registry: fakeRegistry({}), sleep: noSleep }, opts, service(), { tag: 'v1.2.3' }, images('web'));
    await expect(p).rejects.toThrow(InputError);
    await expect(p).rejects.toThrow(/does not end in a commit/);
  });

  it('tag only: a tag missing from the registry is NotFound', async () => {
    const registry = fakeRegistry({ web: [['main-fedcba9']] });
    const p = resolveVersion({ source: fakeSource([SHA]), registry, sleep: noSleep }, opts, service(), { tag: 'main-0123456' }, images('web'));
    await expect(p).rejects.toThrow(/tag "main-0123456" not found for image web/);
  });

  it('both: a tag built from another commit is refused', async () => {
    const registry = fakeRegistry({ web: [['main-fedcba9']] });
    const p = resolveVersion({ source: fakeSource([SHA, OTHER]), registry, sleep: noSleep }, opts, service(), { commit: SHA, tag: 'main-fedcba9' }, images('web'));
    await expect(p).rejects.toThrow(/was not built from commit 0123456/);
  });

  it('both: a free-form tag is accepted when the registry has it, and digests can be off', async () => {
    const registry = fakeRegistry({ web: [['v1.2.3']] });
    const v = await resolveVersion({ source: fakeSource([SHA]), registry, sleep: noSleep }, { ...opts, pinDigests: false }, service(), { commit: SHA, tag: 'v1.2.3' }, images('web'));
    expect(v).toEqual({ commit: SHA, tag: 'v1.2.3', digests: {} });
  });

  it('an unknown commit is NotFound', async () => {
    const p = resolveVersion({ source: fakeSource([SHA]), registry: fakeRegistry({}), sleep: noSleep }, opts, service(), { commit: 'abcdef1' }, images('web'));
    await expect(p).rejects.toThrow(NotFoundError);
  });

  it('neither commit nor tag is an InputError', async () => {
    const p = resolveVersion({ source: fakeSource([SHA]), registry: fakeRegistry({}), sleep: noSleep }, opts, service(), {}, images('web'));
    await expect(p).rejects.toThrow('commit or tag must be given');
  });

  it('svn: the tag names the revision', async () => {
    const registry = fakeRegistry({ web: [['trunk-41', 'trunk-42']] });
    const svnSource: Source = { ...fakeSource([]), resolve: (_s, ref) => Promise.resolve(ref) };
    const v = await resolveVersion({ source: svnSource, registry, sleep: noSleep }, opts, service('svn'), { commit: '42' }, images('web'));
    expect(v.tag).toBe('trunk-42');
  });
});
