import { spawn } from 'node:child_process';
import { chmodSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { NotFoundError, UpstreamError } from '../../src/errors.js';
import { GitSource } from '../../src/source/git.js';
import { addCommit, bigBlob, createRepo } from '../env/git-fixtures.js';
import { gitStats } from '../env/git-server.js';
import { groundService } from '../env/git-services.js';
import { ground, type GitGround } from '../env/ground.js';

/**
 * The git cache under hostile or failing conditions (issue 19): git that cannot start, a killed fetch's leftovers,
 * a flood of reads for unknown commits, a commit that adds a large file outside the manifests directory.
 */

const work = mkdtempSync(join(tmpdir(), 'git-source-hardening-'));
const logs: string[] = [];
const logger = pino({ level: 'debug' }, { write: (line: string) => void logs.push(line) });
const sources: GitSource[] = [];
afterAll(() => {
  for (const s of sources) s.close();
  rmSync(work, { recursive: true, force: true });
});

let count = 0;
function newSource(options: { cacheDir?: string; git?: string } = {}): { source: GitSource; cacheDir: string } {
  const cacheDir = options.cacheDir ?? join(work, `cache-${++count}`);
  const source = new GitSource({ cacheDir, timeoutMs: 20_000, logger, git: options.git });
  sources.push(source);
  return { source, cacheDir };
}

async function rejection(promise: Promise<unknown>): Promise<Error> {
  try {
    await promise;
  } catch (err) {
    return err as Error;
  }
  throw new Error('expected a rejection');
}

function entries(cacheDir: string): string[] {
  const dir = join(cacheDir, 'git');
  return existsSync(dir) ? readdirSync(dir) : [];
}

function du(path: string): number {
  let total = 0;
  for (const e of readdirSync(path, { withFileTypes: true })) {
    const p = join(path, e.name);
    total += e.isDirectory() ? du(p) : e.isFile() ? statSync(p).size : 0;
  }
  return total;
}

/** git fetches the server saw: each starts with one GET of info/refs (one that finds nothing new sends no more). */
async function fetchesOf(g: GitGround, repo: string): Promise<number> {
  return (await gitStats(g.baseUrl)).log.filter((r) => r.repo === repo && r.method === 'GET' && r.path.startsWith('info/refs')).length;
}

describe('GitSource under failure and abuse', () => {
  let g: GitGround;
  beforeAll(() => {
    g = ground('git');
  });

  it.each([
    ['a git binary that does not exist (ENOENT)', (): string => join(work, 'no-such-git')],
    [
      'a git binary that cannot be executed (EACCES)',
      (): string => {
        const path = join(work, 'not-executable-git');
        writeFileSync(path, '#!/bin/sh\nexit 0\n');
        chmodSync(path, 0o644);
        return path;
      },
    ],
    [
      'a git that runs out of file descriptors itself',
      (): string => {
        const path = join(work, 'emfile-git');
        writeFileSync(path, '#!/bin/sh\necho "fatal: unable to create temporary file: Too many open files" >&2\nexit 128\n');
        chmodSync(path, 0o755);
        return path;
      },
    ],
  ])('answers 503 and keeps the cache when git fails to run: %s', async (name, makeGit) => {
    const repo = await createRepo(g.root, `hard-spawn-${count}`, [{ files: { 'kubernetes/a.yaml': 'a: 1\n' } }]);
    const svc = groundService(g, repo.urlPath);
    const { cacheDir } = newSource();
    const good = sources[sources.length - 1] as GitSource;
    await good.filesAt(svc, await good.resolve(svc, 'main'));
    const before = entries(cacheDir);
    const { source } = newSource({ cacheDir, git: makeGit() });

    const unknown = await rejection(source.resolve(svc, 'main'));
    const cached = await rejection(source.filesAt(svc, repo.shas[0] ?? ''));

    for (const err of [unknown, cached]) {
      expect(err, name).toBeInstanceOf(UpstreamError);
      expect((err as UpstreamError).status).toBe(503);
      expect(err.message).toMatch(/^git could not run on the deployer \((ENOENT|EACCES|out of resources)\); try again$/);
    }
    // Not judged a broken cache: nothing was moved to .trash-*, and the cache still answers with a working git.
    expect(entries(cacheDir)).toEqual(before);
    expect(logs.some((l) => l.includes('git cache is broken'))).toBe(false);
    expect((await good.filesAt(svc, repo.shas[0] ?? '')).map((f) => f.path)).toEqual(['kubernetes/a.yaml']);
  });

  it('answers 503 and keeps the cache when spawning git fails with EMFILE (a low RLIMIT_NOFILE)', async () => {
    const repo = await createRepo(g.root, 'hard-emfile', [{ files: { 'kubernetes/a.yaml': 'a: 1\n' } }]);
    const svc = groundService(g, repo.urlPath);
    const { source, cacheDir } = newSource();
    await source.filesAt(svc, await source.resolve(svc, 'main'));
    const next = await addCommit(g.root, 'hard-emfile', { 'kubernetes/a.yaml': 'a: 2\n' });
    const before = entries(cacheDir);
    const limit = (soft: number): string[] => ['--pid', String(process.pid), `--nofile=${soft}:20000`];
    // Started before the limit is lowered: with it lowered, this process could not start prlimit to raise it again.
    const restorer = spawn('sh', ['-c', 'read line; exec prlimit "$@"', 'restore', ...limit(20000)], { stdio: ['pipe', 'ignore', 'inherit'] });
    const restored = new Promise((resolve) => restorer.on('close', resolve));
    await new Promise<void>((resolve, reject) =>
      spawn('prlimit', limit(readdirSync('/proc/self/fd').length + 2), { stdio: 'ignore' }).on('close', (code) =>
        code === 0 ? resolve() : reject(new Error(`prlimit exited with ${code}`)),
      ),
    );
    let err: Error;
    try {
      err = await rejection(source.resolve(svc, next));
    } finally {
      restorer.stdin.end('go\n');
      await restored;
    }

    expect(err).toBeInstanceOf(UpstreamError);
    expect((err as UpstreamError).status).toBe(503);
    expect(err.message).toBe('git could not run on the deployer (EMFILE); try again');
    expect(entries(cacheDir)).toEqual(before);
    // The limit raised again, the same cache serves the commit.
    expect(await source.resolve(svc, next)).toBe(next);
  });

  it('removes temporary packs a killed fetch left behind when it opens a cache, and only stale ones', async () => {
    const repo = await createRepo(g.root, 'hard-tmp-pack', [{ files: { 'kubernetes/a.yaml': 'a: 1\n' } }]);
    const svc = groundService(g, repo.urlPath);
    const { source, cacheDir } = newSource();
    await source.filesAt(svc, await source.resolve(svc, 'main'));
    const [cache] = entries(cacheDir);
    const packDir = join(cacheDir, 'git', cache ?? 'none', 'objects', 'pack');
    const hourAgo = new Date(Date.now() - 3600_000);
    for (const name of ['tmp_pack_old1', 'tmp_idx_old2']) {
      writeFileSync(join(packDir, name), Buffer.alloc(4096));
      utimesSync(join(packDir, name), hourAgo, hourAgo);
    }
    writeFileSync(join(packDir, 'tmp_pack_fresh'), Buffer.alloc(4096));

    // A new process (a restarted pod) opens the cache.
    const { source: restarted } = newSource({ cacheDir });
    await restarted.resolve(svc, repo.shas[0] ?? '');

    const left = readdirSync(packDir).filter((n) => n.startsWith('tmp_'));
    expect(left).toEqual(['tmp_pack_fresh']);
  });

  it('counts lines without fetching a large file the commit added outside the manifests directory', async () => {
    const repo = await createRepo(g.root, 'hard-facts-big', [{ files: { 'kubernetes/a.yaml': 'a: 1\n', 'src/x.c': 'x\n' } }]);
    const svc = groundService(g, repo.urlPath);
    const { source, cacheDir } = newSource();
    await source.filesAt(svc, await source.resolve(svc, 'main'));
    await source.commitFacts(svc, repo.shas[0] ?? '');
    const sha = await addCommit(g.root, 'hard-facts-big', {
      'kubernetes/a.yaml': 'a: 2\nb: 2\n',
      'assets/big.bin': bigBlob(8 * 1024 * 1024, 'hard-facts'),
    });
    const sizeBefore = du(cacheDir);

    await source.filesAt(svc, await source.resolve(svc, sha));
    const facts = await source.commitFacts(svc, sha);

    // a.yaml: one line changed, one added; the big file is left out of the counts.
    expect(facts).toMatchObject({ commit: sha, insertions: 2, deletions: 1 });
    expect(du(cacheDir) - sizeBefore).toBeLessThan(2 * 1024 * 1024);
    const [cache] = entries(cacheDir);
    expect(readdirSync(join(cacheDir, 'git', cache ?? 'none', 'objects', 'pack')).filter((n) => n.startsWith('tmp_'))).toEqual([]);
  });

  it('asks the server for no version of a large file a commit replaced when counting its lines', async () => {
    const repo = await createRepo(g.root, 'hard-facts-replace', [
      { files: { 'kubernetes/a.yaml': 'a: 1\n', 'src/x.c': 'x\n', 'assets/big.bin': bigBlob(3 * 1024 * 1024, 'replace-1') } },
    ]);
    const svc = groundService(g, repo.urlPath);
    const { source } = newSource();
    await source.filesAt(svc, await source.resolve(svc, 'main'));
    const sha = await addCommit(g.root, 'hard-facts-replace', {
      'kubernetes/a.yaml': 'a: 2\nb: 2\n',
      'src/x.c': 'x\ny\n',
      'assets/big.bin': bigBlob(3 * 1024 * 1024, 'replace-2'),
    });
    const before = (await gitStats(g.baseUrl)).log.length;

    await source.filesAt(svc, await source.resolve(svc, sha));
    const facts = await source.commitFacts(svc, sha);

    // a.yaml +2 -1 and x.c +1 (its old version, never fetched, is small: fetched for the counts); big.bin left out.
    expect(facts).toMatchObject({ commit: sha, insertions: 3, deletions: 1 });
    const fetches = (await gitStats(g.baseUrl)).log.slice(before).filter((r) => r.repo === repo.urlPath && r.command === 'fetch');
    expect(fetches.map((r) => [r.filter, r.wants])).toEqual([
      ['blob:limit=262144', 1],
      ['blob:none', 1],
    ]);
    expect(fetches.reduce((n, r) => n + r.bytesOut, 0)).toBeLessThan(64 * 1024);
  });

  it('joins concurrent fetches of the same branch or commit instead of queueing one each', async () => {
    const repo = await createRepo(g.root, 'hard-join', [{ files: { 'kubernetes/a.yaml': 'a: 1\n' } }]);
    const svc = groundService(g, repo.urlPath);
    const { source } = newSource();
    await source.resolve(svc, 'main');
    const next = await addCommit(g.root, 'hard-join', { 'kubernetes/a.yaml': 'a: 2\n' });

    let before = await fetchesOf(g, 'hard-join.git');
    const branch = await Promise.all(Array.from({ length: 10 }, () => source.resolve(svc, 'main')));
    const branchFetches = (await fetchesOf(g, 'hard-join.git')) - before;
    const newer = await addCommit(g.root, 'hard-join', { 'kubernetes/a.yaml': 'a: 3\n' });
    before = await fetchesOf(g, 'hard-join.git');
    const commits = await Promise.all(Array.from({ length: 10 }, () => source.resolve(svc, newer)));
    const commitFetches = (await fetchesOf(g, 'hard-join.git')) - before;

    expect(new Set(branch)).toEqual(new Set([next]));
    // One fetch that was running, at most one more that every later caller joined.
    expect(branchFetches).toBeLessThanOrEqual(2);
    expect(new Set(commits)).toEqual(new Set([newer]));
    expect(commitFetches).toBe(1);
  });

  it('refuses reads beyond a few waiting fetches with a 503, and lets a deploy go first', async () => {
    const repo = await createRepo(g.root, 'hard-reads', [{ files: { 'kubernetes/a.yaml': 'a: 1\n' } }]);
    const svc = groundService(g, repo.urlPath);
    const { source } = newSource();
    await source.resolve(svc, 'main');
    const deployed = await addCommit(g.root, 'hard-reads', { 'kubernetes/a.yaml': 'a: 2\n' });
    const order: string[] = [];
    const randomHex = (i: number): string => `${String(i).padStart(4, '0')}${'f'.repeat(36)}`;

    const reads = Array.from({ length: 20 }, (_, i) =>
      source.resolve(svc, randomHex(i), { purpose: 'read' }).then(
        () => order.push('read'),
        (err: unknown) => {
          order.push(err instanceof UpstreamError && err.status === 503 ? 'refused' : 'read');
          return err;
        },
      ),
    );
    const deploy = source.resolve(svc, deployed).then((sha) => {
      order.push('deploy');
      return sha;
    });
    const [sha, ...outcomes] = await Promise.all([deploy, ...reads]);

    expect(sha).toBe(deployed);
    const refused = outcomes.filter((e) => e instanceof UpstreamError && e.status === 503) as UpstreamError[];
    // One read fetching, four waiting: the other fifteen are refused at once (and a waiting read's second fetch, of
    // every branch, may be refused too when it finds four waiting); the rest learn the commit does not exist.
    expect(refused.length).toBeGreaterThanOrEqual(15);
    expect(refused[0]?.message).toBe(
      `git fetches of ${svc.repository.url} are busy (4 reads already waiting); try again in a moment`,
    );
    expect(outcomes.filter((e) => e instanceof NotFoundError).length).toBe(20 - refused.length);
    // The deploy waited for the one running read fetch at most, never for the reads queued before it.
    expect(order.slice(0, order.indexOf('deploy')).filter((o) => o === 'read').length).toBeLessThanOrEqual(1);
  });
});

describe('the cat-file reader of a cache', () => {
  let g: GitGround;
  beforeAll(() => {
    g = ground('git');
  });

  /** Pids of the cat-file readers looking at caches below `cacheDir`. */
  function readers(cacheDir: string): number[] {
    const pids: number[] = [];
    for (const entry of readdirSync('/proc')) {
      if (!/^\d+$/.test(entry)) continue;
      try {
        const cmdline = readFileSync(`/proc/${entry}/cmdline`, 'utf8');
        const environ = readFileSync(`/proc/${entry}/environ`, 'utf8');
        if (cmdline.includes('cat-file') && environ.includes(`GIT_OBJECT_DIRECTORY=${cacheDir}`)) pids.push(Number(entry));
      } catch {
        // Gone meanwhile, or not ours to read.
      }
    }
    return pids;
  }

  it('is one process per cache, started again when it is killed, without judging the cache broken', async () => {
    const repo = await createRepo(g.root, 'hard-reader', [{ files: { 'kubernetes/a.yaml': 'a: 1\n' } }]);
    const svc = groundService(g, repo.urlPath);
    const { source, cacheDir } = newSource();
    await source.filesAt(svc, await source.resolve(svc, 'main'));
    await source.commitFacts(svc, repo.shas[0] ?? '');
    const [first, ...more] = readers(cacheDir);
    const before = entries(cacheDir);
    const logsBefore = logs.length;

    process.kill(first ?? 0, 'SIGKILL');
    const next = await addCommit(g.root, 'hard-reader', { 'kubernetes/a.yaml': 'a: 2\n' });
    const files = await source.filesAt(svc, await source.resolve(svc, next));

    expect(first).toBeGreaterThan(0);
    expect(more).toEqual([]);
    expect(files.map((f) => f.content.toString('utf8'))).toEqual(['a: 2\n']);
    expect(entries(cacheDir)).toEqual(before);
    expect(logs.slice(logsBefore).some((l) => l.includes('git cache is broken'))).toBe(false);
    const [second, ...others] = readers(cacheDir);
    expect(second).not.toBe(first);
    expect(others).toEqual([]);
  });
});
