import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TestProject } from 'vitest/node';
import { wantedParts } from './parts.js';
import { startGround } from './start-ground.js';

/** A started part: what it tells the tests, and how to stop it (must not throw, must kill every process). */
export interface Started<T> {
  info: T;
  stop(): Promise<void>;
}

/** Set by log-reporter.ts when the run failed: the ground's folder is then kept for its logs. */
export const RUN_FAILED_ENV = 'DEPLOYER_GROUND_RUN_FAILED';

/**
 * Starts the test ground once per `vitest run` (start-ground.ts) and stops all of it at the end, whether tests
 * passed or failed. The ground's folder (/tmp/deployer-ground-*) is removed after a passed run and kept, with a
 * message, after a failed one.
 */
export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const base = mkdtempSync(join(tmpdir(), 'deployer-ground-'));
  const logsDir = join(base, 'logs');
  process.env['DEPLOYER_GROUND_LOGS'] = logsDir;
  const keepOrRemove = (): void => {
    if (process.env[RUN_FAILED_ENV] === undefined) {
      rmSync(base, { recursive: true, force: true, maxRetries: 3 });
    } else {
      process.stderr.write(`test ground files (logs, state) kept in ${base}\n`);
    }
  };
  let started;
  try {
    started = await startGround({ base, logsDir, parts: wantedParts() });
  } catch (err) {
    process.env[RUN_FAILED_ENV] = 'start';
    keepOrRemove();
    throw err;
  }
  project.provide('ground', started.info);
  return async () => {
    await started.stop();
    keepOrRemove();
  };
}
