import { ManifestError, NotFoundError, UpstreamError } from '../errors.js';
import type { GitObject, ObjectInfo } from './git-batch.js';
import { BrokenCacheError, type GitCaches, type Repo } from './git-cache.js';
import type { GitFetcher } from './git-fetch.js';
import type { Purpose } from './fetch-queue.js';
import { MAX_READ_BYTES } from './limits.js';
import type { ManifestFile } from './types.js';

/** Files and directories below the manifests directory, at most: a tree walk must end. */
const MAX_ENTRIES = 100_000;

/** One entry of a git tree object. */
export interface TreeEntry {
  readonly mode: string;
  readonly name: string;
  readonly oid: string;
}

/**
 * Reading at a commit, from the cache's object store through its `cat-file` reader — never from a checkout, so
 * concurrent reads of different commits cannot disturb each other. Trees are always in the partial clone; the blobs
 * a read needs and the cache lacks are fetched in one request first.
 */
export class GitReader {
  readonly #caches: GitCaches;
  readonly #fetcher: GitFetcher;

  constructor(caches: GitCaches, fetcher: GitFetcher) {
    this.#caches = caches;
    this.#fetcher = fetcher;
  }

  async info(repo: Repo, names: readonly string[]): Promise<Array<ObjectInfo | undefined>> {
    try {
      return await this.#caches.batch(repo).info(names);
    } catch (err) {
      throw this.#caches.failure(err, repo, 'cat-file');
    }
  }

  async contents(repo: Repo, names: readonly string[]): Promise<Array<GitObject | undefined>> {
    try {
      return await this.#caches.batch(repo).contents(names);
    } catch (err) {
      throw this.#caches.failure(err, repo, 'cat-file');
    }
  }

  async hasCommit(repo: Repo, sha: string): Promise<boolean> {
    const [info] = await this.info(repo, [`${sha}^{commit}`]);
    return info?.oid === sha && info.type === 'commit';
  }

  /** The raw commit object (no mailmap, pretty format or other configuration can change what is read). */
  async commit(repo: Repo, sha: string): Promise<string> {
    const [commit] = await this.contents(repo, [sha]);
    if (commit?.type !== 'commit') throw new BrokenCacheError(`commit ${sha} is not in the cache after fetching it`);
    return commit.content.toString('utf8');
  }

  async tree(repo: Repo, oid: string): Promise<TreeEntry[]> {
    const [tree] = await this.contents(repo, [oid]);
    if (tree?.type !== 'tree') throw new BrokenCacheError(`tree ${oid} is missing from the cache`);
    return parseTree(tree.content);
  }

  /** The tree of `dir` at `sha`, from tree objects only (a partial clone has them all, unlike blobs). */
  async treeAt(repo: Repo, sha: string, dir: string): Promise<string | undefined> {
    const root = /^tree ([0-9a-f]{40})$/m.exec(await this.commit(repo, sha))?.[1];
    if (root === undefined) throw new BrokenCacheError(`commit ${sha} names no tree`);
    let oid = root;
    for (const part of dir === '' ? [] : dir.split('/')) {
      const entry = (await this.tree(repo, oid)).find((e) => e.name === part);
      if (entry === undefined || entry.mode !== '40000') return undefined;
      oid = entry.oid;
    }
    return oid;
  }

