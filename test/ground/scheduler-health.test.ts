import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { waitForScheduler } from '../env/node.js';
import { freePort, spawnServer, type ServerProcess } from '../env/processes.js';

/**
 * The ground waits for its kube-scheduler's health like for its other parts: a scheduler that does not come up fails
 * the ground's start with its log file named, instead of leaving pods Pending in a later test. Stand-in processes
 * play the scheduler here (the real one is waited for at every start of the node).
 */
describe('test ground: the scheduler health wait', () => {
  const logsDir = mkdtempSync(join(tmpdir(), 'scheduler-health-'));
  const started: ServerProcess[] = [];
  const standIn = (script: string): ServerProcess => {
    const p = spawnServer({ name: 'kube-scheduler', command: process.execPath, args: ['-e', script], logsDir });
    started.push(p);
    return p;
  };

  afterAll(async () => {
    await Promise.all(started.map((p) => p.stop(1_000)));
    rmSync(logsDir, { recursive: true, force: true });
  });

  it('resolves once /healthz answers 200 on the loopback port', async () => {
    const port = await freePort();
    const scheduler = standIn(
      `require('node:http').createServer((q, s) => { s.statusCode = q.url === '/healthz' ? 200 : 404; s.end('ok'); }).listen(${port}, '127.0.0.1')`,
    );
    await expect(waitForScheduler(scheduler, port)).resolves.toBeUndefined();
  });

  it('a scheduler that exits fails the wait at once, naming its exit code and log file with the log tail', async () => {
    const port = await freePort();
    const scheduler = standIn(`console.error('E1130 invalid configuration: profiles[0].schedulerName is taken'); process.exit(1)`);
    const error = await waitForScheduler(scheduler, port, 60_000).then(
      () => undefined,
      (err: unknown) => err as Error,
    );
    expect(error?.message).toContain(`kube-scheduler exited (1) while waiting for kube-scheduler to answer /healthz on 127.0.0.1:${port}; log ${join(logsDir, 'kube-scheduler.log')}`);
    expect(error?.message).toContain('profiles[0].schedulerName is taken');
  });

  it('a scheduler that runs but never answers fails after the timeout, naming its log file', async () => {
    const port = await freePort();
    const scheduler = standIn(`console.error('I1130 still starting'); setInterval(() => undefined, 1000)`);
    const error = await waitForScheduler(scheduler, port, 1_500).then(
      () => undefined,
      (err: unknown) => err as Error,
    );
    expect(error?.message).toMatch(new RegExp(`^timed out waiting for kube-scheduler to answer /healthz on 127\\.0\\.0\\.1:${port} \\(.*\\); log ${join(logsDir, 'kube-scheduler.log').replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}:`));
  });
});
