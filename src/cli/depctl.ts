#!/usr/bin/env node
import { readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { z } from 'zod';
import { run } from './run.js';

/** depctl's version: package.json sits two levels above both src/cli/depctl.ts and dist/cli/depctl.js. */
function readVersion(): string {
  try {
    const pkg = z.object({ version: z.string() }).safeParse(JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')));
    return pkg.success ? pkg.data.version : 'unknown';
  } catch {
    return 'unknown';
  }
}

run(process.argv.slice(2), {
  env: process.env,
  cwd: process.cwd(),
  home: homedir(),
  stdout: process.stdout,
  stderr: process.stderr,
  version: readVersion(),
}).then(
  (code) => {
    // exitCode, not exit(): whatever is still buffered for a pipe gets written.
    process.exitCode = code;
  },
  (err: unknown) => {
    // A bug in depctl, not a failure of the deployer: say so, with the stack for the report.
    process.stderr.write(`depctl: unexpected error (a bug in depctl?): ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    process.exitCode = 1;
  },
);
