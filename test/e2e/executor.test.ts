import type { V1Deployment } from '@kubernetes/client-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startCaptureServer, type CaptureServer } from '../env/capture-server.js';
import { ground } from '../env/ground.js';
import { adminClient, createNamespace } from '../env/kube-helpers.js';
import { configMapYaml, deploymentYaml } from '../env/manifests.js';
import { pushImage } from '../env/registry-helpers.js';
import { basic, serviceRepo, startDeployer, type RunningDeployer } from './setup.js';

/**
 * The originator: depctl's `Executor` header is recorded as the caller claims it — event log (an eighth field),
 * the Deployment's annotations and the last-known-good record, Bugsnag, Slack and `GET /:service` — cleaned and
 * bounded; the token stays the authority.
 */
const SECRET = 'ops-secret-exec7';
const BUGSNAG_KEY = '0123456789abcdef0123456789abcdef';
const short = (sha: string): string => sha.slice(0, 7);

describe('the Executor header: who ran depctl, as claimed', () => {
  let deployer: RunningDeployer;
  let bugsnag: CaptureServer;
  let slack: CaptureServer;
  let namespace: string;
  let svc: Awaited<ReturnType<typeof serviceRepo>>;
  let shas: string[] = [];

  const put = async (path: string, body: Record<string, string>, executor?: string): Promise<{ status: number; body: Record<string, unknown> }> => {
    const headers: Record<string, string> = { authorization: basic('ops', SECRET), 'content-type': 'application/json', 'user-agent': 'curl/8.5.0' };
    if (executor !== undefined) headers['executor'] = executor;
    const res = await fetch(`${deployer.url}/${svc.name}/${path}`, { method: 'PUT', headers, body: JSON.stringify(body) });
    return { status: res.status, body: (await res.json()) as Record<string, unknown> };
  };
  const read = (name: string): Promise<V1Deployment> => adminClient().apps.readNamespacedDeployment({ name, namespace });
  /** The event lines, once those written after the answers are out. */
  const eventLines = async (): Promise<string[]> =>
    (await deployer.settled(), deployer.logs).map((l) => l['msg']).filter((m): m is string => typeof m === 'string' && m.startsWith(`${svc.name};`));

  beforeAll(async () => {
    const registry = ground('registry').anonymous;
    namespace = await createNamespace('executor');
    const repository = `team/executor-${Date.now().toString(36)}`;
    const image = `${registry}/${repository}`;
    svc = await serviceRepo('exec', [
      { files: { 'kubernetes/deployment.yaml': deploymentYaml({ name: 'app', image, port: false }), 'kubernetes/config.yaml': configMapYaml('app-config', { value: 'one' }) } },
      { files: { 'kubernetes/config.yaml': configMapYaml('app-config', { value: 'two' }) } },
    ]);
    shas = svc.repo.shas;
    for (const sha of shas) await pushImage({ host: registry, repository, tag: `main-${short(sha)}` });
    [bugsnag, slack] = await Promise.all([startCaptureServer(), startCaptureServer()]);
    deployer = await startDeployer({
      tokens: { ops: { secret: { value: SECRET } } },
      services: { [svc.name]: { repository: svc.repository, namespace } },
      versions: { registryWaitSeconds: 0 },
      reports: {
        bugsnag: { apiKey: { value: BUGSNAG_KEY }, notifyEndpoint: `${bugsnag.url}/notify`, sessionsEndpoint: `${bugsnag.url}/sessions` },
        slack: { webhookUrl: { value: `${slack.url}/services/T000/B000/XXXX` }, notifyOnSuccess: true },
      },
    });
  });

  afterAll(async () => {
    await deployer?.close();
    await Promise.all([bugsnag?.close(), slack?.close()]);
  });

  it('records the executor in the event line, the annotations, Slack and GET /:service', async () => {
    const [c1] = shas as [string];
    const before = slack.requests.length;
    const answer = await put('deploy', { commit: c1 }, 'jane@example.com');
    expect(answer.status, JSON.stringify(answer.body)).toBe(200);

    expect((await eventLines()).at(-1)).toMatch(new RegExp(`^${svc.name};${short(c1)};deploy success;[0-9.]+s;[^;]+;\\+\\d+;-\\d+;jane@example\\.com$`));
    expect((await read('app')).metadata?.annotations).toMatchObject({ 'deployer.internal/executor': 'jane@example.com', 'deployer.internal/caller': 'ops' });
    const [message] = await slack.waitForRequests(before + 1).then((r) => r.slice(before));
    expect(JSON.stringify(message?.body)).toContain('(caller ops, executor jane@example.com, request ');

    const state = await fetch(`${deployer.url}/${svc.name}`, { headers: { authorization: basic('ops', SECRET) } });
    const deployments = ((await state.json()) as { deployments: Array<{ stable?: { version?: Record<string, unknown> } }> }).deployments;
    expect(deployments[0]?.stable?.version).toMatchObject({ deployedBy: 'ops', executor: 'jane@example.com' });
  });

  it('keeps the executor in the last-known-good record, and cleans a claimed executor of ; and tabs, bounded', async () => {
    const [, c2] = shas as [string, string];
    // HTTP carries no line breaks in a header value (the unit tests clean those), but tabs and `;` it does.
    const answer = await put('deploy', { commit: c2 }, `mallory;x\tservice;abc;deploy success${'m'.repeat(300)}`);
    expect(answer.status, JSON.stringify(answer.body)).toBe(200);

    const annotations = (await read('app')).metadata?.annotations ?? {};
    expect(annotations['deployer.internal/previous-executor']).toBe('jane@example.com');
    const claimed = annotations['deployer.internal/executor'] ?? '';
    expect(claimed).toMatch(/^malloryx serviceabcdeploy successm+$/);
    expect(claimed).toHaveLength(128);
    const line = (await eventLines()).at(-1) ?? '';
    expect(line.split(';')).toHaveLength(8);
    expect(line.endsWith(`;${claimed}`)).toBe(true);
  });

  it('a deploy without the header writes the seven original fields and no executor', async () => {
    const [c1] = shas as [string];
    const answer = await put('deploy', { commit: c1 });
    expect(answer.status, JSON.stringify(answer.body)).toBe(200);
    expect((await eventLines()).at(-1)?.split(';')).toHaveLength(7);
    expect((await read('app')).metadata?.annotations?.['deployer.internal/executor']).toBeUndefined();
  });

  it('sends the executor to Bugsnag with a failed deploy', async () => {
    const before = bugsnag.requests.filter((r) => r.path === '/notify').length;
    const answer = await put('deploy', { commit: 'deadbeef' }, 'jane@example.com');
    expect(answer.status).toBe(404);
    const notify = (await bugsnag.waitForRequests(bugsnag.requests.length + 1)).filter((r) => r.path === '/notify');
    expect(notify.length).toBeGreaterThan(before);
    expect(JSON.stringify(notify.at(-1)?.body)).toContain('"executor":"jane@example.com"');
  });
});
