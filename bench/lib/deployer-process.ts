import { spawn, type ChildProcess } from 'node:child_process';
import { openSync, closeSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { dump } from 'js-yaml';
import { waitFor } from '../../test/env/processes.js';

/**
 * The deployer as its own process (`node --import tsx src/main.ts`, config file in DEPLOYER_CONFIG), so that its
 * memory is its own: VmRSS and VmHWM are read from /proc/PID/status.
 */
export interface DeployerProcess {
  url: string;
  pid: number;
  logFile: string;
  /** Resident set size now, in bytes. */
  rss(): number;
  /** Peak resident set size since start or the last `resetPeak`, in bytes. */
  peak(): number;
  /** Resets the kernel's peak (VmHWM) through /proc/PID/clear_refs; false when the kernel refuses. */
  resetPeak(): boolean;
  stop(): Promise<void>;
}

function statusField(pid: number, field: 'VmRSS' | 'VmHWM'): number {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const match = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(status);
  if (match?.[1] === undefined) throw new Error(`no ${field} in /proc/${pid}/status`);
  return Number(match[1]) * 1024;
}

export async function startDeployerProcess(options: {
  projectDir: string;
  dir: string;
  port: number;
  config: Record<string, unknown>;
  /** Node's arguments; default the TypeScript sources through tsx. */
  args?: readonly string[];
  /** NODE_OPTIONS of the process (the image's, for the compiled build). */
  nodeOptions?: string | undefined;
}): Promise<DeployerProcess> {
  const configFile = join(options.dir, 'deployer.yaml');
  writeFileSync(configFile, dump(options.config), { mode: 0o600 });
  const logFile = join(options.dir, 'deployer.log');
  const out = openSync(logFile, 'a');
  let child: ChildProcess;
  try {
    child = spawn(process.execPath, [...(options.args ?? ['--import', 'tsx', 'src/main.ts'])], {
      cwd: options.projectDir,
      env: {
        PATH: process.env['PATH'],
        HOME: process.env['HOME'],
        DEPLOYER_CONFIG: configFile,
        NODE_ENV: 'production',
        ...(options.nodeOptions === undefined ? {} : { NODE_OPTIONS: options.nodeOptions }),
      },
      stdio: ['ignore', out, out],
    });
  } finally {
    closeSync(out);
  }
  const pid = child.pid;
  if (pid === undefined) throw new Error('the deployer did not start');
  let exited = false;
  const exit = new Promise<void>((resolve) => {
    child.once('exit', () => {
      exited = true;
      resolve();
    });
  });
  const url = `http://127.0.0.1:${options.port}`;
  const stop = async (): Promise<void> => {
    if (exited) return;
    child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
    await exit;
    clearTimeout(timer);
  };
  try {
    await waitFor(
      async () => {
        if (exited) return true;
        try {
          const res = await fetch(`${url}/healthz`, { signal: AbortSignal.timeout(1000) });
          return res.ok;
        } catch {
          return false;
        }
      },
      { timeoutMs: 60_000, intervalMs: 100, what: 'the deployer to answer /healthz' },
    );
    if (exited) throw new Error(`the deployer exited while starting; see ${logFile}`);
  } catch (err) {
    await stop();
    throw err;
  }
  return {
    url,
    pid,
    logFile,
    rss: () => statusField(pid, 'VmRSS'),
    peak: () => statusField(pid, 'VmHWM'),
    resetPeak: () => {
      try {
        writeFileSync(`/proc/${pid}/clear_refs`, '5');
        return true;
      } catch {
        return false;
      }
    },
    stop,
  };
}

/** Samples `read` every `intervalMs` until stopped; gives the largest reading (catches peaks between reads of VmHWM). */
export function sampleMax(read: () => number, intervalMs = 25): { stop(): number } {
  let max = 0;
  const take = (): void => {
    try {
      max = Math.max(max, read());
    } catch {
      // the process may be gone; the last readings stand
    }
  };
  take();
  const timer = setInterval(take, intervalMs);
  return {
    stop: () => {
      clearInterval(timer);
      take();
      return max;
    },
  };
}
