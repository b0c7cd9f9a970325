import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, mkdirSync, openSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { createConnection, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/**
 * Process utilities of the test ground: start servers with argument arrays (never a shell), log to
 * `${logsDir}/NAME.log`, wait until they answer, and make sure none outlives the test run:
 *
 * - `stop()` sends SIGTERM to the server's process group, then SIGKILL after a grace period;
 * - a synchronous `exit` handler SIGKILLs whatever is still running (vitest calls `process.exit()` on
 *   SIGINT/SIGTERM, so this covers Ctrl-C too);
 * - the pids are recorded in `${tmpdir()}/deployer-ground-pids/OWNER.pids`, and a small detached watchdog
 *   kills them when the owner process dies without running its handlers (SIGKILL, OOM);
 * - the next start kills what a dead owner left behind, in case the watchdog died with it.
 */

export interface ServerProcess {
  readonly name: string;
  readonly pid: number;
  readonly logFile: string;
  /** Resolves with the exit code (or the signal's name) when the process ends. */
  readonly exited: Promise<number | string>;
  hasExited(): boolean;
  /** SIGTERM, then SIGKILL after `graceMs`; never throws. */
  stop(graceMs?: number): Promise<void>;
}

export interface SpawnOptions {
  name: string;
  command: string;
  args: readonly string[];
  logsDir: string;
  cwd?: string;
  env?: NodeJS.ProcessEnv;
}

const PID_DIR = join(tmpdir(), 'deployer-ground-pids');
const ownFile = join(PID_DIR, `${process.pid}.pids`);
const live = new Map<number, string>();
let watchdog: ChildProcess | undefined;
let guarded = false;

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

function commandLineOf(pid: number): string | undefined {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0')[0];
  } catch {
    return undefined;
  }
}

function killGroup(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(-pid, signal);
  } catch {
    try {
      process.kill(pid, signal);
    } catch {
      // already gone
    }
  }
}

/** Kills the servers recorded by owners that died without cleaning up (only those whose command still matches). */
function killStale(): void {
  let files: string[];
  try {
    files = readdirSync(PID_DIR);
  } catch {
    return;
  }
  for (const file of files) {
    const owner = Number(file.replace(/\.pids$/, ''));
    if (!Number.isInteger(owner) || owner === process.pid || isAlive(owner)) continue;
    const path = join(PID_DIR, file);
    for (const line of readFileSync(path, 'utf8').split('\n')) {
      const [pidText, command] = line.split('\t');
      const pid = Number(pidText);
      if (Number.isInteger(pid) && pid > 0 && command !== undefined && commandLineOf(pid) === command) {
        killGroup(pid, 'SIGKILL');
      }
    }
    rmSync(path, { force: true });
  }
}

function recordPids(): void {
  if (live.size === 0) {
    rmSync(ownFile, { force: true });
    return;
  }
  writeFileSync(ownFile, [...live].map(([pid, command]) => `${pid}\t${command}`).join('\n'));
}

/** Watches the owner (this process); when it disappears, kills the recorded pids whose command still matches. */
const WATCHDOG = `
const fs = require('node:fs');
const [owner, file] = process.argv.slice(1);
const alive = (pid) => { try { process.kill(pid, 0); return true; } catch (e) { return e.code === 'EPERM'; } };
setInterval(() => {
  if (alive(Number(owner))) return;
  let text = '';
  try { text = fs.readFileSync(file, 'utf8'); } catch {}
  for (const line of text.split('\\n')) {
    const [pid, command] = line.split('\\t');
    let now;
    try { now = fs.readFileSync('/proc/' + pid + '/cmdline', 'utf8').split('\\0')[0]; } catch {}
    if (pid && now === command) { try { process.kill(-Number(pid), 'SIGKILL'); } catch { try { process.kill(Number(pid), 'SIGKILL'); } catch {} } }
  }
  try { fs.rmSync(file, { force: true }); } catch {}
  process.exit(0);
}, 500);
`;

