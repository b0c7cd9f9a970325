/**
 * The deploy under the bounded load of the second hardening round: 200 slow connections, 100 verdict waits whose
 * callers hang up, 100 read-token fetches of unknown commits and a registry answering 400 MB, all at once
 * (test/hardening/combined-load.ts, the same scenario the hardening test asserts on), while CI deploys a new commit.
 * Reports the deploy's time (target ≤ 2 s) and the deployer's peak RSS (target < 400 MiB), each next to the same
 * deploy without load in the same run, in the same process.
 *
 *   npx tsx bench/hardening-load.ts [--runs N] [--baseline-runs N] [--components [--kinds none,all]]
 *
 * starts its own test ground (apiserver, registries, git server) and writes bench/results/hardening-load.txt;
 * `npm run bench` runs it as one section of its report (BENCH_LOAD_RUNS, BENCH_LOAD_BASELINE_RUNS). Not a test:
 * nothing here asserts a duration, a missed target is reported. BENCH_KEEP=1 keeps the scratch directory (logs).
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { startDeployerProcess, sampleMax, type DeployerProcess } from './lib/deployer-process.js';
import { createNamespaces, newVersion, serviceFiles, serviceRepo, tagOf, type BenchRepo } from './lib/fixtures.js';
import { callsBetween, clientLag, deployTimeline, scrapeMetrics } from './lib/load-probe.js';
import type { Row } from './lib/report.js';
import { formatBytes, formatMs, formatRatio, summarize } from './lib/stats.js';
import { createRepo } from '../test/env/git-fixtures.js';
import { startGitServer } from '../test/env/git-server.js';
import type { GitGround, KubeGround } from '../test/env/ground.js';
import { startKube } from '../test/env/kube-plane.js';
import { freePort, waitFor } from '../test/env/processes.js';
import { startRegistries } from '../test/env/registry-server.js';
import { combinedLoad, DONE_WHEN, ONE_AT_A_TIME, openConnectionsOn, strayGitProcesses, type LoadOutcome, type LoadShape } from '../test/hardening/combined-load.js';
import { HUGE, startHostileRegistry, stream } from '../test/hardening/hostile-registry.js';

const PROJECT = join(dirname(fileURLToPath(import.meta.url)), '..');
const KUBECTL = '/usr/bin/kubectl';
const MiB = 1024 * 1024;
const TOKEN = 'bench-token-0123456789abcdef';
const READER = 'bench-reader-0123456789abcdef';
const auth = (user: string, secret: string): string => `Basic ${Buffer.from(`${user}:${secret}`).toString('base64')}`;

export interface HardeningLoadOptions {
  /** A scratch directory of this measurement (the deployer's cache and log). */
  readonly dir: string;
  readonly kube: KubeGround;
  /** The ground's anonymous registry, `127.0.0.1:PORT`. */
  readonly registry: string;
  readonly git: GitGround;
  /** Deploys under load (each a full scenario, about 40 s: the slow connections last until the request timeout). */
  readonly runs: number;
  /** The same deploys without load, first. */
  readonly baselineRuns: number;
  /**
   * Also one deploy under each kind of load alone (and none, and all), each with what it waited for: the event-loop
   * delay of both processes, the deployer's upstream calls, the deploy's steps from its log (at debug level).
   */
  readonly components?: boolean;
  /** With `components`: only these kinds (none, slow, waits, reads, huge, all). */
  readonly kinds?: readonly string[] | undefined;
  /** Node's arguments for the deployer (a CPU profile: `--cpu-prof`). */
  readonly nodeArgs?: readonly string[] | undefined;
  readonly say: (line: string) => void;
}

export interface HardeningLoadResult {
  readonly rows: Row[];
  /** The figures as plain text lines, for a terminal or a results file. */
  readonly lines: string[];
}

/** One deploy as CI sends it (`curl --data commit=...`). */
async function deploy(url: string, service: string, commit: string): Promise<{ status: number; ms: number; text: string }> {
  const start = performance.now();
  const res = await fetch(`${url}/${service}/deploy`, {
    method: 'PUT',
    headers: { authorization: auth('bench', TOKEN), 'content-type': 'application/x-www-form-urlencoded', 'user-agent': 'curl/8.5.0' },
    body: new URLSearchParams({ commit }).toString(),
  });
  const text = await res.text();
  return { status: res.status, ms: performance.now() - start, text };
}

