import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ServiceConfig } from '../../src/config/load.js';
import { GitSource } from '../../src/source/git.js';
import { addCommit, createRepo } from '../env/git-fixtures.js';
import { groundService } from '../env/git-services.js';
import { ground, type GitGround } from '../env/ground.js';

/**
 * Many deploys at once through one source on a busy machine, as the concurrency benchmark does: every call must read
 * exactly the files of its commit. A git command's output read before the process's pipes were drained (simple-git
 * resolves 50 ms after "exit" by default) showed up here as "directory kubernetes/ not found" and as blobs missing
 * "after fetching them".
 */

const REPOS = 20;
const CALLS = 100;
/** Busy processes that keep both cores loaded, so git's output reaches us late, as on the benchmark's machine. */
const BURNERS = 3;

const work = mkdtempSync(join(tmpdir(), 'git-source-stress-'));
const logger = pino({ level: 'warn' }, { write: () => undefined });
const burners: ChildProcess[] = [];

afterAll(() => {
  for (const burner of burners) burner.kill('SIGKILL');
  rmSync(work, { recursive: true, force: true });
});

function startBurners(): void {
  for (let i = 0; i < BURNERS; i++) {
    // Bounded even if the test process dies without killing it.
    const child = spawn(process.execPath, ['-e', 'const end = Date.now() + 90_000; while (Date.now() < end) {}'], {
      stdio: 'ignore',
    });
    burners.push(child);
  }
}

function stopBurners(): void {
  for (const burner of burners.splice(0)) burner.kill('SIGKILL');
}

/** The manifests of version `v` of repository `name`; every file differs between repositories and versions. */
function manifests(name: string, v: number): Record<string, string> {
  // A config map of some size, so cat-file --batch output spans several pipe reads.
  const data = Array.from({ length: 400 }, (_, i) => `  key${i}: "${name}-${v}-${i}"`).join('\n');
  return {
    'kubernetes/deployment.yaml': `kind: Deployment\nmetadata:\n  name: ${name}\nspec:\n  version: "${v}"\n`,
    'kubernetes/service.yaml': `kind: Service\nmetadata:\n  name: ${name}\n  labels:\n    v: "${v}"\n`,
    'kubernetes/configmap.yaml': `kind: ConfigMap\nmetadata:\n  name: ${name}\ndata:\n${data}\n`,
  };
}

interface Versions {
  name: string;
  svc: ServiceConfig;
  /** SHA → the files expected at it. */
  files: Map<string, Record<string, string>>;
  shas: string[];
}

interface Call {
  versions: Versions;
  ref: string;
  /** The files the call must return; undefined for a branch (checked against the SHA it resolved to). */
  expected?: Record<string, string>;
}

async function deploy(source: GitSource, call: Call, pushed?: Promise<unknown>): Promise<string | undefined> {
  const { versions, ref } = call;
  try {
    const sha = await source.resolve(versions.svc, ref);
    // A branch may resolve to a commit pushed during the run before the pusher has recorded its files.
    if (call.expected === undefined && !versions.files.has(sha)) await pushed;
    const expected = call.expected ?? versions.files.get(sha);
    if (expected === undefined) return `${versions.name}@${ref}: resolved to unknown commit ${sha}`;
    const files = await source.filesAt(versions.svc, sha);
    const got = Object.fromEntries(files.map((f) => [f.path, f.content.toString('utf8')]));
    expect(got).toEqual(expected);
    return undefined;
  } catch (err) {
    return `${versions.name}@${ref}: ${(err as Error).message.slice(0, 300)}`;
  }
}

describe('GitSource under concurrent deploys on a busy machine', () => {
  let g: GitGround;
  const repos: Versions[] = [];

  beforeAll(async () => {
    g = ground('git');
    const suffix = Math.random().toString(36).slice(2, 8);
    for (let r = 0; r < REPOS; r++) {
      const name = `stress-${suffix}-${r}`;
      const commits = [1, 2, 3].map((v) => ({
        files: { ...manifests(name, v), [`src/file-${v}.txt`]: `${name} source ${v}\n` },
      }));
      const repo = await createRepo(g.root, name, commits);
      const files = new Map(repo.shas.map((sha, i) => [sha, manifests(name, i + 1)] as const));
      repos.push({ name, svc: groundService(g, `${name}.git`, name), files, shas: repo.shas });
    }
  });

  it('gives every one of 20 first deploys into separate empty caches its files', async () => {
    startBurners();
    try {
      const calls = repos.map((versions, r) => {
        const source = new GitSource({ cacheDir: join(work, `first-${r}`), timeoutMs: 30_000, logger });
        const sha = versions.shas[r % 3] ?? '';
        return deploy(source, { versions, ref: sha, expected: versions.files.get(sha) });
      });
      const failures = (await Promise.all(calls)).filter((f) => f !== undefined);
      expect(failures).toEqual([]);
    } finally {
      stopBurners();
    }
  });

  it('gives each of 100 concurrent deploys over 20 repositories, while commits are pushed, its files', async () => {
    const source = new GitSource({ cacheDir: join(work, 'shared'), timeoutMs: 30_000, logger });
    startBurners();
    try {
      const pushes: Array<Promise<void>> = [];
      let allPushed: () => void = () => undefined;
      const pushed = new Promise<void>((resolve) => {
        allPushed = resolve;
      });
      const calls: Array<Promise<string | undefined>> = [];
      for (let i = 0; i < CALLS; i++) {
        const versions = repos[i % REPOS];
        if (versions === undefined) throw new Error('no repository');
        const kind = Math.floor(i / REPOS);
        if (kind === 2) {
          // A commit pushed during the run, deployed by its SHA as soon as it exists.
          const v = 4 + (i % 2);
          const files = manifests(versions.name, v);
          pushes.push(
            addCommit(g.root, versions.name, { ...files, [`src/file-${v}.txt`]: `${versions.name} ${v}\n` }).then((sha) => {
              versions.files.set(sha, files);
              calls.push(deploy(source, { versions, ref: sha, expected: files }));
            }),
          );
          continue;
        }
        if (kind === 4) {
          calls.push(deploy(source, { versions, ref: 'main' }, pushed));
          continue;
        }
        const sha = versions.shas[(i + kind) % 3] ?? '';
        calls.push(deploy(source, { versions, ref: sha, expected: versions.files.get(sha) }));
      }
      await Promise.all(pushes);
      allPushed();
      const failures = (await Promise.all(calls)).filter((f) => f !== undefined);
      expect(failures).toEqual([]);
      expect(calls).toHaveLength(CALLS);
    } finally {
      stopBurners();
    }
  });
});
