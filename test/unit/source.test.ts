import { existsSync, readFileSync, statSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { Secret } from '../../src/config/secret.js';
import { InputError } from '../../src/errors.js';
import { callAuth, parseRemoteUrl } from '../../src/source/git-auth.js';
import { classifyFetchError, isoDate, parseRawDiff } from '../../src/source/git.js';
import { KeyedMutex } from '../../src/source/keyed-mutex.js';
import { redact } from '../../src/source/redact.js';
import { cleanDir, isBranchName, parseFullSha, parseGitRef } from '../../src/source/refs.js';
import { parseRevision } from '../../src/source/svn.js';
import { countUnifiedDiff } from '../../src/source/unified-diff.js';

describe('parseGitRef', () => {
  it.each([
    ['0123456789ABCDEF0123456789abcdef01234567', { kind: 'commit', sha: '0123456789abcdef0123456789abcdef01234567' }],
    ['abcd', { kind: 'short', prefix: 'abcd' }],
    ['abc1234', { kind: 'short', prefix: 'abc1234' }],
    ['abc', { kind: 'branch', name: 'abc' }],
    ['main', { kind: 'branch', name: 'main' }],
    ['feature/x-1.2', { kind: 'branch', name: 'feature/x-1.2' }],
    ['release_2024+hotfix', { kind: 'branch', name: 'release_2024+hotfix' }],
  ])('reads %s', (ref, expected) => {
    expect(parseGitRef(ref)).toEqual(expected);
  });

  it.each([
    '',
    '-x',
    '--upload-pack=evil',
    'main~1',
    'main^',
    'a..b',
    'main@{1}',
    '@',
    'a b',
    'a:b',
    'a/../b',
    'feature/',
    '.hidden',
    'a/.b',
    'a//b',
    'x.lock',
    'HEAD',
    'a/-b',
    'naïve',
    'x'.repeat(201),
  ])('refuses %j', (ref) => {
    expect(() => parseGitRef(ref)).toThrow(InputError);
  });

  it('echoes refused input bounded and without control characters', () => {
    expect(() => parseGitRef('bad\nref')).toThrow('"bad?ref" is neither a commit SHA nor a valid branch name');
  });
});

describe('parseFullSha, cleanDir, isBranchName', () => {
  it('accepts only full SHAs for reads', () => {
    expect(parseFullSha('A'.repeat(40))).toBe('a'.repeat(40));
    expect(() => parseFullSha('abc1234')).toThrow(InputError);
    expect(() => parseFullSha(`-${'a'.repeat(39)}`)).toThrow(InputError);
  });

  it.each([
    ['kubernetes', 'kubernetes'],
    ['./deploy//k8s/', 'deploy/k8s'],
    ['.', ''],
  ])('cleans %j to %j', (dir, expected) => {
    expect(cleanDir(dir)).toBe(expected);
  });

  it('refuses a directory that leaves the repository', () => {
    expect(() => cleanDir('a/../../etc')).toThrow(InputError);
  });

  it('knows branch names', () => {
    expect(isBranchName('main')).toBe(true);
    expect(isBranchName('-main')).toBe(false);
  });
});

describe('parseRevision', () => {
  it.each([
    ['1', '1'],
    ['r42', '42'],
    ['R007', '7'],
  ])('reads %s', (ref, expected) => {
    expect(parseRevision(ref)).toBe(expected);
  });

  it.each(['', 'HEAD', '-r1', '1:2', '1 ', 'r', '12345678901'])('refuses %j', (ref) => {
    expect(() => parseRevision(ref)).toThrow(InputError);
  });
});

describe('countUnifiedDiff', () => {
  it('counts lines by the hunk headers, not by what lines look like', () => {
    const diff = [
      'Index: a.yaml',
      '===================================================================',
      '--- a.yaml\t(revision 1)',
      '+++ a.yaml\t(revision 2)',
      '@@ -1,3 +1,4 @@',
      ' one',
      '-two',
      '+2',
      ' three',
      '+++ a line that looks like a header',
      'Index: b.bin',
      '===================================================================',
      'Cannot display: file marked as a binary type.',
      'Index: c.txt',
      '--- c.txt\t(nonexistent)',
      '+++ c.txt\t(revision 2)',
      '@@ -0,0 +1 @@',
      '+x',
      '\\ No newline at end of file',
      '',
      'Property changes on: c.txt',
      '___________________________________________________________________',
      'Added: svn:eol-style',
      '## -0,0 +1 ##',
      '+native',
    ].join('\n');

    expect(countUnifiedDiff(diff)).toEqual({ insertions: 3, deletions: 1 });
  });

  it('counts nothing in an empty diff', () => {
    expect(countUnifiedDiff('')).toEqual({ insertions: 0, deletions: 0 });
  });
});

describe('git output parsing', () => {
  it('lists changed paths and both sides of blobs from diff-tree -z, skipping gitlinks and absent sides', () => {
    const a = 'a'.repeat(40);
    const b = 'b'.repeat(40);
    const c = 'c'.repeat(40);
    const z = '0'.repeat(40);
    const raw = [
      `:100644 100644 ${a} ${b} M`,
      'kubernetes/x.yaml',
      `:000000 100755 ${z} ${c} A`,
      'bin/run',
      `:160000 160000 ${a} ${c} M`,
      'vendor/sub',
      '',
    ].join('\0');

    expect(parseRawDiff(raw)).toEqual({ paths: ['kubernetes/x.yaml', 'bin/run', 'vendor/sub'], blobs: [a, b, c] });
  });

  it.each([
    [1709287200, '+0000', '2024-03-01T10:00:00+00:00'],
    [1709287200, '+0130', '2024-03-01T11:30:00+01:30'],
    [1709287200, '-0500', '2024-03-01T05:00:00-05:00'],
  ])('formats %i %s as %s', (seconds, zone, expected) => {
    expect(isoDate(seconds, zone)).toBe(expected);
  });

  it.each([
    ["fatal: couldn't find remote ref refs/heads/nope", 'missing'],
    ['fatal: remote error: upload-pack: not our ref 1234', 'missing'],
    ["fatal: could not read Username for 'http://h': terminal prompts disabled", 'auth'],
    ['git@host: Permission denied (publickey).', 'auth'],
    ['Host key verification failed.', 'auth'],
    ["fatal: unable to access 'http://h/r.git/': Failed to connect to h port 1: Connection refused", 'unreachable'],
    ["fatal: repository 'http://h/zz.git/' not found", 'other'],
    ['fatal: not a git repository: /cache/x.git', 'broken'],
    ['fatal: bad config line 2 in file config', 'broken'],
    ["error: cannot lock ref 'refs/remotes/origin/a/b': 'refs/remotes/origin/a' exists; cannot create", 'broken'],
  ])('classifies %j as %s', (stderr, kind) => {
    expect(classifyFetchError(stderr)).toBe(kind);
  });
});

describe('redact', () => {
  it('removes secrets, their encodings, authorization headers and URL passwords', () => {
    const secret = 'p@ss w/rd';
    const text = [
      `password ${secret}`,
      `encoded ${encodeURIComponent(secret)}`,
      `base64 ${Buffer.from(secret).toString('base64')}`,
      'Authorization: Basic dXNlcjpvdGhlcg==',
      'url https://user:hunter2@example.test/repo.git',
    ].join('\n');

    const out = redact(text, [secret]);

    expect(out).toBe(
      [
        'password [redacted]',
        'encoded [redacted]',
        'base64 [redacted]',
        'Authorization: Basic [redacted]',
        'url https://user:[redacted]@example.test/repo.git',
      ].join('\n'),
    );
  });
});

describe('parseRemoteUrl and callAuth', () => {
  it('takes credentials out of an https URL', () => {
    expect(parseRemoteUrl('https://bob:s%40cret@git.example.test:8443/org/repo.git')).toEqual({
      url: 'https://git.example.test:8443/org/repo.git',
      transport: 'http',
      origin: 'https://git.example.test:8443',
      embeddedUsername: 'bob',
      embeddedPassword: 's@cret',
    });
    expect(parseRemoteUrl('git@github.com:org/repo.git').transport).toBe('ssh');
    expect(parseRemoteUrl('ssh://git@host/repo.git').transport).toBe('ssh');
  });

  it('gives https credentials as a header scoped to the origin, in the environment', async () => {
    const auth = await callAuth(parseRemoteUrl('https://git.example.test/r.git'), {
      username: 'bob',
      password: new Secret('pw'),
    });

    expect(auth.env).toEqual({
      GIT_CONFIG_COUNT: '1',
      GIT_CONFIG_KEY_0: 'http.https://git.example.test/.extraHeader',
      GIT_CONFIG_VALUE_0: `Authorization: Basic ${Buffer.from('bob:pw').toString('base64')}`,
    });
    expect(auth.secrets).toContain('pw');
  });

  it('sends a token with a generic username when none is configured', async () => {
    const auth = await callAuth(parseRemoteUrl('https://git.example.test/r.git'), { token: new Secret('tok') });

    expect(auth.env['GIT_CONFIG_VALUE_0']).toBe(`Authorization: Basic ${Buffer.from('x-access-token:tok').toString('base64')}`);
  });

  it('writes an ssh key and known_hosts to private files for the call and removes them after', async () => {
    const auth = await callAuth(parseRemoteUrl('git@git.example.test:org/r.git'), {
      sshKey: new Secret('-----BEGIN KEY-----\nabc\n-----END KEY-----'),
      knownHosts: new Secret('git.example.test ssh-ed25519 AAAA'),
    });
    const command = auth.env['GIT_SSH_COMMAND'] ?? '';
    const keyFile = /-i '([^']+)'/.exec(command)?.[1] ?? '';
    const knownHosts = /UserKnownHostsFile='([^']+)'/.exec(command)?.[1] ?? '';

    expect(command).toMatch(/^ssh -o BatchMode=yes -o StrictHostKeyChecking=yes -i '.+' -o IdentitiesOnly=yes/);
    expect(readFileSync(keyFile, 'utf8')).toBe('-----BEGIN KEY-----\nabc\n-----END KEY-----\n');
    expect(statSync(keyFile).mode & 0o777).toBe(0o600);
    expect(readFileSync(knownHosts, 'utf8')).toBe('git.example.test ssh-ed25519 AAAA\n');
    await auth.dispose();
    expect(existsSync(keyFile)).toBe(false);
  });

  it('needs nothing without credentials', async () => {
    const auth = await callAuth(parseRemoteUrl('https://git.example.test/r.git'), undefined);
    expect(auth.env).toEqual({});
  });
});

describe('KeyedMutex', () => {
  it('runs tasks of one key one after the other, other keys beside them, and survives failures', async () => {
    const mutex = new KeyedMutex();
    const events: string[] = [];
    let release: () => void = () => undefined;
    const gate = new Promise<void>((resolve) => (release = resolve));

    const first = mutex.run('a', async () => {
      events.push('a1 start');
      await gate;
      events.push('a1 end');
      throw new Error('a1 failed');
    });
    const second = mutex.run('a', () => {
      events.push('a2');
      return Promise.resolve(2);
    });
    const other = mutex.run('b', () => {
      events.push('b');
      return Promise.resolve('b');
    });
    await other;
    release();

    await expect(first).rejects.toThrow('a1 failed');
    await expect(second).resolves.toBe(2);
    expect(events).toEqual(['a1 start', 'b', 'a1 end', 'a2']);
  });
});
