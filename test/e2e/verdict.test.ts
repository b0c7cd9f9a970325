import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ground } from '../env/ground.js';
import { createNamespace } from '../env/kube-helpers.js';
import { pushImage } from '../env/registry-helpers.js';
import { deploymentYaml } from '../env/manifests.js';
import { send } from './flows-setup.js';
import { basic, serviceRepo, startDeployer, type RunningDeployer } from './setup.js';

/**
 * `wait=` where no pod needs to run: without it there is no verdict, and a wait too long is refused. Every verdict
 * itself (success, failure, timeout, through deploy, canary, rollback and promote) is tested on real pods:
 * test/node/verdict.test.ts, verdict-flows.test.ts and workloads.test.ts.
 */

const SECRET = 'ops-secret-ver0ict';
const auth = basic('ops', SECRET);
const short = (sha: string): string => sha.slice(0, 7);

describe('rollout verdict: wait= without pods', () => {
  let deployer: RunningDeployer;
  let svc: Awaited<ReturnType<typeof serviceRepo>>;
  const tag = (i: number): string => `main-${short(svc.repo.shas[i] ?? '')}`;
  const url = (path: string): string => `${deployer.url}/${svc.name}/${path}`;

  beforeAll(async () => {
    const registry = ground('registry').anonymous;
    const namespace = await createNamespace('verdict');
    const repository = `team/verdict-${Date.now().toString(36)}`;
    svc = await serviceRepo('rollout', [
      { files: { 'kubernetes/deployment.yaml': deploymentYaml({ name: 'api', image: `${registry}/${repository}`, replicas: 2, port: false }) } },
    ]);
    for (const sha of svc.repo.shas) await pushImage({ host: registry, repository, tag: `main-${short(sha)}` });
    deployer = await startDeployer({
      tokens: { ops: { secret: { value: SECRET } } },
      services: { [svc.name]: { repository: svc.repository, namespace } },
      versions: { registryWaitSeconds: 0 },
    });
  });

  afterAll(async () => {
    await deployer?.close();
  });

  it('without wait, the answer comes once the objects are applied, with no verdict (its pods are not even scheduled)', async () => {
    const answer = await send(url('deploy'), { auth, json: { tag: tag(0) } });
    expect(answer.status, JSON.stringify(answer.body)).toBe(200);
    expect(answer.body['verdict']).toBeUndefined();
    expect(answer.body['message']).toBe(`${svc.name} ${tag(0)} is deployed`);
  });

  it('a wait longer than 30 minutes is refused (400)', async () => {
    const answer = await send(url('deploy?wait=2h'), { auth, json: { tag: tag(0) } });
    expect(answer.status).toBe(400);
    expect(answer.body).toEqual({ error: 'wait must be at most 30m', field: 'wait' });
  });
});
