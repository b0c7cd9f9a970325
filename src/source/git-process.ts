import { spawn, type ChildProcess } from 'node:child_process';

/**
 * How git runs, for every git process of the deployer (one-shot commands and the long-lived `cat-file` readers):
 * never prompts (no terminal, ssh in batch mode, no askpass or credential helper), ignores the user's and the
 * system's git config (a developer's `url.insteadOf` or credential helper must not change what the deployer fetches),
 * and never fetches lazily: a partial clone's missing blob must fail at once, not start a fetch outside our
 * timeout, credentials and queue. Argument arrays only; nothing goes through a shell.
 */
export interface GitCall {
  /** The git binary; `git` from PATH unless configured (tests point it at something that cannot start). */
  readonly binary: string;
  /** The repository (an existing directory). */
  readonly cwd: string;
  readonly args: readonly string[];
  /** Per-call environment: credentials as `GIT_CONFIG_*` entries, `GIT_SSH_COMMAND` with the call's key files. */
  readonly env?: Readonly<Record<string, string>>;
  /** `-c` settings for this call only (never secrets: they show in the process list). */
  readonly config?: readonly string[];
  /** Written to stdin (`fetch --stdin`). */
  readonly input?: string;
  /** Kill the process when it prints nothing for this long (a fetch prints progress, so it is a stall timeout). */
  readonly timeoutMs: number;
  /** stdout beyond this many bytes kills the process and fails the call. */
  readonly maxOutputBytes?: number;
  /** Called while the process runs; `kill` stops it (the call then fails with a `GitStoppedError`). */
  readonly watch?: (kill: (reason: string) => void) => () => void;
}

/**
 * A git command that exited non-zero, or was killed by a signal from outside (the OOM killer, an operator);
 * `stderr` is raw (scrub it before showing it to anyone).
 */
export class GitCommandError extends Error {
  override readonly name = 'GitCommandError';
  constructor(
    readonly exitCode: number,
    readonly stderr: string,
    readonly signal: string | null = null,
  ) {
    super(signal === null ? `git exited with ${exitCode}` : `git was killed by ${signal}`);
  }
}

/**
 * git could not be started, or its pipes failed (EMFILE, ENOENT, EAGAIN, EPIPE...): the machine's trouble, never a
 * sign of a broken cache.
 */
export class GitSpawnError extends Error {
  override readonly name = 'GitSpawnError';
  constructor(
    readonly code: string,
    options: { cause: unknown },
  ) {
    super(`git could not run: ${code}`, options);
  }
}

/** git printed nothing for longer than the call's timeout and was killed. */
export class GitTimeoutError extends Error {
  override readonly name = 'GitTimeoutError';
}

/** The call was stopped on purpose (too much output, a watcher's limit). */
export class GitStoppedError extends Error {
  override readonly name = 'GitStoppedError';
}

/** The environment of every git process; `extra` adds per-call entries (credentials). */
export function gitEnv(extra: Readonly<Record<string, string>> = {}): Record<string, string> {
  return {
    PATH: process.env['PATH'] ?? '/usr/bin:/bin',
    HOME: process.env['HOME'] ?? '/',
    LANG: 'C',
    LC_ALL: 'C',
    GIT_TERMINAL_PROMPT: '0',
    GIT_CONFIG_NOSYSTEM: '1',
    GIT_CONFIG_GLOBAL: '/dev/null',
    GIT_NO_LAZY_FETCH: '1',
    GIT_SSH_COMMAND: 'ssh -o BatchMode=yes -o StrictHostKeyChecking=yes',
    ...extra,
  };
}

/** `-c key=value` pairs before the command. */
export function withConfig(config: readonly string[] | undefined, args: readonly string[]): string[] {
  return [...(config ?? []).flatMap((c) => ['-c', c]), ...args];
}

/** Starts git; a failure to start surfaces as the child's 'error' event, which the caller must handle. */
export function startGit(
  binary: string,
  cwd: string,
  args: readonly string[],
  env: Record<string, string>,
  options: { group?: boolean } = {},
): ChildProcess {
  return spawn(binary, [...args], { cwd, env, stdio: ['pipe', 'pipe', 'pipe'], detached: options.group === true });
}