/** Until the deployer is at rest again: no connection open on its port, no git process but its object readers. */
async function settled(d: DeployerProcess, port: number): Promise<void> {
  await waitFor(() => Promise.resolve(openConnectionsOn(port) === 0 && strayGitProcesses(d.pid).length === 0), {
    timeoutMs: 120_000,
    intervalMs: 500,
    what: 'the deployer to settle after the load',
  });
}

export async function measureHardeningLoad(options: HardeningLoadOptions): Promise<HardeningLoadResult> {
  const { dir, kube, registry, git, say } = options;
  const huge = await startHostileRegistry((_req, res, sent) => {
    sent(stream(res, { total: HUGE, chunk: Buffer.from('"t-xxxxxxxx",'.repeat(5000)), prefix: '{"tags":[' }));
  });
  let deployer: DeployerProcess | undefined;
  try {
    const ci: BenchRepo = await serviceRepo({ gitRoot: git.root, registry, name: 'load-ci' });
    const waiting: BenchRepo = await serviceRepo({ gitRoot: git.root, registry, name: 'load-wait' });
    const big = await createRepo(git.root, 'load-huge', [{ files: serviceFiles('load-huge', `${huge.host}/team/app`, 'v0') }]);
    const repository = (urlPath: string) => ({
      url: `${git.baseUrl}${urlPath}`,
      credentials: { username: git.username, password: { value: git.password } },
    });
    await createNamespaces({ kubectl: KUBECTL, kubeconfig: kube.adminKubeconfig, names: ['bench-load-ci', 'bench-load-wait', 'bench-load-huge'], dir });
    const port = await freePort();
    deployer = await startDeployerProcess({
      projectDir: PROJECT,
      dir,
      port,
      args: options.nodeArgs === undefined ? undefined : [...options.nodeArgs, '--import', 'tsx', 'src/main.ts'],
      config: {
        logLevel: options.components === true ? 'debug' : 'info',
        listen: { host: '127.0.0.1', port },
        tokens: { bench: { secret: { value: TOKEN } }, reader: { secret: { value: READER }, actions: ['read'] } },
        services: {
          [ci.name]: { repository: repository(ci.repo.urlPath), namespace: 'bench-load-ci' },
          [waiting.name]: { repository: repository(waiting.repo.urlPath), namespace: 'bench-load-wait' },
          'load-huge': { repository: repository(big.urlPath), namespace: 'bench-load-huge' },
        },
        registries: { [registry]: { insecure: true }, [huge.host]: { insecure: true } },
        cache: { dir: join(dir, 'cache') },
        versions: { registryWaitSeconds: 0 },
        kubernetes: { kubeconfig: kube.adminKubeconfig },
      },
    });
    const d = deployer;
    const first = await deploy(d.url, ci.name, ci.repo.shas[0] ?? '');
    if (first.status !== 200) throw new Error(`the first deploy answered ${first.status}: ${first.text.slice(0, 300)}`);
    const idle = d.rss();

    say(`hardening load: ${options.baselineRuns} deploys without load`);
    const baseline: number[] = [];
    const resetOk = d.resetPeak();
    const baselineSampler = sampleMax(() => d.rss());
    for (let i = 0; i < options.baselineRuns; i++) {
      const sha = await newVersion({ gitRoot: git.root, registry, repo: ci, value: `quiet-${i}` });
      const a = await deploy(d.url, ci.name, sha);
      if (a.status === 200) baseline.push(a.ms);
      else say(`deploy without load answered ${a.status}: ${a.text.slice(0, 200)}`);
    }
    const baselinePeak = Math.max(baselineSampler.stop(), resetOk ? d.peak() : 0);

    const targets = (commit: string, requestId?: string) => ({
      url: d.url,
      deploy: { auth: auth('bench', TOKEN), service: ci.name, commit, requestId },
      wait: { auth: auth('bench', TOKEN), service: waiting.name, tag: tagOf(waiting.repo.shas[0] ?? '') },
      read: { auth: auth('reader', READER), service: ci.name },
      hugeRegistry: { auth: auth('reader', READER), service: 'load-huge' },
    });
    const components: string[] = [];
    if (options.components === true) {
      const shapes: Array<[string, LoadShape]> = [...Object.entries(ONE_AT_A_TIME), ['all', DONE_WHEN]];
      for (const [name, shape] of shapes.filter(([n]) => options.kinds === undefined || options.kinds.includes(n))) {
        say(`hardening load, one kind at a time: ${name}`);
        const sha = await newVersion({ gitRoot: git.root, registry, repo: ci, value: `component-${name}` });
        const requestId = `bench-${name}-${sha.slice(0, 7)}`;
        const before = await scrapeMetrics(d.url);
        const client = clientLag();
        let probe = '';
        const outcome = await combinedLoad(targets(sha, requestId), shape, {
          deployAnswered: async () => {
            const lag = client.stop();
            const after = await scrapeMetrics(d.url);
            probe =
              `event-loop delay max/p99: deployer ${after.lagMaxMs.toFixed(0)}/${after.lagP99Ms.toFixed(0)} ms, load generator ${lag.maxMs.toFixed(0)}/${lag.p99Ms.toFixed(0)} ms\n` +
              callsBetween(before, after).map((c) => `    ${c}`).join('\n');
          },
        });
        const engine = typeof outcome.deploy.body['durationMs'] === 'number' ? formatMs(outcome.deploy.body['durationMs']) : '–';
        components.push(
          `${name.padEnd(5)} deploy ${outcome.deploy.status} ${formatMs(outcome.deploy.ms)} (engine ${engine})`,
          `    ${deployTimeline(d.logFile, requestId, outcome.deploy.sentAt, ci.repo.urlPath)}`,
          `    ${probe}`,
        );
        say(components.slice(-3).join('\n'));
        await settled(d, port);
      }
    }

    const loaded: number[] = [];
    const outcomes: LoadOutcome[] = [];
    let loadPeak = 0;
    const problems: string[] = [];
    for (let i = 0; i < options.runs; i++) {
      say(`hardening load: run ${i + 1}/${options.runs} (${DONE_WHEN.slowConnections} slow connections, ${DONE_WHEN.abandonedWaits} abandoned waits, ${DONE_WHEN.readFetches} read fetches, a ${HUGE / MiB} MB registry answer, one CI deploy)`);
      const sha = await newVersion({ gitRoot: git.root, registry, repo: ci, value: `loaded-${i}` });
      if (resetOk) d.resetPeak();
      const sampler = sampleMax(() => d.rss());
      const outcome = await combinedLoad(targets(sha));
      loadPeak = Math.max(loadPeak, sampler.stop(), resetOk ? d.peak() : 0);
      outcomes.push(outcome);
      if (outcome.deploy.status === 200) loaded.push(outcome.deploy.ms);
      else problems.push(`run ${i + 1}: the deploy answered ${outcome.deploy.status} ${JSON.stringify(outcome.deploy.body).slice(0, 200)}`);
      say(
        `  deploy ${outcome.deploy.status} in ${formatMs(outcome.deploy.ms)}; waits ${outcome.waits.refused} refused, ${outcome.waits.abandoned} abandoned; ` +
          `reads ${JSON.stringify(outcome.reads)}; registry ${outcome.huge?.status ?? '–'}; slow connections closed by the server ${outcome.slow.closedByServer}/${outcome.slow.opened}`,
      );
      await settled(d, port);
    }
    const after = d.rss();
    const alive = d.rss() > 0;

    const base = summarize(baseline);
    const load = summarize(loaded);
    const rows: Row[] = [
      { section: 'Hardening load', figure: 'CI deploy without load (same process, same repository)', samples: baseline },
      {
        section: 'Hardening load',
        figure: `CI deploy under the combined load${problems.length > 0 ? ` (${problems.length} failed)` : ''}`,
        samples: loaded,
        baselineP50: base.p50,
        target: '≤ 2 s',
        met: problems.length === 0 && load.max <= 2000,
        note: `${DONE_WHEN.slowConnections} slow connections, ${DONE_WHEN.abandonedWaits} abandoned waits, ${DONE_WHEN.readFetches} read fetches, a 400 MB registry answer`,
      },
      { section: 'Hardening load', figure: `deployer peak RSS without load (${resetOk ? 'VmHWM after clear_refs, and' : ''} 25 ms samples)`, bytes: baselinePeak },
      { section: 'Hardening load', figure: 'deployer peak RSS under the combined load', bytes: loadPeak, target: '< 400 MiB', met: loadPeak < 400 * MiB },
      { section: 'Hardening load', figure: 'deployer RSS before the load / after it settled', bytes: after, note: `before: ${formatBytes(idle)}` },
    ];
    const lines = [
      `deploy without load      p50 ${formatMs(base.p50)}  max ${formatMs(base.max)}  (${base.n} deploys)`,
      `deploy under the load    p50 ${formatMs(load.p50)}  max ${formatMs(load.max)}  (${load.n} of ${options.runs})  ${formatRatio(load.p50, base.p50)} of the baseline; target ≤ 2 s: ${load.n > 0 && load.max <= 2000 && problems.length === 0 ? 'met' : 'MISSED'}`,
      `peak RSS without load    ${formatBytes(baselinePeak)}`,
      `peak RSS under the load  ${formatBytes(loadPeak)}  target < 400 MiB: ${loadPeak < 400 * MiB ? 'met' : 'MISSED'}`,
      `RSS idle before / after  ${formatBytes(idle)} / ${formatBytes(after)}; the process ${alive ? 'lived' : 'died'}`,
      ...outcomes.map(
        (o, i) =>
          `run ${i + 1}: deploy ${o.deploy.status} ${formatMs(o.deploy.ms)} (engine ${typeof o.deploy.body['durationMs'] === 'number' ? formatMs(o.deploy.body['durationMs']) : '–'}); waits ${o.waits.refused} refused / ${o.waits.abandoned} abandoned; reads ${JSON.stringify(o.reads)}; registry ${o.huge?.status ?? '–'}; slow ${o.slow.closedByServer}/${o.slow.opened} closed by the server ${JSON.stringify(o.slow.answers)}`,
      ),
      ...problems,
      ...(components.length > 0 ? ['', 'one kind of load at a time (deployer at debug level):', ...components] : []),
    ];
    return { rows, lines };
  } finally {
    await deployer?.stop();
    await huge.close();
  }
}

