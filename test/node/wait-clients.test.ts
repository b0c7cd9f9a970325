import { execFile } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { load as loadYaml } from 'js-yaml';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildCli, runCli, type BuiltCli, type CliResult } from '../cli/helpers.js';
import { basic } from '../e2e/setup.js';
import { send } from '../e2e/flows-setup.js';
import { adminClient } from '../env/kube-helpers.js';
import { configMapYaml } from '../env/manifests.js';
import { podLogs, sampleManifests, startSampleService, type SampleService } from './real-pods.js';

/**
 * The clients that wait for a rollout — `depctl --wait` and the example promote CronJob — against pods that really
 * run: success when the kubelet's readiness probes pass, a timeout when a version's probe never does, a failure by a
 * real CrashLoopBackOff. Nobody writes pod status here.
 */

const DEV_SECRET = 'dev-secret-wa1t-real';
const CRON_SECRET = 'cron-secret-wa1t-real';
const SPINNER = /[▁▃▅▆▇█]/;

const describeResult = (r: CliResult): string => `exit ${r.code}\n--- stdout\n${r.stdout}\n--- stderr\n${r.stderr}`;

interface CronJobExample {
  spec: { jobTemplate: { spec: { template: { spec: { containers: Array<{ args: string[]; env: Array<{ name: string; value?: string }> }> } } } } };
}

/** Runs the script of kubernetes/examples/promote-cronjob.yaml as its container would, with the local curl. */
function runPromoteCronJob(env: Record<string, string>): Promise<CliResult> {
  const job = loadYaml(readFileSync(new URL('../../kubernetes/examples/promote-cronjob.yaml', import.meta.url), 'utf8')) as CronJobExample;
  const container = job.spec.jobTemplate.spec.template.spec.containers[0];
  const script = container?.args[0] ?? '';
  const defaults = Object.fromEntries((container?.env ?? []).flatMap((e) => (e.value === undefined ? [] : [[e.name, e.value]])));
  return new Promise((resolve) => {
    execFile('sh', ['-c', script], { env: { PATH: process.env['PATH'], ...defaults, ...env }, timeout: 400_000 }, (err, stdout, stderr) => {
      const code = err === null ? 0 : typeof err.code === 'number' ? err.code : 1;
      resolve({ code, stdout, stderr });
    });
  });
}

