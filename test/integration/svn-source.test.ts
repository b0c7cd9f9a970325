import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RepositoryCredentials, ServiceConfig } from '../../src/config/load.js';
import { Secret } from '../../src/config/secret.js';
import { InputError, ManifestError, NotFoundError, UpstreamError } from '../../src/errors.js';
import { createSource } from '../../src/source/index.js';
import { SvnSource } from '../../src/source/svn.js';
import { ground, type SvnGround } from '../env/ground.js';
import { addSvnRevision, createSvnRepo } from '../env/svn-fixtures.js';

const work = mkdtempSync(join(tmpdir(), 'svn-source-test-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));

const logs: string[] = [];
const logger = pino({ level: 'debug' }, { write: (line: string) => void logs.push(line) });

function service(url: string, credentials: RepositoryCredentials | undefined, manifestsDir = 'kubernetes'): ServiceConfig {
  return {
    name: 'legacy',
    repository: { url, type: 'svn', credentials, defaultBranch: 'main' },
    manifestsDir,
    namespace: 'default',
    allowNamespaces: [],
    allowClusterScoped: false,
  };
}

function text(files: ReadonlyArray<{ path: string; content: Buffer }>): Record<string, string> {
  return Object.fromEntries(files.map((f) => [f.path, f.content.toString('utf8')]));
}

async function rejection(promise: Promise<unknown>): Promise<Error> {
  try {
    await promise;
  } catch (err) {
    return err as Error;
  }
  throw new Error('expected a rejection');
}

describe('SvnSource against svnserve', () => {
  let s: SvnGround;
  let login: RepositoryCredentials;
  const source = new SvnSource({ cacheDir: join(work, 'cache'), timeoutMs: 20_000, logger });
  beforeAll(() => {
    s = ground('svn');
    login = { username: s.username, password: new Secret(s.password) };
  });

  it('reads the manifests at a revision, whatever came later', async () => {
    const repo = await createSvnRepo(s.root, 'svn-files', [
      { files: { 'trunk/kubernetes/app.yaml': 'v: 1\n', 'trunk/kubernetes/sub dir/x&y.yaml': 'x: 1\n', 'trunk/src/a.c': 'a\n' } },
      { files: { 'trunk/kubernetes/app.yaml': 'v: 2\n', 'trunk/kubernetes/sub dir/x&y.yaml': null } },
    ]);
    const svc = service(`${s.baseUrl}${repo.urlPath}/trunk`, login);

    const one = await source.filesAt(svc, String(repo.revisions[0]));
    const two = await source.filesAt(svc, `r${repo.revisions[1]}`);

    expect(text(one)).toEqual({ 'kubernetes/app.yaml': 'v: 1\n', 'kubernetes/sub dir/x&y.yaml': 'x: 1\n' });
    expect(text(two)).toEqual({ 'kubernetes/app.yaml': 'v: 2\n' });
  });

  it('resolves HEAD to the last revision that changed the service, and checks a given revision exists', async () => {
    const repo = await createSvnRepo(s.root, 'svn-resolve', [
      { files: { 'app/kubernetes/a.yaml': 'a\n' } },
      { files: { 'app/kubernetes/a.yaml': 'b\n' } },
      { files: { 'other/readme.txt': 'not the app\n' } },
    ]);
    const svc = service(`${s.baseUrl}${repo.urlPath}/app`, login);

    const head = await source.resolve(svc, 'HEAD');
    const given = await source.resolve(svc, 'r1');
    const unknown = await rejection(source.resolve(svc, '99'));
    const malformed = await rejection(source.resolve(svc, 'main'));
    const option = await rejection(source.filesAt(svc, '--revision=1'));

    expect(head).toBe('2');
    expect(given).toBe('1');
    expect(unknown).toBeInstanceOf(NotFoundError);
    expect(unknown.message).toBe(`revision 99 not found in ${s.baseUrl}svn-resolve/app`);
    expect(malformed).toBeInstanceOf(InputError);
    expect(option).toBeInstanceOf(InputError);
  });

  it("resolves the branch the repository URL names (the service's default branch, trunk) to its last revision", async () => {
    const repo = await createSvnRepo(s.root, 'svn-trunk', [
      { files: { 'trunk/kubernetes/a.yaml': 'a\n' } },
      { files: { 'trunk/kubernetes/a.yaml': 'b\n' } },
      { files: { 'branches/x/kubernetes/a.yaml': 'x\n' } },
    ]);
    const svc: ServiceConfig = {
      ...service(`${s.baseUrl}${repo.urlPath}/trunk`, login),
      repository: { url: `${s.baseUrl}${repo.urlPath}/trunk`, type: 'svn', credentials: login, defaultBranch: 'trunk' },
    };
    const viaFactory = createSource({ cacheDir: join(work, 'factory-trunk'), timeoutMs: 20_000, logger });

    const trunk = await viaFactory.resolve(svc, svc.repository.defaultBranch);
    const files = await viaFactory.filesAt(svc, trunk);
    const other = await rejection(viaFactory.resolve(svc, 'branches/x'));
    const outside = await rejection(viaFactory.resolve(svc, '../trunk'));

    expect(trunk).toBe('2');
    expect(text(files)).toEqual({ 'kubernetes/a.yaml': 'b\n' });
    expect(other).toBeInstanceOf(InputError);
    expect(other.message).toBe('"branches/x" is not an svn revision number (nor HEAD, nor the branch the repository URL names)');
    expect(outside).toBeInstanceOf(InputError);
  });

  it('computes commit facts of a revision from the log and the diff', async () => {
    const repo = await createSvnRepo(s.root, 'svn-facts', [
      { files: { 'kubernetes/a.yaml': 'one\ntwo\nthree\n' }, author: 'alice' },
      { files: { 'kubernetes/a.yaml': 'one\n2\nthree\nfour\n', 'kubernetes/b.yaml': '+++ not a header\n' }, author: 'bob' },
    ]);
    const svc = service(`${s.baseUrl}${repo.urlPath}`, login);

    const first = await source.commitFacts(svc, '1');
    const second = await source.commitFacts(svc, '2');

    expect(first).toMatchObject({ commit: '1', author: 'alice', insertions: 3, deletions: 0 });
    expect(second).toMatchObject({ commit: '2', author: 'bob', insertions: 3, deletions: 1 });
    expect(Date.parse(second.date)).toBeGreaterThanOrEqual(Date.parse(first.date));
    expect(second.date).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$/);
  });

  it('never follows an svn symbolic link', async () => {
    const repo = await createSvnRepo(s.root, 'svn-link', [{ files: { 'kubernetes/a.yaml': 'a\n', 'secret.txt': 'secret\n' } }]);
    const rev = await addSvnRevision(s.root, 'svn-link', { files: { 'kubernetes/link.yaml': { symlink: '../secret.txt' } } });
    const svc = service(`${s.baseUrl}${repo.urlPath}`, login);

    const plain = await source.filesAt(svc, String(repo.revisions[0]));
    const err = await rejection(source.filesAt(svc, String(rev)));

    expect(text(plain)).toEqual({ 'kubernetes/a.yaml': 'a\n' });
    expect(err).toBeInstanceOf(ManifestError);
    expect(err.message).toBe('kubernetes/link.yaml is a symbolic link; manifests must be regular files');
  });

  it('answers NotFoundError for a manifests directory that does not exist at the revision', async () => {
    const repo = await createSvnRepo(s.root, 'svn-nodir', [{ files: { 'deploy/a.yaml': 'a\n' } }]);
    const svc = service(`${s.baseUrl}${repo.urlPath}`, login);

    const err = await rejection(source.filesAt(svc, '1'));

    expect(err).toBeInstanceOf(NotFoundError);
  });

  it('reports wrong or missing credentials without the password', async () => {
    await createSvnRepo(s.root, 'svn-auth', [{ files: { 'kubernetes/a.yaml': 'a\n' } }]);
    const url = `${s.baseUrl}svn-auth`;
    const wrongPassword = 'svn-wrong-password-0815';

    const wrong = await rejection(
      source.resolve(service(url, { username: s.username, password: new Secret(wrongPassword) }), 'HEAD'),
    );
    const none = await rejection(source.resolve(service(url, undefined), 'HEAD'));

    expect(wrong).toBeInstanceOf(UpstreamError);
    expect(wrong.message).toBe(`${url} refused the credentials of service legacy`);
    expect(none).toBeInstanceOf(UpstreamError);
    expect(logs.join('\n') + JSON.stringify(wrong) + String(wrong.stack)).not.toContain(wrongPassword);
  });

  it('answers UpstreamError when the server is unreachable', async () => {
    const svc = service('svn://127.0.0.1:1/none', login);

    const err = await rejection(source.resolve(svc, 'HEAD'));

    expect(err).toBeInstanceOf(UpstreamError);
    expect((err as UpstreamError).status).toBe(503);
  });

  it('answers 503 when svn cannot be started', async () => {
    const svc = service(`${s.baseUrl}svn-files/trunk`, login);
    const broken = new SvnSource({ cacheDir: join(work, 'cache'), timeoutMs: 20_000, logger, svn: join(work, 'no-such-svn') });

    const err = await rejection(broken.resolve(svc, 'HEAD'));

    expect(err).toBeInstanceOf(UpstreamError);
    expect((err as UpstreamError).status).toBe(503);
    expect(err.message).toBe('svn could not run on the deployer (ENOENT); try again');
  });

  it('is what createSource gives for an svn service', async () => {
    const repo = await createSvnRepo(s.root, 'svn-factory', [{ files: { 'kubernetes/a.yaml': 'a\n' } }]);
    const svc = service(`${s.baseUrl}${repo.urlPath}`, login);
    const viaFactory = createSource({ cacheDir: join(work, 'factory'), timeoutMs: 20_000, logger });

    const rev = await viaFactory.resolve(svc, 'HEAD');

    expect(text(await viaFactory.filesAt(svc, rev))).toEqual({ 'kubernetes/a.yaml': 'a\n' });
  });
});
