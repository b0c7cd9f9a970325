import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TestProject } from 'vitest/node';
import type { Ground, PartName } from './ground.js';

/** A started part: what it tells the tests, and how to stop it (must not throw, must kill every process). */
export interface Started<T> {
  info: T;
  stop(): Promise<void>;
}

const ALL_PARTS: readonly PartName[] = ['kube', 'registry', 'git', 'svn'];

/**
 * Starts the test ground once per `vitest run`: every part on free loopback ports, in parallel; stops all of it
 * at the end, whether tests passed or failed.
 */
export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const wanted = (process.env['TESTGROUND_PARTS'] ?? ALL_PARTS.join(','))
    .split(',')
    .map((p) => p.trim())
    .filter((p): p is PartName => (ALL_PARTS as readonly string[]).includes(p));
  const base = mkdtempSync(join(tmpdir(), 'deployer-ground-'));
  const logsDir = join(base, 'logs');
  const stops: Array<() => Promise<void>> = [];
  const stopAll = async (): Promise<void> => {
    await Promise.all(stops.map((s) => s().catch(() => undefined)));
  };
  const ground: Ground = { logsDir };
  process.env['DEPLOYER_GROUND_LOGS'] = logsDir;

  // Parts are imported only when started, so a focused run loads only what it needs.
  const starters: Record<PartName, () => Promise<void>> = {
    kube: async () => {
      const { startKube } = await import('./kube-plane.js');
      const s = await startKube(join(base, 'kube'), logsDir);
      stops.push(() => s.stop());
      ground.kube = s.info;
    },
    registry: async () => {
      const { startRegistries } = await import('./registry-server.js');
      const s = await startRegistries(join(base, 'registry'), logsDir);
      stops.push(() => s.stop());
      ground.registry = s.info;
    },
    git: async () => {
      const { startGitServer } = await import('./git-server.js');
      const s = await startGitServer(join(base, 'git'), logsDir);
      stops.push(() => s.stop());
      ground.git = s.info;
    },
    svn: async () => {
      const { startSvnServer } = await import('./svn-server.js');
      const s = await startSvnServer(join(base, 'svn'), logsDir);
      stops.push(() => s.stop());
      ground.svn = s.info;
    },
  };

  const results = await Promise.allSettled(wanted.map((p) => starters[p]()));
  const failed = results.filter((r): r is PromiseRejectedResult => r.status === 'rejected');
  if (failed.length > 0) {
    await stopAll();
    throw new AggregateError(
      failed.map((f) => f.reason as Error),
      `test ground failed to start (logs in ${logsDir})`,
    );
  }
  project.provide('ground', ground);
  return stopAll;
}
