import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { lineReader } from './lines.js';

/** A child process whose stdout is read line by line. */
export interface Child {
  readonly process: ChildProcessWithoutNullStreams;
  readonly lines: string[];
  readonly stderr: string[];
  /** The exit code, or the signal's name. */
  readonly exit: Promise<number | string>;
  /** The first stdout line (already seen or to come) that `match` accepts; rejects when the process exits first. */
  line(match: (line: string) => boolean): Promise<string>;
  /** The first JSON log line that `match` accepts. */
  logLine(match: (line: Record<string, unknown>) => boolean): Promise<Record<string, unknown>>;
  /** SIGKILL if still running (for afterEach). */
  kill(): void;
}

/**
 * Starts `node --import tsx FILE ...args` from the repository root. `node --import tsx` rather than `npx tsx`: npx
 * neither forwards signals nor reports the child's exit code.
 */
export function startChild(file: string, args: readonly string[], env: Record<string, string>): Child {
  const child = spawn(process.execPath, ['--import', 'tsx', file, ...args], {
    cwd: process.cwd(),
    env: { PATH: process.env['PATH'] ?? '', HOME: process.env['HOME'] ?? '/tmp', ...env },
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  const stdout = lineReader();
  const stderr: string[] = [];
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => stdout.push(chunk));
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => stderr.push(chunk));
  const exit = new Promise<number | string>((resolve) => child.on('exit', (code, signal) => resolve(code ?? signal ?? 'unknown')));

  const line = (match: (line: string) => boolean): Promise<string> =>
    Promise.race([
      stdout.line(match),
      exit.then((code) => {
        throw new Error(`${file} exited (${String(code)}) before the line; stdout:\n${stdout.lines.slice(-30).join('\n')}\nstderr:\n${stderr.join('')}`);
      }),
    ]);
  const parse = (text: string): Record<string, unknown> | undefined => {
    try {
      const value: unknown = JSON.parse(text);
      return typeof value === 'object' && value !== null ? (value as Record<string, unknown>) : undefined;
    } catch {
      return undefined;
    }
  };
  const logLine = async (match: (line: Record<string, unknown>) => boolean): Promise<Record<string, unknown>> => {
    const text = await line((t) => {
      const parsed = parse(t);
      return parsed !== undefined && match(parsed);
    });
    return parse(text) ?? {};
  };
  return {
    process: child,
    lines: stdout.lines,
    stderr,
    exit,
    line,
    logLine,
    kill: () => {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    },
  };
}
