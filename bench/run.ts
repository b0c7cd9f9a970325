/**
 * `npm run bench`: the deployer against the test ground, next to the original deployer's way of working (git
 * working copy + one `kubectl apply` per file). Prints a table and writes bench/results/LATEST.md.
 *
 * Scenarios: warm deploy, cold deploy by repository size, 100 concurrent deploys over 20 services, a burst of 10
 * deploys of distinct commits of one service (bench/lib/burst.ts), memory of the deployer's own process, canary and
 * rollback, and a per-step profile of the engine to say where the time goes. Counts and sizes can be lowered for a
 * quick try: BENCH_WARM_RUNS, BENCH_BASELINE_RUNS, BENCH_COLD_SAMPLES, BENCH_SIZES_MIB (e.g. "10,200"),
 * BENCH_CONCURRENT_SERVICES, BENCH_BURST_DEPLOYS, BENCH_CANARY_RUNS, BENCH_PROFILE_RUNS, BENCH_LOAD_RUNS and
 * BENCH_LOAD_BASELINE_RUNS (the hardening load, bench/hardening-load.ts), BENCH_BIG_WARM_RUNS and BENCH_BIG_WARM_MIB
 * (warm deploys of commits that also replace a large file, bench/lib/big-warm.ts), BENCH_FLOOR_RUNS (one git fetch
 * and one server-side apply without the deployer, bench/lib/floors.ts); BENCH_KEEP=1 keeps the scratch directory
 * (logs, repositories).
 *
 * Not a test: nothing here asserts a duration; a missed target is reported, and the exit code stays 0 unless the
 * bench itself could not run.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, release, tmpdir, totalmem } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { z } from 'zod';
import { parseConfig } from '../src/config/load.js';
import { measureHardeningLoad } from './hardening-load.js';
import { Baseline, urlWithCredentials } from './lib/baseline.js';
import { measureBigWarm } from './lib/big-warm.js';
import { measureBurst } from './lib/burst.js';
import { startDeployerProcess, sampleMax, type DeployerProcess } from './lib/deployer-process.js';
import { applyFloor, gitFetchFloor } from './lib/floors.js';
import { alias, bigRepo, createNamespaces, newVersion, run, serviceRepo, tagOf, type BenchRepo } from './lib/fixtures.js';
import { Profiler, type StepProfile } from './lib/profile.js';
import { renderReport, type Row, type StepTable } from './lib/report.js';
import { summarize, timed } from './lib/stats.js';
import { gitStats, startGitServer } from '../test/env/git-server.js';
import type { Started } from '../test/env/global-setup.js';
import type { GitGround, KubeGround, RegistryGround } from '../test/env/ground.js';
import { startKube } from '../test/env/kube-plane.js';
import { freePort } from '../test/env/processes.js';
import { startRegistries } from '../test/env/registry-server.js';

const PROJECT = join(dirname(fileURLToPath(import.meta.url)), '..');
const KUBECTL = '/usr/bin/kubectl';
const MiB = 1024 * 1024;

const envInt = (name: string, fallback: number): number => {
  const raw = process.env[name];
  const n = raw === undefined || raw === '' ? fallback : Number(raw);
  if (!Number.isInteger(n) || n < 1) throw new Error(`${name} must be a positive integer, not ${raw}`);
  return n;
};

const SETTINGS = {
  warmRuns: envInt('BENCH_WARM_RUNS', 50),
  baselineRuns: envInt('BENCH_BASELINE_RUNS', 20),
  coldSamples: envInt('BENCH_COLD_SAMPLES', 3),
  sizesMiB: (process.env['BENCH_SIZES_MIB'] ?? '10,200,1024').split(',').map((s) => Number(s.trim())),
  bigCommits: envInt('BENCH_BIG_COMMITS', 4),
  concurrentServices: envInt('BENCH_CONCURRENT_SERVICES', 20),
  concurrentPerService: envInt('BENCH_CONCURRENT_PER_SERVICE', 5),
  canaryRuns: envInt('BENCH_CANARY_RUNS', 10),
  profileRuns: envInt('BENCH_PROFILE_RUNS', 20),
  burstDeploys: envInt('BENCH_BURST_DEPLOYS', 10),
  loadRuns: envInt('BENCH_LOAD_RUNS', 3),
  loadBaselineRuns: envInt('BENCH_LOAD_BASELINE_RUNS', 5),
  bigWarmRuns: envInt('BENCH_BIG_WARM_RUNS', 3),
  bigWarmMiB: envInt('BENCH_BIG_WARM_MIB', 512),
  floorRuns: envInt('BENCH_FLOOR_RUNS', 20),
  keep: process.env['BENCH_KEEP'] === '1',
};

const TOKEN = 'bench-token-0123456789abcdef';
const AUTH = `Basic ${Buffer.from(`bench:${TOKEN}`).toString('base64')}`;

const say = (line: string): void => {
  process.stdout.write(`[bench ${new Date().toISOString().slice(11, 19)}] ${line}\n`);
};

interface Answer {
  status: number;
  ms: number;
  body: Record<string, unknown>;
  endedAt: number;
}

/** One deployer request as CI sends it (`curl --data commit=...`): form-encoded PUT with basic auth. */
async function call(url: string, form: Record<string, string> = {}): Promise<Answer> {
  const start = performance.now();
  const res = await fetch(url, {
    method: 'PUT',
    headers: { authorization: AUTH, 'content-type': 'application/x-www-form-urlencoded', 'user-agent': 'curl/8.5.0' },
    body: new URLSearchParams(form).toString(),
    signal: AbortSignal.timeout(120_000),
  });
  const text = await res.text();
  const endedAt = performance.now();
  let body: Record<string, unknown>;
  try {
    body = JSON.parse(text) as Record<string, unknown>;
  } catch {
    body = { raw: text.slice(0, 200) };
  }
  return { status: res.status, ms: endedAt - start, body, endedAt };
}

