import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, describe, expect, it } from 'vitest';

const run = promisify(execFile);

/**
 * A server's stop waits for its exit even when nothing else keeps the process alive. The ground's servers are
 * unref'd children; once the grace timer had sent SIGKILL, a teardown waiting for the last one (the ground's
 * namespace holder, whose exit waits for every process of its namespace) had nothing left in Node's event loop:
 * the process exited 0 in the middle of its teardown, before the ground's cgroups and folder were removed (the CI
 * run of e80b4a1 failed on the leftovers in test/node/teardown.test.ts).
 */
describe("a server's stop", () => {
  const logs = mkdtempSync(join(tmpdir(), 'deployer-stop-'));
  afterAll(() => rmSync(logs, { recursive: true, force: true }));

  it('returns after SIGKILL when the server ignored SIGTERM, with nothing else to wait for', async () => {
    const { stdout } = await run(process.execPath, ['--import', 'tsx', 'test/ground/fixtures/stop-stubborn.ts', logs], { timeout: 30_000 });
    expect(readFileSync(join(logs, 'stubborn.log'), 'utf8')).toBe('up\n');
    expect(stdout).toBe('stopped: true\n');
  });
});
