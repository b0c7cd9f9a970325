import { closeSync, openSync, readSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { z } from 'zod';
import { gitStats, type GitRequestRecord } from '../../test/env/git-server.js';
import { bigVersion, newVersion, run, type BenchRepo } from './fixtures.js';
import type { Row } from './report.js';
import { formatBytes, formatMs, summarize } from './stats.js';

/**
 * The row "the same warm deploy, when the commit also changed a 512 MiB file": deploys of commits that each
 * change the ConfigMap AND add or replace a large incompressible file outside kubernetes/, over HTTP to the deployer process
 * that has just made the plain warm deploys, of the same service (its cache warm). The deployer must not fetch the
 * large blob: not for the deploy (its fetch leaves blobs above 256 KiB on the server) and not for the event log's
 * line counts read after the answer. Each deploy is followed by a wait for its event line (the commit facts) and for
 * the git server to finish what it was asked, so that every deploy is timed alone and the bytes the server sent are
 * its own.
 */

const MiB = 1024 * 1024;
const BIG_PATH = 'assets/big.bin';
const BRANCH = 'big-warm';
const SETTLE_TIMEOUT_MS = 120_000;

export interface BigWarmOptions {
  gitRoot: string;
  gitBaseUrl: string;
  registry: string;
  repo: BenchRepo;
  runs: number;
  mib: number;
  scratchDir: string;
  /** p50 of the plain warm deploys of the same run (ms): the figure the target compares with. */
  plainWarmP50: number;
  /** The deployer's log file (pino JSON lines): its event line of a deploy says the commit facts were read. */
  logFile: string;
  deploy: (commit: string) => Promise<{ status: number; ms: number; body: Record<string, unknown> }>;
  say: (line: string) => void;
}

const EventLine = z.object({
  event: z.literal('deploy'),
  commit: z.string().optional(),
  insertions: z.number().optional(),
  deletions: z.number().optional(),
});
type EventLine = z.infer<typeof EventLine>;

/** The deployer's event line for `commit` written after byte `offset` of its log, once it is there (undefined: none in 120 s). */
async function eventLine(logFile: string, offset: number, commit: string): Promise<{ line: EventLine; at: number } | undefined> {
  const deadline = performance.now() + SETTLE_TIMEOUT_MS;
  for (;;) {
    const size = statSync(logFile).size;
    if (size > offset) {
      const buf = Buffer.alloc(size - offset);
      const fd = openSync(logFile, 'r');
      try {
        readSync(fd, buf, 0, buf.length, offset);
      } finally {
        closeSync(fd);
      }
      for (const text of buf.toString('utf8').split('\n')) {
        if (!text.includes('"event":"deploy"') || !text.includes(commit)) continue;
        const parsed = EventLine.safeParse(JSON.parse(text));
        if (parsed.success && parsed.data.commit === commit) return { line: parsed.data, at: performance.now() };
      }
    }
    if (performance.now() > deadline) return undefined;
    await new Promise((r) => setTimeout(r, 25));
  }
}

/**
 * Whether the git server (in this process: test/env/git-server.ts) still runs a `git http-backend`. It records a
 * request only when its CGI process ends, and it lets a process whose client went away write its answer to the end.
 */
function gitServerBusy(): boolean {
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    let stat: string;
    try {
      stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
    } catch {
      continue;
    }
    // "PID (comm) state PPID ...": comm may hold spaces, so split after its closing parenthesis.
    const close = stat.lastIndexOf(')');
    const comm = stat.slice(stat.indexOf('(') + 1, close);
    const ppid = Number(stat.slice(close + 2).split(' ')[1]);
    if (ppid === process.pid && comm === 'git') return true;
  }
  return false;
}

async function serverIdle(): Promise<void> {
  const deadline = performance.now() + SETTLE_TIMEOUT_MS;
  while (gitServerBusy()) {
    if (performance.now() > deadline) throw new Error('the git server was still busy after 120 s');
    await new Promise((r) => setTimeout(r, 25));
  }
}

const isDeployFetch = (r: GitRequestRecord): boolean => r.command === 'fetch' && r.filter?.startsWith('blob:limit') === true;
const isBlobFetch = (r: GitRequestRecord): boolean => r.command === 'fetch' && !isDeployFetch(r);

