import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ground } from '../env/ground.js';
import { createNamespace, kubeRequest } from '../env/kube-helpers.js';
import { pushImage } from '../env/registry-helpers.js';
import { basic, call, serviceRepo, startDeployer, type RunningDeployer } from './setup.js';

// A Job on a new version (replaceJobs: true), with the corpus' Job (the shape of the Kubernetes docs' `pi` Job):
// a new Job the apiserver refuses leaves the running one as it is (the replacement is dry-run before anything is
// deleted); a valid one replaces it.

const CI_SECRET = 'jobs-ci-secret-0123456789';
const JOB = readFileSync(join(import.meta.dirname, '..', 'corpus', 'jobs', 'kubernetes', 'job.yaml'), 'utf8');

describe('Job replacement on a new version', () => {
  let deployer: RunningDeployer;
  let namespace: string;
  let repo: Awaited<ReturnType<typeof serviceRepo>>;
  const auth = basic('ci', CI_SECRET);

  const liveJob = async (): Promise<{ uid: string; image: string }> => {
    const res = await kubeRequest('GET', `/apis/batch/v1/namespaces/${namespace}/jobs/pi`);
    expect(res.status).toBe(200);
    const job = res.body as { metadata: { uid: string }; spec: { template: { spec: { containers: { image: string }[] } } } };
    return { uid: job.metadata.uid, image: job.spec.template.spec.containers[0]?.image ?? '' };
  };

  beforeAll(async () => {
    const registry = ground('registry').anonymous;
    namespace = await createNamespace('jobs');
    const job = JOB.replaceAll('registry.corpus.test', registry);
    repo = await serviceRepo('jobs', [
      { files: { 'kubernetes/job.yaml': job } },
      // A typo the apiserver refuses: a negative backoffLimit.
      { files: { 'kubernetes/job.yaml': job.replace('backoffLimit: 4', 'backoffLimit: -4') } },
      { files: { 'kubernetes/job.yaml': job.replace('backoffLimit: 4', 'backoffLimit: 6') } },
    ]);
    for (const sha of repo.repo.shas) await pushImage({ host: registry, repository: 'website/perl', tag: `main-${sha.slice(0, 7)}` });
    deployer = await startDeployer({
      tokens: { ci: { secret: { value: CI_SECRET }, services: [repo.name], actions: ['read', 'deploy'] } },
      services: { [repo.name]: { repository: repo.repository, namespace, replaceJobs: true } },
      versions: { registryWaitSeconds: 0 },
    });
  });

  afterAll(async () => {
    await deployer?.close();
  });

  it('keeps the running Job when the new one is refused, and replaces it with a valid one', async () => {
    const deploy = (i: number) => call(`${deployer.url}/${repo.name}/deploy`, { auth, form: { commit: repo.repo.shas[i] as string } });
    expect((await deploy(0)).status).toBe(200);
    const first = await liveJob();

    const refused = await deploy(1);

    expect(refused.status, JSON.stringify(refused.body)).toBe(422);
    expect(refused.body['error']).toMatch(/^the apiserver refused the new Job "pi": .*backoffLimit.*; nothing was applied$/);
    expect(await liveJob()).toEqual(first);

    const replaced = await deploy(2);

    expect(replaced.status, JSON.stringify(replaced.body)).toBe(200);
    expect(replaced.body['objects']).toEqual([expect.objectContaining({ kind: 'Job', name: 'pi', action: 'replaced' })]);
    const next = await liveJob();
    expect(next.uid).not.toBe(first.uid);
    expect(next.image).toContain(`:main-${(repo.repo.shas[2] as string).slice(0, 7)}@sha256:`);
  });
});
