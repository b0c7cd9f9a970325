import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { startCaptureServer, type CaptureServer } from '../env/capture-server.js';
import { githubAnswers, githubCalls } from '../env/github-fake.js';
import { ground } from '../env/ground.js';
import { createNamespace } from '../env/kube-helpers.js';
import { configMapYaml, deploymentYaml } from '../env/manifests.js';
import { pushImage } from '../env/registry-helpers.js';
import { basic, call, serviceRepo, startDeployer, type RunningDeployer } from './setup.js';

/**
 * GitHub deployments and commit statuses, end to end on the ground: deploys, canaries, promotions, rollbacks and a
 * failed deploy through the HTTP API, reported by the real Octokit to a local server standing in for GitHub
 * Enterprise; and a GitHub that fails or hangs changes nothing of the deploy's answer.
 */
const SECRET = 'ci-secret-github4';
const TOKEN = 'ghp_E2eTokenSecret77aa88bb99';
const short = (sha: string): string => sha.slice(0, 7);

describe('GitHub deployments and statuses of a service on GitHub', () => {
  let deployer: RunningDeployer;
  let github: CaptureServer;
  let svc: Awaited<ReturnType<typeof serviceRepo>>;
  let c1: string;
  let c2: string;
  let broken: string;

  const put = (path: string, form: Record<string, string> = {}) => call(`${deployer.url}/${svc.name}/${path}`, { auth: basic('ci', SECRET), form });
  /** What GitHub was told since `from`, once it has heard `count` calls. */
  const told = async (from: number, count: number): Promise<string[]> =>
    githubCalls((await github.waitForRequests(from + count)).slice(from)).map((c) => c.replaceAll(c1, 'C1').replaceAll(c2, 'C2').replaceAll(broken, 'BROKEN'));

  beforeAll(async () => {
    const registry = ground('registry').anonymous;
    const namespace = await createNamespace('github');
    const repository = `team/github-${Date.now().toString(36)}`;
    const image = `${registry}/${repository}`;
    svc = await serviceRepo('gh', [
      { files: { 'kubernetes/deployment.yaml': deploymentYaml({ name: 'app', image, port: false }), 'kubernetes/config.yaml': configMapYaml('app-config', { value: 'one' }) } },
      { files: { 'kubernetes/config.yaml': configMapYaml('app-config', { value: 'two' }) } },
      { files: { 'kubernetes/broken.yaml': 'kind: [unclosed\n' } },
    ]);
    [c1, c2, broken] = svc.repo.shas as [string, string, string];
    for (const sha of svc.repo.shas) await pushImage({ host: registry, repository, tag: `main-${short(sha)}` });
    github = await startCaptureServer({ answer: githubAnswers(() => svc.repo.shas) });
    deployer = await startDeployer({
      tokens: { ci: { secret: { value: SECRET } } },
      services: {
        [svc.name]: {
          repository: svc.repository,
          namespace,
          notifications: { github: { token: { value: TOKEN }, repository: 'acme/app', apiUrl: `${github.url}/api/v3` } },
        },
      },
      versions: { registryWaitSeconds: 0 },
    });
  });

  afterAll(async () => {
    await deployer?.close();
    await github?.close();
  });

  it('a deploy creates a deployment with status success and a commit status', async () => {
    const answer = await put('deploy', { commit: c1 });
    expect(answer.status, JSON.stringify(answer.body)).toBe(200);

    expect(await told(0, 3)).toEqual(['deployment production C1', 'deployment-status 1 success', 'status C1 deployer/production success']);
    expect(github.requests[0]?.path).toBe('/api/v3/repos/acme/app/deployments');
    expect(github.requests[0]?.body).toMatchObject({ payload: { service: svc.name, kind: 'deploy', tag: `main-${short(c1)}`, caller: 'ci' } });
  });

  it('a canary goes to production-canary; its rollback makes it inactive and fails its commit', async () => {
    const from = github.requests.length;
    expect((await put('canary', { commit: c2 })).status).toBe(200);
    expect(await told(from, 3)).toEqual(['deployment production-canary C2', 'deployment-status 2 success', 'status C2 deployer/production-canary success']);

    expect((await put('rollback')).status).toBe(200);
    expect(await told(from + 3, 3)).toEqual(['list production-canary', 'inactive 2', 'status C2 deployer/production-canary failure']);
  });

  it('a promotion makes the canary inactive and deploys its version to production; rollback to=previous deploys the one before', async () => {
    const from = github.requests.length;
    expect((await put('canary', { commit: c2 })).status).toBe(200);
    await told(from, 3);
    const promoted = await put('promote');
    expect(promoted.status, JSON.stringify(promoted.body)).toBe(200);
    expect(await told(from + 3, 5)).toEqual([
      'list production-canary',
      'inactive 3',
      'deployment production C2',
      'deployment-status 4 success',
      'status C2 deployer/production success',
    ]);

    expect((await put('rollback', { to: 'previous' })).status).toBe(200);
    expect(await told(from + 8, 3)).toEqual(['deployment production C1', 'deployment-status 5 success', 'status C1 deployer/production success']);
  });

  it('a deploy that fails marks its deployment and commit failure', async () => {
    const from = github.requests.length;
    const answer = await put('deploy', { commit: broken });
    expect(answer.status, JSON.stringify(answer.body)).toBe(422);

    expect(await told(from, 3)).toEqual(['deployment production BROKEN', 'deployment-status 6 failure', 'status BROKEN deployer/production failure']);
    expect(github.requests.at(-1)?.body).toMatchObject({ description: expect.stringMatching(/^deploy failed \(422\): /) as unknown });
  });

  it('a GitHub answering 500 neither fails nor holds the deploy; the warning names no token', async () => {
    github.setMode('error', 500);
    const from = github.requests.length;

    const answer = await put('deploy', { commit: c2 });

    expect(answer.status, JSON.stringify(answer.body)).toBe(200);
    await github.waitForRequests(from + 1);
    await vi.waitFor(() => expect(deployer.logs).toContainEqual(expect.objectContaining({ msg: 'notifier failed', notifier: 'github' })));
    expect(deployer.logText()).not.toContain(TOKEN);
  });

  it('a hanging GitHub is answered after the deploy, and given up after the bound', async () => {
    github.setMode('hang');
    const from = github.requests.length;
    const failures = (): number => deployer.logs.filter((l) => l['msg'] === 'notifier failed').length;
    const before = failures();

    const answer = await put('deploy', { commit: c1 });

    expect(answer.status, JSON.stringify(answer.body)).toBe(200);
    // The deploy has answered while GitHub holds the report's first request open: the report did not hold it.
    await github.waitForRequests(from + 1);
    expect(await github.openConnections()).toBeGreaterThan(0);
    expect(failures()).toBe(before);
    // Then the report's bound gives up on it, and its connection is closed.
    await vi.waitFor(() => expect(failures()).toBe(before + 1), { timeout: 30_000 });
    expect(deployer.logs.filter((l) => l['msg'] === 'notifier failed').at(-1)).toMatchObject({
      notifier: 'github',
      error: { message: expect.stringMatching(/did not answer within \d+ ms$/) as unknown },
    });
    await vi.waitFor(async () => expect(await github.openConnections()).toBe(0), { timeout: 30_000 });
    expect(deployer.logText()).not.toContain(TOKEN);
  });
});
