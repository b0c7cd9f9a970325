import { existsSync } from 'node:fs';
import { join } from 'node:path';
import type { Logger } from 'pino';
import { UpstreamError } from '../errors.js';
import { callAuth, type CallAuth } from './git-auth.js';
import {
  BrokenCacheError,
  looksBroken,
  outOfResources,
  removeTmpPacks,
  tmpPackSizes,
  type GitCaches,
  type Repo,
} from './git-cache.js';
import { GitCommandError, GitSpawnError, GitStoppedError, GitTimeoutError, runGit } from './git-process.js';
import { FetchQueue, type Purpose } from './fetch-queue.js';
import { redact } from './redact.js';
import { printable } from './refs.js';

export type FetchTarget =
  | { kind: 'branch'; name: string; smallBlobs?: boolean | undefined }
  | { kind: 'commit'; sha: string; smallBlobs?: boolean | undefined }
  | { kind: 'all' }
  | { kind: 'blobs'; oids: readonly string[] };

/** 'missing': the remote has no such ref or object; 'too big': stopped at the caller's size limit (nothing kept). */
export type FetchOutcome = 'ok' | 'missing' | 'too big';

export interface FetchOptions {
  readonly purpose: Purpose;
  /** Stop the transfer once the pack being received is larger than this (the event log's facts). */
  readonly maxPackBytes?: number | undefined;
  /** Skip the fetch when this holds once it is this request's turn (another request fetched the commit meanwhile). */
  readonly done?: (() => Promise<boolean>) | undefined;
}

/** Reads waiting for fetches of one repository, at most; more are refused with a 503. */
const MAX_QUEUED_READS = 4;
/** How long a read waits for its fetch to start before it is refused with a 503. */
const READ_WAIT_MS = 10_000;
/** How long reads leave a repository's fetches to a deploy that fetched last (its next fetch comes within this). */
const DEPLOY_GRACE_MS = 2_000;
/** How often a size-limited fetch looks at the pack it is receiving. */
const PACK_WATCH_MS = 15;

/**
 * Fetches from the remote into a cache, with the service's credentials for that call only, through one queue per
 * cache (`FetchQueue`: deploys first, identical fetches joined, reads bounded). Returns 'missing' when the remote does
 * not have the ref or object; throws `UpstreamError` when the remote fails, `BrokenCacheError` when the cache does.
 */
export class GitFetcher {
  readonly #caches: GitCaches;
  readonly #log: Logger;
  readonly #queue = new FetchQueue({ maxQueuedReads: MAX_QUEUED_READS, readWaitMs: READ_WAIT_MS, deployGraceMs: DEPLOY_GRACE_MS });

  constructor(caches: GitCaches, logger: Logger) {
    this.#caches = caches;
    this.#log = logger;
  }