export async function measureBigWarm(options: BigWarmOptions): Promise<Row[]> {
  const { repo, say } = options;
  const bytes = options.mib * MiB;
  say(`warm deploy with a ${options.mib} MiB file: building ${options.runs} commits (not timed)`);
  // No zlib over incompressible content: git would spend ~10 s per 512 MiB compressing it for nothing.
  for (const key of ['core.compression', 'pack.compression']) await run('git', ['config', key, '0'], { cwd: repo.repo.path });
  const main = (await run('git', ['rev-parse', 'refs/heads/main'], { cwd: repo.repo.path })).trim();
  const shas: string[] = [];
  for (let i = 0; i < options.runs; i++) {
    shas.push(
      await bigVersion({
        gitRoot: options.gitRoot,
        registry: options.registry,
        repo,
        value: `big${i}`,
        path: BIG_PATH,
        bytes,
        scratchDir: options.scratchDir,
        branch: BRANCH,
        ...(i === 0 ? { from: main } : {}),
      }),
    );
  }

  // The new packs' writeback would otherwise land on the deploys (git fsyncs the packs it writes).
  await run('sync', []);
  // The build took seconds: the deployer's kept-alive connections to the apiserver and the registry have closed
  // meanwhile (node drops idle sockets after 5 s). One plain deploy, not timed, makes it as warm as the plain ones.
  // Its commit facts are awaited too, as each measured deploy's are: none runs beside the next deploy.
  const warmUp = await newVersion({ gitRoot: options.gitRoot, registry: options.registry, repo, value: 'big-warm-up' });
  const warmUpOffset = statSync(options.logFile).size;
  const warmed = await options.deploy(warmUp);
  if (warmed.status === 200) await eventLine(options.logFile, warmUpOffset, warmUp);
  else say(`the plain deploy before the large-file deploys failed: ${warmed.status} ${JSON.stringify(warmed.body).slice(0, 200)}`);
  say(`warm deploy with a ${options.mib} MiB file: ${options.runs} deploys`);
  const samples: number[] = [];
  const served: number[] = [];
  const blobServed: number[] = [];
  const blobFetches: number[] = [];
  const settleMs: number[] = [];
  const counts: string[] = [];
  let errors = 0;
  let lastError = '';
  try {
    for (const sha of shas) {
      await serverIdle();
      const before = (await gitStats(options.gitBaseUrl)).log.length;
      const offset = statSync(options.logFile).size;
      const answer = await options.deploy(sha);
      const answeredAt = performance.now();
      if (answer.status !== 200) {
        errors++;
        lastError = `${answer.status} ${JSON.stringify(answer.body).slice(0, 200)}`;
        say(`warm deploy with a large file failed: ${lastError}`);
        continue;
      }
      samples.push(answer.ms);
      const engine = answer.body['durationMs'];
      say(`  deploy ${sha.slice(0, 7)}: ${formatMs(answer.ms)} (engine ${typeof engine === 'number' ? formatMs(engine) : '?'})`);
      const event = await eventLine(options.logFile, offset, sha);
      if (event !== undefined) settleMs.push(event.at - answeredAt);
      counts.push(event === undefined ? 'no event line in 120 s' : `+${event.line.insertions ?? '?'}/-${event.line.deletions ?? '?'}`);
      await serverIdle();
      const mine = (await gitStats(options.gitBaseUrl)).log.slice(before).filter((r) => r.repo === repo.repo.urlPath);
      served.push(mine.reduce((n, r) => n + r.bytesOut, 0));
      blobServed.push(mine.filter(isBlobFetch).reduce((n, r) => n + r.bytesOut, 0));
      blobFetches.push(mine.filter(isBlobFetch).length);
    }
  } finally {
    // The large blobs go: the branch is dropped and the repository repacked without what it alone reached.
    await run('git', ['update-ref', '-d', `refs/heads/${BRANCH}`], { cwd: repo.repo.path }).catch(() => undefined);
    await run('git', ['-c', 'repack.writeBitmaps=false', 'repack', '-a', '-d', '-q'], { cwd: repo.repo.path }).catch(() => undefined);
  }

  const p50 = summarize(samples).p50;
  const ratio = p50 / options.plainWarmP50;
  const perDeploy = (list: readonly number[]): string => (list.length === 0 ? '–' : formatBytes(summarize(list).p50));
  const blobTotal = blobServed.reduce((a, b) => a + b, 0);
  return [
    {
      section: 'Warm deploy',
      figure:
        `HTTP request, 3 objects, new commit that also wrote a new ${options.mib} MiB file outside kubernetes/ (the first adds it, the next replace it)` +
        (errors > 0 ? ` (${errors} errors)` : ''),
      samples,
      target: '≤ 1.5× the plain warm deploy',
      met: errors === 0 && samples.length > 0 && ratio <= 1.5,
      note:
        `${Number.isFinite(ratio) ? ratio.toFixed(2) : '–'}× the plain warm p50 (${Math.round(options.plainWarmP50)} ms); ` +
        `from the git server per deploy (p50, with the commit facts read after the answer): ${perDeploy(served)}, of which ` +
        `${perDeploy(blobServed)} in blob fetches for the line counts (${blobFetches.join('/')} per deploy; ` +
        `${formatBytes(blobTotal)} in all, as the server sent it); ` +
        `event line ${formatMs(summarize(settleMs).p50)} after the answer (p50), line counts ${counts.join(', ')}` +
        (lastError === '' ? '' : `; last error: ${lastError}`),
    },
  ];
}
