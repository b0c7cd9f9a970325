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
    // How long vitest gives its workers to end before it reports them hanging. (A passed run's folder and cgroups
    // once stayed behind, blamed on this timeout; the cause was the process ending in the middle of the ground's
    // stop, see processes.ts' stop().)
    teardownTimeout: 90_000,
    // Integration tests share one test ground; files run in parallel workers but each uses its own namespaces,
    // repositories and image names.
    pool: 'forks',
    maxWorkers: 2,
    reporters: ['default', './test/env/log-reporter.ts'],
  },
});
