import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { ANSWER_LIMITS } from '../../src/registry/transport.js';
import { sleep } from '../e2e/flows-setup.js';
import { basic, serviceRepo } from '../e2e/setup.js';
import { ground } from '../env/ground.js';
import { adminClient, createNamespace } from '../env/kube-helpers.js';
import { deploymentYaml, serviceManifests } from '../env/manifests.js';
import { pushImage } from '../env/registry-helpers.js';
import { combinedLoad, DONE_WHEN, openConnectionsOn, strayGitProcesses, type LoadOutcome } from './combined-load.js';
import { kubernetesCalls, memoryOf, startScratchDeployer, type ScratchDeployer } from './harness.js';
import { HUGE, startHostileRegistry, stream, type Hostile } from './hostile-registry.js';

/**
 * The bounded load scenario of the second hardening round, against the deployer as its own process with the
 * default http.* bounds: 200 slow connections, 100 verdict waits whose callers hang up, 100 read-token fetches of
 * unknown commits and a registry that answers 400 MB, all at once, while CI deploys a new commit. Asserted: what
 * came out is right (the deploy applied the right version; every other request got a bounded answer), the process
 * lives, and nothing is left afterwards — no connection open, no wait polling, no git process but the long-lived
 * object readers, resident memory back near where it was before. No duration is asserted: the bench
 * (bench/hardening-load.ts) reports how long the deploy took.
 */

const CI_SECRET = 'ci-secret-combined-load-0123';
const READER_SECRET = 'reader-secret-combined-load-4567';
const CI = basic('ci', CI_SECRET);
const READER = basic('reader', READER_SECRET);
const MiB = 1024 * 1024;
/** The pod's memory limit (kubernetes/app/deployment.yaml): the peak must stay below it. */
const POD_LIMIT = 512 * MiB;
/**
 * "Near idle": what the process may keep after the load on top of its RSS before it. V8 keeps some of a grown heap
 * and malloc some of its arenas for a while; a leak of the load (100 waits, 300 sockets, a 400 MB body) would be
 * far more.
 */
const KEPT_AFTER = 64 * MiB;

const short = (sha: string): string => sha.slice(0, 7);

