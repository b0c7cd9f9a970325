import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { fifo, type Fifo } from './fifo.js';

const work = mkdtempSync(join(tmpdir(), 'ops-demo-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));
const children: ChildProcess[] = [];
const pipes: Fifo[] = [];
afterEach(() => {
  for (const c of children.splice(0)) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  for (const p of pipes.splice(0)) p.close();
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
  it('piped as into tee: the printed commands work, and Ctrl-C stops everything with exit 0, leaving nothing in /tmp', async () => {
    // stdout is a real pipe, read as `tee` would; Ctrl-C in a terminal ends tee too, so the reader goes first.
    const stdout = await fifo(join(work, 'demo-stdout'));
    pipes.push(stdout);
    const demo = spawn(process.execPath, ['--import', 'tsx', 'scripts/demo.ts', '--port', '0'], {
      cwd: process.cwd(),
      env: { PATH: process.env['PATH'] ?? '', HOME: process.env['HOME'] ?? '/tmp' },
      stdio: ['ignore', stdout.writer, 'pipe'],
    });
    children.push(demo);
    stdout.closeWriter();
    const stderr: string[] = [];
    demo.stderr?.setEncoding('utf8').on('data', (c: string) => stderr.push(c));
    const exit = new Promise<number | string>((resolve) => demo.on('exit', (code, signal) => resolve(code ?? signal ?? 'unknown')));
    const tee = stdout.read();
    const lines = tee.lines;
    const failed = exit.then((code) => {
      throw new Error(`the demo exited (${String(code)}):\n${lines.join('\n')}\n${stderr.join('')}`);
    });

    const logsLine = await Promise.race([tee.line((l) => l.startsWith('demo: starting a Kubernetes control plane')), failed]);
    const base = /logs in (\S+)\/logs\)/.exec(logsLine)?.[1] ?? '';
    expect(base).toMatch(/deployer-demo-/);
    await Promise.race([tee.line((l) => l.startsWith('ready')), failed]);
    expect(processesMentioning(base).length).toBeGreaterThanOrEqual(5);

    // The first curl line that deploys, run as printed (no shell: its words as arguments).
    const command = lines.find((l) => l.startsWith('curl ') && l.includes('/deploy'));
    expect(command).toBeDefined();
    const [program, ...args] = words(command ?? '');
    expect(program).toBe('curl');
    const { stdout: answer } = await promisify(execFile)('curl', [...args, '--write-out', '\n%{http_code}'], { timeout: 60_000 });
    const answerLines = answer.trimEnd().split('\n');
    const status = answerLines.pop();
    expect(status, answer).toBe('200');
    const deployed = JSON.parse(answerLines.join('\n')) as { message: string; tag: string };
    expect(deployed).toMatchObject({ message: expect.stringMatching(/^hello main-[0-9a-f]{7} is deployed$/) as unknown });

    // The pods run: the printed curl of the Service's ClusterIP is answered by a pod of the deployed version.
    const viaService = lines.find((l) => /^curl -sS http:\/\/[\d.]+\/$/.test(l)) ?? '';
    const [, ...serviceArgs] = words(viaService);
    const deadline = Date.now() + 120_000;
    let served = '';
    for (;;) {
      served = await promisify(execFile)('curl', [...serviceArgs, '--max-time', '5'], { timeout: 10_000 }).then((r) => r.stdout, (err: Error) => err.message);
      if (served.includes(`"version":"${deployed.tag}"`) || Date.now() > deadline) break;
      await new Promise((r) => setTimeout(r, 1_000));
    }
    expect(served).toContain(`"version":"${deployed.tag}"`);
    expect(lines.some((l) => l.startsWith('curl --no-progress-meter --parallel') && l.includes(serviceArgs.at(-1) ?? '?'))).toBe(true);

    // The regression-testing loop: the printed bad canary (slower by 1.5× the threshold) is rolled back by the
    // monitor under the demo's load, and the demo says so, with the alert and the figures.
    expect(lines).toContainEqual(expect.stringMatching(/^# Prometheus at http:\/\/127\.0\.0\.1:\d+ \(try the query ALERTS\), Alertmanager at http:\/\/127\.0\.0\.1:\d+$/));
    const slowAt = lines.findIndex((l) => /answers \d+ ms slower/.test(l));
    const bad = lines.slice(slowAt).find((l) => l.startsWith('curl ') && l.includes('/canary')) ?? '';
    const [, ...badArgs] = words(bad);
    const canaryAnswer = await promisify(execFile)('curl', [...badArgs, '--write-out', '\n%{http_code}'], { timeout: 60_000 });
    expect(canaryAnswer.stdout.trimEnd().split('\n').pop(), canaryAnswer.stdout).toBe('200');
    const rolledBack = await Promise.race([tee.line((l) => /^demo: canary main-[0-9a-f]{7} was (rolled back|removed|promoted)/.test(l)), failed]);
    expect(rolledBack).toMatch(
      /^demo: canary main-[0-9a-f]{7} was rolled back by Prometheus → Alertmanager → the deployer's hook [\d.]+ s after it started: CanaryLatencyRegression, p95 latency [\d.]+ ms \(stable [\d.]+ ms\), error ratio/,
    );
    expect(lines.some((l) => l.startsWith('curl ') && l.includes('--data analysis=true') && l.includes('/promote'))).toBe(true);
    expect(lines).toContain('depctl promote hello --analysis');

    // Printed for the other flows too.
    for (const path of ['/canary', '/promote', '/rollback']) expect(lines.some((l) => l.startsWith('curl ') && l.includes(path)), path).toBe(true);
    // depctl: short commands after one export line; its rollback does what the curl line does (to=previous).
    const exportLine = lines.find((l) => l.startsWith('export PATH='));
    const env = Object.fromEntries(words((exportLine ?? '').replace(/^export /, '').replace(':$PATH', '')).map((w) => w.split('=', 2) as [string, string]));
    expect(Object.keys(env)).toEqual(['PATH', 'DEPLOYER_URL', 'DEPLOYER_TOKEN_NAME', 'DEPLOYER_AUTH_TOKEN']);
    expect(lines).toContain('source <(depctl completion bash)');
    for (const cmd of ['deploy hello --commit', 'canary hello --commit', 'promote hello', 'rollback hello --to previous', 'show hello']) {
      expect(lines.some((l) => l.startsWith(`depctl ${cmd}`)), cmd).toBe(true);
    }
    expect(lines.some((l) => l.startsWith('curl ') && l.includes('to=previous') && l.includes('/rollback'))).toBe(true);
    // The printed depctl runs as printed, through the demo's shim.
    const show = lines.find((l) => l.startsWith('depctl show hello')) ?? '';
    const [, ...showArgs] = words(show);
    const shown = await promisify(execFile)(join(env['PATH'] ?? '', 'depctl'), showArgs, {
      env: { ...env, PATH: `${env['PATH'] ?? ''}:${process.env['PATH'] ?? ''}`, HOME: work },
      timeout: 60_000,
    });
    expect(shown.stdout).toMatch(/hello/);
    expect(lines.some((l) => l.startsWith('kubectl --kubeconfig ') && l.includes('-n demo'))).toBe(true);

    stdout.closeReader();
    demo.kill('SIGINT');
    expect(await exit, stderr.join('')).toBe(0);
    // stdout is gone: the last words go to stderr rather than killing the demo with EPIPE.
    expect(stderr.join('')).toMatch(/^demo: stopped$/m);
    expect(stderr.join('')).not.toMatch(/EPIPE/);
    expect(processesMentioning(base)).toEqual([]);
    // Nor the watchdog of the ground's process helpers, which names the demo's pid file.
    expect(processesMentioning(`deployer-ground-pids/${demo.pid ?? ''}.pids`)).toEqual([]);
    expect(existsSync(base)).toBe(false);
    expect(existsSync(join(tmpdir(), 'deployer-ground-pids', `${demo.pid ?? ''}.pids`))).toBe(false);
  }, 420_000);
});

describe('npm run demo that fails', () => {
  it('exits 1, keeps only its logs, and says where they are', async () => {
    // The port the demo is told to use is taken: its deployer cannot listen, after the servers started.
    const taken = createServer();
    await new Promise<void>((resolve) => taken.listen(0, '127.0.0.1', resolve));
    const address = taken.address();
    const port = typeof address === 'object' && address !== null ? address.port : 0;
    try {
      const demo = spawn(process.execPath, ['--import', 'tsx', 'scripts/demo.ts', '--port', String(port)], {
        cwd: process.cwd(),
        env: { PATH: process.env['PATH'] ?? '', HOME: process.env['HOME'] ?? '/tmp' },
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      children.push(demo);
      let out = '';
      demo.stdout?.setEncoding('utf8').on('data', (c: string) => (out += c));
      demo.stderr?.setEncoding('utf8').on('data', (c: string) => (out += c));
      const code = await new Promise<number | string>((resolve) => demo.on('exit', (c, signal) => resolve(c ?? signal ?? 'unknown')));
      expect(code, out).toBe(1);
      expect(out).toMatch(/EADDRINUSE/);
      const kept = /^demo: failed; the logs are kept in (\S+)\/logs \(remove (\S+) when done\)$/m.exec(out);
      expect(kept, out).not.toBeNull();
      const base = kept?.[1] ?? '';
      expect(kept?.[2]).toBe(base);
      try {
        expect(readdirSync(base)).toEqual(['logs']);
        expect(readdirSync(join(base, 'logs'))).toEqual(expect.arrayContaining(['kube-apiserver.log']));
      } finally {
        rmSync(base, { recursive: true, force: true });
      }
      expect(out).toMatch(/^demo: stopped$/m);
    } finally {
      taken.close();
    }
  }, 420_000);
});