const positive = (name: string, raw: string | undefined, fallback: number): number => {
  const n = raw === undefined || raw === '' ? fallback : Number(raw);
  if (!Number.isInteger(n) || n < 1) throw new Error(`${name} must be a positive integer, not ${raw}`);
  return n;
};

/** `--runs N` and `--baseline-runs N` from the command line. */
function argument(name: string): string | undefined {
  const i = process.argv.indexOf(name);
  return i < 0 ? undefined : process.argv[i + 1];
}

async function main(): Promise<void> {
  const runs = positive('--runs', argument('--runs'), 3);
  const baselineRuns = positive('--baseline-runs', argument('--baseline-runs'), 5);
  const components = process.argv.includes('--components');
  const kinds = argument('--kinds')?.split(',');
  // BENCH_CPU_PROF=DIR: the deployer writes a V8 CPU profile there when it stops.
  const profileDir = process.env['BENCH_CPU_PROF'];
  const nodeArgs = profileDir === undefined || profileDir === '' ? undefined : ['--cpu-prof', '--cpu-prof-dir', profileDir];
  const say = (line: string): void => void process.stdout.write(`[load ${new Date().toISOString().slice(11, 19)}] ${line}\n`);
  const base = mkdtempSync(join(tmpdir(), 'deployer-bench-load-'));
  const logs = join(base, 'logs');
  const stops: Array<() => Promise<void>> = [];
  const load = loadavg().map((l) => l.toFixed(1)).join(' / ');
  try {
    say(`starting the test ground in ${base}`);
    const parts = await Promise.allSettled([startKube(join(base, 'kube'), logs), startRegistries(join(base, 'registry'), logs), startGitServer(join(base, 'git'), logs)]);
    for (const p of parts) if (p.status === 'fulfilled') stops.push(() => p.value.stop());
    const [kube, registries, git] = parts;
    if (kube.status === 'rejected' || registries.status === 'rejected' || git.status === 'rejected') {
      throw new Error(`the test ground did not start (logs in ${logs})`, { cause: parts.find((p) => p.status === 'rejected')?.reason });
    }
    const dir = join(base, 'deployer');
    mkdirSync(dir, { recursive: true });
    const result = await measureHardeningLoad({ dir, kube: kube.value.info, registry: registries.value.info.anonymous, git: git.value.info, runs, baselineRuns, components, kinds, nodeArgs, say });
    const text = [
      `# npx tsx bench/hardening-load.ts --runs ${runs} --baseline-runs ${baselineRuns}${components ? ' --components' : ''} — ${new Date().toISOString()}`,
      `# load average at start (1/5/15 min) ${load}, at the end ${loadavg().map((l) => l.toFixed(1)).join(' / ')}`,
      ...result.lines,
    ].join('\n');
    process.stdout.write(`\n${text}\n`);
    writeFileSync(join(PROJECT, 'bench', 'results', 'hardening-load.txt'), `${text}\n`);
  } finally {
    for (const stop of stops.reverse()) await stop().catch(() => undefined);
    if (process.env['BENCH_KEEP'] === '1') say(`kept ${base} (the deployer's log: ${join(base, 'deployer', 'deployer.log')})`);
    else rmSync(base, { recursive: true, force: true });
  }
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  main().catch((err: unknown) => {
    process.stderr.write(`${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    process.exitCode = 1;
  });
}
