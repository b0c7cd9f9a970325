import { simpleGit, GitError, GitPluginError, type SimpleGit } from 'simple-git';

/**
 * A git command that exited non-zero; `stderr` is raw (scrub it before showing it to anyone). It extends simple-git's
 * GitError because simple-git wraps any other error into one, losing the type.
 */
export class GitCommandError extends GitError {
  readonly exitCode: number;
  readonly stderr: string;

  constructor(exitCode: number, stderr: string) {
    super(undefined, `git exited with ${exitCode}`);
    this.name = 'GitCommandError';
    this.exitCode = exitCode;
    this.stderr = stderr;
  }
}

export interface GitClientOptions {
  /** The repository (an existing directory). */
  baseDir: string;
  /** Kill the process when it prints nothing for this long (remote calls print progress, so it is a stall timeout). */
  timeoutMs: number;
  /** Per-call environment: credentials as `GIT_CONFIG_*` entries, `GIT_SSH_COMMAND` with the call's key files. */
  env?: Readonly<Record<string, string>>;
  /** Written to the process's stdin (`cat-file --batch`, `fetch --stdin`). */
  input?: string | Buffer;
  /** `-c` settings for this call only (never secrets: they show in the process list). */
  config?: readonly string[];
}

/** Keys of the per-call environment git may see; simple-git drops every other `GIT_*` variable it inherits. */
const ALLOWED_ENV = [
  'GIT_TERMINAL_PROMPT',
  'GIT_SSH_COMMAND',
  'GIT_CONFIG_NOSYSTEM',
  'GIT_CONFIG_GLOBAL',
  'GIT_CONFIG_COUNT',
  ...Array.from({ length: 8 }, (_, i) => [`GIT_CONFIG_KEY_${i}`, `GIT_CONFIG_VALUE_${i}`]).flat(),
];

/**
 * The one place simple-git is created (STYLE.md habit 3). Every call gets a stall timeout, never prompts (no
 * terminal, ssh in batch mode, no askpass or credential helper), ignores the user's and the system's git config
 * (a developer's `url.insteadOf` or credential helper must not change what the deployer fetches), and fails on any
 * non-zero exit with a `GitCommandError` that carries stderr only (simple-git's default would mix stdout in).
 */
export function createGit(options: GitClientOptions): SimpleGit {
  const env: Record<string, string> = {
    PATH: process.env['PATH'] ?? '/usr/bin:/bin',
    HOME: process.env['HOME'] ?? '/',
    LANG: 'C',
    LC_ALL: 'C',
    GIT_TERMINAL_PROMPT: '0',
    GIT_CONFIG_NOSYSTEM: '1',
    GIT_CONFIG_GLOBAL: '/dev/null',
    GIT_SSH_COMMAND: 'ssh -o BatchMode=yes -o StrictHostKeyChecking=yes',
    ...options.env,
  };
  const git = simpleGit({
    baseDir: options.baseDir,
    maxConcurrentProcesses: 4,
    timeout: { block: options.timeoutMs },
    // Done when the process's pipes are closed, not 50 ms after it exits (simple-git's default): on a busy machine the
    // rest of stdout often arrives later than that, and the call then succeeded with its output cut short or empty
    // (an ls-tree without the manifests directory, a cat-file --batch without the last blobs). The exit fallback only
    // keeps a call from hanging when a process git left behind (an ssh control master) holds the pipes open: the stall
    // timeout stops watching at exit.
    completion: { onClose: true, onExit: options.timeoutMs },
    config: [...(options.config ?? [])],
    input: options.input === undefined ? undefined : () => options.input,
    allowEnvironment: ALLOWED_ENV,
    // These name settings the deployer itself makes (fixed ssh command, config from the environment, no global
    // config file); no value in them comes from a request.
    unsafe: { allowUnsafeSshCommand: true, allowUnsafeConfigEnvCount: true, allowUnsafeConfigPaths: true },
    errors(error, result) {
      if (error instanceof GitPluginError) return error;
      if (result.exitCode !== 0) return new GitCommandError(result.exitCode, Buffer.concat(result.stdErr).toString('utf8'));
      return undefined;
    },
  });
  return git.env(env);
}

/** Whether `err` is simple-git killing a call that stalled past its timeout. */
export function isTimeout(err: unknown): boolean {
  return err instanceof GitPluginError && (err.plugin === 'timeout' || err.plugin === 'abort');
}