  fetch(repo: Repo, target: FetchTarget, what: string, options: FetchOptions): Promise<FetchOutcome> {
    const key = targetKey(target) + (options.maxPackBytes === undefined ? '' : `<${options.maxPackBytes}`);
    // A commit or blob fetch that is under way gives what a new request for the same wants; a branch may have moved.
    const joinRunning = target.kind === 'commit' || target.kind === 'blobs';
    return this.#queue.run(
      repo.dir,
      key,
      options.purpose,
      () =>
        this.#caches.mutex.run(repo.dir, async () => {
          if (options.done !== undefined && (await options.done())) return 'ok';
          const auth = await callAuth(repo.remote, repo.service.repository.credentials);
          const started = Date.now();
          try {
            return await this.#run(repo, target, what, auth, options.maxPackBytes);
          } finally {
            await auth.dispose();
            this.#log.debug({ repository: repo.remote.url, target: target.kind, what, ms: Date.now() - started }, 'git fetch');
          }
        }),
      { joinRunning, what: repo.remote.url },
    );
  }

  async #run(repo: Repo, target: FetchTarget, what: string, auth: CallAuth, maxPackBytes: number | undefined): Promise<FetchOutcome> {
    let refspecs: string[] = [];
    let input: string | undefined;
    switch (target.kind) {
      case 'branch':
        refspecs = [`+refs/heads/${target.name}:refs/remotes/origin/${target.name}`];
        break;
      case 'commit':
        // A ref keeps the commit reachable, and offers it as a "have" in later negotiations.
        refspecs = [`${target.sha}:refs/deployer/commits/${target.sha}`];
        break;
      case 'all':
        refspecs = ['+refs/heads/*:refs/remotes/origin/*'];
        break;
      case 'blobs':
        input = `${target.oids.join('\n')}\n`;
        break;
    }
    const args = ['fetch', ...FETCH_OPTIONS, filterOf(target)];
    if (input !== undefined) args.push('--stdin');
    args.push('--end-of-options', 'origin', ...refspecs);
    const before = maxPackBytes === undefined ? undefined : new Set((await tmpPackSizes(repo.dir)).keys());
    try {
      await runGit({
        binary: this.#caches.binary,
        cwd: repo.dir,
        args,
        // With "have"s the server sends a thin pack: a changed small file may come as a delta against its version in a
        // cached commit, which a partial cache lacks (a file never read, or a manifest whose read has not fetched it
        // yet). index-pack then fetches those bases in one more request of this same call — its credentials, timeout
        // and queue. Refusing that made the fetch fail and the cache count as broken (git-source-stress). Every other
        // git command stays unable to fetch.
        env: { ...auth.env, ...(withSmallBlobs(target) ? { GIT_NO_LAZY_FETCH: '0' } : {}) },
        input,
        timeoutMs: this.#caches.timeoutMs,
        config: [
          `remote.origin.url=${repo.remote.url}`,
          // Blobs asked for by id are fetched as git's own lazy fetch does, without "have" lines: the wanted blobs
          // are reachable from the commits we have, and a server whose pack has a bitmap index (GitHub and GitLab
          // keep them) then subtracts them and sends nothing ("did not send all necessary objects").
          ...(target.kind === 'blobs' ? ['fetch.negotiationAlgorithm=noop'] : []),
        ],
        watch:
          maxPackBytes === undefined || before === undefined
            ? undefined
            : (kill) => watchPack(repo.dir, before, maxPackBytes, kill),
      });
      return 'ok';
    } catch (err) {
      if (err instanceof GitStoppedError && before !== undefined) {
        // Only this fetch ran in the cache since `before` (fetches are serialized): what appeared is its leftover.
        await removeTmpPacks(repo.dir, (_, name) => !before.has(name));
        this.#log.info(
          { repository: repo.remote.url, what: printable(what), reason: err.message },
          'git fetch stopped at its size limit',
        );
        return 'too big';
      }
      return this.#failure(err, repo, what, auth);
    }
  }

  #failure(err: unknown, repo: Repo, what: string, auth: CallAuth): FetchOutcome {
    const url = repo.remote.url;
    if (err instanceof GitSpawnError || (err instanceof GitCommandError && outOfResources(err.stderr))) {
      throw this.#caches.failure(err, repo, 'fetch');
    }
    if (!existsSync(join(repo.dir, 'config'))) throw new BrokenCacheError('the cache directory disappeared', { cause: err });
    if (err instanceof GitTimeoutError) {
      throw new UpstreamError('git', `fetching ${printable(what)} from ${url} timed out after ${this.#caches.timeoutMs} ms`, {
        status: 504,
      });
    }
    if (!(err instanceof GitCommandError)) throw err;
    const stderr = redact(err.stderr, auth.secrets);
    const kind = classifyFetchError(stderr);
    this.#log.warn({ repository: url, what: printable(what), kind, stderr: lastLines(stderr) }, 'git fetch failed');
    switch (kind) {
      case 'missing':
        return 'missing';
      case 'broken':
        throw new BrokenCacheError(`fetch failed on the cache: ${lastLines(stderr)}`);
      case 'auth':
        throw new UpstreamError('git', `${url} refused the credentials of service ${repo.service.name}`, {
          detail: { repository: url },
        });
      case 'unreachable':
        throw new UpstreamError('git', `cannot reach ${url}: ${lastLines(stderr)}`, { status: 503, detail: { repository: url } });
      case 'other':
        throw new UpstreamError('git', `fetching ${printable(what)} from ${url} failed: ${lastLines(stderr)}`, {
          detail: { repository: url },
        });
    }
  }
}

