import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { createRepo, git } from '../env/git-fixtures.js';
import { gitStats } from '../env/git-server.js';
import { ground } from '../env/ground.js';
import { createSvnRepo, svn } from '../env/svn-fixtures.js';

const work = mkdtempSync(join(tmpdir(), 'ground-git-test-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));

/** Runs a client command and returns its exit code and output, never throwing. */
function attempt(command: string, args: string[], input?: string): Promise<{ code: number; out: string }> {
  return new Promise((resolve) => {
    const child = execFile(
      command,
      args,
      { env: { PATH: process.env['PATH'], HOME: work, GIT_TERMINAL_PROMPT: '0', GIT_CONFIG_NOSYSTEM: '1' } },
      (err, stdout, stderr) => resolve({ code: err ? Number(err.code ?? 1) : 0, out: stdout + stderr }),
    );
    if (input !== undefined) child.stdin?.end(input);
  });
}

describe('git server of the test ground', () => {
  it('serves a partial clone with credentials, and a file at a commit reads without a checkout', async () => {
    const g = ground('git');
    const repo = await createRepo(g.root, 'ground-partial', [
      { files: { 'kubernetes/app.yaml': 'kind: Deployment\n', 'README.md': 'one\n' } },
      { files: { 'kubernetes/app.yaml': 'kind: StatefulSet\n' } },
    ]);
    const auth = `Authorization: Basic ${Buffer.from(`${g.username}:${g.password}`).toString('base64')}`;
    const target = join(work, 'partial.git');
    const before = await gitStats(g.baseUrl);

    await git(['-c', `http.extraHeader=${auth}`, 'clone', '--quiet', '--bare', '--filter=blob:none', '--', `${g.baseUrl}${repo.urlPath}`, target]);
    const first = await git(['-c', `http.extraHeader=${auth}`, 'cat-file', 'blob', `${repo.shas[0]}:kubernetes/app.yaml`], { cwd: target });
    const second = await git(['cat-file', 'blob', `${repo.shas[1]}:kubernetes/app.yaml`], {
      cwd: target,
      env: { PATH: process.env['PATH'], HOME: work, GIT_CONFIG_PARAMETERS: `'http.extraheader'='${auth}'` },
    });

    expect(first).toBe('kind: Deployment\n');
    expect(second).toBe('kind: StatefulSet\n');
    expect((await git(['config', 'remote.origin.partialclonefilter'], { cwd: target })).trim()).toBe('blob:none');
    const after = await gitStats(g.baseUrl);
    const fetches = after.log.slice(before.log.length).filter((r) => r.repo === 'ground-partial.git' && r.command === 'fetch');
    // The clone, then one lazy fetch per blob read.
    expect(fetches.map((f) => f.filter)).toEqual(['blob:none', 'blob:none', 'blob:none']);
    expect(fetches[0]?.haves).toBe(0);
    expect(after.repos['ground-partial.git']?.fetches).toBe(3);
  });

  it('refuses a clone without credentials or with a wrong password', async () => {
    const g = ground('git');
    await createRepo(g.root, 'ground-private', [{ files: { 'a.txt': 'a\n' } }]);
    const url = `${g.baseUrl}ground-private.git`;
    const before = (await gitStats(g.baseUrl)).unauthorized;

    const anonymous = await attempt('git', ['clone', '--bare', '--', url, join(work, 'anon.git')]);
    const wrong = await attempt('git', [
      '-c',
      `http.extraHeader=Authorization: Basic ${Buffer.from(`${g.username}:nope`).toString('base64')}`,
      'clone',
      '--bare',
      '--',
      url,
      join(work, 'wrong.git'),
    ]);

    expect(anonymous.code).not.toBe(0);
    expect(anonymous.out).toMatch(/terminal prompts disabled|Authentication failed|could not read Username/);
    expect(wrong.code).not.toBe(0);
    expect(wrong.out).toMatch(/Authentication failed|terminal prompts disabled|could not read Username/);
    expect((await gitStats(g.baseUrl)).unauthorized).toBeGreaterThan(before);
  });
});

describe('svn server of the test ground', () => {
  it('serves a file at a revision to the configured user only', async () => {
    const s = ground('svn');
    const repo = await createSvnRepo(s.root, 'ground-svn', [
      { files: { 'kubernetes/app.yaml': 'revision: one\n' } },
      { files: { 'kubernetes/app.yaml': 'revision: two\n', 'kubernetes/extra.yaml': 'x: 1\n' } },
    ]);
    const url = `${s.baseUrl}${repo.urlPath}/kubernetes/app.yaml`;
    const login = ['--username', s.username, '--password-from-stdin', '--no-auth-cache'];

    const atOne = await attempt('svn', ['cat', '--non-interactive', ...login, `${url}@${repo.revisions[0]}`], s.password);
    const atTwo = await attempt('svn', ['cat', '--non-interactive', ...login, `${url}@${repo.revisions[1]}`], s.password);
    const anonymous = await attempt('svn', ['cat', '--non-interactive', '--no-auth-cache', `${url}@${repo.revisions[0]}`]);
    const wrong = await attempt(
      'svn',
      ['cat', '--non-interactive', '--no-auth-cache', '--username', s.username, '--password-from-stdin', `${url}@1`],
      'wrong',
    );

    expect(repo.revisions).toEqual([1, 2]);
    expect(atOne).toEqual({ code: 0, out: 'revision: one\n' });
    expect(atTwo).toEqual({ code: 0, out: 'revision: two\n' });
    expect(anonymous.code).not.toBe(0);
    expect(anonymous.out).toMatch(/E170001|Authentication|authorization failed/i);
    expect(wrong.code).not.toBe(0);
    expect(wrong.out).toMatch(/E170001|Authentication|authorization failed/i);
  });

  it('checks out a revision', async () => {
    const s = ground('svn');
    const repo = await createSvnRepo(s.root, 'ground-svn-co', [
      { files: { 'a.txt': 'a1\n' } },
      { files: { 'a.txt': null, 'b.txt': 'b2\n' } },
    ]);
    const wc = join(work, 'svn-wc');
    const checkout = await attempt(
      'svn',
      ['checkout', '--non-interactive', '--no-auth-cache', '--username', s.username, '--password-from-stdin', '-r', '1', `${s.baseUrl}${repo.urlPath}`, wc],
      s.password,
    );
    expect(checkout.code).toBe(0);
    expect(readdirSync(wc).filter((f) => f !== '.svn')).toEqual(['a.txt']);
    expect(readFileSync(join(wc, 'a.txt'), 'utf8')).toBe('a1\n');
    expect(await svn(['info', '--show-item', 'revision', '--', wc])).toBe('1\n');
  });
});
