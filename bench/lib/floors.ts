import { readFileSync } from 'node:fs';
import { Agent, request } from 'node:https';
import { tmpdir } from 'node:os';
import { FETCH_OPTIONS } from '../../src/source/git-fetch.js';
import { gitStats } from '../../test/env/git-server.js';
import { newVersion, run, type BenchRepo } from './fixtures.js';
import type { Row } from './report.js';
import { timed } from './stats.js';

/**
 * What the ground's servers allow, without the deployer: one `git fetch` of a new small commit into a partial cache
 * as src/source/git-fetch.ts makes it, and one server-side apply of one ConfigMap over a kept-alive TLS connection.
 * They say how far a warm deploy's time is from the floor of the two servers it cannot do without.
 */

/** The small-blob limit of the deployer's fetch into a cache that has history (src/source/git-fetch.ts). */
const SMALL_BLOBS = '--filter=blob:limit=256k';

/** A git environment without the user's or system's configuration, never prompting. */
function gitEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  return {
    PATH: process.env['PATH'],
    HOME: tmpdir(),
    GIT_CONFIG_NOSYSTEM: '1',
    GIT_CONFIG_GLOBAL: '/dev/null',
    GIT_TERMINAL_PROMPT: '0',
    ...extra,
  };
}

export async function gitFetchFloor(options: {
  gitRoot: string;
  registry: string;
  git: { baseUrl: string; username: string; password: string };
  repo: BenchRepo;
  dir: string;
  runs: number;
}): Promise<Row> {
  const { repo, dir } = options;
  const url = `${options.git.baseUrl}${repo.repo.urlPath}`;
  // The credentials as the deployer gives them: a header in GIT_CONFIG_* entries, not on the command line.
  const auth = gitEnv({
    GIT_CONFIG_COUNT: '1',
    GIT_CONFIG_KEY_0: `http.${options.git.baseUrl}.extraHeader`,
    GIT_CONFIG_VALUE_0: `Authorization: Basic ${Buffer.from(`${options.git.username}:${options.git.password}`).toString('base64')}`,
  });
  await run('git', ['init', '--quiet', '--bare', dir], { env: gitEnv() });
  // What src/source/git-cache.ts writes: a partial clone of `origin` without automatic maintenance.
  for (const [key, value] of [
    ['core.repositoryformatversion', '1'],
    ['extensions.partialClone', 'origin'],
    ['remote.origin.url', url],
    ['remote.origin.promisor', 'true'],
    ['remote.origin.partialclonefilter', 'blob:none'],
    ['gc.auto', '0'],
    ['maintenance.auto', 'false'],
    ['fetch.writeCommitGraph', 'false'],
  ] as const) {
    await run('git', ['config', key, value], { cwd: dir, env: gitEnv() });
  }
  const fetch = (sha: string, filter: string): Promise<string> =>
    run(
      'git',
      ['fetch', ...FETCH_OPTIONS, filter, '--end-of-options', 'origin', `${sha}:refs/deployer/commits/${sha}`],
      { cwd: dir, env: { ...auth, GIT_NO_LAZY_FETCH: '0' } },
    );
  // The first fetch makes the cache one with history (not measured), as the deployer's first deploy does.
  await fetch(repo.repo.shas.at(-1) ?? '', '--filter=blob:none');
  const samples: number[] = [];
  const before = (await gitStats(options.git.baseUrl)).repos[repo.repo.urlPath]?.requests ?? 0;
  let last = '';
  for (let i = 0; i < options.runs; i++) {
    last = await newVersion({ gitRoot: options.gitRoot, registry: options.registry, repo, value: `floor${i}` });
    const sha = last;
    samples.push((await timed(() => fetch(sha, SMALL_BLOBS))).ms);
  }
  const requests = ((await gitStats(options.git.baseUrl)).repos[repo.repo.urlPath]?.requests ?? 0) - before;
  // The changed ConfigMap came with the commit, as it does for the deployer's fetch (no lazy fetch allowed here).
  await run('git', ['cat-file', '-e', `${last}:kubernetes/configmap.yaml`], { cwd: dir, env: { ...gitEnv(), GIT_NO_LAZY_FETCH: '1' } });
  return {
    section: 'Machine',
    figure: `floor: one \`git fetch\` of a new small commit (one changed ConfigMap) into a bare partial clone (\`${SMALL_BLOBS}\`, exact-SHA refspec), from the ground's git server`,
    samples,
    note: `${(requests / Math.max(1, options.runs)).toFixed(1)} requests to the git server per fetch (each a \`git http-backend\` there); no deployer`,
  };
}

interface ApplyAnswer {
  status: number;
  reused: boolean;
  body: string;
}

export async function applyFloor(options: { server: string; token: string; caFile: string; namespace: string; runs: number }): Promise<Row> {
  const agent = new Agent({ keepAlive: true, maxSockets: 1, ca: readFileSync(options.caFile) });
  const name = 'bench-floor';
  const apply = (value: string): Promise<ApplyAnswer> => {
    const url = new URL(`/api/v1/namespaces/${options.namespace}/configmaps/${name}`, options.server);
    url.searchParams.set('fieldManager', 'bench-floor');
    url.searchParams.set('force', 'true');
    const payload = JSON.stringify({
      apiVersion: 'v1',
      kind: 'ConfigMap',
      metadata: { name, namespace: options.namespace },
      data: { value },
    });
    return new Promise((resolve, reject) => {
      const req = request(
        url,
        {
          method: 'PATCH',
          agent,
          headers: {
            accept: 'application/json',
            authorization: `Bearer ${options.token}`,
            'content-type': 'application/apply-patch+yaml',
            'content-length': String(Buffer.byteLength(payload)),
          },
        },
        (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('end', () => resolve({ status: res.statusCode ?? 0, reused: req.reusedSocket, body: Buffer.concat(chunks).toString('utf8') }));
          res.on('error', reject);
        },
      );
      req.on('error', reject);
      req.end(payload);
    });
  };
  try {
    // The first apply opens the TLS connection (not measured); the others reuse it.
    const first = await apply('floor-first');
    if (first.status !== 200 && first.status !== 201) throw new Error(`server-side apply answered ${first.status}: ${first.body.slice(0, 300)}`);
    const samples: number[] = [];
    let reused = 0;
    for (let i = 0; i < options.runs; i++) {
      const { ms, value } = await timed(() => apply(`floor${i}`));
      if (value.status !== 200) throw new Error(`server-side apply answered ${value.status}: ${value.body.slice(0, 300)}`);
      if (value.reused) reused++;
      samples.push(ms);
    }
    return {
      section: 'Machine',
      figure: "floor: one server-side apply of one ConfigMap (a changed value) on the ground's apiserver, kept-alive HTTPS",
      samples,
      note: `${reused}/${options.runs} over the kept-alive connection; admin token, no deployer`,
    };
  } finally {
    agent.destroy();
  }
}
