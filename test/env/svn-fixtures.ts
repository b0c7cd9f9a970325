import { execFile } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { pathToFileURL } from 'node:url';

/** Builds Subversion repositories for svnserve: `svnadmin create`, then commits over file:// from a working copy. */

export interface SvnFixtureRevision {
  /** Repository path → new content; `null` deletes the file; `{ symlink }` makes a link (svn:special). */
  files: Record<string, string | Buffer | null | { symlink: string }>;
  message?: string;
  author?: string;
}

export interface SvnFixtureRepo {
  /** The name below the svn server's base URL. */
  urlPath: string;
  path: string;
  /** The revision number of each given revision, in order. */
  revisions: number[];
}

function svnEnv(): NodeJS.ProcessEnv {
  return { PATH: process.env['PATH'], HOME: tmpdir(), LC_ALL: 'C' };
}

function run(command: string, args: readonly string[], cwd?: string): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(command, [...args], { cwd, env: svnEnv(), maxBuffer: 64 * 1024 * 1024 }, (err, stdout, stderr) => {
      if (err) reject(new Error(`${command} ${args.join(' ')} failed: ${stderr.trim() || err.message}`, { cause: err }));
      else resolve(stdout);
    });
  });
}

/** Runs svn non-interactively with a throwaway configuration directory. */
export function svn(args: readonly string[], cwd?: string): Promise<string> {
  return run('svn', ['--non-interactive', '--config-dir', join(tmpdir(), 'svn-fixture-config'), ...args], cwd);
}

/** Creates the repository `root/NAME` with `revisions` committed one after the other. */
export async function createSvnRepo(
  root: string,
  name: string,
  revisions: readonly SvnFixtureRevision[],
): Promise<SvnFixtureRepo> {
  const path = join(root, name);
  if (existsSync(path)) throw new Error(`fixture repository ${path} exists already`);
  await run('svnadmin', ['create', '--', path]);
  const numbers: number[] = [];
  for (const revision of revisions) numbers.push(await addSvnRevision(root, name, revision));
  return { urlPath: name, path, revisions: numbers };
}

/** Commits one revision to `root/NAME`; returns its number. */
export async function addSvnRevision(root: string, name: string, revision: SvnFixtureRevision): Promise<number> {
  const url = pathToFileURL(join(root, name)).toString();
  const wc = mkdtempSync(join(tmpdir(), 'svn-fixture-wc-'));
  try {
    await svn(['checkout', '--quiet', '--', url, wc]);
    const added: string[] = [];
    for (const [file, content] of Object.entries(revision.files)) {
      const target = join(wc, file);
      if (content === null) {
        await svn(['delete', '--quiet', '--', target]);
        continue;
      }
      mkdirSync(dirname(target), { recursive: true });
      if (typeof content === 'string' || Buffer.isBuffer(content)) writeFileSync(target, content);
      else symlinkSync(content.symlink, target);
      added.push(target);
    }
    if (added.length > 0) await svn(['add', '--quiet', '--force', '--parents', '--', ...added]);
    const out = await svn(
      ['commit', '--username', revision.author ?? 'fixture-author', '-m', revision.message ?? 'fixture revision', '--', wc],
    );
    const match = /Committed revision (\d+)\./.exec(out);
    if (match?.[1] === undefined) throw new Error(`svn commit printed no revision: ${out}`);
    return Number(match[1]);
  } finally {
    rmSync(wc, { recursive: true, force: true });
  }
}
