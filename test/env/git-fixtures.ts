import { execFile, spawn } from 'node:child_process';
import { createCipheriv, createHash } from 'node:crypto';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/**
 * Builds bare repositories for the git server with plumbing commands (no work tree, so large blobs are written
 * once and symlinks or submodule entries can be made on any file system). Every git call uses argument arrays.
 */

/** A file's new content; `null` deletes it. */
export type FixtureFile =
  | string
  | Buffer
  | null
  | { symlink: string }
  /** A submodule entry (mode 160000) pointing at a commit of another repository. */
  | { gitlink: string }
  /** A file already on disk (for large blobs: git streams it into a pack). */
  | { fromFile: string; executable?: boolean };

export interface FixtureCommit {
  files: Record<string, FixtureFile>;
  message?: string;
  author?: { name: string; email: string };
  /** ISO date or git date; default a fixed date plus the commit's index, so SHAs are stable. */
  date?: string;
}

export interface FixtureRepo {
  /** NAME.git: the path below the git server's base URL. */
  urlPath: string;
  /** Absolute path of the bare repository. */
  path: string;
  /** The SHAs of the given commits, in order. */
  shas: string[];
}

const DEFAULT_AUTHOR = { name: 'Fixture Author', email: 'fixture@example.test' };

/** Environment for fixture git calls: no user or system config, fixed committer. */
function gitEnv(extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  return {
    PATH: process.env['PATH'],
    HOME: tmpdir(),
    GIT_CONFIG_NOSYSTEM: '1',
    GIT_CONFIG_GLOBAL: '/dev/null',
    GIT_COMMITTER_NAME: DEFAULT_AUTHOR.name,
    GIT_COMMITTER_EMAIL: DEFAULT_AUTHOR.email,
    ...extra,
  };
}

/** Runs git with an argument array; rejects with its stderr on failure. */
export function git(
  args: readonly string[],
  options: { cwd?: string; env?: NodeJS.ProcessEnv; input?: string | Buffer } = {},
): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = execFile(
      'git',
      [...args],
      { cwd: options.cwd, env: options.env ?? gitEnv(), maxBuffer: 64 * 1024 * 1024, encoding: 'utf8' },
      (err, stdout, stderr) => {
        if (err) reject(new Error(`git ${args.join(' ')} failed: ${stderr.trim() || err.message}`, { cause: err }));
        else resolve(stdout);
      },
    );
    if (options.input !== undefined) child.stdin?.end(options.input);
  });
}

/** The bare repository `root/NAME.git`. */
export function repoPath(root: string, name: string): string {
  return join(root, `${name}.git`);
}

/**
 * Creates the bare repository `root/NAME.git` with `commits` on `branch` (each on top of the previous one).
 * Served repositories allow partial clone and fetch by SHA.
 */
export async function createRepo(
  root: string,
  name: string,
  commits: readonly FixtureCommit[],
  options: { branch?: string; compression?: number } = {},
): Promise<FixtureRepo> {
  const branch = options.branch ?? 'main';
  const path = repoPath(root, name);
  if (existsSync(path)) throw new Error(`fixture repository ${path} exists already`);
  await git(['init', '--quiet', '--bare', `--initial-branch=${branch}`, '--', path]);
  const config: Array<[string, string]> = [
    ['uploadpack.allowFilter', 'true'],
    ['uploadpack.allowAnySHA1InWant', 'true'],
    ['http.receivepack', 'true'],
    // Large fixture blobs go straight into a pack and are never delta-compressed.
    ['core.bigFileThreshold', '1m'],
  ];
  if (options.compression !== undefined) {
    config.push(['core.compression', String(options.compression)], ['pack.compression', String(options.compression)]);
  }
  for (const [key, value] of config) await git(['config', key, value], { cwd: path });
  const shas: string[] = [];
  for (const [i, commit] of commits.entries()) {
    shas.push(await commitTo(path, branch, commit, i));
  }
  return { urlPath: `${name}.git`, path, shas };
}

/** Adds one commit on `branch` (created from `from`, default the branch's tip, when missing); returns its SHA. */
export async function addCommit(
  root: string,
  name: string,
  files: Record<string, FixtureFile>,
  options: { branch?: string; from?: string; message?: string; author?: { name: string; email: string }; date?: string } = {},
): Promise<string> {
  const path = repoPath(root, name);
  const count = Number((await git(['rev-list', '--all', '--count'], { cwd: path })).trim());
  return commitTo(
    path,
    options.branch ?? 'main',
    { files, message: options.message, author: options.author, date: options.date },
    count,
    options.from,
  );
}

