import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import type { Reporter, SerializedError, TestModule, TestRunEndReason } from 'vitest/node';
import { tailLog } from './processes.js';

const LINES = 60;
/** Lines of each failure's message in the closing list (the full error is in the default reporter's output). */
const MESSAGE_LINES = 3;

/**
 * When a run fails, prints the end of every test ground server log (etcd, kube-apiserver, registries, git and svn
 * servers), so that a red CI job shows why a server misbehaved without anyone fetching the log files, and then,
 * last, which tests failed: a CI log cut to its tail still names them.
 * `test/env/global-setup.ts` sets DEPLOYER_GROUND_LOGS to the run's log directory.
 */
export default class GroundLogReporter implements Reporter {
  onTestRunEnd(modules: ReadonlyArray<TestModule>, errors: ReadonlyArray<SerializedError>, reason: TestRunEndReason): void {
    if (reason === 'passed' && errors.length === 0) return;
    // Read by global-setup.ts' teardown (same process): keep the ground's folder for its logs.
    process.env['DEPLOYER_GROUND_RUN_FAILED'] = reason;
    const out: string[] = [];
    const dir = process.env['DEPLOYER_GROUND_LOGS'];
    if (dir !== undefined) out.push(...groundLogs(dir));
    out.push(...failures(modules, errors));
    process.stderr.write(`${out.join('\n')}\n`);
  }
}

function groundLogs(dir: string): string[] {
  let files: string[];
  try {
    files = readdirSync(dir).filter((f) => f.endsWith('.log')).sort();
  } catch {
    return [];
  }
  const out = [`\nTest ground logs (${dir}), last ${LINES} lines each:`];
  for (const file of files) {
    const text = tailLog(join(dir, file), LINES);
    out.push(`\n----- ${file} -----`, text === '' ? '(empty)' : text);
  }
  return out;
}

/** The closing list: every failed test (file > names), every file that failed outside a test, every unhandled error. */
function failures(modules: ReadonlyArray<TestModule>, unhandled: ReadonlyArray<SerializedError>): string[] {
  const items: string[] = [];
  for (const module of modules) {
    for (const error of module.errors()) items.push(`${module.relativeModuleId} (outside a test)\n${indent(error)}`);
    for (const test of module.children.allTests('failed')) {
      const errs = test.result().errors ?? [];
      items.push(`${module.relativeModuleId} > ${test.fullName}${errs.map((e) => `\n${indent(e)}`).join('')}`);
    }
  }
  for (const error of unhandled) items.push(`unhandled error\n${indent(error)}`);
  if (items.length === 0) return [];
  return ['', `Failed (${items.length}):`, ...items.map((item) => `  ${item}`)];
}

function indent(error: SerializedError): string {
  const lines = `${error.name ?? 'Error'}: ${error.message}`.split('\n').filter((l) => l.trim() !== '');
  const shown = lines.slice(0, MESSAGE_LINES).map((l) => `    ${l.length > 300 ? `${l.slice(0, 300)}…` : l}`);
  if (lines.length > MESSAGE_LINES) shown.push(`    … ${lines.length - MESSAGE_LINES} more line(s): the whole error is in the report above`);
  return shown.join('\n');
}
