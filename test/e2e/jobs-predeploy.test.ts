import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ground } from '../env/ground.js';
import { createNamespace, kubeRequest } from '../env/kube-helpers.js';
import { serviceManifests } from '../env/manifests.js';
import { pushImage } from '../env/registry-helpers.js';
import { basic, call, serviceRepo, startDeployer, type RunningDeployer } from './setup.js';

// Pre-deploy Jobs before anything runs (no node needed): the dry-run covers them with the rest, so a Job or another
// object the apiserver refuses stops the deploy before the Job starts; and the Job's wait counts within the service's
// time under the lock. Jobs that really run: test/node/jobs.test.ts.

const CI_SECRET = 'jobs-predeploy-ci-secret-01';

function migrationYaml(image: string, backoffLimit: number): string {
  return [
    'apiVersion: batch/v1',
    'kind: Job',
    'metadata:',
    '  name: migrate',
    '  annotations: { deployer.internal/pre-deploy: "true" }',
    'spec:',
    `  backoffLimit: ${backoffLimit}`,
    '  template:',
    '    spec:',
    '      restartPolicy: Never',
    // No scheduler serves this name: the Job's pod stays Pending, so the Job never completes.
    '      schedulerName: nobody-schedules-this',
    '      containers: [{ name: migrate, image: ' + image + ' }]',
    '',
  ].join('\n');
}

describe('pre-deploy Jobs before they run', () => {
  let deployer: RunningDeployer;
  let namespace: string;
  let repo: Awaited<ReturnType<typeof serviceRepo>>;
  const auth = basic('ci', CI_SECRET);
  const deploy = (i: number) => call(`${deployer.url}/${repo.name}/deploy`, { auth, form: { commit: repo.repo.shas[i] as string } });
  const exists = async (path: string): Promise<boolean> => (await kubeRequest('GET', path)).status === 200;

  beforeAll(async () => {
    const registry = ground('registry').anonymous;
    const image = `${registry}/jobs/predeploy-${Date.now().toString(36)}`;
    namespace = await createNamespace('predeploy');
    const app = serviceManifests({ name: 'web', image });
    repo = await serviceRepo('predeploy', [
      // The apiserver refuses the Job (a negative backoffLimit).
      { files: { ...app, 'kubernetes/migrate.yaml': migrationYaml(image, -1) } },
      // The Job is valid, the Service is not (a port out of range).
      { files: { ...app, 'kubernetes/service.yaml': app['kubernetes/service.yaml']?.replace('port: 80', 'port: 70000') ?? '', 'kubernetes/migrate.yaml': migrationYaml(image, 0) } },
      // All valid; the Job never completes here.
      { files: { ...app, 'kubernetes/migrate.yaml': migrationYaml(image, 0) } },
    ]);
    const repository = image.slice(registry.length + 1);
    for (const sha of repo.repo.shas) await pushImage({ host: registry, repository, tag: `main-${sha.slice(0, 7)}` });
    deployer = await startDeployer({
      tokens: { ci: { secret: { value: CI_SECRET }, services: [repo.name], actions: ['read', 'deploy'] } },
      services: { [repo.name]: { repository: repo.repository, namespace, limits: { maxLockSeconds: 5 } } },
      versions: { registryWaitSeconds: 0 },
    });
  });

  afterAll(async () => {
    await deployer?.close();
  });

  it('a pre-deploy Job the apiserver refuses: 422 naming it; nothing runs or is applied', async () => {
    const answer = await deploy(0);

    expect(answer.status, JSON.stringify(answer.body)).toBe(422);
    expect(answer.body['error']).toMatch(/^the apiserver refused the new Job "migrate": .*backoffLimit.*; nothing was applied$/);
    expect(await exists(`/apis/batch/v1/namespaces/${namespace}/jobs/migrate`)).toBe(false);
    expect(await exists(`/apis/apps/v1/namespaces/${namespace}/deployments/web`)).toBe(false);
  });

  it('another object refused by the dry-run: 422 before the pre-deploy Job starts', async () => {
    const answer = await deploy(1);

    expect(answer.status, JSON.stringify(answer.body)).toBe(422);
    expect(answer.body['error']).toMatch(/the apiserver refused 1 object\(s\); nothing was applied/);
    expect(await exists(`/apis/batch/v1/namespaces/${namespace}/jobs/migrate`)).toBe(false);
  });

  it("a Job that does not complete within the service's time under the lock: 504 naming it; the rest is not applied", async () => {
    const answer = await deploy(2);

    expect(answer.status, JSON.stringify(answer.body)).toBe(504);
    expect(answer.body['error']).toMatch(
      /held its deploy lock for .*s, longer than its limit of 5s .*: stopped before the rest of the deploy: pre-deploy Job "migrate" has not completed \(0\/1 succeeded, \d active, 0 failed\); it keeps running$/,
    );
    expect(await exists(`/apis/batch/v1/namespaces/${namespace}/jobs/migrate`)).toBe(true);
    expect(await exists(`/apis/apps/v1/namespaces/${namespace}/deployments/web`)).toBe(false);
  });
});
