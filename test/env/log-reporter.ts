import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import type { Reporter, TestRunEndReason } from 'vitest/node';
import { tailLog } from './processes.js';

const LINES = 60;

/**
 * When a run fails, prints the end of every test ground server log (etcd, kube-apiserver, registries, git and svn
 * servers), so that a red CI job shows why a server misbehaved without anyone fetching the log files.
 * `test/env/global-setup.ts` sets DEPLOYER_GROUND_LOGS to the run's log directory.
 */
export default class GroundLogReporter implements Reporter {
  onTestRunEnd(_modules: unknown, errors: ReadonlyArray<unknown>, reason: TestRunEndReason): void {
    if (reason === 'passed' && errors.length === 0) return;
    // Read by global-setup.ts' teardown (same process): keep the ground's folder for its logs.
    process.env['DEPLOYER_GROUND_RUN_FAILED'] = reason;
    const dir = process.env['DEPLOYER_GROUND_LOGS'];
    if (dir === undefined) return;
    let files: string[];
    try {
      files = readdirSync(dir).filter((f) => f.endsWith('.log')).sort();
    } catch {
      return;
    }
    const out: string[] = [`\nTest ground logs (${dir}), last ${LINES} lines each:`];
    for (const file of files) {
      const text = tailLog(join(dir, file), LINES);
      out.push(`\n----- ${file} -----`, text === '' ? '(empty)' : text);
    }
    process.stderr.write(`${out.join('\n')}\n`);
  }
}
