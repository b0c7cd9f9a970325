import { join } from 'node:path';
import type { Logger } from 'pino';
import type { ServiceConfig } from '../config/load.js';
import { InputError, NotFoundError, UpstreamError } from '../errors.js';
import { CommitFactsReader } from './git-facts.js';
import { GitCaches, type Repo } from './git-cache.js';
import { GitFetcher, type FetchOptions, type FetchOutcome } from './git-fetch.js';
import { GitReader } from './git-read.js';
import type { Purpose } from './fetch-queue.js';
import { cleanDir, parseFullSha, parseGitRef, printable } from './refs.js';
import type { ReadOptions } from '../core/ports.js';
import type { CommitFacts, ManifestFile } from '../core/types.js';
import type { Source } from '../core/ports.js';

export { classifyFetchError } from './git-fetch.js';
export { isoDate, parseRawDiff } from './git-facts.js';

/** The most a commit fetch with its small blobs may bring before it is fetched again without blobs. */
const MAX_SMALL_BLOBS_PACK_BYTES = 16 * 1024 * 1024;

export interface GitSourceOptions {
  /** The pod's cache directory; repositories live in `cacheDir/git/`. */
  cacheDir: string;
  /** Stall timeout of each git call. */
  timeoutMs: number;
  logger: Logger;
  /** The git binary (default: `git` from PATH). */
  git?: string | undefined;
}

/**
 * Git through a per-pod cache (thesis 5.3.3): one bare partial clone per repository URL (git-cache.ts), fetched into
 * only when a wanted commit or blob is missing — a branch is always fetched (git-fetch.ts) — and read at a commit
 * through one long-lived `cat-file` reader per cache (git-read.ts, git-facts.ts). This file resolves references.
 *
 * The cache stores no remote URL and git never fetches lazily: no git command can reach the network without our
 * timeout, credentials and queue; a missing object fails at once and we fetch explicitly instead.
 */
export class GitSource implements Source {
  readonly #caches: GitCaches;
  readonly #fetcher: GitFetcher;
  readonly #reader: GitReader;
  readonly #facts: CommitFactsReader;
  readonly #log: Logger;