function guard(): void {
  if (!guarded) {
    guarded = true;
    mkdirSync(PID_DIR, { recursive: true });
    killStale();
    process.on('exit', () => {
      for (const pid of live.keys()) killGroup(pid, 'SIGKILL');
      live.clear();
      recordPids();
      if (watchdog?.pid !== undefined) killGroup(watchdog.pid, 'SIGKILL');
    });
  }
  if (watchdog === undefined || watchdog.exitCode !== null || watchdog.signalCode !== null) {
    watchdog = spawn(process.execPath, ['-e', WATCHDOG, String(process.pid), ownFile], {
      detached: true,
      stdio: 'ignore',
    });
    watchdog.unref();
  }
}

function stopWatchdogWhenIdle(): void {
  if (live.size > 0 || watchdog === undefined) return;
  watchdog.kill('SIGKILL');
  watchdog = undefined;
}

/** Starts a server in its own process group, stdout and stderr appended to `${logsDir}/NAME.log`. */
export function spawnServer(options: SpawnOptions): ServerProcess {
  guard();
  mkdirSync(options.logsDir, { recursive: true });
  const logFile = join(options.logsDir, `${options.name}.log`);
  const fd = openSync(logFile, 'a');
  let child: ChildProcess;
  try {
    child = spawn(options.command, [...options.args], {
      cwd: options.cwd,
      env: options.env ?? process.env,
      stdio: ['ignore', fd, fd],
      detached: true,
    });
  } finally {
    closeSync(fd);
  }
  const pid = child.pid;
  if (pid === undefined) {
    throw new Error(`could not start ${options.name} (${options.command}); see ${logFile}`);
  }
  child.unref();
  // argv[0] as exec'd: what the stale-process cleanup compares with /proc/PID/cmdline.
  live.set(pid, options.command);
  recordPids();

  let done = false;
  const exited = new Promise<number | string>((resolve) => {
    child.once('exit', (code, signal) => {
      done = true;
      live.delete(pid);
      recordPids();
      stopWatchdogWhenIdle();
      resolve(code ?? signal ?? 'unknown');
    });
    child.once('error', () => {
      done = true;
      live.delete(pid);
      recordPids();
      stopWatchdogWhenIdle();
      resolve('spawn error');
    });
  });

  return {
    name: options.name,
    pid,
    logFile,
    exited,
    hasExited: () => done,
    async stop(graceMs = 5_000): Promise<void> {
      if (done) return;
      // The child is unref'd so that a running server never holds the test run open; a stop that waits for its
      // exit must hold it: once the SIGKILL timer has fired, a teardown with nothing else left would otherwise end
      // the process (exit 0) before the exit event, in the middle of the teardown.
      child.ref();
      killGroup(pid, 'SIGTERM');
      const timer = setTimeout(() => killGroup(pid, 'SIGKILL'), graceMs);
      await exited;
      clearTimeout(timer);
      // Children of the server that ignored SIGTERM.
      killGroup(pid, 'SIGKILL');
    },
  };
}

/** Stops every process; never throws. */
export async function stopAll(processes: readonly (ServerProcess | undefined)[], graceMs?: number): Promise<void> {
  await Promise.all(processes.map((p) => (p === undefined ? Promise.resolve() : p.stop(graceMs).catch(() => undefined))));
}

/**
 * A free TCP port on 127.0.0.1 for a server process the ground starts: free when this returns, not reserved. It is
 * taken below the kernel's ephemeral range (net.ipv4.ip_local_port_range), where the machine's outgoing connections
 * take their local ports: an ephemeral port handed to a server took an outgoing connection's place meanwhile once
 * (kube-apiserver: "bind: address already in use", with a second test run on the machine). Only other listeners
 * compete below that range, and the pick is random over thousands of ports.
 */
export async function freePort(): Promise<number> {
  const [low] = ephemeralRange();
  const from = 10_000;
  for (let attempt = 0; attempt < 50 && low - from > 1_000; attempt++) {
    const port = from + Math.floor(Math.random() * (low - from));
    if (handedOut.has(port)) continue;
    if (await canListen(port)) {
      handedOut.add(port);
      return port;
    }
  }
  for (;;) {
    const port = await ephemeralPort();
    if (!handedOut.has(port)) {
      handedOut.add(port);
      return port;
    }
  }
}

/** Ports freePort gave in this process (never twice): a server may not have bound its port yet when the next one is picked. */
const handedOut = new Set<number>();

