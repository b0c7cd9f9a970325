/**
 * The git side of a warm deploy, measured alone: a new commit is pushed (manifests and source code changed), then
 * the source is asked what a deploy asks — resolve the SHA, read the manifests, and (beside them) the commit facts.
 * Prints p50/p90 of the time, the git processes this process started and the requests the git server answered per
 * deploy; then the same when the commit also replaced a large file outside kubernetes/ (time and cache growth).
 *
 *   npx tsx bench/source-warm.ts [--runs 30] [--big-mib 128]
 *
 * Not part of the tests.
 */
import { createRequire, syncBuiltinESMExports } from 'node:module';
import { mkdtempSync, readdirSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { parseArgs } from 'node:util';
import pino from 'pino';
import { GitSource } from '../src/source/git.js';
import { addCommit, bigBlob, createRepo } from '../test/env/git-fixtures.js';
import { gitStats, startGitServer } from '../test/env/git-server.js';
import { groundService } from '../test/env/git-services.js';

const { values } = parseArgs({
  options: { runs: { type: 'string', default: '30' }, 'big-mib': { type: 'string', default: '128' } },
});
const runs = Number(values.runs);
const bigMiB = Number(values['big-mib']);

type Spawn = typeof import('node:child_process').spawn;
const spawned: Record<string, number> = {};
const cp = createRequire(import.meta.url)('node:child_process') as { spawn: Spawn };
const original = cp.spawn;
cp.spawn = function (this: unknown, ...args: Parameters<Spawn>): ReturnType<Spawn> {
  const name = process.env["BENCH_SPAWN_ARGS"] === "1" ? `${basename(String(args[0]))} ${String((args[1] as string[] | undefined)?.find((a) => !a.startsWith("-") && !a.includes("=")) ?? "")}` : basename(String(args[0]));
  spawned[name] = (spawned[name] ?? 0) + 1;
  return Reflect.apply(original, this, args);
} as Spawn;
syncBuiltinESMExports();

function du(path: string): number {
  let total = 0;
  for (const e of readdirSync(path, { withFileTypes: true })) {
    const p = join(path, e.name);
    total += e.isDirectory() ? du(p) : e.isFile() ? statSync(p).size : 0;
  }
  return total;
}

const pct = (xs: number[], p: number): number => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor(xs.length * p))] ?? NaN;
const total = (r: Record<string, number>): number => Object.values(r).reduce((a, b) => a + b, 0);

async function main(): Promise<void> {
  const base = mkdtempSync(join(tmpdir(), 'bench-source-warm-'));
  const server = await startGitServer(join(base, 'server'), join(base, 'logs'));
  try {
    const g = server.info;
    const manifests = (v: number): Record<string, string> => ({
      'kubernetes/deployment.yaml': `kind: Deployment\nmetadata:\n  name: app\n  labels: {v: "${v}"}\n`,
      'kubernetes/service.yaml': 'kind: Service\nmetadata:\n  name: app\n',
      'kubernetes/configmap.yaml': `kind: ConfigMap\nmetadata:\n  name: app\ndata: {v: "${v}"}\n`,
    });
    await createRepo(g.root, 'warm', [{ files: { ...manifests(0), 'src/main.c': 'int main;\n' } }]);
    const svc = groundService(g, 'warm.git', 'warm');
    const cacheDir = join(base, 'cache');
    const source = new GitSource({ cacheDir, timeoutMs: 60_000, logger: pino({ level: 'warn' }) });
    const requests = async (): Promise<number> => (await gitStats(g.baseUrl)).log.filter((r) => r.repo === 'warm.git').length;
    const steps: Record<string, number[]> = { resolve: [], filesAt: [], commitFacts: [] };
    const step = async <T>(name: string, p: Promise<T>): Promise<T> => {
      const start = performance.now();
      const value = await p;
      steps[name]?.push(performance.now() - start);
      return value;
    };
    // As the engine does: the facts are read beside the manifests (and the cluster work).
    const deploy = async (sha: string): Promise<void> => {
      const commit = await step('resolve', source.resolve(svc, sha));
      const facts = step('commitFacts', source.commitFacts(svc, commit));
      const files = await step('filesAt', source.filesAt(svc, commit));
      await facts;
      if (files.length !== 3) throw new Error('the manifests were not all read');
    };
    await deploy(await source.resolve(svc, 'main'));

    const measure = async (label: string, change: (i: number) => Record<string, string | Buffer>, n: number): Promise<void> => {
      const times: number[] = [];
      for (const k of Object.keys(spawned)) delete spawned[k];
      for (const k of Object.keys(steps)) steps[k] = [];
      let reqs = 0;
      const cacheBefore = du(cacheDir);
      for (let i = 1; i <= n; i++) {
        const sha = await addCommit(g.root, 'warm', { ...manifests(i), ...change(i) });
        const before = await requests();
        const start = performance.now();
        await deploy(sha);
        times.push(performance.now() - start);
        reqs += (await requests()) - before;
      }
      const perRun = Object.entries(spawned).map(([k, v]) => `${k} ${(v / n).toFixed(1)}`).join(', ');
      console.log(
        `${label.padEnd(44)} p50 ${pct(times, 0.5).toFixed(1)} ms  p90 ${pct(times, 0.9).toFixed(1)} ms  ` +
          `processes/deploy ${(total(spawned) / n).toFixed(1)} (${perRun})  git requests/deploy ${(reqs / n).toFixed(1)}  ` +
          `cache +${((du(cacheDir) - cacheBefore) / 1024 / 1024).toFixed(1)} MiB`,
      );
      console.log(`${''.padEnd(44)} steps p50: ${Object.entries(steps).map(([k, v]) => `${k} ${pct(v, 0.5).toFixed(1)} ms`).join(', ')}`);
    };
    await measure('warm deploy, new commit (manifests + src)', (i) => ({ 'src/main.c': `int main${i};\n` }), runs);
    await measure(`same, commit also replaces a ${bigMiB} MiB file`, (i) => ({ 'assets/big.bin': bigBlob(bigMiB * 1024 * 1024, `big-${i}`) }), 3);
  } finally {
    await server.stop();
    rmSync(base, { recursive: true, force: true });
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exitCode = 1;
});
