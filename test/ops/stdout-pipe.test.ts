import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { freePort } from '../env/processes.js';
import { fifo, type Fifo } from './fifo.js';
import { basic } from './helpers.js';

/**
 * The deployer stopped with SIGTERM while its stdout is a real pipe (a FIFO, as a shell's `|` or a container
 * runtime's log pipe), whatever its reader does: reads, is gone, or holds the pipe open and stops reading. The last
 * one once kept the process alive until SIGKILL (pino's exit handler retried its write forever).
 */

const SECRET = 'stdout-pipe-secret-7';
const GRACE_SECONDS = 2;
/** A correctness bound, not a speed measure: far above the grace, far below "hangs until SIGKILL". */
const EXIT_BOUND_MS = 60_000;
/** Each request writes two log lines of ~300 bytes: 300 requests overflow a 64 KiB pipe. */
const REQUESTS = 300;

const work = mkdtempSync(join(tmpdir(), 'ops-stdout-pipe-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));
const children: ChildProcess[] = [];
const pipes: Fifo[] = [];
afterEach(() => {
  for (const c of children.splice(0)) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  for (const p of pipes.splice(0)) p.close();
});

function configFile(name: string, port: number): string {
  // A kubeconfig that is never contacted: nothing here deploys.
  const kubeconfig = join(work, `${name}.kubeconfig`);
  writeFileSync(
    kubeconfig,
    JSON.stringify({
      apiVersion: 'v1',
      kind: 'Config',
      clusters: [{ name: 'none', cluster: { server: 'https://127.0.0.1:9' } }],
      users: [{ name: 'none', user: { token: 'none' } }],
      contexts: [{ name: 'none', context: { cluster: 'none', user: 'none' } }],
      'current-context': 'none',
    }),
  );
  const file = join(work, `${name}.json`);
  // JSON is YAML.
  writeFileSync(
    file,
    JSON.stringify({
      listen: { host: '127.0.0.1', port },
      tokens: { ops: { secret: { value: SECRET } } },
      cache: { dir: join(work, `cache-${name}`) },
      kubernetes: { kubeconfig },
      shutdownGraceSeconds: GRACE_SECONDS,
    }),
  );
  return file;
}

async function untilListening(port: number, child: ChildProcess, stderr: string[]): Promise<void> {
  for (;;) {
    if (child.exitCode !== null) throw new Error(`the deployer exited (${child.exitCode}): ${stderr.join('')}`);
    const up = await fetch(`http://127.0.0.1:${port}/healthz`).then(
      (r) => r.ok,
      () => false,
    );
    if (up) return;
    await new Promise((r) => setTimeout(r, 100));
  }
}

type Reader = 'reading' | 'gone' | 'stopped';

async function stopWithStdout(reader: Reader) {
  const stdout = await fifo(join(work, reader));
  pipes.push(stdout);
  const port = await freePort();
  const child = spawn(process.execPath, ['--import', 'tsx', 'src/main.ts'], {
    cwd: process.cwd(),
    env: { PATH: process.env['PATH'] ?? '', HOME: work, DEPLOYER_CONFIG: configFile(reader, port) },
    stdio: ['ignore', stdout.writer, 'pipe'],
  });
  children.push(child);
  stdout.closeWriter();
  const stderr: string[] = [];
  child.stderr?.setEncoding('utf8').on('data', (c: string) => stderr.push(c));
  const exit = new Promise<number | string>((resolve) => child.on('exit', (code, signal) => resolve(code ?? signal ?? 'unknown')));

  const read = reader === 'reading' ? stdout.read().lines : [];
  await untilListening(port, child, stderr);
  if (reader === 'gone') stdout.closeReader();

  // The service keeps answering whatever its stdout does.
  for (let i = 0; i < REQUESTS; i++) {
    const res = await fetch(`http://127.0.0.1:${port}/version`, { headers: { authorization: basic('ops', SECRET) } });
    expect(res.status).toBe(200);
    await res.arrayBuffer();
  }

  child.kill('SIGTERM');
  const bound = new Promise<string>((resolve) => setTimeout(() => resolve('still running'), EXIT_BOUND_MS).unref());
  const code = await Promise.race([exit, bound]);
  return { code, stderr: stderr.join(''), read };
}

describe('SIGTERM with stdout a pipe', () => {
  it('exits 0 with every log line written when the reader reads', async () => {
    const { code, stderr, read } = await stopWithStdout('reading');
    expect(code, stderr).toBe(0);
    expect(stderr).not.toMatch(/not written/);
    // The last line reached the reader (it arrives before the pipe's end).
    await expect.poll(() => read.some((l) => l.includes('"msg":"closed"'))).toBe(true);
  }, 120_000);

  it('exits 0 when the reader is gone, and counts the lines it could not write', async () => {
    const { code, stderr } = await stopWithStdout('gone');
    expect(code, stderr).toBe(0);
    expect(stderr).toMatch(/deployer: stdout is closed; log lines are no longer written/);
    expect(stderr).toMatch(/deployer: \d+ log lines were not written \(stdout is closed\)/);
  }, 120_000);

  it('exits 0 at the end of the grace when the reader holds the pipe but stops reading, counting the lost lines', async () => {
    const { code, stderr } = await stopWithStdout('stopped');
    expect(code, stderr).toBe(0);
    expect(stderr).toMatch(/deployer: \d+ log lines were not written \(stdout did not take them before the exit\)/);
  }, 120_000);
});