  /** Every file below the manifests directory `dir` at `sha` (the caller made sure the commit is cached). */
  async filesAt(repo: Repo, sha: string, dir: string, purpose: Purpose): Promise<ManifestFile[]> {
    const tree = await this.treeAt(repo, sha, dir);
    if (tree === undefined) {
      throw new NotFoundError(`directory ${dir}/ not found at commit ${sha} in ${repo.remote.url}`, {
        detail: { commit: sha, manifestsDir: dir },
      });
    }
    const entries: Array<{ path: string; oid: string }> = [];
    for (const { path: rel, mode, oid } of await this.#walk(repo, tree)) {
      const path = dir === '' ? rel : `${dir}/${rel}`;
      // git never writes such names, but `git mktree` does not check them: `kubernetes/../x.yaml` must not be read
      // as a path outside the manifests directory, nor be dropped silently.
      if (rel.split('/').some((c) => c === '.' || c === '..' || c === '')) {
        throw new ManifestError(`${path} has a "." or ".." path component; manifests must be plain paths`, {
          detail: { path, commit: sha },
        });
      }
      // Links are never followed: a link in the manifests directory could point anywhere, even outside it.
      if (mode === '120000') {
        throw new ManifestError(`${path} is a symbolic link; manifests must be regular files (links are not followed)`, {
          detail: { path, commit: sha },
        });
      }
      if (mode === '160000') {
        throw new ManifestError(`${path} is a submodule; manifests must be regular files (submodules are not read)`, {
          detail: { path, commit: sha },
        });
      }
      if (mode.startsWith('100')) entries.push({ path, oid });
    }
    if (entries.length === 0) return [];

    const oids = [...new Set(entries.map((e) => e.oid))];
    let infos = await this.info(repo, oids);
    const missing = oids.filter((_, i) => infos[i] === undefined);
    if (missing.length > 0) {
      const outcome = await this.#fetcher.fetch(repo, { kind: 'blobs', oids: missing }, sha, { purpose });
      if (outcome !== 'ok') throw new UpstreamError('git', `${repo.remote.url} did not serve the files of commit ${sha}`);
      infos = await this.info(repo, oids);
    }
    const total = infos.reduce((sum, info) => sum + (info?.size ?? 0), 0);
    if (total > MAX_READ_BYTES) {
      throw new ManifestError(`the manifests directory holds ${total} bytes; at most ${MAX_READ_BYTES} are read`);
    }
    const blobs = await this.contents(repo, oids);
    const byOid = new Map(oids.map((oid, i) => [oid, blobs[i]]));
    return entries.map(({ path, oid }) => {
      const blob = byOid.get(oid);
      if (blob?.type !== 'blob') throw new BrokenCacheError(`blob ${oid} of ${path} is missing after fetching it`);
      return { path, content: blob.content };
    });
  }

  /** The entries below `root`, depth first in git's order (as `ls-tree -r`); one read per level of directories. */
  async #walk(repo: Repo, root: string): Promise<Array<{ path: string; mode: string; oid: string }>> {
    const trees = new Map<string, TreeEntry[]>();
    let level = [root];
    let count = 0;
    while (level.length > 0) {
      const objects = await this.contents(repo, level);
      const next = new Set<string>();
      level.forEach((oid, i) => {
        const object = objects[i];
        if (object?.type !== 'tree') throw new BrokenCacheError(`tree ${oid} is missing from the cache`);
        const entries = parseTree(object.content);
        count += entries.length;
        trees.set(oid, entries);
        for (const e of entries) if (e.mode === '40000' && !trees.has(e.oid)) next.add(e.oid);
      });
      if (count > MAX_ENTRIES) throw new ManifestError(`the manifests directory holds more than ${MAX_ENTRIES} entries`);
      level = [...next];
    }
    const out: Array<{ path: string; mode: string; oid: string }> = [];
    const emit = (prefix: string, oid: string): void => {
      for (const e of trees.get(oid) ?? []) {
        const path = `${prefix}${e.name}`;
        if (e.mode === '40000') emit(`${path}/`, e.oid);
        else out.push({ path, mode: e.mode, oid: e.oid });
      }
    };
    emit('', root);
    return out;
  }
}

/** A raw tree object: `<mode> <name>\0<20-byte id>` per entry. */
export function parseTree(content: Buffer): TreeEntry[] {
  const entries: TreeEntry[] = [];
  let pos = 0;
  while (pos < content.length) {
    const space = content.indexOf(0x20, pos);
    const nul = content.indexOf(0, space + 1);
    if (space < 0 || nul < 0 || nul + 21 > content.length) throw new BrokenCacheError('a tree object is cut short');
    entries.push({
      mode: content.subarray(pos, space).toString('latin1'),
      name: content.subarray(space + 1, nul).toString('utf8'),
      oid: content.subarray(nul + 1, nul + 21).toString('hex'),
    });
    pos = nul + 21;
  }
  return entries;
}
