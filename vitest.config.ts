import { defineConfig } from 'vitest/config';
import { NODE_TESTS, wantedParts } from './test/env/parts.js';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts', 'src/**/*.test.ts'],
    // Without the node (TESTGROUND_PARTS), the tests that need real pods are not collected.
    exclude: ['**/node_modules/**', ...(wantedParts().includes('node') ? [] : NODE_TESTS)],
    globalSetup: ['test/env/global-setup.ts'],
    testTimeout: 60_000,
    hookTimeout: 120_000,
    // The ground's stop (global-setup's teardown) waits for its cgroups to go, up to 45 s on a busy machine: vitest's
    // default 10 s cut it short once, leaving the passed run's folder and empty cgroups to the next run's sweep.
    teardownTimeout: 90_000,
    // Integration tests share one test ground; files run in parallel workers but each uses its own namespaces,
    // repositories and image names.
    pool: 'forks',
    maxWorkers: 2,
    reporters: ['default', './test/env/log-reporter.ts'],
  },
});
