import { execFile } from 'node:child_process';
import { rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { addCommit, createRepo, repoPath, writeBigBlob, type FixtureFile, type FixtureRepo } from '../../test/env/git-fixtures.js';
import { configMapYaml, deploymentYaml, serviceYaml } from '../../test/env/manifests.js';
import { pushImage } from '../../test/env/registry-helpers.js';

/**
 * The service repositories of the benchmark: three objects (Deployment, Service, ConfigMap) in kubernetes/, one file
 * each as the original deployer's repositories had them, and, for the cold runs, large blobs outside kubernetes/.
 * Ports say `protocol: TCP`: the 1.20 apiserver's server-side apply needs it in the list-map key.
 */

/** The ConfigMap the bench changes in every new commit: `NAME-config` with one `value`. */
function configMap(name: string, value: string): string {
  return configMapYaml(`${name}-config`, { value });
}

export function serviceFiles(name: string, image: string, value: string): Record<string, FixtureFile> {
  return {
    'kubernetes/deployment.yaml': deploymentYaml({ name, image, replicas: 2 }),
    'kubernetes/service.yaml': serviceYaml(name),
    'kubernetes/configmap.yaml': configMap(name, value),
    'README.md': `the ${name} service\n`,
  };
}

export const shortSha = (sha: string): string => sha.slice(0, 7);

/** The image tag CI pushes for a commit of `main`. */
export const tagOf = (sha: string): string => `main-${shortSha(sha)}`;

export interface BenchRepo {
  name: string;
  /** What the deployments name: `REGISTRY/bench/NAME`, untagged. */
  image: string;
  /** The image's repository in the registry. */
  imageRepository: string;
  repo: FixtureRepo;
  /** Big repositories: the last commit that replaced the large blob (the head commit changes a manifest only). */
  blobCommit?: string;
}

/** A service repository with one commit and its image tag in the registry. */
export async function serviceRepo(options: { gitRoot: string; registry: string; name: string; objectName?: string }): Promise<BenchRepo> {
  const imageRepository = `bench/${options.name}`;
  const image = `${options.registry}/${imageRepository}`;
  const repo = await createRepo(options.gitRoot, options.name, [
    { files: serviceFiles(options.objectName ?? options.name, image, 'v0') },
  ]);
  await pushImage({ host: options.registry, repository: imageRepository, tag: tagOf(repo.shas[0] ?? '') });
  return { name: options.name, image, imageRepository, repo };
}

/** A new commit on `main` that changes the ConfigMap, with CI's image tag pushed: what each deploy deploys. */
export async function newVersion(options: {
  gitRoot: string;
  registry: string;
  repo: BenchRepo;
  objectName?: string;
  value: string;
}): Promise<string> {
  const sha = await addCommit(options.gitRoot, options.repo.name, {
    'kubernetes/configmap.yaml': configMap(options.objectName ?? options.repo.name, options.value),
  });
  await pushImage({ host: options.registry, repository: options.repo.imageRepository, tag: tagOf(sha) });
  return sha;
}

/**
 * A new commit that changes the ConfigMap AND writes `bytes` of incompressible content to `path` outside kubernetes/
 * (added, or replaced when an earlier commit wrote it), with CI's image tag pushed. On `branch` (made from `from`
 * when missing), so that the large blobs can be dropped from the server afterwards without touching `main`. The
 * content goes through a file in `scratchDir` (removed again): git streams it into a pack of its own.
 */
export async function bigVersion(options: {
  gitRoot: string;
  registry: string;
  repo: BenchRepo;
  objectName?: string;
  value: string;
  path: string;
  bytes: number;
  scratchDir: string;
  branch: string;
  from?: string;
}): Promise<string> {
  const blobFile = join(options.scratchDir, `${options.repo.name}-${options.value}.bin`);
  try {
    writeBigBlob(blobFile, options.bytes, `${options.repo.name}-${options.value}`);
    const sha = await addCommit(
      options.gitRoot,
      options.repo.name,
      {
        'kubernetes/configmap.yaml': configMap(options.objectName ?? options.repo.name, options.value),
        [options.path]: { fromFile: blobFile },
      },
      { branch: options.branch, ...(options.from === undefined ? {} : { from: options.from }) },
    );
    await pushImage({ host: options.registry, repository: options.repo.imageRepository, tag: tagOf(sha) });
    return sha;
  } finally {
    rmSync(blobFile, { force: true });
  }
}

/**
 * A service repository with `historyBytes` of history: `commits` commits that each replace one large incompressible
 * blob outside kubernetes/ (few commits, no compression: cheap to build), the first with the manifests, and a last
 * commit that changes a manifest only. Both the head and the last blob commit have their image tag.
 */
export async function bigRepo(options: {
  gitRoot: string;
  registry: string;
  name: string;
  historyBytes: number;
  commits: number;
  scratchDir: string;
}): Promise<BenchRepo> {
  const imageRepository = `bench/${options.name}`;
  const image = `${options.registry}/${imageRepository}`;
  const blobBytes = Math.floor(options.historyBytes / options.commits);
  const blobFile = join(options.scratchDir, `${options.name}.bin`);
  let repo: FixtureRepo | undefined;
  for (let i = 0; i < options.commits; i++) {
    writeBigBlob(blobFile, blobBytes, `${options.name}-${i}`);
    const files: Record<string, FixtureFile> = { 'assets/data.bin': { fromFile: blobFile } };
    if (repo === undefined) {
      repo = await createRepo(options.gitRoot, options.name, [{ files: { ...files, ...serviceFiles('big', image, 'v0') } }], {
        compression: 0,
      });
    } else {
      repo.shas.push(await addCommit(options.gitRoot, options.name, files));
    }
  }
  rmSync(blobFile, { force: true });
  if (repo === undefined) throw new Error('a big repository needs at least one commit');
  // The commit that replaced the large blob last, then a usual deploy commit on top that changes a manifest only.
  const blobCommit = repo.shas.at(-1) ?? '';
  repo.shas.push(await addCommit(options.gitRoot, options.name, { 'kubernetes/configmap.yaml': configMap('big', 'v1') }));
  // One pack, as a served repository has; no bitmap index, so the figures stay comparable with earlier runs (the
  // deployer handles bitmap-serving servers: test/integration/git-source.test.ts).
  await run('git', ['-c', 'repack.writeBitmaps=false', 'repack', '-a', '-d', '-q', '--window=0'], {
    cwd: repo.path,
    env: { PATH: process.env['PATH'], HOME: tmpdir(), GIT_CONFIG_NOSYSTEM: '1', GIT_CONFIG_GLOBAL: '/dev/null' },
  });
  for (const sha of [blobCommit, repo.shas.at(-1) ?? '']) {
    await pushImage({ host: options.registry, repository: imageRepository, tag: tagOf(sha) });
  }
  return { name: options.name, image, imageRepository, repo, blobCommit };
}

/**
 * Another name for the same bare repository (a symlink in the git server's root): a different URL, so the deployer
 * keeps a separate cache for it and its first deploy is cold again.
 */
export function alias(gitRoot: string, name: string, aliasName: string): string {
  symlinkSync(repoPath(gitRoot, name), repoPath(gitRoot, aliasName));
  return aliasName;
}

/** Runs a command with an argument array; rejects with its stderr. */
export function run(
  command: string,
  args: readonly string[],
  options: { cwd?: string; env?: NodeJS.ProcessEnv } = {},
): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(
      command,
      [...args],
      { cwd: options.cwd, env: options.env ?? process.env, maxBuffer: 64 * 1024 * 1024, encoding: 'utf8' },
      (err, stdout, stderr) => {
        if (err) reject(new Error(`${command} ${args.slice(0, 2).join(' ')} failed: ${stderr.trim() || err.message}`, { cause: err }));
        else resolve(stdout);
      },
    );
  });
}

/** Creates namespaces with one `kubectl apply` of a multi-document file. */
export async function createNamespaces(options: { kubectl: string; kubeconfig: string; names: readonly string[]; dir: string }): Promise<void> {
  const file = join(options.dir, 'namespaces.yaml');
  writeFileSync(file, options.names.map((n) => `apiVersion: v1\nkind: Namespace\nmetadata:\n  name: ${n}\n`).join('---\n'));
  await run(options.kubectl, ['--kubeconfig', options.kubeconfig, 'apply', '-f', file]);
}
