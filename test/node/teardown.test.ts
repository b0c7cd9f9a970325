import { execFile, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, describe, expect, it } from 'vitest';
import type { NodeGround } from '../env/ground.js';
import { sweepLeftovers } from '../env/ground-net.js';
import { waitFor } from '../env/processes.js';

/**
 * Nothing of the ground outlives a test run, however it ends. Each case runs a test run of its own (vitest with
 * test/node/fixtures/vitest.config.ts: kube, registry and the node, one real pod), ends it, and then looks at the
 * machine: no process of that ground, no mount, no network namespace, no link, no cgroup, no iptables chain of it.
 * A SIGKILLed runner cannot clean up after itself: its watchdog kills the ground, and the next run's sweep removes
 * the rest; the test plays the next run by calling the sweep.
 */

const run = promisify(execFile);
const ROOT = join(dirname(new URL(import.meta.url).pathname), '..', '..');

type End = 'pass' | 'fail' | 'sigterm' | 'sigkill';

interface Outcome {
  node: NodeGround;
  exit: number | string;
  output: string;
}

/** Runs the fixture in a vitest run of its own; for sigterm/sigkill, kills the runner once the pod runs. */
async function runFixture(end: End): Promise<Outcome> {
  const scratch = mkdtempSync(join(tmpdir(), 'deployer-teardown-'));
  const report = join(scratch, 'node.json');
  const child = spawn(process.execPath, [join(ROOT, 'node_modules', 'vitest', 'vitest.mjs'), 'run', '--config', 'test/node/fixtures/vitest.config.ts'], {
    cwd: ROOT,
    env: {
      // The outer run's own VITEST_* variables would make the inner vitest think it is a worker.
      ...Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('VITEST'))),
      TESTGROUND_PARTS: 'kube,registry,node',
      HOLD_A_POD_REPORT: report,
      HOLD_A_POD_END: end === 'pass' || end === 'fail' ? end : 'hang',
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  child.stdout.on('data', (c: Buffer) => (output += c.toString('utf8')));
  child.stderr.on('data', (c: Buffer) => (output += c.toString('utf8')));
  const exited = new Promise<number | string>((resolve) => child.once('exit', (code, signal) => resolve(code ?? signal ?? 'unknown')));
  try {
    await waitFor(() => Promise.resolve(existsSync(report) && readFileSync(report, 'utf8') !== ''), {
      what: `the fixture run to hold a running pod; output so far:\n${output}`,
      // A whole test run of its own starts first (apiserver, node, image pull): minutes on a loaded machine.
      timeoutMs: 420_000,
      intervalMs: 500,
    }).catch((err: unknown) => {
      child.kill('SIGKILL');
      throw new Error(`${String(err)}\n${output}`);
    });
    const node = JSON.parse(readFileSync(report, 'utf8')) as NodeGround;
    if (end === 'sigterm') child.kill('SIGTERM');
    if (end === 'sigkill') child.kill('SIGKILL');
    return { node, exit: await exited, output };
  } finally {
    rmSync(scratch, { recursive: true, force: true });
  }
}

function processesMentioning(text: string): string[] {
  const found: string[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry) || Number(entry) === process.pid) continue;
    try {
      const cmd = readFileSync(`/proc/${entry}/cmdline`, 'utf8').replaceAll('\0', ' ');
      if (cmd.includes(text)) found.push(`${entry}: ${cmd}`);
    } catch {
      // gone meanwhile
    }
  }
  return found;
}

function cgroupsNamed(name: string): string[] {
  return readdirSync('/sys/fs/cgroup')
    .map((subsystem) => join('/sys/fs/cgroup', subsystem, name))
    .filter((dir) => existsSync(dir));
}

/** What remains of the ground `node` on the machine (empty when nothing does). */
async function leftovers(node: NodeGround): Promise<string[]> {
  const left: string[] = [];
  const base = dirname(node.runDir);
  left.push(...processesMentioning(base).map((p) => `process ${p}`));
  if (existsSync(`/proc/${node.initPid}`)) left.push(`ground init ${node.initPid}`);
  left.push(...readFileSync('/proc/self/mountinfo', 'utf8').split('\n').filter((l) => l.includes(base)).map((l) => `mount ${l}`));
  left.push(...cgroupsNamed(node.cgroupRoot.slice(1)).map((c) => `cgroup ${c}`));
  const links = await run('ip', ['-o', 'link', 'show']);
  if (links.stdout.split('\n').some((l) => l.includes(`${node.hostLink}@`) || l.includes(`${node.hostLink}:`))) left.push(`link ${node.hostLink}`);
  const routes = await run('ip', ['route', 'show']);
  left.push(...routes.stdout.split('\n').filter((l) => l.includes(node.podCidr) || l.includes(node.serviceCidr)).map((l) => `route ${l}`));
  const netns = await run('ip', ['netns', 'list']);
  left.push(...netns.stdout.split('\n').filter((l) => l.startsWith('cni-')).map((l) => `netns ${l}`));
  const rules = await run('iptables-save', []);
  left.push(...rules.stdout.split('\n').filter((l) => /KUBE-|CNI-/.test(l)).map((l) => `iptables ${l}`));
  return left;
}

async function expectNothingLeft(node: NodeGround): Promise<void> {
  let left: string[] = [];
  await waitFor(
    async () => {
      left = await leftovers(node);
      return left.length === 0;
    },
    { what: 'the ground to be gone', timeoutMs: 20_000, intervalMs: 300 },
  ).catch(() => undefined);
  // The leftovers first: a failed run's closing list shows an error's first lines only.
  expect(left, `left of the ground: ${left.join('; ')}`).toEqual([]);
}

describe('nothing of the ground remains after a run', () => {
  const kept: string[] = [];
  afterAll(() => {
    for (const dir of kept) rmSync(dir, { recursive: true, force: true });
  });

  it('that passed: everything is stopped and its folder removed', async () => {
    const { node, exit, output } = await runFixture('pass');
    expect(exit, output).toBe(0);
    await expectNothingLeft(node);
    expect(existsSync(dirname(node.runDir))).toBe(false);
  }, 480_000);

  it('that failed: everything is stopped, its folder kept and named', async () => {
    const { node, exit, output } = await runFixture('fail');
    expect(exit).toBe(1);
    await expectNothingLeft(node);
    const base = dirname(node.runDir);
    kept.push(base);
    expect(existsSync(join(base, 'logs', 'kubelet.log'))).toBe(true);
    expect(output).toContain(`test ground files (logs, state) kept in ${base}`);
    // The failed tests come last, after the ground's logs: a CI log cut to its tail still names them.
    const list = output.lastIndexOf('Failed (1):\n  test/node/fixtures/hold-a-pod.fixture.ts > holds a running pod\n    AssertionError: ');
    expect(list, output).toBeGreaterThan(output.lastIndexOf('----- kubelet.log -----'));
  }, 480_000);

  it.each(['sigterm', 'sigkill'] as const)('whose runner got %s: gone, at the latest after the next run sweeps', async (end) => {
    const { node } = await runFixture(end);
    kept.push(dirname(node.runDir));
    // The runner's exit handler (SIGTERM) or its watchdog (SIGKILL) kills the ground; the cgroups of killed pods
    // are removed by the next run's sweep.
    await waitFor(() => Promise.resolve(!existsSync(`/proc/${node.initPid}`)), { what: 'the ground init to die', timeoutMs: 20_000 });
    sweepLeftovers();
    await expectNothingLeft(node);
  }, 480_000);
});
