/**
 * How long reading a service's manifests takes through the per-pod cache (partial clone, thesis 5.3.3), next to
 * a full `git clone` of the same repository in the same run.
 *
 * The repository has ~1 GiB of history: a large, incompressible blob outside kubernetes/ replaced in each of a few
 * commits, plus a handful of manifests. It is served by the test ground's git server (smart HTTP, basic auth).
 *
 *   npx tsx bench/source-read.ts [--history-mib 1024] [--commits 8]
 *
 * Not part of the tests; takes a few minutes and needs ~3 GiB of free space in the temporary directory.
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync, statSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import pino from 'pino';
import { GitSource } from '../src/source/git.js';
import { addCommit, createRepo, writeBigBlob, type FixtureFile } from '../test/env/git-fixtures.js';
import { gitStats, startGitServer } from '../test/env/git-server.js';
import { groundService } from '../test/env/git-services.js';

const { values } = parseArgs({
  options: {
    'history-mib': { type: 'string', default: '1024' },
    commits: { type: 'string', default: '8' },
  },
});
const historyMiB = Number(values['history-mib']);
const commits = Number(values.commits);
const blobBytes = Math.floor((historyMiB * 1024 * 1024) / commits);

const base = mkdtempSync(join(tmpdir(), 'bench-source-read-'));
const logger = pino({ level: 'warn' });

function manifests(version: number): Record<string, FixtureFile> {
  const files: Record<string, FixtureFile> = {};
  for (const name of ['deployment', 'service', 'ingress', 'configmap', 'hpa']) {
    files[`kubernetes/${name}.yaml`] = `# version ${version}\nkind: ${name}\nmetadata:\n  name: app\n${'spec: {}\n'.repeat(20)}`;
  }
  return files;
}

function run(command: string, args: string[], cwd?: string): Promise<void> {
  return new Promise((resolve, reject) => {
    execFile(command, args, { cwd, maxBuffer: 16 * 1024 * 1024 }, (err, _out, stderr) =>
      err ? reject(new Error(`${command} ${args[0] ?? ''} failed: ${stderr}`)) : resolve(),
    );
  });
}

function duSync(path: string): number {
  let total = 0;
  for (const entry of readdirSync(path, { withFileTypes: true })) {
    const p = join(path, entry.name);
    if (entry.isDirectory()) total += duSync(p);
    else if (entry.isFile()) total += statSync(p).size;
  }
  return total;
}

async function timed<T>(fn: () => Promise<T>): Promise<{ ms: number; value: T }> {
  const start = process.hrtime.bigint();
  const value = await fn();
  return { ms: Number(process.hrtime.bigint() - start) / 1e6, value };
}

const mib = (bytes: number): string =>
  bytes < 1024 * 1024 ? `${(bytes / 1024).toFixed(1)} KiB` : `${(bytes / 1024 / 1024).toFixed(1)} MiB`;
const sec = (ms: number): string => `${(ms / 1000).toFixed(2)} s`;

async function main(): Promise<void> {
  const server = await startGitServer(join(base, 'server'), join(base, 'logs'));
  try {
    const g = server.info;
    process.stdout.write(`building ${commits} commits with ${mib(blobBytes)} blobs (${historyMiB} MiB history)... `);
    const built = await timed(async () => {
      const blobFile = join(base, 'blob.bin');
      let repo: Awaited<ReturnType<typeof createRepo>> | undefined;
      for (let i = 0; i < commits; i++) {
        writeBigBlob(blobFile, blobBytes, `bench-${i}`);
        const files = { ...manifests(i), 'assets/data.bin': { fromFile: blobFile } };
        if (repo === undefined) repo = await createRepo(g.root, 'bench', [{ files }], { compression: 0 });
        else await addCommit(g.root, 'bench', files);
      }
      rmSync(blobFile, { force: true });
    });
    console.log(sec(built.ms));
    const repoBytes = duSync(join(g.root, 'bench.git'));

    const url = `${g.baseUrl}bench.git`;
    const svc = groundService(g, 'bench.git', 'bench');
    const bytesSoFar = async (): Promise<number> => (await gitStats(g.baseUrl)).repos['bench.git']?.bytesOut ?? 0;

    const cacheDir = join(base, 'cache');
    const source = new GitSource({ cacheDir, timeoutMs: 120_000, logger });
    const read = async (ref = 'main'): Promise<number> => {
      const sha = await source.resolve(svc, ref);
      return (await source.filesAt(svc, sha)).length;
    };

    let before = await bytesSoFar();
    const cold = await timed(read);
    const coldBytes = (await bytesSoFar()) - before;

    before = await bytesSoFar();
    const warm = await timed(read);
    const warmBytes = (await bytesSoFar()) - before;

    // A deploy that names the commit: cached, so no request at all.
    const tip = await source.resolve(svc, 'main');
    before = await bytesSoFar();
    const warmSha = await timed(() => read(tip));
    const warmShaBytes = (await bytesSoFar()) - before;

    await addCommit(g.root, 'bench', manifests(commits));
    before = await bytesSoFar();
    const newCommit = await timed(read);
    const newCommitBytes = (await bytesSoFar()) - before;
    const cacheBytes = duSync(cacheDir);

    const cloneDir = join(base, 'clone');
    const header = `http.extraHeader=Authorization: Basic ${Buffer.from(`${g.username}:${g.password}`).toString('base64')}`;
    before = await bytesSoFar();
    const clone = await timed(() => run('git', ['-c', header, 'clone', '--quiet', '--', url, cloneDir]));
    const cloneBytes = (await bytesSoFar()) - before;
    const cloneDisk = duSync(cloneDir);

    if ([cold, warm, warmSha, newCommit].some((r) => r.value !== 5)) throw new Error('the manifests were not all read');

    const rows: Array<[string, number, number, string]> = [
      ['cold read (empty cache: partial clone + manifests)', cold.ms, coldBytes, mib(cacheBytes) + ' cache'],
      ['warm read by branch (fetches the branch, nothing new)', warm.ms, warmBytes, ''],
      ['warm read by cached SHA (no request)', warmSha.ms, warmShaBytes, ''],
      ['next deploy (one new commit)', newCommit.ms, newCommitBytes, ''],
      ['full git clone of the same repository', clone.ms, cloneBytes, mib(cloneDisk) + ' on disk'],
    ];
    console.log(`\nrepository: ${mib(repoBytes)} on the server, ${commits + 1} commits, 5 manifests in kubernetes/`);
    console.log(`${'step'.padEnd(56)} ${'time'.padStart(9)} ${'transfer'.padStart(12)}  vs clone`);
    for (const [name, ms, bytes, note] of rows) {
      const ratio = clone.ms / ms;
      console.log(
        `${name.padEnd(56)} ${sec(ms).padStart(9)} ${mib(bytes).padStart(12)}  ${name.startsWith('full') ? '1×' : `${ratio.toFixed(0)}× faster`}${note === '' ? '' : `  (${note})`}`,
      );
    }
  } finally {
    await server.stop();
    rmSync(base, { recursive: true, force: true });
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exitCode = 1;
});
