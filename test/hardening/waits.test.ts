import { afterAll, beforeAll, describe, expect, it, onTestFinished, vi } from 'vitest';
import { ground } from '../env/ground.js';
import { createNamespace, kubeRequest } from '../env/kube-helpers.js';
import { deploymentYaml } from '../env/manifests.js';
import { pushImage } from '../env/registry-helpers.js';
import { send, sleep } from '../e2e/flows-setup.js';
import { basic, serviceRepo, startDeployer, type RunningDeployer } from '../e2e/setup.js';
import { kubernetesCalls } from './harness.js';

/**
 * Finding 5: verdict waits outlived their callers (100 deploys with wait=30m from clients that hung up kept ~210
 * apiserver reads per second going for 30 minutes), and nothing capped them. On the ground, where no kubelet runs,
 * so a rollout never finishes: a wait stops when its caller hangs up (counted by the deployer's own metrics of
 * apiserver calls), and a wait beyond http.maxWaits is refused with 503 and Retry-After before anything is deployed.
 */

const CI = basic('ci', 'ci-secret-wa1t5');
/** A tag of no commit, for the service whose repository did not build the image. */
const OTHER_TAG = 'release-candidate';

describe('verdict waits', () => {
  let deployer: RunningDeployer;
  let namespace: string;
  let svc: Awaited<ReturnType<typeof serviceRepo>>;
  let other: Awaited<ReturnType<typeof serviceRepo>>;
  let tag = '';

  beforeAll(async () => {
    const registry = ground('registry').anonymous;
    namespace = await createNamespace('waits');
    const repository = `hardening/waits-${Date.now().toString(36)}`;
    svc = await serviceRepo('waiting', [{ files: { 'kubernetes/deployment.yaml': deploymentYaml({ name: 'slow-rollout', image: `${registry}/${repository}`, port: false }) } }]);
    other = await serviceRepo('other', [{ files: { 'kubernetes/deployment.yaml': deploymentYaml({ name: 'other-rollout', image: `${registry}/${repository}`, port: false }) } }]);
    tag = `main-${(svc.repo.shas[0] ?? '').slice(0, 7)}`;
    await pushImage({ host: registry, repository, tag });
    await pushImage({ host: registry, repository, tag: OTHER_TAG });
    deployer = await startDeployer({
      tokens: { ci: { secret: { value: 'ci-secret-wa1t5' }, actions: ['read', 'deploy', 'canary'] } },
      services: { [svc.name]: { repository: svc.repository, namespace }, [other.name]: { repository: other.repository, namespace } },
      versions: { registryWaitSeconds: 0 },
      http: { maxWaits: 1 },
    });
  });

  afterAll(async () => {
    await deployer?.close();
  });

  it('a wait whose caller hung up stops polling the apiserver; one beyond maxWaits is refused before it deploys', async () => {
    const caller = new AbortController();
    const waiting = fetch(`${deployer.url}/${svc.name}/deploy`, {
      method: 'PUT',
      headers: { authorization: CI, 'content-type': 'application/json' },
      body: JSON.stringify({ tag, wait: '30m' }),
      signal: caller.signal,
    }).catch((err: unknown) => err);
    // However this test ends, the caller leaves (else closing the deployer would wait for it).
    onTestFinished(() => caller.abort());
    // Applied, and polling for a verdict that never comes (no kubelet: the pod stays Pending).
    await vi.waitFor(async () => expect(await kubernetesCalls(deployer.url)).toBeGreaterThan(0), { timeout: 30_000, interval: 200 });
    await vi.waitFor(() => expect(deployer.logs.some((l) => l['msg'] === 'applied' && l['name'] === 'slow-rollout')).toBe(true), { timeout: 30_000 });

    // The one wait slot is taken: another wait is refused before it deploys anything.
    const refused = await fetch(`${deployer.url}/${other.name}/deploy`, {
      method: 'PUT',
      headers: { authorization: CI, 'content-type': 'application/json' },
      body: JSON.stringify({ commit: 'main', tag: OTHER_TAG, wait: '5m' }),
    });
    expect(refused.status).toBe(503);
    expect(refused.headers.get('retry-after')).toBe('30');
    expect(await refused.json()).toMatchObject({
      error: 'too many requests wait for rollouts (http.maxWaits is 1); nothing was deployed. Try again later, or deploy without wait and poll GET /SERVICE for the rollout',
      maxWaits: 1,
    });
    expect((await kubeRequest('GET', `/apis/apps/v1/namespaces/${namespace}/deployments/other-rollout`)).status).toBe(404);

    // The caller hangs up: the deployer stops waiting for it.
    caller.abort();
    await waiting;
    await vi.waitFor(() => expect(deployer.logs).toContainEqual(expect.objectContaining({ msg: 'verdict wait abandoned: the caller left', service: svc.name })), {
      timeout: 10_000,
    });
    const after = await kubernetesCalls(deployer.url);
    // Three poll intervals (1 s each) later, not one more read.
    await sleep(3_000);
    expect(await kubernetesCalls(deployer.url)).toBe(after);

    // Its slot is free again: a wait is taken (and times out as 202, the rollout still going).
    const next = await send(`${deployer.url}/${other.name}/deploy`, { auth: CI, json: { commit: 'main', tag: OTHER_TAG, wait: '1s' } });
    expect(next.status, JSON.stringify(next.body)).toBe(202);
    expect(next.body['verdict']).toMatchObject({ result: 'timeout' });
  });
});
