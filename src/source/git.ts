import { createHash, randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { appendFile, mkdir, rename, rm } from 'node:fs/promises';
import { join } from 'node:path';
import type { Logger } from 'pino';
import type { ServiceConfig } from '../config/load.js';
import { InputError, ManifestError, NotFoundError, UpstreamError } from '../errors.js';
import { callAuth, parseRemoteUrl, type CallAuth, type RemoteUrl } from './git-auth.js';
import { KeyedMutex } from './keyed-mutex.js';
import { redact } from './redact.js';
import { cleanDir, parseFullSha, parseGitRef, printable } from './refs.js';
import { createGit, GitCommandError, isTimeout } from './simple-git.js';
import type { CommitFacts, ManifestFile, Source } from './types.js';

export interface GitSourceOptions {
  /** The pod's cache directory; repositories live in `cacheDir/git/`. */
  cacheDir: string;
  /** Stall timeout of each git call. */
  timeoutMs: number;
  logger: Logger;
}

/** The empty tree of SHA-1 repositories: the "parent" of a root commit. */
const EMPTY_TREE = '4b825dc642cb6eb9a060e54bf8d69288fbee4904';
/** Above this many changed paths, the missing-blob check walks whole trees instead of naming paths on argv. */
const MAX_PATHSPECS = 500;
/** Manifests are small text files; a directory larger than this is a mistake (or an attack on the pod's memory). */
const MAX_MANIFEST_BYTES = 64 * 1024 * 1024;

/** A repository cache that git cannot read any more; the cache is dropped and the operation tried once more. */
class BrokenCacheError extends Error {
  override readonly name = 'BrokenCacheError';
}

interface Repo {
  readonly remote: RemoteUrl;
  readonly dir: string;
  readonly service: ServiceConfig;
}

type FetchTarget =
  | { kind: 'branch'; name: string }
  | { kind: 'commit'; sha: string }
  | { kind: 'all' }
  | { kind: 'blobs'; oids: readonly string[] };

type FetchOutcome = 'ok' | 'missing';

/**
 * Git through a per-pod cache (thesis 5.3.3): one bare partial clone (`--filter=blob:none`) per repository URL,
 * fetched into only when a wanted commit or blob is missing (a branch is always fetched). Files are read from the
 * object store at a commit, never from a checkout, so concurrent reads of different commits cannot disturb each
 * other; fetches into one cache are serialized.
 *
 * The cache stores no remote URL: every fetch names it for that call only, with that call's credentials. So no
 * other git command (a lazy fetch of a missing blob, for one) can reach the network without our timeout,
 * credentials and lock; it fails at once and we fetch explicitly instead.
 */
export class GitSource implements Source {
  readonly #cacheDir: string;
  readonly #timeoutMs: number;
  readonly #log: Logger;
  readonly #mutex = new KeyedMutex();

  constructor(options: GitSourceOptions) {
    this.#cacheDir = join(options.cacheDir, 'git');
    this.#timeoutMs = options.timeoutMs;
    this.#log = options.logger.child({ module: 'source', vcs: 'git' });
  }

  async resolve(service: ServiceConfig, ref: string): Promise<string> {
    const parsed = parseGitRef(ref);
    const repo = this.#repo(service);
    return this.#recovering(repo, async () => {
      switch (parsed.kind) {
        case 'commit':
          await this.#ensureCommit(repo, parsed.sha);
          return parsed.sha;
        case 'short':
          return this.#resolveShort(repo, parsed.prefix);
        case 'branch':
          return this.#resolveBranch(repo, parsed.name);
      }
    });
  }

  async filesAt(service: ServiceConfig, commit: string): Promise<ManifestFile[]> {
    const sha = parseFullSha(commit);
    const dir = cleanDir(service.manifestsDir);
    const repo = this.#repo(service);
    return this.#recovering(repo, () => this.#filesAt(repo, sha, dir));
  }

  async commitFacts(service: ServiceConfig, commit: string): Promise<CommitFacts> {
    const sha = parseFullSha(commit);
    const repo = this.#repo(service);
    return this.#recovering(repo, () => this.#commitFacts(repo, sha));
  }

  #repo(service: ServiceConfig): Repo {
    const remote = parseRemoteUrl(service.repository.url);
    const key = createHash('sha256').update(remote.url).digest('hex').slice(0, 32);
    return { remote, dir: join(this.#cacheDir, `${key}.git`), service };
  }

  /**
   * Runs `op`; when the cache turns out broken, drops it and runs `op` once more on a fresh cache. A full cache
   * volume is the operator's to fix, and said so (503) rather than reported as an internal error.
   */
  async #recovering<T>(repo: Repo, op: () => Promise<T>): Promise<T> {
    try {
      return await this.#recoveringOnce(repo, op);
    } catch (err) {
      if (!isNoSpace(err)) throw err;
      this.#log.error({ err, dir: this.#cacheDir }, 'git cache volume is full');
      throw new UpstreamError('git', "the deployer's git cache volume is full (no space left on device)", { cause: err, status: 503 });
    }
  }

  async #recoveringOnce<T>(repo: Repo, op: () => Promise<T>): Promise<T> {
    try {
      await this.#ensureRepo(repo);
      return await op();
    } catch (err) {
      if (!(err instanceof BrokenCacheError)) throw err;
      this.#log.warn({ err, repository: repo.remote.url, dir: repo.dir }, 'git cache is broken; cloning it again');
      await this.#mutex.run(repo.dir, () => this.#drop(repo.dir));
    }
    try {
      await this.#ensureRepo(repo);
      return await op();
    } catch (err) {
      if (err instanceof BrokenCacheError) {
        throw new Error(`git cannot use its cache of ${repo.remote.url}: ${err.message}`, { cause: err });
      }
      throw err;
    }
  }

  async #ensureRepo(repo: Repo): Promise<void> {
    if (existsSync(join(repo.dir, 'config'))) return;
    await this.#mutex.run(repo.dir, async () => {
      if (existsSync(join(repo.dir, 'config'))) return;
      await mkdir(this.#cacheDir, { recursive: true });
      // A half-initialized directory (a crash, a deleted config) is replaced; the new one appears atomically.
      await this.#drop(repo.dir);
      const tmp = `${repo.dir}.init-${randomBytes(4).toString('hex')}`;
      try {
        await mkdir(tmp);
        const git = createGit({ baseDir: tmp, timeoutMs: this.#timeoutMs });
        await git.raw(['init', '--quiet', '--bare']);
        // What `clone --filter=blob:none` writes, without a remote URL (see the class comment). Readers run beside
        // fetches without a lock, so no automatic gc may repack under them; the cache lives as long as the pod, so
        // loose objects from fetches do not pile up for long. Appended in one write: later values win in git config.
        const settings = [
          '[core]',
          '\trepositoryformatversion = 1',
          '\tlogAllRefUpdates = false',
          '[extensions]',
          '\tpartialClone = origin',
          '[remote "origin"]',
          '\tpromisor = true',
          '\tpartialclonefilter = blob:none',
          '[gc]',
          '\tauto = 0',
          '[maintenance]',
          '\tauto = false',
          '[fetch]',
          '\twriteCommitGraph = false',
          // For a person looking at the cache: which repository this is.
          '[deployer]',
          `\turl = ${configValue(repo.remote.url)}`,
          '',
        ];
        await appendFile(join(tmp, 'config'), settings.join('\n'));
        await rename(tmp, repo.dir);
        this.#log.info({ repository: repo.remote.url, dir: repo.dir }, 'git cache created');
      } finally {
        await rm(tmp, { recursive: true, force: true });
      }
    });
  }

  async #drop(dir: string): Promise<void> {
    if (!existsSync(dir)) return;
    const trash = `${dir}.trash-${randomBytes(4).toString('hex')}`;
    await rename(dir, trash);
    await rm(trash, { recursive: true, force: true });
  }

  // ---- resolving versions

  async #hasCommit(repo: Repo, sha: string): Promise<boolean> {
    // `--batch-check` rather than `cat-file -e`: it always prints a line, and simple-git waits 50 ms more after a
    // process that printed nothing (cat-file -e cost ~55 ms instead of ~3 ms, twice per deploy). `sha` is a full SHA
    // (parsed), so the line names nothing but that commit; a missing one prints "<name> missing".
    const out = await this.#local(repo, ['cat-file', '--batch-check=%(objectname) %(objecttype)'], {
      input: `${sha}^{commit}\n`,
      allowFail: true,
    });
    return out?.trim() === `${sha} commit`;
  }

  async #ensureCommit(repo: Repo, sha: string): Promise<void> {
    if (await this.#hasCommit(repo, sha)) return;
    const outcome = await this.#fetch(repo, { kind: 'commit', sha }, sha);
    // A server that refuses unadvertised objects still serves every branch; the commit may be on one.
    if (outcome === 'missing') await this.#fetch(repo, { kind: 'all' }, sha);
    if (!(await this.#hasCommit(repo, sha))) {
      throw new NotFoundError(`commit ${sha} not found in ${repo.remote.url}`, { detail: { commit: sha } });
    }
  }

  async #resolveShort(repo: Repo, prefix: string): Promise<string> {
    let found = await this.#commitsWithPrefix(repo, prefix);
    if (found.length === 0) {
      await this.#fetch(repo, { kind: 'all' }, prefix);
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
    const listed = await this.#local(repo, ['rev-parse', `--disambiguate=${prefix}`], { allowFail: true });
    const candidates = (listed ?? '').split('\n').filter((l) => /^[0-9a-f]{40}$/.test(l));
    if (candidates.length === 0) return [];
    // Only objects the cache holds are listed, so this check cannot trigger a lazy fetch.
    const types = await this.#local(repo, ['cat-file', '--batch-check=%(objectname) %(objecttype)'], {
      input: `${candidates.join('\n')}\n`,
    });
    return (types ?? '')
      .split('\n')
      .map((l) => l.split(' '))
      .filter(([, type]) => type === 'commit')
      .map(([sha]) => sha ?? '')
      .sort();
  }

  async #resolveBranch(repo: Repo, name: string): Promise<string> {
    const ref = `refs/remotes/origin/${name}`;
    try {
      const outcome = await this.#fetch(repo, { kind: 'branch', name }, name);
      if (outcome === 'missing') {
        throw new NotFoundError(`branch ${name} not found in ${repo.remote.url}`, { detail: { branch: name } });
      }
    } catch (err) {
      // A branch moves: its cached tip may be old, and deploying an old version silently is worse than failing.
      // The caller can deploy the cached commit by its SHA, which works while the remote is down.
      if (err instanceof UpstreamError) {
        const cached = await this.#local(repo, ['rev-parse', '--verify', '--quiet', '--end-of-options', `${ref}^{commit}`], {
          allowFail: true,
        });
        if (cached !== undefined) {
          this.#log.warn(
            { repository: repo.remote.url, branch: name, cachedCommit: cached.trim() },
            'cannot fetch branch; not using its cached tip',
          );
          throw new UpstreamError('git', `${err.message}; the cached tip of ${name} was ${cached.trim()}`, {
            cause: err,
            status: err.status === 503 || err.status === 504 ? err.status : 502,
            detail: { branch: name, cachedCommit: cached.trim() },
          });
        }
      }
      throw err;
    }
    const sha = ((await this.#local(repo, ['rev-parse', '--verify', '--end-of-options', `${ref}^{commit}`])) ?? '').trim();
    if (!/^[0-9a-f]{40}$/.test(sha)) throw new Error(`git rev-parse of branch ${printable(name)} gave no commit: ${printable(sha)}`);
    return sha;
  }

  // ---- reading files

  async #filesAt(repo: Repo, sha: string, dir: string): Promise<ManifestFile[]> {
    await this.#ensureCommit(repo, sha);
    const tree = await this.#treeAt(repo, sha, dir);
    if (tree === undefined) {
      throw new NotFoundError(`directory ${dir}/ not found at commit ${sha} in ${repo.remote.url}`, {
        detail: { commit: sha, manifestsDir: dir },
      });
    }

    const listing = (await this.#local(repo, ['ls-tree', '-r', '-z', '--full-tree', tree])) ?? '';
    const entries: Array<{ path: string; oid: string }> = [];
    for (const record of listing.split('\0')) {
      if (record === '') continue;
      const tab = record.indexOf('\t');
      const [mode, type, oid] = record.slice(0, tab).split(' ');
      const rel = record.slice(tab + 1);
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
      if (type === 'commit') {
        throw new ManifestError(`${path} is a submodule; manifests must be regular files (submodules are not read)`, {
          detail: { path, commit: sha },
        });
      }
      if (type !== 'blob' || oid === undefined) continue;
      entries.push({ path, oid });
    }
    if (entries.length === 0) return [];

    const missing = await this.#missingObjects(repo, [tree], []);
    const wanted = [...new Set(entries.map((e) => e.oid).filter((oid) => missing.has(oid)))];
    if (wanted.length > 0) await this.#fetchObjects(repo, wanted, sha);

    const contents = await this.#readBlobs(repo, [...new Set(entries.map((e) => e.oid))]);
    return entries.map(({ path, oid }) => {
      const content = contents.get(oid);
      if (content === undefined) throw new BrokenCacheError(`blob ${oid} of ${path} is missing after fetching it`);
      return { path, content };
    });
  }

  /** The tree of `dir` at `sha`, from tree objects only (a partial clone has them all, unlike blobs). */
  async #treeAt(repo: Repo, sha: string, dir: string): Promise<string | undefined> {
    if (dir === '') return (await this.#local(repo, ['rev-parse', '--verify', '--end-of-options', `${sha}^{tree}`]))?.trim();
    const out = (await this.#local(repo, ['--literal-pathspecs', 'ls-tree', '-z', '--full-tree', sha, '--', dir])) ?? '';
    for (const record of out.split('\0')) {
      const tab = record.indexOf('\t');
      const [, type, oid] = record.slice(0, tab).split(' ');
      if (record.slice(tab + 1) === dir && type === 'tree') return oid;
    }
    return undefined;
  }

  /** The objects below `trees` (limited to `paths` when given) that the partial clone does not hold. */
  async #missingObjects(repo: Repo, trees: readonly string[], paths: readonly string[]): Promise<Set<string>> {
    const args = ['--literal-pathspecs', 'rev-list', '--objects', '--missing=print', ...trees];
    if (paths.length > 0 && paths.length <= MAX_PATHSPECS) args.push('--', ...paths);
    const out = (await this.#local(repo, args)) ?? '';
    return new Set(
      out
        .split('\n')
        .filter((l) => l.startsWith('?'))
        .map((l) => l.slice(1).trim()),
    );
  }

  async #fetchObjects(repo: Repo, oids: readonly string[], commit: string): Promise<void> {
    const outcome = await this.#fetch(repo, { kind: 'blobs', oids }, commit);
    if (outcome === 'missing') {
      throw new UpstreamError('git', `${repo.remote.url} did not serve the files of commit ${commit}`);
    }
  }

  async #readBlobs(repo: Repo, oids: readonly string[]): Promise<Map<string, Buffer>> {
    const sizes = await this.#local(repo, ['cat-file', '--batch-check=%(objectname) %(objectsize)'], {
      input: `${oids.join('\n')}\n`,
    });
    const total = (sizes ?? '')
      .split('\n')
      .map((l) => Number(l.split(' ')[1] ?? 0))
      .reduce((a, b) => a + b, 0);
    if (total > MAX_MANIFEST_BYTES) {
      throw new ManifestError(`the manifests directory holds ${total} bytes; at most ${MAX_MANIFEST_BYTES} are read`);
    }
    let out: Buffer;
    try {
      const git = createGit({ baseDir: repo.dir, timeoutMs: this.#timeoutMs, input: `${oids.join('\n')}\n` });
      const buffer: unknown = await git.binaryCatFile(['--batch']);
      if (!Buffer.isBuffer(buffer)) throw new Error('cat-file --batch gave no buffer');
      out = buffer;
    } catch (err) {
      throw this.#localFailure(err, repo, 'cat-file --batch');
    }
    // Each object is `<oid> <type> <size>\n<content>\n`.
    const result = new Map<string, Buffer>();
    let pos = 0;
    while (pos < out.length) {
      const nl = out.indexOf(0x0a, pos);
      if (nl < 0) break;
      const [oid, type, sizeText] = out.subarray(pos, nl).toString('latin1').split(' ');
      if (oid === undefined || type !== 'blob' || sizeText === undefined) {
        throw new BrokenCacheError(`unexpected cat-file output for ${oid ?? '?'}: ${type ?? '?'}`);
      }
      const size = Number(sizeText);
      // Output cut short must fail loudly: a manifest read in part would deploy something nobody wrote.
      if (nl + 1 + size > out.length) throw new Error(`git cat-file --batch output ends inside blob ${oid}`);
      result.set(oid, Buffer.from(out.subarray(nl + 1, nl + 1 + size)));
      pos = nl + 1 + size + 1;
    }
    return result;
  }

  // ---- commit facts

  async #commitFacts(repo: Repo, sha: string): Promise<CommitFacts> {
    await this.#ensureCommit(repo, sha);
    // The raw commit object: no mailmap, pretty format or other configuration can change what is read.
    const raw = (await this.#local(repo, ['cat-file', 'commit', sha])) ?? '';
    const header = raw.slice(0, raw.indexOf('\n\n') < 0 ? raw.length : raw.indexOf('\n\n'));
    const parent = /^parent ([0-9a-f]{40})$/m.exec(header)?.[1] ?? EMPTY_TREE;
    const author = /^author (.*) <([^>]*)> (\d+) ([+-]\d{4})$/m.exec(header);
    const [, name = '', email = '', seconds = '0', zone = '+0000'] = author ?? [];

    // Line counts need the changed blobs of both sides, which the partial clone may not hold yet.
    const diffTree = (await this.#local(repo, ['diff-tree', '-r', '-z', '--no-renames', '--no-commit-id', parent, sha])) ?? '';
    const changed = parseRawDiff(diffTree);
    if (changed.paths.length > 0) {
      const trees = parent === EMPTY_TREE ? [`${sha}^{tree}`] : [`${sha}^{tree}`, `${parent}^{tree}`];
      const missing = await this.#missingObjects(repo, trees, changed.paths);
      const wanted = changed.blobs.filter((oid) => missing.has(oid));
      if (wanted.length > 0) await this.#fetchObjects(repo, wanted, sha);
    }
    const numstat =
      (await this.#local(repo, ['diff', '--numstat', '-M', '--no-textconv', '--no-ext-diff', '--no-color', parent, sha])) ??
      '';
    let insertions = 0;
    let deletions = 0;
    for (const line of numstat.split('\n')) {
      const [added, removed] = line.split('\t');
      // Binary files show "-": they have no lines.
      if (added !== undefined && /^\d+$/.test(added)) insertions += Number(added);
      if (removed !== undefined && /^\d+$/.test(removed)) deletions += Number(removed);
    }
    return {
      commit: sha,
      author: email === '' ? name : `${name} <${email}>`,
      date: isoDate(Number(seconds), zone),
      insertions,
      deletions,
    };
  }

  // ---- running git

  /**
   * A git command on the cache that never touches the network. A failure means a broken cache, unless
   * `allowFail` (a lookup that may miss), in which case the result is undefined.
   */
  async #local(
    repo: Repo,
    args: readonly string[],
    options: { allowFail?: boolean; input?: string } = {},
  ): Promise<string | undefined> {
    try {
      const git = createGit({ baseDir: repo.dir, timeoutMs: this.#timeoutMs, input: options.input });
      return await git.raw([...args]);
    } catch (err) {
      if (options.allowFail === true && err instanceof GitCommandError && !looksBroken(err.stderr)) return undefined;
      throw this.#localFailure(err, repo, args[0] === '--literal-pathspecs' ? args[1] : args[0]);
    }
  }

  #localFailure(err: unknown, repo: Repo, command: string | undefined): Error {
    if (!existsSync(join(repo.dir, 'config'))) return new BrokenCacheError('the cache directory disappeared', { cause: err });
    if (isTimeout(err)) return new Error(`git ${command ?? ''} on the cache of ${repo.remote.url} timed out`, { cause: err });
    const detail = err instanceof GitCommandError ? redact(err.stderr.trim()) : String(err);
    return new BrokenCacheError(`git ${command ?? ''} failed: ${detail}`);
  }

  /**
   * Fetches `target` from the remote under the repository's lock, with the service's credentials for this call only.
   * Returns 'missing' when the remote does not have the ref or object; throws `UpstreamError` when the remote fails.
   */
  async #fetch(repo: Repo, target: FetchTarget, what: string): Promise<FetchOutcome> {
    return this.#mutex.run(repo.dir, async () => {
      // Another request may have fetched it while this one waited for the lock.
      if (target.kind === 'commit' && (await this.#hasCommit(repo, target.sha))) return 'ok';
      const auth = await callAuth(repo.remote, repo.service.repository.credentials);
      const started = Date.now();
      try {
        return await this.#runFetch(repo, target, what, auth);
      } finally {
        await auth.dispose();
        this.#log.debug({ repository: repo.remote.url, target: target.kind, what, ms: Date.now() - started }, 'git fetch');
      }
    });
  }

  async #runFetch(repo: Repo, target: FetchTarget, what: string, auth: CallAuth): Promise<FetchOutcome> {
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
    const args = [
      'fetch',
      // Progress output keeps the stall timeout from killing a slow but moving transfer.
      '--progress',
      '--no-tags',
      '--no-write-fetch-head',
      '--no-recurse-submodules',
      '--no-auto-maintenance',
      '--filter=blob:none',
    ];
    if (input !== undefined) args.push('--stdin');
    args.push('--end-of-options', 'origin', ...refspecs);
    try {
      const git = createGit({
        baseDir: repo.dir,
        timeoutMs: this.#timeoutMs,
        env: auth.env,
        input,
        config: [
          `remote.origin.url=${repo.remote.url}`,
          // Blobs asked for by id are fetched as git's own lazy fetch does, without "have" lines: the wanted blobs
          // are reachable from the commits we have, and a server whose pack has a bitmap index (GitHub and GitLab
          // keep them) then subtracts them and sends nothing ("did not send all necessary objects").
          ...(target.kind === 'blobs' ? ['fetch.negotiationAlgorithm=noop'] : []),
        ],
      });
      await git.raw(args);
      return 'ok';
    } catch (err) {
      return this.#fetchFailure(err, repo, what, auth);
    }
  }

  #fetchFailure(err: unknown, repo: Repo, what: string, auth: CallAuth): FetchOutcome {
    const url = repo.remote.url;
    if (!existsSync(join(repo.dir, 'config'))) throw new BrokenCacheError('the cache directory disappeared', { cause: err });
    if (isTimeout(err)) {
      throw new UpstreamError('git', `fetching ${printable(what)} from ${url} timed out after ${this.#timeoutMs} ms`, {
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

/** stderr of a local git failure that means the cache itself is damaged. */
function looksBroken(stderr: string): boolean {
  return /not a git repository|bad config|corrupt|unable to read (?!from remote)|fatal: bad object|bad tree object|invalid object|packfile .* cannot be accessed|index-pack failed|inflate: data stream error|object file .* is empty|missing (blob|tree|commit) object|fatal: unable to open object|loose object .* is corrupt|unknown repository extension|repository format version/i.test(
    stderr,
  );
}

function lastLines(text: string): string {
  const lines = text
    .split(/[\r\n]+/)
    .map((l) => l.trim())
    .filter((l) => l !== '' && !/^(remote: )?(Counting|Compressing|Receiving|Resolving|Enumerating|Total)\b/.test(l));
  return lines.slice(-3).join(' | ').slice(0, 500);
}

/** A value for a git config file: quoted, with the characters git's parser treats specially escaped. */
function configValue(value: string): string {
  return `"${value.replace(/[\\"]/g, (c) => `\\${c}`).replace(/[\r\n]/g, '')}"`;
}

/** A git timestamp as ISO 8601 in the author's own time zone, as `git log --format=%aI` prints it. */
export function isoDate(seconds: number, zone: string): string {
  const sign = zone.startsWith('-') ? -1 : 1;
  const offsetMinutes = sign * (Number(zone.slice(1, 3)) * 60 + Number(zone.slice(3, 5)));
  const local = new Date((seconds + offsetMinutes * 60) * 1000).toISOString().slice(0, 19);
  return `${local}${zone.slice(0, 3)}:${zone.slice(3, 5)}`;
}

/** Paths and blob ids (both sides) of `diff-tree -r -z --no-renames` output. */
export function parseRawDiff(raw: string): { paths: string[]; blobs: string[] } {
  const fields = raw.split('\0');
  const paths: string[] = [];
  const blobs = new Set<string>();
  for (let i = 0; i + 1 < fields.length; i += 2) {
    const meta = fields[i] ?? '';
    const path = fields[i + 1] ?? '';
    if (!meta.startsWith(':')) break;
    const [oldMode, newMode, oldOid, newOid] = meta.slice(1).split(' ');
    paths.push(path);
    for (const [mode, oid] of [
      [oldMode, oldOid],
      [newMode, newOid],
    ] as const) {
      // Gitlinks (160000) name commits of other repositories; zero ids are the missing side of an add or delete.
      if (mode !== undefined && oid !== undefined && /^10|^12/.test(mode) && !/^0+$/.test(oid)) blobs.add(oid);
    }
  }
  return { paths, blobs: [...blobs] };
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