describe('waiting for the rollout on real pods: depctl --wait and the promote CronJob', () => {
  let cli: BuiltCli;
  let shop: SampleService;
  let env: Record<string, string>;
  const work = mkdtempSync(join(tmpdir(), 'depctl-wait-'));
  /** A home without ~/.deployer: only the environment configures depctl. */
  const home = join(work, 'home');
  mkdirSync(home);
  const tag = (i: number): string => shop.tag(i);
  const name = (): string => shop.svc.name;
  const commit = (i: number): string => shop.svc.repo.shas[i] ?? '';
  const depctl = (args: readonly string[]): Promise<CliResult> => runCli(cli, args, { env });
  const readCanary = (): Promise<unknown> =>
    adminClient()
      .apps.readNamespacedDeployment({ name: 'shop-canary', namespace: shop.namespace })
      .catch(() => undefined);

  /** depctl on a terminal: `script` gives it a pseudo-terminal; the words are checked to need no quoting. */
  function depctlOnTty(args: readonly string[]): Promise<CliResult> {
    const bad = args.find((a) => !/^[\w.:=@/-]+$/.test(a));
    if (bad !== undefined) throw new Error(`${bad} would need quoting`);
    return new Promise((resolve) => {
      execFile(
        'script',
        ['--quiet', '--return', '--command', ['depctl', ...args].join(' '), '/dev/null'],
        { cwd: tmpdir(), env: { PATH: `${cli.binDir}:${process.env['PATH'] ?? ''}`, TERM: 'xterm', ...env }, encoding: 'utf8', timeout: 120_000 },
        (err, stdout, stderr) => resolve({ code: err === null ? 0 : typeof err.code === 'number' ? err.code : -1, stdout, stderr }),
      );
    });
  }

  beforeAll(async () => {
    [cli, shop] = await Promise.all([
      buildCli(),
      startSampleService({
        prefix: 'wait',
        commits: (image) => [
          { files: { ...sampleManifests({ name: 'shop', image }), 'kubernetes/config.yaml': configMapYaml('shop-config', { value: 'one' }) } },
          { files: { 'kubernetes/config.yaml': configMapYaml('shop-config', { value: 'two' }) } },
          // 2: pods that run but never pass their readiness probe.
          { files: sampleManifests({ name: 'shop', image, env: { READY: 'false' } }) },
          { files: sampleManifests({ name: 'shop', image }) },
          // 4: pods that exit at start: a real CrashLoopBackOff.
          { files: sampleManifests({ name: 'shop', image, env: { CRASH_AT_START: 'true' } }) },
          { files: sampleManifests({ name: 'shop', image, env: { VERSION: 'five' } }) },
        ],
        tokens: {
          dev: { secret: { value: DEV_SECRET } },
          cron: { secret: { value: CRON_SECRET }, actions: ['promote'] },
        },
      }),
    ]);
    env = { HOME: home, DEPLOYER_URL: shop.deployer.url, DEPLOYER_AUTH_TOKEN: DEV_SECRET, DEPLOYER_TOKEN_NAME: 'dev' };
  }, 300_000);

  afterAll(async () => {
    await shop?.close();
    cli?.remove();
    rmSync(work, { recursive: true, force: true });
  });

  it('deploy --wait=3m: exit 0 once the new pods are ready; a plain line says it waits', async () => {
    const r = await depctl(['deploy', name(), '--tag', tag(0), '--wait=3m']);
    expect(r.code, `${describeResult(r)}\n${await podLogs(shop.namespace, 'shop')}`).toBe(0);
    expect(r.stdout.split('\n')[0]).toBe(`${name()} ${tag(0)} is deployed`);
    expect(r.stdout).toMatch(/rollout:\s+success: rolled out: shop: 1\/1 available/);
    expect(r.stderr.split('\n')[0]).toBe(`depctl: deploying ${name()}, waiting up to 3m for the rollout`);
    expect(r.stderr).not.toMatch(SPINNER);
  }, 240_000);

  it('canary --wait=6s on a terminal, of a version whose readiness never passes: elapsed time and pods ready while it waits; exit 70 when the wait runs out', async () => {
    const r = await depctlOnTty(['canary', name(), '--tag', tag(2), '--wait=6s']);
    expect(r.code, describeResult(r)).toBe(70);
    expect(r.stdout).toMatch(new RegExp(`\\rdeploying a canary of ${name()}: [0-6]s`));
    expect(r.stdout).toContain('0/1 pods ready');
    expect(r.stdout).toContain(`${name()} ${tag(2)} is deployed as canary`);
    expect(r.stdout).toMatch(/rollout:\s+timeout: the rollout did not finish within 6s: shop-canary: /);
    expect(r.stdout).toContain(`depctl: the rollout did not finish within 6s`);
    expect(r.stdout).toContain(`"depctl show ${name()}" says how far it got`);
  }, 120_000);

  it('promote --wait --json: exit 0 once the promoted pods are ready; the JSON carries the verdict', async () => {
    const canary = await depctl(['canary', name(), '--tag', tag(3), '--wait=3m']);
    expect(canary.code, `${describeResult(canary)}\n${await podLogs(shop.namespace, 'shop')}`).toBe(0);

    const r = await depctl(['promote', name(), '--wait', '--json']);
    expect(r.code, describeResult(r)).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({ outcome: 'promoted', tag: tag(3), verdict: { result: 'success' } });
  }, 400_000);

  it('deploy --wait: pods that crash fail the rollout: exit 1, each Deployment and the applied version named', async () => {
    const r = await depctl(['deploy', name(), '--tag', tag(4), '--wait=5m']);
    expect(r.code, describeResult(r)).toBe(1);
    expect(r.stdout).toBe('');
    expect(r.stderr).toMatch(/depctl: the rollout failed: shop: pod shop-[a-z0-9-]+: container app: CrashLoopBackOff .*\(422\)\n/);
    expect(r.stderr).toMatch(new RegExp(`  Deployment ${shop.namespace}/shop: failed: pod shop-[a-z0-9-]+: container app: CrashLoopBackOff`));
    expect(r.stderr).toContain(`  applied: ${tag(4)} (commit ${commit(4)})`);
  }, 360_000);

  it('rollback --tag --wait=3m: exit 0 once the earlier version runs again', async () => {
    const r = await depctl(['rollback', name(), '--tag', tag(0), '--wait=3m']);
    expect(r.code, `${describeResult(r)}\n${await podLogs(shop.namespace, 'shop')}`).toBe(0);
    expect(r.stdout.split('\n')[0]).toBe(`${name()} is rolled back to ${tag(0)}`);
    expect(r.stdout).toMatch(/rollout:\s+success: /);
  }, 240_000);

  it('the example CronJob promotes a canary old enough, and succeeds without doing anything when there is none', async () => {
    const canary = await send(shop.url('canary'), { auth: basic('dev', DEV_SECRET), json: { tag: tag(5) } });
    expect(canary.status, JSON.stringify(canary.body)).toBe(200);
    const cronEnv = { SERVICE: name(), DEPLOYER_URL: shop.deployer.url, TOKEN: CRON_SECRET };

    const young = await runPromoteCronJob(cronEnv);
    expect(young.code, young.stderr).toBe(0);
    expect(JSON.parse(young.stdout)).toMatchObject({ error: expect.stringMatching(/younger than 30m: not promoted$/) as unknown });
    expect(await readCanary()).toBeDefined();

    // The script asks for wait=5m: it answers once the promoted pods pass their readiness probes.
    const promoted = await runPromoteCronJob({ ...cronEnv, MIN_AGE: '0s' });
    expect(promoted.code, `${promoted.stderr}\n${await podLogs(shop.namespace, 'shop')}`).toBe(0);
    expect(JSON.parse(promoted.stdout)).toMatchObject({ outcome: 'promoted', tag: tag(5), verdict: { result: 'success' } });
    expect(await readCanary()).toBeUndefined();

    const none = await runPromoteCronJob(cronEnv);
    expect(none.code, none.stderr).toBe(0);
    expect(JSON.parse(none.stdout)).toEqual({ error: `no canary of ${name()} to promote`, service: name() });

    const denied = await runPromoteCronJob({ ...cronEnv, TOKEN: 'wrong' });
    expect(denied.code).toBe(1);
    expect(denied.stderr).toBe('promote answered 401\n');
  }, 600_000);
});