  constructor(options: GitSourceOptions) {
    this.#log = options.logger.child({ module: 'source', vcs: 'git' });
    this.#caches = new GitCaches({
      dir: join(options.cacheDir, 'git'),
      timeoutMs: options.timeoutMs,
      binary: options.git ?? 'git',
      logger: this.#log,
    });
    this.#fetcher = new GitFetcher(this.#caches, this.#log);
    this.#reader = new GitReader(this.#caches, this.#fetcher);
    this.#facts = new CommitFactsReader(this.#caches, this.#fetcher, this.#reader, this.#log);
  }

  async contains(service: ServiceConfig, ref: string, commit: string): Promise<boolean> {
    const sha = parseFullSha(commit);
    const parsed = parseGitRef(ref);
    const repo = this.#caches.repo(service);
    const rev =
      parsed.kind === 'commit' ? parsed.sha : parsed.kind === 'short' ? parsed.prefix : `refs/remotes/origin/${parsed.name}`;
    if (rev === sha) return true;
    // Exit 0: an ancestor; 1: not one; anything else (an unknown or ambiguous ref): not known to be contained.
    const out = await this.#caches
      .local(repo, ['merge-base', '--is-ancestor', '--end-of-options', rev, sha], { allowFail: true })
      .catch(() => undefined);
    return out !== undefined;
  }

  async resolve(service: ServiceConfig, ref: string, options: ReadOptions = {}): Promise<string> {
    const parsed = parseGitRef(ref);
    const purpose = options.purpose ?? 'deploy';
    const repo = this.#caches.repo(service);
    return this.#caches.recovering(repo, async () => {
      switch (parsed.kind) {
        case 'commit':
          await this.#ensureCommit(repo, parsed.sha, purpose);
          return parsed.sha;
        case 'short':
          return this.#resolveShort(repo, parsed.prefix, purpose);
        case 'branch':
          return this.#resolveBranch(repo, parsed.name, purpose);
      }
    });
  }

  async filesAt(service: ServiceConfig, commit: string, options: ReadOptions = {}): Promise<ManifestFile[]> {
    const sha = parseFullSha(commit);
    const dir = cleanDir(service.manifestsDir);
    const purpose = options.purpose ?? 'deploy';
    const repo = this.#caches.repo(service);
    return this.#caches.recovering(repo, async () => {
      await this.#ensureCommit(repo, sha, purpose);
      return this.#reader.filesAt(repo, sha, dir, purpose);
    });
  }

  async commitFacts(service: ServiceConfig, commit: string): Promise<CommitFacts> {
    const sha = parseFullSha(commit);
    const repo = this.#caches.repo(service);
    return this.#caches.recovering(repo, async () => {
      await this.#ensureCommit(repo, sha, 'read');
      return this.#facts.facts(repo, sha);
    });
  }

  /** Stops the caches' long-lived readers (they stop by themselves when idle, too). */
  close(): void {
    this.#caches.close();
  }

  async #ensureCommit(repo: Repo, sha: string, purpose: Purpose): Promise<void> {
    if (await this.#reader.hasCommit(repo, sha)) return;
    const done = (): Promise<boolean> => this.#reader.hasCommit(repo, sha);
    const outcome = await this.#fetchWithBlobs(repo, { kind: 'commit', sha }, sha, { purpose, done });
    // A server that refuses unadvertised objects still serves every branch; the commit may be on one.
    if (outcome === 'missing') await this.#fetcher.fetch(repo, { kind: 'all' }, sha, { purpose, done });
    if (!(await this.#reader.hasCommit(repo, sha))) {
      throw new NotFoundError(`commit ${sha} not found in ${repo.remote.url}`, { detail: { commit: sha } });
    }
  }

  /**
   * Fetches a commit or branch; into a cache with history, with the new small blobs in the same pack (git-fetch.ts
   * `smallBlobs`), so that reading the manifests needs no second round trip. A pack that grows past
   * MAX_SMALL_BLOBS_PACK_BYTES (a commit range that added thousands of small files) is stopped and fetched again
   * without blobs: the manifests' blobs then come in their own fetch, as on a cold cache.
   */
  async #fetchWithBlobs(
    repo: Repo,
    target: { kind: 'commit'; sha: string } | { kind: 'branch'; name: string },
    what: string,
    options: FetchOptions,
  ): Promise<FetchOutcome> {
    if (!(await this.#caches.hasHistory(repo))) return this.#fetcher.fetch(repo, target, what, options);
    const outcome = await this.#fetcher.fetch(repo, { ...target, smallBlobs: true }, what, {
      ...options,
      maxPackBytes: MAX_SMALL_BLOBS_PACK_BYTES,
    });
    if (outcome === 'too big') return this.#fetcher.fetch(repo, target, what, options);
    // The line counts then know that a changed file's new version this commit lacks is a large one (git-facts.ts).
    if (outcome === 'ok' && target.kind === 'commit') this.#facts.cameWithSmallBlobs(repo, target.sha);
    return outcome;
  }

  async #resolveShort(repo: Repo, prefix: string, purpose: Purpose): Promise<string> {
    let found = await this.#commitsWithPrefix(repo, prefix);
    if (found.length === 0) {
      await this.#fetcher.fetch(repo, { kind: 'all' }, prefix, { purpose });
      found = await this.#commitsWithPrefix(repo, prefix);
    }
    if (found.length > 1) {
      throw new InputError(`short SHA ${prefix} is ambiguous in ${repo.remote.url}; give more digits`, {
        field: 'commit',
        detail: { candidates: found.slice(0, 10) },
      });
    }
    const [sha] = found;
    if (sha === undefined) {
      throw new NotFoundError(`commit ${prefix} not found in ${repo.remote.url}`, { detail: { commit: prefix } });
    }
    return sha;
  }

  async #commitsWithPrefix(repo: Repo, prefix: string): Promise<string[]> {
    const listed = await this.#caches.local(repo, ['rev-parse', `--disambiguate=${prefix}`], { allowFail: true });
    const candidates = (listed ?? '').split('\n').filter((l) => /^[0-9a-f]{40}$/.test(l));
    if (candidates.length === 0) return [];
    // Only objects the cache holds are listed, so this check cannot miss.
    const infos = await this.#reader.info(repo, candidates);
    return infos
      .filter((info) => info?.type === 'commit')
      .map((info) => info?.oid ?? '')
      .sort();
  }

  async #resolveBranch(repo: Repo, name: string, purpose: Purpose): Promise<string> {
    const ref = `refs/remotes/origin/${name}`;
    try {
      const outcome = await this.#fetchWithBlobs(repo, { kind: 'branch', name }, name, { purpose });
      if (outcome === 'missing') {
        throw new NotFoundError(`branch ${name} not found in ${repo.remote.url}`, { detail: { branch: name } });
      }
    } catch (err) {
      // A branch moves: its cached tip may be old, and deploying an old version silently is worse than failing.
      // The caller can deploy the cached commit by its SHA, which works while the remote is down.
      if (err instanceof UpstreamError) {
        const cached = (await this.#tip(repo, ref, { allowFail: true }).catch(() => undefined))?.trim();
        if (cached !== undefined) {
          this.#log.warn(
            { repository: repo.remote.url, branch: name, cachedCommit: cached },
            'cannot fetch branch; not using its cached tip',
          );
          throw new UpstreamError('git', `${err.message}; the cached tip of ${name} was ${cached}`, {
            cause: err,
            status: err.status === 503 || err.status === 504 ? err.status : 502,
            detail: { branch: name, cachedCommit: cached },
          });
        }
      }
      throw err;
    }
    const sha = ((await this.#tip(repo, ref)) ?? '').trim();
    if (!/^[0-9a-f]{40}$/.test(sha)) throw new Error(`git rev-parse of branch ${printable(name)} gave no commit: ${printable(sha)}`);
    return sha;
  }

  /** The commit a remote-tracking ref names (the object reader sees no refs). */
  #tip(repo: Repo, ref: string, options: { allowFail?: boolean } = {}): Promise<string | undefined> {
    const args = ['rev-parse', '--verify', ...(options.allowFail === true ? ['--quiet'] : []), '--end-of-options', `${ref}^{commit}`];
    return this.#caches.local(repo, args, options);
  }
}
