import { execFile } from 'node:child_process';
import { chmodSync, copyFileSync, mkdirSync, mkdtempSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const REPO_ROOT = fileURLToPath(new URL('../..', import.meta.url));

/** depctl as `npm run build` makes it, installed the way npm installs a bin: a symlink named depctl on PATH. */
export interface BuiltCli {
  /** dist/cli/depctl.js of the build. */
  readonly script: string;
  /** A directory holding only the `depctl` symlink, to put first on PATH. */
  readonly binDir: string;
  remove(): void;
}

function run(file: string, args: readonly string[], cwd: string): Promise<void> {
  return new Promise((resolve, reject) => {
    execFile(file, [...args], { cwd, encoding: 'utf8', timeout: 110_000 }, (err, stdout, stderr) => {
      if (err) reject(new Error(`${file} ${args.join(' ')} failed: ${stdout}${stderr}`, { cause: err }));
      else resolve();
    });
  });
}

/**
 * Builds with the project's build config (tsconfig.build.json) into a temporary directory laid out like the
 * installed package (package.json beside dist/, node_modules reachable), so `npm test` needs no prior build and
 * does not race another `npm run build` writing dist/.
 */
export async function buildCli(): Promise<BuiltCli> {
  const root = mkdtempSync(join(tmpdir(), 'depctl-build-'));
  await run(process.execPath, [join(REPO_ROOT, 'node_modules/typescript/bin/tsc'), '-p', 'tsconfig.build.json', '--outDir', join(root, 'dist')], REPO_ROOT);
  copyFileSync(join(REPO_ROOT, 'package.json'), join(root, 'package.json'));
  symlinkSync(join(REPO_ROOT, 'node_modules'), join(root, 'node_modules'), 'dir');
  const script = join(root, 'dist', 'cli', 'depctl.js');
  // npm sets the mode of a bin on install; the shebang must make it runnable without `node` in front.
  chmodSync(script, 0o755);
  const binDir = join(root, 'bin');
  mkdirSync(binDir);
  symlinkSync(script, join(binDir, 'depctl'));
  return { script, binDir, remove: () => rmSync(root, { recursive: true, force: true }) };
}

export interface CliResult {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

export interface CliRunOptions {
  /** The whole environment besides PATH (nothing of the test process leaks in). */
  readonly env?: Record<string, string>;
  readonly cwd?: string;
}

/** Runs `depctl ARGS` by its symlink on PATH, as a user would; never rejects, the exit code is in the result. */
export function runCli(cli: BuiltCli, args: readonly string[], options: CliRunOptions = {}): Promise<CliResult> {
  return new Promise((resolve) => {
    execFile(
      'depctl',
      [...args],
      {
        cwd: options.cwd ?? tmpdir(),
        env: { PATH: `${cli.binDir}:${process.env['PATH'] ?? ''}`, ...options.env },
        encoding: 'utf8',
        timeout: 120_000,
      },
      (err, stdout, stderr) => {
        const code = err === null ? 0 : typeof err.code === 'number' ? err.code : -1;
        resolve({ code, stdout, stderr });
      },
    );
  });
}

/**
 * What bash completes for the command line `words` (the last one being completed), with the script of
 * `depctl completion bash` sourced: the script is fixed, the words are its arguments.
 */
export function bashComplete(cli: BuiltCli, words: readonly string[], options: CliRunOptions = {}): Promise<CliResult & { words: string[] }> {
  const script = [
    'source <(depctl completion bash) || exit 3',
    'COMP_WORDS=("$@")',
    'COMP_CWORD=$(( $# - 1 ))',
    '_depctl || exit 4',
    '(( ${#COMPREPLY[@]} == 0 )) || printf "%s\\n" "${COMPREPLY[@]}"',
  ].join('\n');
  return new Promise((resolve) => {
    execFile(
      'bash',
      ['--norc', '--noprofile', '-c', script, 'bash', ...words],
      {
        cwd: options.cwd ?? tmpdir(),
        env: { PATH: `${cli.binDir}:${process.env['PATH'] ?? ''}`, ...options.env },
        encoding: 'utf8',
        timeout: 60_000,
      },
      (err, stdout, stderr) => {
        const code = err === null ? 0 : typeof err.code === 'number' ? err.code : -1;
        resolve({ code, stdout, stderr, words: stdout.split('\n').filter((w) => w !== '') });
      },
    );
  });
}