/** Kills git and what it started (a remote helper, index-pack) when it leads its own process group. */
function killGroup(child: ChildProcess): void {
  if (child.pid !== undefined) {
    try {
      process.kill(-child.pid, 'SIGKILL');
      return;
    } catch {
      // Not a group leader (or gone already): the process alone.
    }
  }
  child.kill('SIGKILL');
}

const MAX_STDERR = 64 * 1024;

/**
 * Runs one git command to its end. Resolves with stdout when git exits 0 and its pipes are drained (never earlier:
 * output read before that was cut short on a busy machine). Every error of the child and its pipes is handled here,
 * so none can reach the process as an unhandled 'error' event.
 */
export function runGit(call: GitCall): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    let child: ChildProcess;
    try {
      // Its own process group, so that a stalled fetch is stopped with its remote helper and index-pack.
      child = startGit(call.binary, call.cwd, withConfig(call.config, call.args), gitEnv(call.env), { group: true });
    } catch (err) {
      reject(new GitSpawnError(errorCode(err), { cause: err }));
      return;
    }
    const out: Buffer[] = [];
    let outBytes = 0;
    let stderr = '';
    let failure: Error | undefined;
    const fail = (err: Error): void => {
      failure ??= err;
      killGroup(child);
    };
    let timer = setTimeout(() => fail(new GitTimeoutError(`git ${call.args[0] ?? ''} stalled`)), call.timeoutMs);
    const moving = (): void => {
      clearTimeout(timer);
      timer = setTimeout(() => fail(new GitTimeoutError(`git ${call.args[0] ?? ''} stalled`)), call.timeoutMs);
    };
    const unwatch = call.watch?.((reason) => fail(new GitStoppedError(reason)));
    let settled = false;
    const settle = (err: Error | undefined, value?: Buffer): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      unwatch?.();
      if (err !== undefined) reject(err);
      else resolve(value ?? Buffer.alloc(0));
    };
    child.on('error', (err) => {
      fail(new GitSpawnError(errorCode(err), { cause: err }));
      // A process that never started emits no reliable 'close'.
      if (child.pid === undefined) settle(failure);
    });
    child.stdin?.on('error', () => undefined);
    child.stdout?.on('error', (err) => fail(new GitSpawnError(errorCode(err), { cause: err })));
    child.stderr?.on('error', (err) => fail(new GitSpawnError(errorCode(err), { cause: err })));
    child.stdout?.on('data', (chunk: Buffer) => {
      moving();
      outBytes += chunk.length;
      if (call.maxOutputBytes !== undefined && outBytes > call.maxOutputBytes) {
        fail(new GitStoppedError(`git ${call.args[0] ?? ''} printed more than ${call.maxOutputBytes} bytes`));
      } else {
        out.push(chunk);
      }
    });
    child.stderr?.on('data', (chunk: Buffer) => {
      moving();
      if (stderr.length < MAX_STDERR) stderr += chunk.toString('utf8');
    });
    child.stdin?.end(call.input ?? '');
    // Done when the pipes are closed, so no output is cut short; a process git left behind (an ssh control master)
    // may hold them open after git exited, so an exit is enough once the call has failed, or after a grace period.
    const ended = (code: number | null, signal: NodeJS.Signals | null): void => {
      if (failure !== undefined) settle(failure);
      else if (code === 0) settle(undefined, Buffer.concat(out));
      else settle(new GitCommandError(code ?? -1, stderr, signal));
    };
    child.on('exit', (code, signal) => {
      if (failure !== undefined) settle(failure);
      else setTimeout(() => ended(code, signal), call.timeoutMs).unref();
    });
    child.on('close', ended);
  });
}

export function errorCode(err: unknown): string {
  const code = (err as NodeJS.ErrnoException | undefined)?.code;
  return typeof code === 'string' ? code : err instanceof Error ? err.message : String(err);
}