describe('combined load: slow connections, abandoned waits, read fetches and a 400 MB registry answer during a CI deploy', () => {
  let deployer: ScratchDeployer | undefined;
  let huge: Hostile;
  let port = 0;
  let ciNamespace = '';
  let ci: Awaited<ReturnType<typeof serviceRepo>>;
  let image = '';
  const digests: string[] = [];
  let outcome: LoadOutcome;
  let idleRss = 0;

  beforeAll(async () => {
    const registry = ground('registry').anonymous;
    huge = await startHostileRegistry((_req, res, sent) => {
      sent(stream(res, { total: HUGE, chunk: Buffer.from('"t-xxxxxxxx",'.repeat(5000)), prefix: '{"tags":[' }));
    });
    ciNamespace = await createNamespace('load-ci');
    const waitNamespace = await createNamespace('load-wait');
    const imageRepository = `hardening/load-${Date.now().toString(36)}`;
    image = `${registry}/${imageRepository}`;
    ci = await serviceRepo('load-ci', [
      { files: serviceManifests({ name: 'shop', image, value: 'one' }) },
      { files: serviceManifests({ name: 'shop', image, value: 'two' }) },
    ]);
    for (const sha of ci.repo.shas) digests.push((await pushImage({ host: registry, repository: imageRepository, tag: `main-${short(sha)}` })).digest);
    const waiting = await serviceRepo('load-wait', [
      { files: { 'kubernetes/deployment.yaml': deploymentYaml({ name: 'never-ready', image, port: false }) } },
    ]);
    // Its version is an image of its own commit: a tag names a commit of the service's repository.
    await pushImage({ host: registry, repository: imageRepository, tag: `main-${short(waiting.repo.shas[0] ?? '')}` });
    const big = await serviceRepo('load-huge', [
      { files: { 'kubernetes/deployment.yaml': deploymentYaml({ name: 'app', image: `${huge.host}/team/app`, port: false }) } },
    ]);

    deployer = await startScratchDeployer('hardening-combined-', {
      tokens: {
        ci: { secret: { value: CI_SECRET }, services: [ci.name, waiting.name], actions: ['read', 'deploy'] },
        reader: { secret: { value: READER_SECRET }, actions: ['read'] },
      },
      services: {
        [ci.name]: { repository: ci.repository, namespace: ciNamespace },
        [waiting.name]: { repository: waiting.repository, namespace: waitNamespace },
        [big.name]: { repository: big.repository, namespace: 'default' },
      },
      registries: { [registry]: { insecure: true }, [huge.host]: { insecure: true } },
      versions: { registryWaitSeconds: 0 },
      // http.*: the defaults (30 s request, 10 s header timeout, 512 connections, 64 waits).
    });
    port = deployer.port;
    const url = deployer.url;

    // Warm: the first version deployed, as CI did before; then the resident memory at rest.
    const first = await fetch(`${url}/${ci.name}/deploy`, {
      method: 'PUT',
      headers: { authorization: CI, 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ commit: ci.repo.shas[0] ?? '' }).toString(),
    });
    expect(first.status, await first.text()).toBe(200);
    await sleep(1_000);
    idleRss = memoryOf(deployer.child.pid ?? 0, 'VmRSS');

    outcome = await combinedLoad({
      url,
      deploy: { auth: CI, service: ci.name, commit: ci.repo.shas[1] ?? '' },
      wait: { auth: CI, service: waiting.name, tag: `main-${short(waiting.repo.shas[0] ?? '')}` },
      read: { auth: READER, service: ci.name },
      hugeRegistry: { auth: READER, service: big.name },
    });
  }, 300_000);

  afterAll(async () => {
    await deployer?.close();
    await huge?.close();
  });

  it('the CI deploy succeeds with the right version applied', async () => {
    expect(outcome.deploy.status, JSON.stringify(outcome.deploy.body)).toBe(200);
    const c2 = ci.repo.shas[1] ?? '';
    expect(outcome.deploy.body).toMatchObject({ service: ci.name, commit: c2, tag: `main-${short(c2)}` });
    const { apps, core } = adminClient();
    const deployment = await apps.readNamespacedDeployment({ name: 'shop', namespace: ciNamespace });
    expect(deployment.spec?.template.spec?.containers[0]?.image).toBe(`${image}:main-${short(c2)}@${digests[1]}`);
    expect((await core.readNamespacedConfigMap({ name: 'shop-config', namespace: ciNamespace })).data).toEqual({ value: 'two' });
  });

  it('every other request got a bounded answer', () => {
    // Waits: refused at the cap (503 + Retry-After, nothing deployed) or hung up by their callers; nothing else.
    expect(outcome.waits.unexpected).toEqual([]);
    expect(outcome.waits.refused + outcome.waits.abandoned).toBe(DONE_WHEN.abandonedWaits);
    // Read fetches of unknown commits: not found, or refused beyond the few a read may wait behind.
    for (const status of Object.keys(outcome.reads)) expect(['404', '503'], JSON.stringify(outcome.reads)).toContain(status);
    // Reads do not queue without bound (as deploys do): beyond the few that may wait, they are refused at once.
    expect(outcome.reads['503'] ?? 0, JSON.stringify(outcome.reads)).toBeGreaterThan(0);
    // The 400 MB tag list: cut at its limit.
    expect(outcome.huge?.status, JSON.stringify(outcome.huge?.body)).toBe(502);
    expect(outcome.huge?.body).toMatchObject({ system: 'registry', limitBytes: ANSWER_LIMITS.tags });
    // Slow connections: every one closed by the server (408 for trickling headers; an unauthenticated body 401 or 408).
    expect(outcome.slow.opened).toBe(DONE_WHEN.slowConnections);
    expect(outcome.slow.closedByServer).toBe(DONE_WHEN.slowConnections);
    for (const status of Object.keys(outcome.slow.answers)) expect(['401', '408'], JSON.stringify(outcome.slow.answers)).toContain(status);
  });

  it('the process lives, and its peak memory stayed below the pod limit', () => {
    const pid = deployer?.child.pid ?? 0;
    expect(deployer?.child.exitCode).toBeNull();
    const peak = memoryOf(pid, 'VmHWM');
    console.info(`combined load: RSS ${(idleRss / MiB).toFixed(0)} MiB before, peak ${(peak / MiB).toFixed(0)} MiB; deploy ${outcome.deploy.ms.toFixed(0)} ms; ${JSON.stringify({ waits: outcome.waits, reads: outcome.reads, slow: outcome.slow })}`);
    expect(peak).toBeLessThan(POD_LIMIT);
  });

  it('nothing is left: no connection open, no wait polling, no stray git process, memory back near idle', async () => {
    const d = deployer as ScratchDeployer;
    const pid = d.child.pid ?? 0;
    // Connections: the server closes idle keep-alive ones after 5 s (http.keepAliveTimeoutSeconds).
    await vi.waitFor(() => expect(openConnectionsOn(port)).toBe(0), { timeout: 30_000, interval: 500 });

    // Waits: every wait the server stopped, it stopped because its caller left (the cap at once: waits.test.ts) ...
    const abandoned = d.output().split('\n').filter((l) => l.includes('"msg":"verdict wait abandoned: the caller left"')).length;
    expect(abandoned).toBeLessThanOrEqual(outcome.waits.abandoned);
    // ... and none polls the apiserver any more: three poll intervals (1 s each), not one more call.
    const calls = await kubernetesCalls(d.url);
    await sleep(3_000);
    expect(await kubernetesCalls(d.url)).toBe(calls);

    // git: nothing but the long-lived object readers (one per repository cache).
    await vi.waitFor(() => expect(strayGitProcesses(pid)).toEqual([]), { timeout: 30_000, interval: 500 });

    // Memory: V8 gives a grown heap back after idle collections; poll before judging.
    let rss = memoryOf(pid, 'VmRSS');
    for (let i = 0; i < 150 && rss > idleRss + KEPT_AFTER; i++) {
      await sleep(200);
      rss = memoryOf(pid, 'VmRSS');
    }
    console.info(`combined load: RSS ${(idleRss / MiB).toFixed(0)} MiB before, ${(rss / MiB).toFixed(0)} MiB after`);
    expect(rss, `RSS ${(idleRss / MiB).toFixed(0)} MiB before the load, ${(rss / MiB).toFixed(0)} MiB after`).toBeLessThanOrEqual(idleRss + KEPT_AFTER);
    expect(d.child.exitCode).toBeNull();
    expect(d.output()).not.toContain(CI_SECRET);
    expect(d.output()).not.toContain(READER_SECRET);
  }, 120_000);
});
