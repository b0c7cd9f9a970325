import { execFile } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { promisify } from 'node:util';
import { afterEach, describe, expect, it } from 'vitest';
import { startChild, type Child } from './child.js';

const children: Child[] = [];
afterEach(() => {
  for (const c of children.splice(0)) c.kill();
});

/** The command lines of running processes that mention `text` (their own ground servers name the demo's directory). */
function processesMentioning(text: string): string[] {
  const found: string[] = [];
  for (const pid of readdirSync('/proc').filter((p) => /^\d+$/.test(p))) {
    try {
      const cmdline = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').join(' ');
      if (cmdline.includes(text)) found.push(`${pid}: ${cmdline}`);
    } catch {
      // gone meanwhile
    }
  }
  return found;
}

/** Splits a printed command into its words; the demo prints no quotes or spaces inside words. */
function words(command: string): string[] {
  expect(command).not.toMatch(/['"`$\\;|&<>]/);
  return command.trim().split(/\s+/);
}

describe('npm run demo (scripts/demo.ts)', () => {
  it('starts its own ground and the deployer, the printed curl deploy works, and Ctrl-C stops everything', async () => {
    const demo = startChild('scripts/demo.ts', ['--port', '0'], {});
    children.push(demo);

    const logsLine = await demo.line((l) => l.startsWith('demo: starting a Kubernetes control plane'));
    const base = /logs in (\S+)\/logs\)/.exec(logsLine)?.[1] ?? '';
    expect(base).toMatch(/deployer-demo-/);
    await demo.line((l) => l.startsWith('ready'));
    expect(processesMentioning(base).length).toBeGreaterThanOrEqual(5);

    // The first curl line that deploys, run as printed (no shell: its words as arguments).
    const command = demo.lines.find((l) => l.startsWith('curl ') && l.includes('/deploy'));
    expect(command).toBeDefined();
    const [program, ...args] = words(command ?? '');
    expect(program).toBe('curl');
    const { stdout } = await promisify(execFile)('curl', [...args, '--write-out', '\n%{http_code}'], { timeout: 60_000 });
    const lines = stdout.trimEnd().split('\n');
    const status = lines.pop();
    expect(status, stdout).toBe('200');
    expect(JSON.parse(lines.join('\n'))).toMatchObject({ message: expect.stringMatching(/^hello main-[0-9a-f]{7} is deployed$/) as unknown });

    // Printed for the other flows too.
    for (const path of ['/canary', '/promote', '/rollback']) expect(demo.lines.some((l) => l.startsWith('curl ') && l.includes(path)), path).toBe(true);
    for (const cmd of ['deploy', 'canary', 'promote', 'rollback']) {
      expect(demo.lines.some((l) => l.startsWith('DEPLOYER_URL=') && l.includes(`depctl`) && l.includes(` ${cmd} hello`)), cmd).toBe(true);
    }
    expect(demo.lines.some((l) => l.startsWith('kubectl --kubeconfig ') && l.includes('-n demo'))).toBe(true);

    demo.process.kill('SIGINT');
    expect(await demo.exit).toBe(0);
    expect(demo.lines).toContain('demo: stopped');
    expect(processesMentioning(base)).toEqual([]);
    // Nor the watchdog of the ground's process helpers, which names the demo's pid file.
    expect(processesMentioning(`deployer-ground-pids/${demo.process.pid ?? ''}.pids`)).toEqual([]);
    expect(existsSync(base)).toBe(false);
  }, 300_000);
});
