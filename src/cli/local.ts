import { execFile, execFileSync } from 'node:child_process';
import { userInfo } from 'node:os';
import { basename } from 'node:path';
import { UsageError } from './errors.js';

/** What depctl reads of the machine it runs on: the current directory's name and git checkout. */

export function defaultService(cwd: string): string {
  return basename(cwd);
}

/** `git rev-parse HEAD` in `cwd` (argument array, no shell). */
export function headCommit(cwd: string): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(
      'git',
      ['rev-parse', '--verify', '--quiet', 'HEAD^{commit}'],
      { cwd, timeout: 10_000, encoding: 'utf8', env: { ...process.env, GIT_TERMINAL_PROMPT: '0' } },
      (err, stdout, stderr) => {
        const sha = stdout.trim();
        if (err === null && /^[0-9a-f]{40,64}$/.test(sha)) {
          resolve(sha);
          return;
        }
        const why =
          (err as NodeJS.ErrnoException | null)?.code === 'ENOENT'
            ? 'git is not installed'
            : stderr.trim().split('\n')[0] || `${cwd} has no commit checked out`;
        reject(new UsageError(`no --commit or --tag given, and the current directory's HEAD is unknown: ${why}`));
      },
    );
  });
}

/**
 * Who runs depctl, for the `Executor` header: git's user.email as the current directory's checkout sees it (its
 * own config, then the user's), else the OS user's name. A claim for the record, not a credential.
 */
export function executor(cwd: string, env: Readonly<Record<string, string | undefined>>): string | undefined {
  let email = '';
  try {
    email = execFileSync('git', ['config', '--get', 'user.email'], {
      cwd,
      encoding: 'utf8',
      timeout: 5_000,
      stdio: ['ignore', 'pipe', 'ignore'],
      env: { ...process.env, ...env, GIT_TERMINAL_PROMPT: '0' },
    });
  } catch {
    // No git, no repository, or no user.email: the OS user then.
  }
  return headerValue(email) ?? headerValue(osUser(env));
}

function osUser(env: Readonly<Record<string, string | undefined>>): string {
  try {
    return userInfo().username;
  } catch {
    // No passwd entry for the uid (a container run with --user 1234).
    return env['USER'] ?? env['LOGNAME'] ?? '';
  }
}

/** Printable ASCII as an HTTP header carries it (anything else percent-encoded), at most 256 characters. */
export function headerValue(text: string): string | undefined {
  // eslint-disable-next-line no-control-regex
  const clean = text.trim().replace(/[\x00-\x1f\x7f]/g, '');
  const ascii = /^[\x20-\x7e]*$/.test(clean) ? clean : encodeURIComponent(clean);
  return ascii === '' ? undefined : ascii.slice(0, 256);
}
