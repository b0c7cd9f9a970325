import { createHash, randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { appendFile, mkdir, readdir, rename, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import type { Logger } from 'pino';
import type { ServiceConfig } from '../config/load.js';
import { UpstreamError } from '../errors.js';
import { parseRemoteUrl, type RemoteUrl } from './git-auth.js';
import { CatFileBatch } from './git-batch.js';
import { GitCommandError, GitSpawnError, GitTimeoutError, runGit } from './git-process.js';
import { KeyedMutex } from './keyed-mutex.js';
import { redact } from './redact.js';

/** A repository cache that git cannot read any more; the cache is dropped and the operation tried once more. */
export class BrokenCacheError extends Error {
  override readonly name = 'BrokenCacheError';
}

export interface Repo {
  readonly remote: RemoteUrl;
  readonly dir: string;
  readonly service: ServiceConfig;
}

export interface GitCacheOptions {
  /** Where the repository caches live (`<cache.dir>/git`). */
  readonly dir: string;
  readonly timeoutMs: number;
  readonly binary: string;
  readonly logger: Logger;
}

/** Temporary files a fetch killed half-way leaves behind (a pack being received, its index). */
const TMP_PACK = /^tmp_(pack|idx|rev|bitmap)_/;
/** Older than this, a temporary pack belongs to no fetch of this process: it is removed when the cache is opened. */
const STALE_TMP_MS = 10 * 60 * 1000;

/**
 * The per-pod git caches (thesis 5.3.3): one bare partial clone (`--filter=blob:none`) per repository URL, created
 * on first use, cleaned of a killed fetch's leftovers when first opened, and dropped and created again when git
 * cannot read it (see `recovering`). Each cache has one long-lived `cat-file` reader. The cache stores no remote URL:
 * every fetch names it for that call only, with that call's credentials.
 */
export class GitCaches {
  readonly #dir: string;
  readonly #timeoutMs: number;
  readonly #binary: string;
  readonly #log: Logger;
  /** Creating and dropping a cache, and fetching into it, are serialized per cache. */
  readonly mutex = new KeyedMutex();
  readonly #batches = new Map<string, CatFileBatch>();
  readonly #opened = new Set<string>();

  constructor(options: GitCacheOptions) {
    this.#dir = options.dir;
    this.#timeoutMs = options.timeoutMs;
    this.#binary = options.binary;
    this.#log = options.logger;
  }

  get binary(): string {
    return this.#binary;
  }

  get timeoutMs(): number {
    return this.#timeoutMs;
  }

  repo(service: ServiceConfig): Repo {
    const remote = parseRemoteUrl(service.repository.url);
    const key = createHash('sha256').update(remote.url).digest('hex').slice(0, 32);
    return { remote, dir: join(this.#dir, `${key}.git`), service };
  }

  /**
   * Whether the cache holds fetched commits (a ref of ours, loose or packed): a fetch then names them as "have"s
   * and the server sends only what is new.
   */
  async hasHistory(repo: Repo): Promise<boolean> {
    if (existsSync(join(repo.dir, 'packed-refs'))) return true;
    for (const dir of ['refs/deployer/commits', 'refs/remotes/origin']) {
      const names = await readdir(join(repo.dir, dir)).catch(() => []);
      if (names.length > 0) return true;
    }
    return false;
  }

  /** The cache's object reader. */
  batch(repo: Repo): CatFileBatch {
    let batch = this.#batches.get(repo.dir);
    if (batch === undefined) {
      batch = new CatFileBatch({ binary: this.#binary, dir: repo.dir, timeoutMs: this.#timeoutMs });
      this.#batches.set(repo.dir, batch);
    }
    return batch;
  }

  /** Stops every reader (at shutdown, or the end of a test). */
  close(): void {
    for (const batch of this.#batches.values()) batch.close();
    this.#batches.clear();
  }

  /**
   * Runs `op`; when the cache turns out broken, drops it and runs `op` once more on a fresh cache. A full cache
   * volume is the operator's to fix, and said so (503) rather than reported as an internal error.
   */
  async recovering<T>(repo: Repo, op: () => Promise<T>): Promise<T> {
    try {
      return await this.#recoveringOnce(repo, op);
    } catch (err) {
      if (!isNoSpace(err)) throw err;
      this.#log.error({ err, dir: this.#dir }, 'git cache volume is full');
      throw new UpstreamError('git', "the deployer's git cache volume is full (no space left on device)", { cause: err, status: 503 });
    }
  }

  async #recoveringOnce<T>(repo: Repo, op: () => Promise<T>): Promise<T> {
    try {
      await this.#ensure(repo);
      return await op();
    } catch (err) {
      if (!(err instanceof BrokenCacheError)) throw err;
      this.#log.warn({ err, repository: repo.remote.url, dir: repo.dir }, 'git cache is broken; cloning it again');
      await this.mutex.run(repo.dir, () => this.#drop(repo.dir));
    }
    try {
      await this.#ensure(repo);
      return await op();
    } catch (err) {
      if (err instanceof BrokenCacheError) {
        throw new Error(`git cannot use its cache of ${repo.remote.url}: ${err.message}`, { cause: err });
      }
      throw err;
    }
  }

  async #ensure(repo: Repo): Promise<void> {
    if (existsSync(join(repo.dir, 'config'))) {
      if (!this.#opened.has(repo.dir)) await this.mutex.run(repo.dir, () => this.#open(repo));
      return;
    }
    await this.mutex.run(repo.dir, async () => {
      if (existsSync(join(repo.dir, 'config'))) return;
      await mkdir(this.#dir, { recursive: true });
      // A half-initialized directory (a crash, a deleted config) is replaced; the new one appears atomically.
      await this.#drop(repo.dir);
      const tmp = `${repo.dir}.init-${randomBytes(4).toString('hex')}`;
      try {
        await mkdir(tmp);
        await this.local({ ...repo, dir: tmp }, ['init', '--quiet', '--bare']);
        await appendFile(join(tmp, 'config'), cacheSettings(repo.remote.url));
        await rename(tmp, repo.dir);
        this.#opened.add(repo.dir);
        this.#log.info({ repository: repo.remote.url, dir: repo.dir }, 'git cache created');
      } finally {
        await rm(tmp, { recursive: true, force: true });
      }
    });
  }

  /** First use of an existing cache by this process: a fetch killed before (kill -9, OOM) may have left a pack behind. */
  async #open(repo: Repo): Promise<void> {
    if (this.#opened.has(repo.dir)) return;
    const removed = await removeTmpPacks(repo.dir, (ageMs) => ageMs > STALE_TMP_MS);
    if (removed.length > 0) this.#log.info({ repository: repo.remote.url, removed }, 'removed stale temporary packs');
    this.#opened.add(repo.dir);
  }

  async #drop(dir: string): Promise<void> {
    this.#batches.get(dir)?.close();
    this.#opened.delete(dir);
    if (!existsSync(dir)) return;
    const trash = `${dir}.trash-${randomBytes(4).toString('hex')}`;
    await rename(dir, trash);
    await rm(trash, { recursive: true, force: true });
  }

  /**
   * A git command on the cache that never touches the network. A failure means a broken cache, unless
   * `allowFail` (a lookup that may miss), in which case the result is undefined.
   */
  async local(
    repo: Repo,
    args: readonly string[],
    options: { allowFail?: boolean; input?: string } = {},
  ): Promise<string | undefined> {
    try {
      const out = await runGit({ binary: this.#binary, cwd: repo.dir, args, input: options.input, timeoutMs: this.#timeoutMs });
      return out.toString('utf8');
    } catch (err) {
      if (options.allowFail === true && err instanceof GitCommandError && !looksBroken(err.stderr) && !outOfResources(err.stderr)) {
        return undefined;
      }
      throw this.failure(err, repo, args[0] === '--literal-pathspecs' ? args[1] : args[0]);
    }
  }

  /**
   * What a failed local git call means: the machine out of processes or files (never the cache's fault: 503), a
   * stall, or a broken cache.
   */
  failure(err: unknown, repo: Repo, command: string | undefined): Error {
    if (err instanceof GitSpawnError || (err instanceof GitCommandError && outOfResources(err.stderr))) {
      this.#log.error({ err, repository: repo.remote.url, command }, 'git could not run');
      const why = err instanceof GitSpawnError ? err.code : 'out of resources';
      return new UpstreamError('git', `git could not run on the deployer (${why}); try again`, {
        cause: err,
        status: 503,
      });
    }
    if (!existsSync(join(repo.dir, 'config'))) return new BrokenCacheError('the cache directory disappeared', { cause: err });
    if (err instanceof GitCommandError && err.signal !== null) {
      this.#log.error({ err, repository: repo.remote.url, command }, 'git was killed');
      return new UpstreamError('git', `git ${command ?? ''} was killed by ${err.signal} on the deployer; try again`, {
        cause: err,
        status: 503,
      });
    }
    if (err instanceof GitTimeoutError) {
      return new Error(`git ${command ?? ''} on the cache of ${repo.remote.url} timed out`, { cause: err });
    }
    if (!(err instanceof GitCommandError)) return err instanceof Error ? err : new Error(String(err));
    return new BrokenCacheError(`git ${command ?? ''} failed: ${redact(err.stderr.trim())}`);
  }
}

/** What `clone --filter=blob:none` writes, without a remote URL. Appended in one write: later values win in git config. */
function cacheSettings(url: string): string {
  return [
    '[core]',
    '\trepositoryformatversion = 1',
    '\tlogAllRefUpdates = false',
    '[extensions]',
    '\tpartialClone = origin',
    '[remote "origin"]',
    '\tpromisor = true',
    '\tpartialclonefilter = blob:none',
    // Readers run beside fetches without a lock, so no automatic gc may repack under them; the cache lives as long
    // as the pod, so loose objects from fetches do not pile up for long.
    '[gc]',
    '\tauto = 0',
    '[maintenance]',
    '\tauto = false',
    '[fetch]',
    '\twriteCommitGraph = false',
    // For a person looking at the cache: which repository this is.
    '[deployer]',
    `\turl = ${configValue(url)}`,
    '',
  ].join('\n');
}

/** Removes the temporary pack files of `dir` for which `remove(ageMs, name)` holds; returns their names. */
export async function removeTmpPacks(dir: string, remove: (ageMs: number, name: string) => boolean): Promise<string[]> {
  const packDir = join(dir, 'objects', 'pack');
  let names: string[];
  try {
    names = await readdir(packDir);
  } catch {
    return [];
  }
  const removed: string[] = [];
  const now = Date.now();
  for (const name of names.filter((n) => TMP_PACK.test(n))) {
    const path = join(packDir, name);
    const info = await stat(path).catch(() => undefined);
    if (info === undefined || !remove(now - info.mtimeMs, name)) continue;
    await rm(path, { force: true });
    removed.push(name);
  }
  return removed;
}

/** Names and sizes of the temporary pack files of `dir` now. */
export async function tmpPackSizes(dir: string): Promise<Map<string, number>> {
  const packDir = join(dir, 'objects', 'pack');
  const sizes = new Map<string, number>();
  const names = await readdir(packDir).catch(() => [] as string[]);
  for (const name of names.filter((n) => TMP_PACK.test(n))) {
    const info = await stat(join(packDir, name)).catch(() => undefined);
    if (info !== undefined) sizes.set(name, info.size);
  }
  return sizes;
}

/** stderr of a local git failure that means the cache itself is damaged. */
export function looksBroken(stderr: string): boolean {
  return /not a git repository|bad config|corrupt|unable to read (?!from remote)|fatal: bad object|bad tree object|invalid object|packfile .* cannot be accessed|index-pack failed|inflate: data stream error|object file .* is empty|missing (blob|tree|commit) object|fatal: unable to open object|loose object .* is corrupt|unknown repository extension|repository format version/i.test(
    stderr,
  );
}

/** stderr of a git that ran out of the machine's resources: the cache is fine, the pod is not. */
export function outOfResources(stderr: string): boolean {
  return /Too many open files|Resource temporarily unavailable|Cannot allocate memory|Out of memory|cannot fork|unable to fork/i.test(
    stderr,
  );
}

/** A value for a git config file: quoted, with the characters git's parser treats specially escaped. */
function configValue(value: string): string {
  return `"${value.replace(/[\\"]/g, (c) => `\\${c}`).replace(/[\r\n]/g, '')}"`;
}

const NO_SPACE = /no space left on device/i;

/** Whether `err`, or an error it was caused by, is a full file system (node's ENOSPC or git's message for it). */
function isNoSpace(err: unknown): boolean {
  let e: unknown = err;
  for (let depth = 0; depth < 5 && e instanceof Error; depth++, e = e.cause) {
    if ((e as NodeJS.ErrnoException).code === 'ENOSPC' || NO_SPACE.test(e.message)) return true;
    if (e instanceof GitCommandError && NO_SPACE.test(e.stderr)) return true;
  }
  return false;
}
