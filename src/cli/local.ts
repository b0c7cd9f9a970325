import { execFile } from 'node:child_process';
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
