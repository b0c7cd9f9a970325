import { createServer, type Server, type Socket } from 'node:net';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Secret } from '../../src/config/secret.js';
import { InputError, ManifestError, NotFoundError, UpstreamError } from '../../src/errors.js';
import { GitSource } from '../../src/source/git.js';
import { createSource } from '../../src/source/index.js';
import { addCommit, bigBlob, commitWithPrefix, createRepo, git } from '../env/git-fixtures.js';
import { gitStats, startGitServer, type GitRequestRecord } from '../env/git-server.js';
import { gitService, groundLogin } from '../env/git-services.js';
import { ground, type GitGround } from '../env/ground.js';

const work = mkdtempSync(join(tmpdir(), 'git-source-test-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));

const logs: string[] = [];
const logger = pino({ level: 'debug' }, { write: (line: string) => void logs.push(line) });

let cacheCount = 0;
/** A source with a cache of its own, so tests do not see each other's fetches. */
function newSource(timeoutMs = 20_000): { source: GitSource; cacheDir: string } {
  const cacheDir = join(work, `cache-${++cacheCount}`);
  return { source: new GitSource({ cacheDir, timeoutMs, logger }), cacheDir };
}

function text(files: ReadonlyArray<{ path: string; content: Buffer }>): Record<string, string> {
  return Object.fromEntries(files.map((f) => [f.path, f.content.toString('utf8')]));
}

async function requestsFor(g: GitGround, repo: string): Promise<GitRequestRecord[]> {
  return (await gitStats(g.baseUrl)).log.filter((r) => r.repo === repo);
}

/** The repository caches below a source's cache directory. */
function cachedRepos(cacheDir: string): string[] {
  const dir = join(cacheDir, 'git');
  return existsSync(dir) ? readdirSync(dir) : [];
}

async function rejection(promise: Promise<unknown>): Promise<Error> {
  try {
    await promise;
  } catch (err) {
    return err as Error;
  }
  throw new Error('expected a rejection');
}

describe('GitSource against the git server', () => {
  let g: GitGround;
  beforeAll(() => {
    g = ground('git');
  });

  it('reads the manifests from a server whose pack has a bitmap index (as GitHub and GitLab keep them)', async () => {
    const repo = await createRepo(g.root, 'src-bitmap', [
      { files: { 'kubernetes/app.yaml': 'v: 1\n', 'src/main.c': 'int main;\n' } },
      { files: { 'kubernetes/app.yaml': 'v: 2\n', 'kubernetes/extra.yml': 'e: 1\n' } },
    ]);
    await git(['repack', '-a', '-d', '-q', '--write-bitmap-index'], { cwd: repo.path });
    const { source } = newSource();
    const svc = gitService(`${g.baseUrl}${repo.urlPath}`, { credentials: groundLogin(g) });

    const sha = await source.resolve(svc, 'main');
    const files = await source.filesAt(svc, sha);

    expect(text(files)).toEqual({ 'kubernetes/app.yaml': 'v: 2\n', 'kubernetes/extra.yml': 'e: 1\n' });
    expect(text(await source.filesAt(svc, repo.shas[0] as string))).toEqual({ 'kubernetes/app.yaml': 'v: 1\n' });
  });

  it('clones on the first resolve, and a later deploy only fetches the new commit into the same cache', async () => {
    const repo = await createRepo(g.root, 'src-fetch', [
      { files: { 'kubernetes/app.yaml': 'v: 1\n', 'src/main.c': 'int main;\n' } },
      { files: { 'src/more.c': 'int more;\n'.repeat(200) } },
      { files: { 'src/other.c': 'int other;\n'.repeat(200) } },
      { files: { 'kubernetes/app.yaml': 'v: 2\n' } },
    ]);
    const { source, cacheDir } = newSource();
    const svc = gitService(`${g.baseUrl}${repo.urlPath}`, { credentials: groundLogin(g) });

    const first = await source.resolve(svc, repo.shas[3] ?? '');
    const files = await source.filesAt(svc, first);
    const afterFirst = await requestsFor(g, 'src-fetch.git');
    const [cache] = cachedRepos(cacheDir);
    writeFileSync(join(cacheDir, 'git', cache ?? 'none', 'marker'), 'still the same cache');

    // Resolving a cached commit again costs no request at all.
    await source.resolve(svc, repo.shas[3] ?? '');
    expect(await requestsFor(g, 'src-fetch.git')).toHaveLength(afterFirst.length);

    const next = await addCommit(g.root, 'src-fetch', { 'kubernetes/app.yaml': 'v: 3\n' });
    const second = await source.resolve(svc, next);
    const nextFiles = await source.filesAt(svc, second);
    const newRequests = (await requestsFor(g, 'src-fetch.git')).slice(afterFirst.length);

    expect(first).toBe(repo.shas[3]);
    expect(text(files)).toEqual({ 'kubernetes/app.yaml': 'v: 2\n' });
    expect(second).toBe(next);
    expect(text(nextFiles)).toEqual({ 'kubernetes/app.yaml': 'v: 3\n' });
    expect(cachedRepos(cacheDir)).toEqual([cache]);
    expect(readFileSync(join(cacheDir, 'git', cache ?? 'none', 'marker'), 'utf8')).toBe('still the same cache');
    // First: the commit with its history, without blobs and with no "have"; then the manifests' blob, also
    // without "have" lines (as git's own lazy fetch: a bitmap-serving server would subtract the wanted blob).
    const firstFetches = afterFirst.filter((r) => r.command === 'fetch');
    expect(firstFetches.map((r) => [r.filter, r.wants, r.haves > 0])).toEqual([
      ['blob:none', 1, false],
      ['blob:none', 1, false],
    ]);
    // Second deploy: one fetch of the new commit that names what the cache has and brings the new small blobs with
    // it (the manifests' among them), so reading the manifests needs no second round trip.
    const newFetches = newRequests.filter((r) => r.command === 'fetch');
    expect(newFetches.map((r) => [r.filter, r.wants])).toEqual([['blob:limit=262144', 1]]);
    expect(newFetches[0]?.haves).toBeGreaterThan(0);
    expect(newFetches[0]?.bytesOut).toBeLessThan(firstFetches[0]?.bytesOut ?? 0);
  });

  it('leaves a large file a new commit added on the server: only the small new blobs come with the commit', async () => {
    const repo = await createRepo(g.root, 'src-fetch-big', [{ files: { 'kubernetes/app.yaml': 'v: 1\n' } }]);
    const { source } = newSource();
    const svc = gitService(`${g.baseUrl}${repo.urlPath}`, { credentials: groundLogin(g) });
    await source.filesAt(svc, await source.resolve(svc, repo.shas[0] ?? ''));
    const before = (await requestsFor(g, 'src-fetch-big.git')).length;

    const next = await addCommit(g.root, 'src-fetch-big', { 'kubernetes/app.yaml': 'v: 2\n', 'assets/big.bin': bigBlob(2 * 1024 * 1024, 'src-big') });
    const files = await source.filesAt(svc, await source.resolve(svc, next));

    expect(text(files)).toEqual({ 'kubernetes/app.yaml': 'v: 2\n' });
    const fetches = (await requestsFor(g, 'src-fetch-big.git')).slice(before).filter((r) => r.command === 'fetch');
    expect(fetches).toHaveLength(1);
    expect(fetches[0]?.bytesOut).toBeLessThan(64 * 1024);
  });

  it('reads a new commit whose changed files the server sends as deltas against blobs the cache never fetched', async () => {
    // A fetch names the cached commits as "have"s, so the server may send a changed file as a delta against its old
    // version (a thin pack), assuming the client holds every object of those commits. A partial cache does not:
    // here the source file was never read, and the manifest of the first commit was not either.
    const lines = (what: string, v: number): string => Array.from({ length: 300 }, (_, i) => `${what} line ${i} ${i === 7 ? v : 0}`).join('\n');
    const repo = await createRepo(g.root, 'src-thin', [{ files: { 'kubernetes/app.yaml': lines('app', 1), 'src/app.c': lines('src', 1) } }]);
    const { source, cacheDir } = newSource();
    const svc = gitService(`${g.baseUrl}${repo.urlPath}`, { credentials: groundLogin(g) });
    await source.resolve(svc, repo.shas[0] ?? '');
    const [cache] = cachedRepos(cacheDir);
    writeFileSync(join(cacheDir, 'git', cache ?? 'none', 'marker'), 'still the same cache');
    const logsBefore = logs.length;

    const second = await addCommit(g.root, 'src-thin', { 'kubernetes/app.yaml': lines('app', 2), 'src/app.c': lines('src', 2) });
    const secondFiles = await source.filesAt(svc, await source.resolve(svc, second));
    const third = await addCommit(g.root, 'src-thin', { 'kubernetes/app.yaml': lines('app', 3), 'src/app.c': lines('src', 3) });
    const thirdFiles = await source.filesAt(svc, await source.resolve(svc, third));

    expect(text(secondFiles)).toEqual({ 'kubernetes/app.yaml': lines('app', 2) });
    expect(text(thirdFiles)).toEqual({ 'kubernetes/app.yaml': lines('app', 3) });
    expect(readFileSync(join(cacheDir, 'git', cache ?? 'none', 'marker'), 'utf8')).toBe('still the same cache');
    const warnings = logs.slice(logsBefore).filter((l) => (JSON.parse(l) as { level: number }).level >= 40);
    expect(warnings).toEqual([]);
  });

  it('reads two commits of one repository at the same time, each with its own files', async () => {
    const repo = await createRepo(g.root, 'src-concurrent', [
      { files: { 'kubernetes/a.yaml': 'a: 1\n', 'kubernetes/sub/b.yaml': 'b: 1\n', 'docs/x.md': 'x\n' } },
      { files: { 'kubernetes/a.yaml': 'a: 2\n', 'kubernetes/sub/b.yaml': null, 'kubernetes/c.yaml': 'c: 2\n' } },
    ]);
    const { source } = newSource();
    const svc = gitService(`${g.baseUrl}${repo.urlPath}`, { credentials: groundLogin(g) });
    const [one, two] = [repo.shas[0] ?? '', repo.shas[1] ?? ''];

    const [filesOne, filesTwo] = await Promise.all([source.filesAt(svc, one), source.filesAt(svc, two)]);
    const again = await Promise.all([source.filesAt(svc, two), source.filesAt(svc, one), source.filesAt(svc, two)]);

    expect(text(filesOne)).toEqual({ 'kubernetes/a.yaml': 'a: 1\n', 'kubernetes/sub/b.yaml': 'b: 1\n' });
    expect(text(filesTwo)).toEqual({ 'kubernetes/a.yaml': 'a: 2\n', 'kubernetes/c.yaml': 'c: 2\n' });
    expect(again.map(text)).toEqual([text(filesTwo), text(filesOne), text(filesTwo)]);
  });

  it('resolves a branch (fetching it every time), a short SHA, and refuses an ambiguous one', async () => {
    const repo = await createRepo(g.root, 'src-refs', [{ files: { 'kubernetes/a.yaml': 'a\n' } }]);
    const feature = await addCommit(g.root, 'src-refs', { 'kubernetes/a.yaml': 'feature\n' }, { branch: 'feature/x' });
    const { source } = newSource();
    const svc = gitService(`${g.baseUrl}${repo.urlPath}`, { credentials: groundLogin(g) });

    const main1 = await source.resolve(svc, 'main');
    const moved = await addCommit(g.root, 'src-refs', { 'kubernetes/a.yaml': 'b\n' });
    const main2 = await source.resolve(svc, 'main');
    const branch = await source.resolve(svc, 'feature/x');
    const short = await source.resolve(svc, feature.slice(0, 8));
    const upper = await source.resolve(svc, moved.toUpperCase());

    const first = await commitWithPrefix(g.root, 'src-refs', 'abcd', 'amb-1');
    const secondSha = await commitWithPrefix(g.root, 'src-refs', 'abcd', 'amb-2', { avoid: [first.slice(0, 5)] });
    const ambiguous = await rejection(source.resolve(svc, 'abcd'));
    const unique = await source.resolve(svc, secondSha.slice(0, 5));

    expect(main1).toBe(repo.shas[0]);
    expect(main2).toBe(moved);
    expect(branch).toBe(feature);
    expect(short).toBe(feature);
    expect(upper).toBe(moved);
    expect(ambiguous).toBeInstanceOf(InputError);
    expect(ambiguous.message).toBe(`short SHA abcd is ambiguous in ${g.baseUrl}${repo.urlPath}; give more digits`);
    expect(unique).toBe(secondSha);
  });

  it('resolves a branch that took the place of a deleted one (feature → feature/x)', async () => {
    const repo = await createRepo(g.root, 'src-branch-dir', [{ files: { 'kubernetes/a.yaml': 'a\n' } }], { branch: 'feature' });
    const { source } = newSource();
    const svc = gitService(`${g.baseUrl}${repo.urlPath}`, { credentials: groundLogin(g) });
    await source.resolve(svc, 'feature');
    await git(['update-ref', '-d', 'refs/heads/feature'], { cwd: repo.path });
    const moved = await addCommit(g.root, 'src-branch-dir', { 'kubernetes/a.yaml': 'b\n' }, { branch: 'feature/x', from: repo.shas[0] });

    const logsBefore = logs.length;

    const sha = await source.resolve(svc, 'feature/x');
    const gone = await rejection(source.resolve(svc, 'feature'));

    expect(sha).toBe(moved);
    expect(gone).toBeInstanceOf(NotFoundError);
    // The cached refs/remotes/origin/feature was in the way: the cache was dropped and fetched again.
    expect(logs.slice(logsBefore).some((l) => l.includes('git cache is broken'))).toBe(true);
  });

  it.each([
    ['an unknown commit', '0123456789abcdef0123456789abcdef01234567', 'commit 0123456789abcdef0123456789abcdef01234567 not found in URL'],
    ['an unknown short SHA', 'fedcba98', 'commit fedcba98 not found in URL'],
    ['an unknown branch', 'no-such-branch', 'branch no-such-branch not found in URL'],
  ])('answers NotFoundError for %s', async (_, ref, message) => {
    const repo = await createRepo(g.root, `src-missing-${ref.slice(0, 6)}`, [{ files: { 'kubernetes/a.yaml': 'a\n' } }]);
    const { source } = newSource();
    const url = `${g.baseUrl}${repo.urlPath}`;

    const err = await rejection(source.resolve(gitService(url, { credentials: groundLogin(g) }), ref));

    expect(err).toBeInstanceOf(NotFoundError);
    expect(err.message).toBe(message.replace('URL', url));
  });

  it.each([
    ['an option', '--upload-pack=touch /tmp/pwned'],
    ['a dash', '-main'],
    ['a revision expression', 'main~1'],
    ['a range', 'a..b'],
    ['a reflog expression', 'main@{1}'],
    ['a space', 'main branch'],
  ])('refuses %s as a reference before running git', async (_, ref) => {
    const { source, cacheDir } = newSource();
    const svc = gitService(`${g.baseUrl}never-used.git`, { credentials: groundLogin(g) });

    const err = await rejection(source.resolve(svc, ref));
    const commitErr = await rejection(source.filesAt(svc, ref));

    expect(err).toBeInstanceOf(InputError);
    expect(commitErr).toBeInstanceOf(InputError);
    expect(cachedRepos(cacheDir)).toEqual([]);
  });

  it('computes commit facts against the first parent (root commits against nothing)', async () => {
    const repo = await createRepo(g.root, 'src-facts', [
      {
        files: { 'kubernetes/a.yaml': 'one\ntwo\nthree\n', 'README.md': 'hello\n' },
        author: { name: 'Ada Lovelace', email: 'ada@example.test' },
        date: '2024-03-01T10:00:00Z',
      },
      {
        files: { 'kubernetes/a.yaml': 'one\n2\nthree\nfour\n', 'README.md': null, 'bin/blob': bigBlob(4096, 'facts') },
        author: { name: 'Grace Hopper', email: 'grace@example.test' },
        date: '2024-03-02T11:30:00Z',
      },
    ]);
    const { source } = newSource();
    const svc = gitService(`${g.baseUrl}${repo.urlPath}`, { credentials: groundLogin(g) });

    const root = await source.commitFacts(svc, repo.shas[0] ?? '');
    const second = await source.commitFacts(svc, repo.shas[1] ?? '');

    expect(root).toEqual({
      commit: repo.shas[0],
      author: 'Ada Lovelace <ada@example.test>',
      date: '2024-03-01T10:00:00+00:00',
      insertions: 4,
      deletions: 0,
    });
    // a.yaml: "two" → "2" and "four" added; README's line removed; the binary blob has no lines.
    expect(second).toEqual({
      commit: repo.shas[1],
      author: 'Grace Hopper <grace@example.test>',
      date: '2024-03-02T11:30:00+00:00',
      insertions: 2,
      deletions: 2,
    });
  });

  it('never follows a symbolic link or a submodule in the manifests directory', async () => {
    const repo = await createRepo(g.root, 'src-links', [
      { files: { 'kubernetes/a.yaml': 'a\n', 'secret.txt': 'do not read\n' } },
      { files: { 'kubernetes/link.yaml': { symlink: '../secret.txt' } } },
      { files: { 'kubernetes/link.yaml': null, 'kubernetes/sub': { gitlink: '0123456789abcdef0123456789abcdef01234567' } } },
    ]);
    const { source } = newSource();
    const svc = gitService(`${g.baseUrl}${repo.urlPath}`, { credentials: groundLogin(g) });

    const plain = await source.filesAt(svc, repo.shas[0] ?? '');
    const link = await rejection(source.filesAt(svc, repo.shas[1] ?? ''));
    const submodule = await rejection(source.filesAt(svc, repo.shas[2] ?? ''));

    expect(text(plain)).toEqual({ 'kubernetes/a.yaml': 'a\n' });
    expect(link).toBeInstanceOf(ManifestError);
    expect(link.message).toBe('kubernetes/link.yaml is a symbolic link; manifests must be regular files (links are not followed)');
    expect(submodule).toBeInstanceOf(ManifestError);
    expect(submodule.message).toContain('kubernetes/sub is a submodule');
  });

  it('reads another manifests directory, and answers NotFoundError when it does not exist at the commit', async () => {
    const repo = await createRepo(g.root, 'src-dirs', [
      { files: { 'deploy/k8s/a.yaml': 'a\n', 'deploy/other.yaml': 'o\n', 'kubernetes.yaml': 'not a dir\n' } },
    ]);
    const { source } = newSource();
    const url = `${g.baseUrl}${repo.urlPath}`;
    const sha = repo.shas[0] ?? '';

    const nested = await source.filesAt(gitService(url, { credentials: groundLogin(g), manifestsDir: 'deploy/k8s/' }), sha);
    const missing = await rejection(source.filesAt(gitService(url, { credentials: groundLogin(g) }), sha));
    const file = await rejection(source.filesAt(gitService(url, { credentials: groundLogin(g), manifestsDir: 'kubernetes.yaml' }), sha));

    expect(text(nested)).toEqual({ 'deploy/k8s/a.yaml': 'a\n' });
    expect(missing).toBeInstanceOf(NotFoundError);
    expect(missing.message).toBe(`directory kubernetes/ not found at commit ${sha} in ${url}`);
    expect(file).toBeInstanceOf(NotFoundError);
  });

  it('reports wrong credentials without the password, and stores no credentials in the cache', async () => {
    const repo = await createRepo(g.root, 'src-auth', [{ files: { 'kubernetes/a.yaml': 'a\n' } }]);
    const { source, cacheDir } = newSource();
    const url = `${g.baseUrl}${repo.urlPath}`;
    const wrongPassword = 'wrong-password-4711';

    const wrong = await rejection(source.resolve(gitService(url, { credentials: groundLogin(g, wrongPassword) }), 'main'));
    const none = await rejection(source.resolve(gitService(url), 'main'));
    const token = await source.resolve(
      gitService(url, { credentials: { username: g.username, token: new Secret(g.password) } }),
      'main',
    );
    const embedded = new URL(url);
    embedded.username = g.username;
    embedded.password = g.password;
    const inUrl = await source.resolve(gitService(embedded.toString()), 'main');

    expect(wrong).toBeInstanceOf(UpstreamError);
    expect(wrong.message).toBe(`${url} refused the credentials of service app`);
    expect(none).toBeInstanceOf(UpstreamError);
    expect(token).toBe(repo.shas[0]);
    expect(inUrl).toBe(repo.shas[0]);
    // One cache for the URL with and without embedded credentials.
    expect(cachedRepos(cacheDir)).toHaveLength(1);
    const everything = logs.join('\n') + JSON.stringify(wrong) + String(wrong.stack) + cacheContents(cacheDir);
    for (const secret of [wrongPassword, g.password, Buffer.from(`${g.username}:${g.password}`).toString('base64')]) {
      expect(everything).not.toContain(secret);
    }
  });

  it('goes on from the cache while the remote is down, and fails for what is not cached', async () => {
    const own = await startGitServer(join(work, 'private-server'), join(work, 'logs'), { password: 'private-pass' });
    let stopped = false;
    try {
      const repo = await createRepo(own.info.root, 'down', [
        { files: { 'kubernetes/a.yaml': 'a: 1\n' } },
        { files: { 'kubernetes/a.yaml': 'a: 2\n' } },
      ]);
      const { source } = newSource();
      const svc = gitService(`${own.info.baseUrl}${repo.urlPath}`, { credentials: groundLogin(own.info, 'private-pass') });
      const cached = await source.resolve(svc, repo.shas[0] ?? '');
      await source.filesAt(svc, cached);
      await source.commitFacts(svc, cached);

      await own.stop();
      stopped = true;
      const again = await source.resolve(svc, repo.shas[0] ?? '');
      const short = await source.resolve(svc, (repo.shas[0] ?? '').slice(0, 10));
      const files = await source.filesAt(svc, again);
      const facts = await source.commitFacts(svc, again);
      const uncached = await rejection(source.resolve(svc, repo.shas[1] ?? ''));
      const branch = await rejection(source.resolve(svc, 'main'));

      expect(again).toBe(repo.shas[0]);
      expect(short).toBe(repo.shas[0]);
      expect(text(files)).toEqual({ 'kubernetes/a.yaml': 'a: 1\n' });
      expect(facts.insertions).toBe(1);
      expect(uncached).toBeInstanceOf(UpstreamError);
      expect((uncached as UpstreamError).status).toBe(503);
      expect(uncached.message).toMatch(new RegExp(`^cannot reach ${own.info.baseUrl}down.git: `));
      expect(branch).toBeInstanceOf(UpstreamError);
    } finally {
      if (!stopped) await own.stop();
    }
  });

  it('times out on a remote that never answers', async () => {
    const sockets: Socket[] = [];
    const silent: Server = createServer((s) => void sockets.push(s));
    await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
    try {
      const address = silent.address();
      const port = typeof address === 'object' && address !== null ? address.port : 0;
      const { source } = newSource(1_500);

      const err = await rejection(source.resolve(gitService(`http://127.0.0.1:${port}/slow.git`), 'main'));

      expect(err).toBeInstanceOf(UpstreamError);
      expect((err as UpstreamError).status).toBe(504);
      expect(err.message).toBe(`fetching main from http://127.0.0.1:${port}/slow.git timed out after 1500 ms`);
    } finally {
      for (const s of sockets) s.destroy();
      await new Promise((resolve) => silent.close(resolve));
    }
  });

  it.each([
    ['deleted', (dir: string): void => rmSync(dir, { recursive: true, force: true })],
    [
      'emptied of objects',
      (dir: string): void => {
        rmSync(join(dir, 'objects'), { recursive: true, force: true });
      },
    ],
    ['given a broken config', (dir: string): void => writeFileSync(join(dir, 'config'), '[core\nbroken = \n')],
    [
      'left with corrupt object files',
      (dir: string): void => {
        const walk = (d: string): void => {
          for (const entry of readdirSync(d, { withFileTypes: true })) {
            const p = join(d, entry.name);
            if (entry.isDirectory()) walk(p);
            else writeFileSync(p, 'garbage');
          }
        };
        walk(join(dir, 'objects'));
      },
    ],
  ])('recovers when the cache is %s between calls', async (name, damage) => {
    const logsBefore = logs.length;
    const repoName = `src-recover-${name.replace(/\W+/g, '-')}`;
    const repo = await createRepo(g.root, repoName, [
      { files: { 'kubernetes/a.yaml': 'a: 1\n' } },
      { files: { 'kubernetes/a.yaml': 'a: 2\n' } },
    ]);
    const { source, cacheDir } = newSource();
    const svc = gitService(`${g.baseUrl}${repo.urlPath}`, { credentials: groundLogin(g) });
    await source.filesAt(svc, await source.resolve(svc, 'main'));
    const [cache] = cachedRepos(cacheDir);

    damage(join(cacheDir, 'git', cache ?? 'none'));
    const sha = await source.resolve(svc, repo.shas[0] ?? '');
    const files = await source.filesAt(svc, sha);
    const latest = await source.filesAt(svc, repo.shas[1] ?? '');

    expect(text(files)).toEqual({ 'kubernetes/a.yaml': 'a: 1\n' });
    expect(text(latest)).toEqual({ 'kubernetes/a.yaml': 'a: 2\n' });
    expect(cachedRepos(cacheDir)).toEqual([cache]);
    const lines = logs.slice(logsBefore).map((l) => JSON.parse(l) as { msg: string; target?: string; what?: string });
    const messages = lines.map((l) => l.msg);
    if (name === 'left with corrupt object files') {
      // git skips packs whose index is garbage: their objects count as missing, and the commit fetch (which brings
      // the small blobs along) brings them back without a read ever failing. Either way, no read is wrong.
      const refetched = lines.filter((l) => l.msg === 'git fetch' && l.target === 'commit').map((l) => l.what);
      if (!messages.includes('git cache is broken; cloning it again')) expect(refetched).toEqual(expect.arrayContaining([repo.shas[0], repo.shas[1]]));
      return;
    }
    // A deleted cache is simply created again; a damaged one is noticed, dropped and cloned again.
    expect(messages).toContain(name === 'deleted' ? 'git cache created' : 'git cache is broken; cloning it again');
  });

  it('is what createSource gives for a git service', async () => {
    const repo = await createRepo(g.root, 'src-factory', [{ files: { 'kubernetes/a.yaml': 'a\n' } }]);
    const source = createSource({ cacheDir: join(work, 'factory'), timeoutMs: 20_000, logger });
    const svc = gitService(`${g.baseUrl}${repo.urlPath}`, { credentials: groundLogin(g) });

    const sha = await source.resolve(svc, 'main');

    expect(text(await source.filesAt(svc, sha))).toEqual({ 'kubernetes/a.yaml': 'a\n' });
    expect(existsSync(join(work, 'factory', 'git'))).toBe(true);
  });
});

/** Every file of the cache as text, to look for leaked secrets. */
function cacheContents(cacheDir: string): string {
  const out: string[] = [];
  const walk = (dir: string): void => {
    for (const entry of readdirSync(dir, { withFileTypes: true })) {
      const p = join(dir, entry.name);
      if (entry.isDirectory()) walk(p);
      else if (entry.isFile()) out.push(readFileSync(p).toString('latin1'));
    }
  };
  walk(cacheDir);
  return out.join('\n');
}