async function commitTo(path: string, branch: string, commit: FixtureCommit, index: number, from?: string): Promise<string> {
  const ref = `refs/heads/${branch}`;
  const tip = (await git(['rev-parse', '--verify', '--quiet', `${ref}^{commit}`], { cwd: path }).catch(() => '')).trim();
  const parent = from ?? (tip === '' ? undefined : tip);
  const tmp = mkdtempSync(join(tmpdir(), 'git-fixture-'));
  const env = gitEnv({ GIT_INDEX_FILE: join(tmp, 'index') });
  try {
    if (parent !== undefined) await git(['read-tree', parent], { cwd: path, env });
    else await git(['read-tree', '--empty'], { cwd: path, env });
    for (const [file, content] of Object.entries(commit.files)) {
      if (content === null) {
        // Mode 0 removes the path; --index-info needs no work tree (the repository is bare).
        await git(['update-index', '--index-info'], { cwd: path, env, input: `0 ${'0'.repeat(40)}\t${file}\n` });
        continue;
      }
      let mode = '100644';
      let oid: string;
      if (typeof content === 'string' || Buffer.isBuffer(content)) {
        oid = (await git(['hash-object', '-w', '--stdin'], { cwd: path, env, input: content })).trim();
      } else if ('symlink' in content) {
        mode = '120000';
        oid = (await git(['hash-object', '-w', '--stdin'], { cwd: path, env, input: content.symlink })).trim();
      } else if ('gitlink' in content) {
        mode = '160000';
        oid = content.gitlink;
      } else {
        if (content.executable === true) mode = '100755';
        oid = (await git(['hash-object', '-w', '--no-filters', '--', content.fromFile], { cwd: path, env })).trim();
      }
      await git(['update-index', '--add', '--cacheinfo', mode, oid, file], { cwd: path, env });
    }
    const tree = (await git(['write-tree'], { cwd: path, env })).trim();
    const author = commit.author ?? DEFAULT_AUTHOR;
    const date = commit.date ?? new Date(Date.UTC(2024, 0, 1) + index * 60_000).toISOString();
    const commitEnv = gitEnv({
      GIT_AUTHOR_NAME: author.name,
      GIT_AUTHOR_EMAIL: author.email,
      GIT_AUTHOR_DATE: date,
      GIT_COMMITTER_DATE: date,
    });
    const args = ['commit-tree', tree, '-m', commit.message ?? `commit ${index + 1}`];
    if (parent !== undefined) args.push('-p', parent);
    const sha = (await git(args, { cwd: path, env: commitEnv })).trim();
    await git(['update-ref', ref, sha], { cwd: path });
    return sha;
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
}

/**
 * `size` bytes of deterministic, incompressible content (AES-CTR keystream of `seed`): the same seed always gives
 * the same blob, so large-history fixtures are reproducible without storing them.
 */
export function bigBlob(size: number, seed = 'blob'): Buffer {
  const key = createHash('sha256').update(seed).digest();
  const cipher = createCipheriv('aes-256-ctr', key, Buffer.alloc(16));
  const out = cipher.update(Buffer.alloc(size));
  cipher.final();
  return out;
}

/** Writes a `bigBlob` to a file in chunks (for blobs too large to hold twice in memory); returns the path. */
export function writeBigBlob(file: string, size: number, seed = 'blob'): string {
  const key = createHash('sha256').update(seed).digest();
  const cipher = createCipheriv('aes-256-ctr', key, Buffer.alloc(16));
  const chunk = Buffer.alloc(8 * 1024 * 1024);
  writeFileSync(file, '');
  for (let written = 0; written < size; written += chunk.length) {
    const n = Math.min(chunk.length, size - written);
    writeFileSync(file, cipher.update(chunk.subarray(0, n)), { flag: 'a' });
  }
  cipher.final();
  return file;
}

/** Packs a fixture repository (so a server can stream the pack as it is instead of compressing loose objects). */
export async function repack(path: string): Promise<void> {
  await new Promise<void>((resolve, reject) => {
    const child = spawn('git', ['repack', '-a', '-d', '-q', '--window=0'], { cwd: path, env: gitEnv(), stdio: 'ignore' });
    child.on('error', reject);
    child.on('close', (code) => (code === 0 ? resolve() : reject(new Error(`git repack exited ${code}`))));
  });
}

/**
 * A commit (empty tree, parent `from`) whose SHA starts with `prefix`, found by varying its message, then put on
 * `branch`: two of these with one prefix make an ambiguous short SHA. Cost grows 16× per hex digit; keep it short.
 */
export async function commitWithPrefix(
  root: string,
  name: string,
  prefix: string,
  branch: string,
  options: { avoid?: readonly string[] } = {},
): Promise<string> {
  const path = repoPath(root, name);
  const emptyTree = (await git(['hash-object', '-t', 'tree', '-w', '--stdin'], { cwd: path, input: '' })).trim();
  const who = `${DEFAULT_AUTHOR.name} <${DEFAULT_AUTHOR.email}> 1704067200 +0000`;
  for (let n = 0; n < 10_000_000; n++) {
    const body = `tree ${emptyTree}\nauthor ${who}\ncommitter ${who}\n\nprefix ${prefix} try ${n}\n`;
    const sha = createHash('sha1').update(`commit ${Buffer.byteLength(body)}\0${body}`).digest('hex');
    if (!sha.startsWith(prefix) || (options.avoid ?? []).some((a) => sha.startsWith(a))) continue;
    const written = (await git(['hash-object', '-t', 'commit', '-w', '--stdin'], { cwd: path, input: body })).trim();
    if (written !== sha) throw new Error(`crafted commit hashed to ${written}, expected ${sha}`);
    await git(['update-ref', `refs/heads/${branch}`, sha], { cwd: path });
    return sha;
  }
  throw new Error(`no commit with prefix ${prefix} found`);
}