/** [first, last] of the ports the kernel gives outgoing connections (Linux' default when it cannot be read). */
export function ephemeralRange(): [number, number] {
  try {
    const [low, high] = readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/).map(Number);
    if (low !== undefined && high !== undefined && Number.isInteger(low) && Number.isInteger(high)) return [low, high];
  } catch {
    // not Linux
  }
  return [32_768, 60_999];
}

function canListen(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = createServer();
    server.unref();
    server.once('error', () => resolve(false));
    server.listen({ port, host: '127.0.0.1', exclusive: true }, () => server.close(() => resolve(true)));
  });
}

function ephemeralPort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.unref();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      const port = typeof address === 'object' && address !== null ? address.port : 0;
      server.close(() => (port > 0 ? resolve(port) : reject(new Error('no port'))));
    });
  });
}

/** The last `lines` lines of a log file ('' when it does not exist). */
export function tailLog(file: string, lines = 60): string {
  try {
    return readFileSync(file, 'utf8').trimEnd().split('\n').slice(-lines).join('\n');
  } catch {
    return '';
  }
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

export interface WaitOptions {
  /** What is awaited, for the error message. */
  what: string;
  timeoutMs?: number;
  intervalMs?: number;
  /** Fail at once, with the tail of its log, when this process exits while waiting. */
  process?: ServerProcess;
}

/** Polls `check` until it returns true; throws with the server's log tail on timeout or early exit. */
export async function waitFor(check: () => Promise<boolean>, options: WaitOptions): Promise<void> {
  const deadline = Date.now() + (options.timeoutMs ?? 60_000);
  let lastError: unknown;
  for (;;) {
    if (options.process?.hasExited()) {
      const code = await options.process.exited;
      throw new Error(
        `${options.process.name} exited (${code}) while waiting for ${options.what}; log ${options.process.logFile}:\n` +
          tailLog(options.process.logFile, 30),
      );
    }
    try {
      if (await check()) return;
    } catch (err) {
      lastError = err;
    }
    if (Date.now() > deadline) {
      const log = options.process === undefined ? '' : `; log ${options.process.logFile}:\n${tailLog(options.process.logFile, 30)}`;
      throw new Error(`timed out waiting for ${options.what}${lastError === undefined ? '' : ` (${lastError instanceof Error ? lastError.message : JSON.stringify(lastError)})`}${log}`);
    }
    await sleep(options.intervalMs ?? 200);
  }
}

/** Waits until something accepts TCP connections on host:port. */
export async function waitForPort(port: number, options: WaitOptions & { host?: string }): Promise<void> {
  const host = options.host ?? '127.0.0.1';
  await waitFor(
    () =>
      new Promise<boolean>((resolve) => {
        const socket = createConnection({ host, port });
        socket.setTimeout(1_000);
        socket.once('connect', () => {
          socket.destroy();
          resolve(true);
        });
        socket.once('timeout', () => {
          socket.destroy();
          resolve(false);
        });
        socket.once('error', () => resolve(false));
      }),
    options,
  );
}

export interface HttpGetOptions {
  headers?: Record<string, string>;
  /** PEM of the CA to trust (https). */
  ca?: string | Buffer;
  /** Skip TLS verification (https; only for readiness probes of self-signed servers). */
  insecure?: boolean;
  timeoutMs?: number;
}

/** A small GET over http or https (node's fetch cannot take a CA per request). */
export function httpGet(url: string, options: HttpGetOptions = {}): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const target = new URL(url);
    const request = target.protocol === 'https:' ? httpsRequest : httpRequest;
    const req = request(
      target,
      {
        method: 'GET',
        headers: options.headers,
        ca: options.ca,
        rejectUnauthorized: options.insecure !== true,
        timeout: options.timeoutMs ?? 5_000,
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8') }));
        res.on('error', reject);
      },
    );
    req.on('timeout', () => req.destroy(new Error(`GET ${url} timed out`)));
    req.on('error', reject);
    req.end();
  });
}

/** Waits until GET `url` answers with a status `ok` accepts (default 2xx). */
export async function waitForUrl(
  url: string,
  options: WaitOptions & HttpGetOptions & { ok?: (status: number, body: string) => boolean },
): Promise<void> {
  const ok = options.ok ?? ((status: number) => status >= 200 && status < 300);
  await waitFor(async () => {
    const res = await httpGet(url, options);
    return ok(res.status, res.body);
  }, options);
}