/** The options of every fetch into a cache, before its filter (the bench's floor fetches with them too). */
export const FETCH_OPTIONS = [
  // Progress output keeps the stall timeout from killing a slow but moving transfer.
  '--progress',
  '--no-tags',
  '--no-write-fetch-head',
  '--no-recurse-submodules',
  '--no-auto-maintenance',
] as const;

/** Blobs up to this size come with a commit fetched into a cache that has history (`smallBlobs`). */
export const SMALL_BLOB_BYTES = 256 * 1024;

/**
 * The partial clone's filter: no blobs, or — `smallBlobs`, for a cache that has history, so that its commits are
 * "have"s and only what is new is sent — the new small blobs along with the commit and its trees: the manifests the
 * deploy reads next (and most of the changed files the line counts want) come in the same round trip, while a large
 * file the commit added stays on the server.
 */
function filterOf(target: FetchTarget): string {
  return withSmallBlobs(target) ? `--filter=blob:limit=${SMALL_BLOB_BYTES}` : '--filter=blob:none';
}

function withSmallBlobs(target: FetchTarget): boolean {
  return (target.kind === 'commit' || target.kind === 'branch') && target.smallBlobs === true;
}

function targetKey(target: FetchTarget): string {
  const small = withSmallBlobs(target) ? '+small' : '';
  switch (target.kind) {
    case 'branch':
      return `branch:${target.name}${small}`;
    case 'commit':
      return `commit:${target.sha}${small}`;
    case 'all':
      return 'all';
    case 'blobs':
      return `blobs:${[...target.oids].sort().join(',')}`;
  }
}

/** Stops a fetch whose temporary pack passes `max` bytes; returns the function that stops watching. */
function watchPack(dir: string, before: ReadonlySet<string>, max: number, kill: (reason: string) => void): () => void {
  let looking = false;
  const timer = setInterval(() => {
    if (looking) return;
    looking = true;
    void tmpPackSizes(dir)
      .then((sizes) => {
        let total = 0;
        for (const [name, size] of sizes) if (!before.has(name)) total += size;
        if (total > max) kill(`the pack passed ${max} bytes`);
      })
      .finally(() => {
        looking = false;
      });
  }, PACK_WATCH_MS);
  return () => clearInterval(timer);
}

type FetchErrorKind = 'missing' | 'auth' | 'unreachable' | 'broken' | 'other';

/** What a failed fetch's stderr says went wrong (git has no machine-readable error codes). */
export function classifyFetchError(stderr: string): FetchErrorKind {
  if (/couldn't find remote ref|not our ref|no such remote ref|unadvertised object|want .* not valid/i.test(stderr)) {
    return 'missing';
  }
  if (
    /Authentication failed|could not read (Username|Password)|terminal prompts disabled|HTTP (Basic: )?Access denied|returned error: 40[13]|Permission denied \(|Host key verification failed|No .* host key is known/i.test(
      stderr,
    )
  ) {
    return 'auth';
  }
  // "cannot lock ref": a cached ref in the way of a new one (branch a deleted, a/b created); a fresh cache has none.
  if (looksBroken(stderr) || /did not send all necessary objects|cannot lock ref/i.test(stderr)) return 'broken';
  if (
    /Failed to connect|Couldn't connect|Could not resolve host|Connection refused|Connection timed out|Connection reset|Network is unreachable|Could not read from remote repository|unable to access|timed out|RPC failed|early EOF|remote end hung up/i.test(
      stderr,
    )
  ) {
    return 'unreachable';
  }
  return 'other';
}

export function lastLines(text: string): string {
  const lines = text
    .split(/[\r\n]+/)
    .map((l) => l.trim())
    .filter((l) => l !== '' && !/^(remote: )?(Counting|Compressing|Receiving|Resolving|Enumerating|Total)\b/.test(l));
  return lines.slice(-3).join(' | ').slice(0, 500);
}