function mustSucceed(what: string, answer: Answer): Answer {
  if (answer.status !== 200) throw new Error(`${what} answered ${answer.status}: ${JSON.stringify(answer.body).slice(0, 500)}`);
  return answer;
}

/** Set-up deploys (not measured): failures are retried twice and remembered for the report, not fatal. */
const setupFailures: string[] = [];
async function setupDeploy(what: string, url: string, form: Record<string, string>): Promise<void> {
  for (let attempt = 1; ; attempt++) {
    const answer = await call(url, form);
    if (answer.status === 200) return;
    setupFailures.push(`${what} (attempt ${attempt}): ${errorOf(answer)}`);
    say(`set-up deploy failed, ${attempt < 3 ? 'retrying' : 'giving up'}: ${what}: ${errorOf(answer)}`);
    if (attempt >= 3) mustSucceed(what, answer);
  }
}

const errorOf = (a: Answer): string => {
  const text = a.body['error'] ?? a.body['message'];
  return `${a.status} ${(typeof text === 'string' ? text : JSON.stringify(a.body)).slice(0, 200)}`;
};

/** Machine, date and commit for the report's head. */
function machine(): Record<string, string> {
  const cmd = (command: string, args: string[], cwd?: string): string => {
    try {
      return execFileSync(command, args, { cwd, encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
    } catch {
      return 'unknown';
    }
  };
  const dirty = cmd('git', ['status', '--porcelain', '--untracked-files=no'], PROJECT);
  const cpu = cpus();
  return {
    date: new Date().toISOString(),
    commit: `${cmd('git', ['rev-parse', 'HEAD'], PROJECT)}${dirty === '' || dirty === 'unknown' ? '' : ' (with uncommitted changes)'}`,
    cpu: `${cpu.length} × ${cpu[0]?.model ?? 'unknown'}`,
    memory: `${(totalmem() / 1024 ** 3).toFixed(1)} GiB`,
    kernel: release(),
    node: process.version,
    git: cmd('git', ['--version']),
    kubectl: cmd(KUBECTL, ['version', '--client', '--output=yaml']).match(/gitVersion: (\S+)/)?.[1] ?? 'unknown',
    cluster: 'kube-apiserver + kube-controller-manager v1.20.2 (test ground, no kubelet), etcd',
    'load average at start (1/5/15 min)': loadavg().map((l) => l.toFixed(1)).join(' / '),
  };
}

/**
 * Compiles src/ as `npm run build` does, into node_modules/.cache (so its imports resolve to the project's
 * node_modules and `../package.json` is found); gives the path of main.js.
 */
async function compileDeployer(): Promise<string> {
  const out = join(PROJECT, 'node_modules', '.cache', 'deployer-bench');
  rmSync(out, { recursive: true, force: true });
  mkdirSync(out, { recursive: true });
  writeFileSync(join(out, 'package.json'), readFileSync(join(PROJECT, 'package.json')));
  const tsc = join(PROJECT, 'node_modules', 'typescript', 'bin', 'tsc');
  const main = join(out, 'dist', 'main.js');
  try {
    await run(process.execPath, [tsc, '-p', join(PROJECT, 'tsconfig.build.json'), '--outDir', join(out, 'dist')], { cwd: PROJECT });
  } catch (err) {
    // tsc still emits when a file has type errors (a tree being worked on); only a missing main.js is fatal here.
    if (!existsSync(main)) throw err;
  }
  return main;
}

/** Deploys through the compiled build before its second idle reading. */
const COMPILED_DEPLOYS = 5;

/** The NODE_OPTIONS the Dockerfile sets for the deployer's image (its V8 flags change the RSS), if any. */
function imageNodeOptions(): string | undefined {
  const dockerfile = readFileSync(join(PROJECT, 'Dockerfile'), 'utf8');
  const match = /^ENV\b.*\bNODE_OPTIONS=(?:"([^"]*)"|(\S+))/m.exec(dockerfile);
  return match?.[1] ?? match?.[2];
}

/** RSS of a fresh node process that imported `lib` (nothing for '') and settled; undefined when that failed. */
async function importRss(lib: string): Promise<number | undefined> {
  const script =
    `if (${JSON.stringify(lib)} !== '') await import(${JSON.stringify(lib)});\n` +
    'await new Promise((r) => setTimeout(r, 500));\n' +
    "const s = (await import('node:fs')).readFileSync('/proc/self/status', 'utf8');\n" +
    'process.stdout.write(/VmRSS:\\s+(\\d+)/.exec(s)?.[1] ?? "");\n';
  try {
    const out = await run(process.execPath, ['--input-type=module', '-e', script], { cwd: PROJECT });
    const kb = Number(out.trim());
    return Number.isFinite(kb) && kb > 0 ? kb * 1024 : undefined;
  } catch {
    return undefined;
  }
}

const LogLine = z.object({ level: z.number(), msg: z.string().optional(), err: z.object({ message: z.string() }).optional() });

/** The deployer's warnings and errors (pino level ≥ 40), counted by message, for the report. */
function problemsIn(logFile: string): string[] {
  const counts = new Map<string, number>();
  for (const line of readFileSync(logFile, 'utf8').split('\n')) {
    if (!line.startsWith('{')) continue;
    let parsed;
    try {
      parsed = LogLine.safeParse(JSON.parse(line));
    } catch {
      continue;
    }
    if (!parsed.success || parsed.data.level < 40) continue;
    const text = `${parsed.data.msg ?? ''}${parsed.data.err === undefined ? '' : `: ${parsed.data.err.message}`}`.slice(0, 300);
    counts.set(text, (counts.get(text) ?? 0) + 1);
  }
  return [...counts].map(([text, n]) => `${n} × ${text}`);
}

const LiveObjects = z.object({
  items: z.array(
    z.object({
      kind: z.string(),
      metadata: z.object({
        name: z.string(),
        namespace: z.string().optional(),
        annotations: z.record(z.string(), z.string()).optional(),
      }),
      data: z.record(z.string(), z.string()).optional(),
      spec: z
        .object({
          template: z.object({ spec: z.object({ containers: z.array(z.object({ image: z.string() })) }) }).optional(),
        })
        .optional(),
    }),
  ),
});

async function main(): Promise<void> {
  const started = performance.now();
  const base = mkdtempSync(join(tmpdir(), 'deployer-bench-'));
  const logsDir = join(base, 'logs');
  const stops: Array<() => Promise<void>> = [];
  let deployer: DeployerProcess | undefined;
  const info = machine();
  say(`scratch directory ${base}`);
  try {
    // ---- the ground --------------------------------------------------------------------------------------------
    say('starting the test ground (apiserver, registries, git server); compiling src/ for the memory comparison');
    const build = compileDeployer().catch((err: unknown) => err as Error);
    const parts = await Promise.allSettled([
      startKube(join(base, 'kube'), logsDir),
      startRegistries(join(base, 'registry'), logsDir),
      startGitServer(join(base, 'git'), logsDir),
    ]);
    for (const p of parts) if (p.status === 'fulfilled') stops.push(() => p.value.stop());
    const failed = parts.find((p): p is PromiseRejectedResult => p.status === 'rejected');
    if (failed !== undefined) throw new Error(`the test ground did not start (logs in ${logsDir})`, { cause: failed.reason });
    const kube = (parts[0] as PromiseFulfilledResult<Started<KubeGround>>).value.info;
    const registry = (parts[1] as PromiseFulfilledResult<Started<RegistryGround>>).value.info.anonymous;
    const git = (parts[2] as PromiseFulfilledResult<Started<GitGround>>).value.info;
    const gitRoot = git.root;

    // ---- what one process costs on this machine (both ways of working start many) --------------------------------
    const rows: Row[] = [];
    const gitSpawn: number[] = [];
    for (let i = 0; i < 20; i++) gitSpawn.push((await timed(() => run('git', ['--version']))).ms);
    const kubectlSpawn: number[] = [];
    for (let i = 0; i < 5; i++) kubectlSpawn.push((await timed(() => run(KUBECTL, ['version', '--client']))).ms);
    rows.push(
      { section: 'Machine', figure: 'start of one git process (`git --version`)', samples: gitSpawn },
      { section: 'Machine', figure: 'start of one kubectl process (`kubectl version --client`)', samples: kubectlSpawn },
    );

    // ---- repositories ------------------------------------------------------------------------------------------
    say('building repositories');
    const web = await serviceRepo({ gitRoot, registry, name: 'web' });
    const baseWeb = await serviceRepo({ gitRoot, registry, name: 'base-web', objectName: 'web' });
    const canaryWeb = await serviceRepo({ gitRoot, registry, name: 'canary-web' });
    const profWeb = await serviceRepo({ gitRoot, registry, name: 'prof-web' });
    const conc: BenchRepo[] = [];
    for (let i = 1; i <= SETTINGS.concurrentServices; i++) {
      conc.push(await serviceRepo({ gitRoot, registry, name: `conc-${String(i).padStart(2, '0')}` }));
    }
    const scratch = join(base, 'scratch');
    mkdirSync(scratch, { recursive: true });
    const big: Array<{ mib: number; repo: BenchRepo; aliases: string[]; profileAlias: string; blobAlias: string; buildMs: number }> = [];
    for (const mib of SETTINGS.sizesMiB) {
      say(`building a repository with ${mib} MiB of history`);
      const built = await timed(() =>
        bigRepo({ gitRoot, registry, name: `big-${mib}`, historyBytes: mib * MiB, commits: SETTINGS.bigCommits, scratchDir: scratch }),
      );
      const aliases = Array.from({ length: SETTINGS.coldSamples }, (_, i) => alias(gitRoot, built.value.name, `big-${mib}-c${i + 1}`));
      big.push({
        mib,
        repo: built.value,
        aliases,
        profileAlias: alias(gitRoot, built.value.name, `big-${mib}-prof`),
        blobAlias: alias(gitRoot, built.value.name, `big-${mib}-blob`),
        buildMs: built.ms,
      });
    }

    // ---- namespaces and the deployer's configuration --------------------------------------------------------
    type Svc = { name: string; urlPath: string; namespace: string };
    const services: Svc[] = [
      { name: web.name, urlPath: web.repo.urlPath, namespace: 'bench-warm' },
      { name: canaryWeb.name, urlPath: canaryWeb.repo.urlPath, namespace: 'bench-canary' },
      { name: profWeb.name, urlPath: profWeb.repo.urlPath, namespace: 'bench-prof' },
      ...conc.map((c) => ({ name: c.name, urlPath: c.repo.urlPath, namespace: `bench-${c.name}` })),
      ...big.flatMap((b) =>
        [...b.aliases, b.profileAlias, b.blobAlias].map((a) => ({ name: a, urlPath: `${a}.git`, namespace: `bench-${a}` })),
      ),
    ];
    await createNamespaces({
      kubectl: KUBECTL,
      kubeconfig: kube.adminKubeconfig,
      names: [...new Set([...services.map((s) => s.namespace), 'bench-base', 'bench-base-cold', 'bench-floor'])],
      dir: base,
    });

    // ---- the floor of the two servers a warm deploy needs, without the deployer (still the Machine section) --------
    say(`floor: ${SETTINGS.floorRuns} git fetches of a new small commit, ${SETTINGS.floorRuns} server-side applies of one ConfigMap`);
    rows.push(
      await gitFetchFloor({
        gitRoot,
        registry,
        git,
        repo: await serviceRepo({ gitRoot, registry, name: 'floor-web' }),
        dir: join(base, 'floor-cache.git'),
        runs: SETTINGS.floorRuns,
      }),
      await applyFloor({ server: kube.server, token: kube.adminToken, caFile: kube.caFile, namespace: 'bench-floor', runs: SETTINGS.floorRuns }),
    );

    const rawConfig = (cacheDir: string, port: number): Record<string, unknown> => ({
      logLevel: 'info',
      listen: { host: '127.0.0.1', port },
      tokens: { bench: { secret: { value: TOKEN } } },
      services: Object.fromEntries(
        services.map((s) => [
          s.name,
          {
            repository: { url: `${git.baseUrl}${s.urlPath}`, credentials: { username: git.username, password: { value: git.password } } },
            namespace: s.namespace,
          },
        ]),
      ),
      registries: { [registry]: { insecure: true } },
      cache: { dir: cacheDir },
      versions: { registryWaitSeconds: 0 },
      kubernetes: { kubeconfig: kube.adminKubeconfig },
    });

    // ---- the deployer, idle ------------------------------------------------------------------------------------
    say('starting the deployer process');
    const deployerDir = join(base, 'deployer');
    mkdirSync(deployerDir, { recursive: true });
    const port = await freePort();
    deployer = await startDeployerProcess({ projectDir: PROJECT, dir: deployerDir, port, config: rawConfig(join(deployerDir, 'cache'), port) });
    const d = deployer;
    await new Promise((r) => setTimeout(r, 2000));
    const idleRss = d.rss();
    say(`idle RSS ${(idleRss / MiB).toFixed(1)} MiB`);
    const deployUrl = (service: string, kind = 'deploy'): string => `${d.url}/${service}/${kind}`;

    // The same configuration from the compiled build, for comparison: what tsx itself costs.
    const built = await build;
    let compiledIdle: number | undefined;
    let compiledAfterDeploys: number | undefined;
    let compiledAfterNote = '';
    let compiledNote = '';
    if (built instanceof Error) compiledNote = `not measured: ${built.message.slice(0, 200)}`;
    else {
      const cdir = join(base, 'deployer-compiled');
      mkdirSync(cdir, { recursive: true });
      const cport = await freePort();
      const compiled = await startDeployerProcess({
        projectDir: PROJECT,
        dir: cdir,
        port: cport,
        config: rawConfig(join(cdir, 'cache'), cport),
        args: [built],
        nodeOptions: imageNodeOptions(),
      });
      try {
        await new Promise((r) => setTimeout(r, 2000));
        compiledIdle = compiled.rss();
        // The same process idle again after a few deploys: what it keeps once every deploy module is loaded.
        try {
          for (let i = 0; i < COMPILED_DEPLOYS; i++) {
            const sha = await newVersion({ gitRoot, registry, repo: web, value: `i${i}` });
            mustSucceed('deploy through the compiled build', await call(`${compiled.url}/${web.name}/deploy`, { commit: sha }));
          }
          await new Promise((r) => setTimeout(r, 2000));
          compiledAfterDeploys = compiled.rss();
        } catch (err) {
          compiledAfterNote = `not measured: ${(err as Error).message.slice(0, 200)}`;
        }
      } finally {
        await compiled.stop();
      }
    }

    // ---- baseline: warm --------------------------------------------------------------------------------------
    say(`baseline: ${SETTINGS.baselineRuns} warm deploys (git fetch + checkout, kubectl apply per file)`);
    const baseline = new Baseline({
      kubectl: KUBECTL,
      kubeconfig: kube.adminKubeconfig,
      namespace: 'bench-base',
      url: urlWithCredentials(git.baseUrl, baseWeb.repo.urlPath, git.username, git.password),
      workDir: join(base, 'baseline-warm'),
      image: baseWeb.image,
    });
    await baseline.cold(baseWeb.repo.shas[0] ?? '', tagOf(baseWeb.repo.shas[0] ?? ''));
    const baseWarm: { total: number[]; git: number[]; apply: number[] } = { total: [], git: [], apply: [] };
    for (let i = 0; i < SETTINGS.baselineRuns; i++) {
      const sha = await newVersion({ gitRoot, registry, repo: baseWeb, objectName: 'web', value: `b${i}` });
      const t = await baseline.warm(sha, tagOf(sha));
      baseWarm.total.push(t.totalMs);
      baseWarm.git.push(t.gitMs);
      baseWarm.apply.push(t.applyMs);
    }
    const baseWarmP50 = summarize(baseWarm.total).p50;
    rows.push(
      { section: 'Baseline', figure: 'warm deploy (fetch + checkout + 3 × kubectl apply)', samples: baseWarm.total },
      { section: 'Baseline', figure: '… of which git fetch + checkout', samples: baseWarm.git },
      { section: 'Baseline', figure: '… of which 3 × kubectl apply', samples: baseWarm.apply },
    );

    // ---- warm deploy -------------------------------------------------------------------------------------------
    say(`warm deploy: ${SETTINGS.warmRuns} deploys, each of a new commit`);
    await setupDeploy('first deploy of web', deployUrl(web.name), { commit: web.repo.shas[0] ?? '' });
    const warm: number[] = [];
    const warmEngine: number[] = [];
    let warmErrors = 0;
    for (let i = 0; i < SETTINGS.warmRuns; i++) {
      const sha = await newVersion({ gitRoot, registry, repo: web, value: `w${i}` });
      const a = await call(deployUrl(web.name), { commit: sha });
      if (a.status !== 200) {
        warmErrors++;
        say(`warm deploy failed: ${errorOf(a)}`);
        continue;
      }
      warm.push(a.ms);
      if (typeof a.body['durationMs'] === 'number') warmEngine.push(a.body['durationMs']);
    }
    const warmP50 = summarize(warm).p50;
    rows.push(
      {
        section: 'Warm deploy',
        figure: `HTTP request, 3 objects, new commit${warmErrors > 0 ? ` (${warmErrors} errors)` : ''}`,
        samples: warm,
        baselineP50: baseWarmP50,
        target: 'p50 ≤ 80 ms and ≥ 7× faster than baseline',
        met: warmErrors === 0 && warmP50 <= 80 && baseWarmP50 / warmP50 >= 7,
      },
      { section: 'Warm deploy', figure: '… engine time (durationMs in the answer)', samples: warmEngine, baselineP50: baseWarmP50 },
    );
    // The same service and cache, commits that also replace a large file (the blobs are built before the timing).
    rows.push(
      ...(await measureBigWarm({
        gitRoot,
        gitBaseUrl: git.baseUrl,
        registry,
        repo: web,
        runs: SETTINGS.bigWarmRuns,
        mib: SETTINGS.bigWarmMiB,
        scratchDir: scratch,
        plainWarmP50: warmP50,
        logFile: d.logFile,
        deploy: (commit) => call(deployUrl(web.name), { commit }),
        say,
      })),
    );

    // ---- canary and rollback -----------------------------------------------------------------------------------
    say(`canary: ${SETTINGS.canaryRuns} canary deploys, each followed by a rollback; ${SETTINGS.canaryRuns} rollbacks to the previous version`);
    await setupDeploy('first deploy of canary-web', deployUrl(canaryWeb.name), { commit: canaryWeb.repo.shas[0] ?? '' });
    const canary: number[] = [];
    const rollbackCanary: number[] = [];
    const rollbackPrevious: number[] = [];
    let canaryErrors = 0;
    let rollbackNote = '';
    let rollbackAvailable = true;
    for (let i = 0; i < SETTINGS.canaryRuns; i++) {
      const sha = await newVersion({ gitRoot, registry, repo: canaryWeb, value: `c${i}` });
      const a = await call(deployUrl(canaryWeb.name, 'canary'), { commit: sha });
      if (a.status !== 200) {
        canaryErrors++;
        say(`canary failed: ${errorOf(a)}`);
        continue;
      }
      canary.push(a.ms);
      if (!rollbackAvailable) continue;
      // The thesis' rollback: the canary goes, stable stays.
      const r = await call(deployUrl(canaryWeb.name, 'rollback'));
      const deleted = JSON.stringify(r.body['objects'] ?? []).includes('"deleted"');
      if (r.status === 200 && deleted) rollbackCanary.push(r.ms);
      else if (rollbackCanary.length === 0) {
        rollbackAvailable = false;
        rollbackNote = `not measured: PUT /${canaryWeb.name}/rollback answered ${r.status === 200 ? `200 without deleting the canary: ${JSON.stringify(r.body).slice(0, 200)}` : errorOf(r)}`;
        say(rollbackNote);
      } else rollbackNote = `some rollbacks failed: ${errorOf(r)}`;
    }
    if (rollbackAvailable) {
      for (let i = 0; i < SETTINGS.canaryRuns; i++) {
        const sha = await newVersion({ gitRoot, registry, repo: canaryWeb, value: `s${i}` });
        await setupDeploy('stable deploy before a rollback', deployUrl(canaryWeb.name), { commit: sha });
        const r = await call(deployUrl(canaryWeb.name, 'rollback'), { to: 'previous' });
        if (r.status === 200) rollbackPrevious.push(r.ms);
        else say(`rollback to previous failed: ${errorOf(r)}`);
      }
    }
    rows.push(
      {
        section: 'Canary and rollback',
        figure: `canary deploy (HTTP)${canaryErrors > 0 ? `, ${canaryErrors} errors` : ''}`,
        samples: canary,
        baselineP50: baseWarmP50,
      },
      {
        section: 'Canary and rollback',
        figure: 'rollback of the canary (PUT /:service/rollback, no body: the canary Deployment goes)',
        samples: rollbackCanary,
        baselineP50: baseWarmP50,
        ...(rollbackNote === '' ? {} : { note: rollbackNote }),
      },
      {
        section: 'Canary and rollback',
        figure: 'rollback to the previous stable version (`to=previous`)',
        samples: rollbackPrevious,
        baselineP50: baseWarmP50,
        ...(rollbackAvailable && rollbackPrevious.length < SETTINGS.canaryRuns
          ? { note: `${SETTINGS.canaryRuns - rollbackPrevious.length} failed` }
          : rollbackAvailable
            ? {}
            : { note: 'not measured (see above)' }),
      },
    );

    // ---- concurrency -------------------------------------------------------------------------------------------
    const total = SETTINGS.concurrentServices * SETTINGS.concurrentPerService;
    say(`concurrency: ${total} deploys over ${SETTINGS.concurrentServices} services at once`);
    // First deploys of the 20 services at once (cold caches), not measured: they make the run a warm one.
    await Promise.all(conc.map((c) => setupDeploy(`first deploy of ${c.name}`, deployUrl(c.name), { commit: c.repo.shas[0] ?? '' })));
    const versions = new Map<string, { sha: string; value: string }[]>();
    await Promise.all(
      conc.map(async (c) => {
        const list: { sha: string; value: string }[] = [];
        for (let k = 0; k < SETTINGS.concurrentPerService; k++) {
          const value = `k${k}`;
          list.push({ sha: await newVersion({ gitRoot, registry, repo: c, value }), value });
        }
        versions.set(c.name, list);
      }),
    );
    const resetOk = d.resetPeak();
    const sampler = sampleMax(() => d.rss());
    const requests: Array<{ service: string; sha: string; value: string; answer: Promise<Answer> }> = [];
    for (let k = 0; k < SETTINGS.concurrentPerService; k++) {
      for (const c of conc) {
        const v = versions.get(c.name)?.[k];
        if (v === undefined) continue;
        requests.push({
          service: c.name,
          ...v,
          answer: call(deployUrl(c.name), { commit: v.sha }).catch(
            (err: unknown): Answer => ({ status: 0, ms: Number.NaN, body: { error: String(err) }, endedAt: performance.now() }),
          ),
        });
      }
    }
    const concStart = performance.now();
    const answers = await Promise.all(requests.map((r) => r.answer));
    const concWallMs = performance.now() - concStart;
    const sampledPeak = sampler.stop();
    const concPeak = resetOk ? Math.max(d.peak(), sampledPeak) : sampledPeak;
    const concErrors = answers.filter((a) => a.status !== 200);
    // For a failed deploy: does the fixture commit hold the manifests? (Tells a deployer fault from a fixture one.)
    const failures: string[] = [];
    for (const [i, a] of answers.entries()) {
      const r = requests[i];
      if (a.status === 200 || r === undefined) continue;
      const files = await run('git', ['ls-tree', '-r', '--name-only', r.sha, '--', 'kubernetes'], {
        cwd: join(gitRoot, `${r.service}.git`),
      }).catch((err: unknown) => `(ls-tree failed: ${String(err)})`);
      const line = `${r.service} ${r.sha.slice(0, 7)}: ${errorOf(a)}; the fixture commit has ${files.trim().split('\n').join(', ') || 'no kubernetes/ files'}`;
      failures.push(line);
      say(`concurrent deploy failed: ${line}`);
    }
    // The final state of each service: every object at the version of the deploy that ran last. Deploys of one
    // service run one after the other, and of those waiting only the newest runs (the others answer with
    // `supersededBy`), so the last answer without `supersededBy` is the last apply.
    const live = LiveObjects.parse(
      JSON.parse(await run(KUBECTL, ['--kubeconfig', kube.adminKubeconfig, 'get', 'deployments,configmaps,services', '--all-namespaces', '-o', 'json'])),
    );
    let correct = 0;
    const wrong: string[] = [];
    for (const c of conc) {
      const mine = requests
        .map((r, i) => ({ ...r, a: answers[i] }))
        .filter((r) => r.service === c.name && r.a?.status === 200 && r.a.body['supersededBy'] === undefined);
      const last = mine.sort((x, y) => (x.a?.endedAt ?? 0) - (y.a?.endedAt ?? 0)).at(-1);
      const ns = `bench-${c.name}`;
      const find = (kind: string, name: string) => live.items.find((o) => o.kind === kind && o.metadata.namespace === ns && o.metadata.name === name);
      const dep = find('Deployment', c.name);
      const cm = find('ConfigMap', `${c.name}-config`);
      const svc = find('Service', c.name);
      const ok =
        last !== undefined &&
        dep?.metadata.annotations?.['deployer.internal/commit'] === last.sha &&
        (dep.spec?.template?.spec.containers[0]?.image ?? '').startsWith(`${c.image}:${tagOf(last.sha)}@sha256:`) &&
        cm?.data?.['value'] === last.value &&
        svc !== undefined;
      if (ok) correct++;
      else wrong.push(c.name);
    }
    const concMs = answers.filter((a) => a.status === 200).map((a) => a.ms);
    rows.push({
      section: 'Concurrency',
      figure: `${total} deploys over ${SETTINGS.concurrentServices} services at once, ${concErrors.length} errors (wall ${(concWallMs / 1000).toFixed(1)} s)`,
      samples: concMs,
      showP99: true,
      baselineP50: baseWarmP50,
      target: 'errors 0, p99 ≤ 5 s, final state correct',
      met: concErrors.length === 0 && summarize(concMs).p99 <= 5000 && correct === conc.length,
      note:
        `errors ${concErrors.length}; ${answers.filter((a) => a.body['supersededBy'] !== undefined).length} answered as superseded by a newer deploy; ` +
        `final state correct for ${correct}/${conc.length}` +
        (wrong.length > 0 ? ` (wrong: ${wrong.join(', ')})` : '') +
        (failures.length > 0 ? `; failures: ${failures.slice(0, 3).join(' / ')}` : ''),
    });

    // ---- a burst of deploys of one service -----------------------------------------------------------------------
    const burstService = conc[0];
    if (burstService !== undefined) {
      rows.push(
        await measureBurst({
          gitRoot,
          registry,
          repo: burstService,
          namespace: `bench-${burstService.name}`,
          kubectl: KUBECTL,
          kubeconfig: kube.adminKubeconfig,
          count: SETTINGS.burstDeploys,
          deploy: (commit) => call(deployUrl(burstService.name), { commit }),
          say,
        }),
      );
    }

    // ---- memory ------------------------------------------------------------------------------------------------
    rows.push(
      { section: 'Memory', figure: 'deployer RSS idle after start (through tsx)', bytes: idleRss },
      {
        section: 'Memory',
        figure: `idle RSS of the compiled build (\`node dist/main.js\`, same config), as the image runs it (NODE_OPTIONS=${imageNodeOptions() ?? ''})`,
        ...(compiledIdle === undefined ? {} : { bytes: compiledIdle, target: '≤ 80 MiB', met: compiledIdle <= 80 * MiB }),
        ...(compiledNote === '' ? {} : { note: compiledNote }),
      },
      {
        section: 'Memory',
        figure: `… the same process idle again after ${COMPILED_DEPLOYS} deploys`,
        ...(compiledAfterDeploys === undefined ? {} : { bytes: compiledAfterDeploys }),
        ...(compiledAfterDeploys === undefined ? { note: compiledAfterNote === '' ? compiledNote : compiledAfterNote } : {}),
      },
      {
        section: 'Memory',
        figure: `deployer peak RSS during the concurrency run (${resetOk ? 'VmHWM after clear_refs, and 25 ms samples' : '25 ms samples of VmRSS'})`,
        bytes: concPeak,
        target: '≤ 200 MiB',
        met: concPeak <= 200 * MiB,
      },
    );

    // What the biggest libraries cost at rest: a bare node process against one that imported only the library.
    for (const lib of ['', '@kubernetes/client-node', 'fastify', 'simple-git']) {
      const rss = await importRss(lib);
      rows.push({
        section: 'Memory',
        figure: lib === '' ? 'for comparison: RSS of a bare node process' : `for comparison: RSS of node after importing ${lib} only`,
        ...(rss === undefined ? { note: 'not measured' } : { bytes: rss }),
      });
    }

    // ---- cold deploy by repository size ----------------------------------------------------------------------
    for (const b of big) {
      const head = b.repo.repo.shas.at(-1) ?? '';
      say(`cold: ${b.mib} MiB: ${SETTINGS.coldSamples} baseline full clones, ${SETTINGS.coldSamples} deployer first deploys`);
      const cloneMs: number[] = [];
      const baseColdMs: number[] = [];
      for (let i = 0; i < SETTINGS.coldSamples; i++) {
        const workDir = join(base, `baseline-cold-${b.mib}-${i}`);
        const cold = new Baseline({
          kubectl: KUBECTL,
          kubeconfig: kube.adminKubeconfig,
          namespace: 'bench-base-cold',
          url: urlWithCredentials(git.baseUrl, b.repo.repo.urlPath, git.username, git.password),
          workDir,
          image: b.repo.image,
        });
        const t = await cold.cold(head, tagOf(head));
        cloneMs.push(t.gitMs);
        baseColdMs.push(t.totalMs);
        rmSync(workDir, { recursive: true, force: true });
      }
      const coldMs: number[] = [];
      let coldErrors = 0;
      for (const a of b.aliases) {
        const answer = await call(deployUrl(a), { commit: head });
        if (answer.status === 200) coldMs.push(answer.ms);
        else {
          coldErrors++;
          say(`cold deploy failed: ${errorOf(answer)}`);
        }
      }
      // The same, for a commit that itself replaced the large blob (one sample).
      const blobAnswer = await call(deployUrl(b.blobAlias), { commit: b.repo.blobCommit ?? '' });
      const stats = await gitStats(git.baseUrl);
      const served = b.aliases.map((a) => stats.repos[`${a}.git`]?.bytesOut ?? 0);
      const blobServed = stats.repos[`${b.blobAlias}.git`]?.bytesOut ?? 0;
      const cloneBytes = (stats.repos[b.repo.repo.urlPath]?.bytesOut ?? 0) / SETTINGS.coldSamples;
      const cloneP50 = summarize(cloneMs).p50;
      const is1G = b.mib >= 1024;
      rows.push(
        { section: `Cold deploy, ${b.mib} MiB history`, figure: 'baseline: full git clone + checkout', samples: cloneMs, note: `${(cloneBytes / MiB).toFixed(1)} MiB from the server per clone` },
        { section: `Cold deploy, ${b.mib} MiB history`, figure: 'baseline: clone + 3 × kubectl apply', samples: baseColdMs },
        {
          section: `Cold deploy, ${b.mib} MiB history`,
          figure: `deployer first deploy, empty cache (HTTP)${coldErrors > 0 ? ` (${coldErrors} errors)` : ''}`,
          samples: coldMs,
          baselineP50: cloneP50,
          note: `${(Math.max(...served) / MiB).toFixed(2)} MiB from the server per deploy; ratio to the baseline's full clone`,
          ...(is1G
            ? { target: '≤ 3 s and < 5 % of the full clone', met: coldErrors === 0 && summarize(coldMs).p50 <= 3000 && summarize(coldMs).p50 < 0.05 * cloneP50 }
            : {}),
        },
      );
      rows.push({
        section: `Cold deploy, ${b.mib} MiB history`,
        figure: 'deployer first deploy of a commit that itself replaced the large blob (HTTP, 1 sample)',
        samples: blobAnswer.status === 200 ? [blobAnswer.ms] : [],
        baselineP50: cloneP50,
        note:
          blobAnswer.status === 200
            ? `${(blobServed / MiB).toFixed(2)} MiB from the server`
            : `failed: ${errorOf(blobAnswer)}`,
      });
      say(`cold ${b.mib} MiB: clone p50 ${cloneP50.toFixed(0)} ms, deployer p50 ${summarize(coldMs).p50.toFixed(0)} ms (built in ${(b.buildMs / 1000).toFixed(1)} s)`);
    }
    if (setupFailures.length > 0) {
      rows.push({
        section: 'Concurrency',
        figure: `set-up deploys (not measured) that failed and were retried: ${setupFailures.length}`,
        note: setupFailures.slice(0, 3).join(' / '),
      });
    }
    const overallPeak = d.peak();
    rows.push({ section: 'Memory', figure: 'deployer peak RSS over the whole bench (VmHWM at the end, includes cold runs)', bytes: overallPeak });

    // ---- the hardening load (bench/hardening-load.ts), in a deployer process of its own -------------------------
    const loadDir = join(base, 'hardening-load');
    mkdirSync(loadDir, { recursive: true });
    const hardening = await measureHardeningLoad({ dir: loadDir, kube, registry, git, runs: SETTINGS.loadRuns, baselineRuns: SETTINGS.loadBaselineRuns, say });
    rows.push(...hardening.rows);

    // ---- per-step profile ------------------------------------------------------------------------------------
    say(`profile: ${SETTINGS.profileRuns} warm deploys and one cold deploy per size through the engine in this process`);
    const profileConfig = parseConfig(rawConfig(join(base, 'profile-cache'), 0), {});
    const profiler = new Profiler(profileConfig);
    const svcOf = (name: string) => {
      const s = profileConfig.services[name];
      if (s === undefined) throw new Error(`no service ${name}`);
      return s;
    };
    await profiler.deploy(svcOf(profWeb.name), profWeb.repo.shas[0] ?? '');
    const requestsTo = async (urlPath: string): Promise<number> => (await gitStats(git.baseUrl)).repos[urlPath]?.requests ?? 0;
    const profiled = async (name: string, urlPath: string, sha: string): Promise<StepProfile> => {
      const before = await requestsTo(urlPath);
      const p = await profiler.deploy(svcOf(name), sha);
      p.gitRequests = (await requestsTo(urlPath)) - before;
      return p;
    };
    const warmProfiles: StepProfile[] = [];
    for (let i = 0; i < SETTINGS.profileRuns; i++) {
      const sha = await newVersion({ gitRoot, registry, repo: profWeb, value: `p${i}` });
      warmProfiles.push(await profiled(profWeb.name, profWeb.repo.urlPath, sha));
    }
    const servers = { [new URL(kube.server).host]: 'the apiserver', [registry]: 'the registry' };
    const stepTables: StepTable[] = [{ title: `Warm deploy (${SETTINGS.profileRuns} deploys)`, profiles: warmProfiles, servers }];
    for (const b of big) {
      const p = await profiled(b.profileAlias, `${b.profileAlias}.git`, b.repo.repo.shas.at(-1) ?? '');
      stepTables.push({ title: `Cold deploy, ${b.mib} MiB history (1 deploy)`, profiles: [p], servers });
    }

    info['load average at end (1/5/15 min)'] = loadavg().map((l) => l.toFixed(1)).join(' / ');
    const totalMs = performance.now() - started;
    const report = renderReport({
      machine: info,
      settings: SETTINGS,
      rows,
      steps: stepTables,
      totalMs,
      idleRss,
      concPeak,
      deployerProblems: problemsIn(d.logFile),
    });
    const out = join(PROJECT, 'bench', 'results', 'LATEST.md');
    mkdirSync(dirname(out), { recursive: true });
    writeFileSync(out, report.markdown);
    process.stdout.write(`\n${report.table}\n`);
    say(`wrote ${out} in ${(totalMs / 1000).toFixed(0)} s`);
  } finally {
    await deployer?.stop().catch(() => undefined);
    await Promise.all(stops.map((s) => s().catch(() => undefined)));
    if (!SETTINGS.keep) rmSync(base, { recursive: true, force: true });
  }
}

main().catch((err: unknown) => {
  process.stderr.write(`bench failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  if (err instanceof Error && err.cause !== undefined) {
    process.stderr.write(`cause: ${err.cause instanceof Error ? (err.cause.stack ?? err.cause.message) : JSON.stringify(err.cause)}\n`);
  }
  process.exitCode = 1;
});
