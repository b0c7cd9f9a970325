import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { V1Deployment } from '@kubernetes/client-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ground } from '../env/ground.js';
import { adminClient, createNamespace, uniqueName } from '../env/kube-helpers.js';
import { tokenKubeconfig } from '../env/kube-plane.js';
import { freePort } from '../env/processes.js';
import { pushImage } from '../env/registry-helpers.js';
import { configMapYaml, deploymentYaml } from '../env/manifests.js';
import { send } from './flows-setup.js';
import { basic, serviceRepo, startDeployer, type RunningDeployer } from './setup.js';

const SECRETS = { ci: 'ci-secret-f10w5', monitor: 'monitor-secret-a1e27', cron: 'cron-secret-c40n', ops: 'ops-secret-0p5' } as const;
const AS = {
  ci: basic('ci', SECRETS.ci),
  monitor: basic('monitor', SECRETS.monitor),
  cron: basic('cron', SECRETS.cron),
  ops: basic('ops', SECRETS.ops),
};
const short = (sha: string): string => sha.slice(0, 7);

interface TrackView {
  name: string;
  version?: { tag: string; commit: string; digest?: string; digests: Record<string, string>; deployedBy?: string; deployedAt?: string };
  images: string[];
  replicas: { desired: number; ready: number; updated: number; available: number; total: number };
  ageSeconds?: number;
}
interface DeploymentView {
  namespace: string;
  name: string;
  stable?: TrackView;
  canary?: TrackView;
  previous?: { tag: string; commit: string; digest?: string };
}

/** An Alertmanager notification (webhook payload version 4) as Alertmanager 0.27 sends it. */
function alertmanagerPayload(alerts: Array<{ status: 'firing' | 'resolved'; labels: Record<string, string> }>): unknown {
  return {
    receiver: 'deployer',
    status: alerts.some((a) => a.status === 'firing') ? 'firing' : 'resolved',
    alerts: alerts.map((a, i) => ({
      status: a.status,
      labels: a.labels,
      annotations: { summary: 'canary latency above stable + 50ms' },
      startsAt: '2024-05-06T07:08:09.000Z',
      endsAt: '0001-01-01T00:00:00Z',
      generatorURL: 'http://prometheus:9090/graph?g0.expr=x',
      fingerprint: `f${i}`,
    })),
    groupLabels: { alertname: 'CanaryLatency' },
    commonLabels: { alertname: 'CanaryLatency' },
    commonAnnotations: {},
    externalURL: 'http://alertmanager:9093',
    version: '4',
    groupKey: '{}:{alertname="CanaryLatency"}',
    truncatedAlerts: 0,
  };
}

describe('used-by flows: live state, rollback, monitor hooks, promotion', () => {
  let deployer: RunningDeployer;
  let namespace: string;
  let image: string;
  let svc: Awaited<ReturnType<typeof serviceRepo>>;
  let other: string;
  const digests: Record<string, string> = {};
  let shas: string[] = [];

  const read = async (name: string): Promise<V1Deployment | undefined> => {
    try {
      return await adminClient().apps.readNamespacedDeployment({ name, namespace });
    } catch {
      return undefined;
    }
  };
  const appImage = (d: V1Deployment | undefined): string | undefined => d?.spec?.template.spec?.containers[0]?.image;
  const versionOf = (sha: string): string => `${image}:main-${short(sha)}@${digests[sha]}`;
  const state = async (): Promise<DeploymentView[]> => {
    const answer = await send(`${deployer.url}/${svc.name}`, { method: 'GET', auth: AS.ci });
    expect(answer.status, JSON.stringify(answer.body)).toBe(200);
    return answer.body['deployments'] as DeploymentView[];
  };
  /** The event lines of `kind`, once those written after the answers are out. */
  const eventLines = async (kind: string): Promise<string[]> =>
    (await deployer.settled(), deployer.logs)
      .map((l) => l['msg'])
      .filter((m): m is string => typeof m === 'string' && m.startsWith(`${svc.name};`) && m.includes(`;${kind} `));

  beforeAll(async () => {
    const registry = ground('registry').anonymous;
    namespace = await createNamespace('flows');
    const repository = `team/flows-${Date.now().toString(36)}`;
    image = `${registry}/${repository}`;
    svc = await serviceRepo('shop', [
      { files: { 'kubernetes/deployment.yaml': deploymentYaml({ name: 'shop', image, replicas: 2, port: false }), 'kubernetes/config.yaml': configMapYaml('shop-config', { value: 'one' }) } },
      { files: { 'kubernetes/config.yaml': configMapYaml('shop-config', { value: 'two' }) } },
      { files: { 'kubernetes/config.yaml': configMapYaml('shop-config', { value: 'three' }) } },
      { files: { 'kubernetes/config.yaml': configMapYaml('shop-config', { value: 'four' }) } },
    ]);
    shas = svc.repo.shas;
    for (const sha of shas) {
      digests[sha] = (await pushImage({ host: registry, repository, tag: `main-${short(sha)}` })).digest;
    }
    other = 'elsewhere';
    deployer = await startDeployer(
      {
        tokens: {
          ci: { secret: { value: SECRETS.ci }, services: [svc.name], actions: ['read', 'deploy', 'canary'] },
          // A monitor's token: it may roll back and nothing else.
          monitor: { secret: { value: SECRETS.monitor }, services: [svc.name], actions: ['rollback'] },
          cron: { secret: { value: SECRETS.cron }, services: [svc.name], actions: ['promote'] },
          ops: { secret: { value: SECRETS.ops } },
        },
        services: {
          [svc.name]: { repository: svc.repository, namespace },
          [other]: { repository: svc.repository, namespace },
        },
        versions: { registryWaitSeconds: 0 },
      },
      { identity: 'flows-test' },
    );
  });

  afterAll(async () => {
    await deployer?.close();
  });

  it('CI deploys a stable version: GET /:service shows it as the cluster runs it', async () => {
    const [c1] = shas as [string];
    const answer = await send(`${deployer.url}/${svc.name}/deploy`, { auth: AS.ci, json: { commit: short(c1) } });
    expect(answer.status, JSON.stringify(answer.body)).toBe(200);

    const deployments = await state();
    expect(deployments).toEqual([
      {
        namespace,
        name: 'shop',
        stable: {
          name: 'shop',
          version: expect.objectContaining({
            tag: `main-${short(c1)}`,
            commit: c1,
            digest: digests[c1],
            digests: { [image]: digests[c1] },
            deployedBy: 'ci',
            deployedAt: expect.stringMatching(/^\d{4}-\d\d-\d\dT/) as unknown,
          }) as unknown,
          images: [versionOf(c1)],
          replicas: expect.objectContaining({ desired: 2 }) as unknown,
        },
      },
    ]);
    const live = await read('shop');
    expect(live?.metadata?.labels).toMatchObject({ 'deployer.internal/service': svc.name });
    // A first deploy has no version before it.
    expect(Object.keys(live?.metadata?.annotations ?? {}).filter((k) => k.startsWith('deployer.internal/previous-'))).toEqual([]);
  });

  it('CI deploys a canary: the state shows both versions and the canary age', async () => {
    const [c1, c2] = shas as [string, string];
    const answer = await send(`${deployer.url}/${svc.name}/canary`, { auth: AS.ci, json: { tag: `main-${short(c2)}` } });
    expect(answer.status, JSON.stringify(answer.body)).toBe(200);

    const [entry] = await state();
    expect(entry?.stable?.version?.tag).toBe(`main-${short(c1)}`);
    expect(entry?.canary).toMatchObject({
      name: 'shop-canary',
      version: { tag: `main-${short(c2)}`, commit: c2, digest: digests[c2], deployedBy: 'ci' },
      replicas: { desired: 1 },
    });
    expect(entry?.canary?.ageSeconds).toBeGreaterThanOrEqual(0);
    expect(entry?.canary?.ageSeconds).toBeLessThan(60);
  });

  it('the monitor token may roll back but not deploy', async () => {
    const answer = await send(`${deployer.url}/${svc.name}/deploy`, { auth: AS.monitor, json: { commit: short(shas[0] ?? '') } });
    expect(answer.status).toBe(403);
    expect(answer.body).toEqual({ error: `token "monitor" may not deploy service "${svc.name}"`, token: 'monitor', action: 'deploy', service: svc.name });
  });

  it('an Alertmanager notification rolls the canary back once, however many copies arrive together; stable is untouched', async () => {
    const [c1, c2] = shas as [string, string];
    const before = await read('shop');
    const alerts = alertmanagerPayload([
      { status: 'firing', labels: { alertname: 'CanaryLatency', service: svc.name, track: 'canary' } },
      { status: 'firing', labels: { alertname: 'CanaryErrors', service: svc.name, track: 'canary' } },
      { status: 'resolved', labels: { alertname: 'CanaryLatency', service: svc.name } },
      { status: 'firing', labels: { alertname: 'DiskFull', instance: 'node-1' } },
    ]);
    const url = `${deployer.url}/hooks/alertmanager`;
    const answers = await Promise.all([
      send(url, { method: 'POST', auth: AS.monitor, json: alerts, userAgent: 'Alertmanager/0.27.0' }),
      send(url, { method: 'POST', auth: AS.monitor, json: alerts, userAgent: 'Alertmanager/0.27.0' }),
    ]);

    for (const answer of answers) {
      expect(answer.status, JSON.stringify(answer.body)).toBe(200);
      const results = answer.body['results'] as Array<Record<string, unknown>>;
      expect(results.map((r) => r['result'])).toEqual([
        expect.stringMatching(/^(rolled-back|nothing-to-roll-back)$/),
        results[0]?.['result'],
        'ignored',
        'ignored',
      ]);
      expect(results[2]).toMatchObject({ alert: 'CanaryLatency', status: 'resolved', message: 'the alert is resolved' });
      expect(results[3]).toMatchObject({ alert: 'DiskFull', message: 'the alert has no "service" label' });
    }
    const rolledBack = answers.filter((a) => (a.body['results'] as Array<Record<string, unknown>>)[0]?.['result'] === 'rolled-back');
    expect(rolledBack.length).toBeGreaterThanOrEqual(1);
    expect((rolledBack[0]?.body['results'] as Array<Record<string, unknown>>)[0]?.['message']).toBe(
      `${svc.name} canary main-${short(c2)} is rolled back`,
    );
    // One rollback: one deletion of the canary, one event line, whether the copies were joined or came one after the other.
    const deletions = deployer.logs.filter((l) => l['msg'] === 'deleted' && l['name'] === 'shop-canary');
    expect(deletions).toHaveLength(1);
    expect(await eventLines('rollback')).toEqual([expect.stringMatching(new RegExp(`^${svc.name};${short(c2)};rollback success;`))]);

    expect(await read('shop-canary')).toBeUndefined();
    const after = await read('shop');
    expect(appImage(after)).toBe(versionOf(c1));
    expect(after?.metadata?.generation).toBe(before?.metadata?.generation);
    expect(after?.metadata?.annotations?.['deployer.internal/request-id']).toBe(before?.metadata?.annotations?.['deployer.internal/request-id']);
  });

  it('a rollback with nothing left to roll back answers 200 "nothing to roll back"', async () => {
    const [c1] = shas as [string];
    const answer = await send(`${deployer.url}/${svc.name}/rollback`, { auth: AS.monitor });
    expect(answer.status, JSON.stringify(answer.body)).toBe(200);
    expect(answer.body).toMatchObject({
      message: `nothing to roll back: ${svc.name} runs no canary`,
      outcome: 'nothing-to-roll-back',
      kind: 'rollback',
      commit: c1,
      tag: `main-${short(c1)}`,
      objects: [],
    });
    expect(await eventLines('rollback')).toHaveLength(1);
  });

  it('a hook naming a service the token may not touch or an unknown one answers 200 with that result per alert', async () => {
    const answer = await send(`${deployer.url}/hooks/alertmanager`, {
      method: 'POST',
      auth: AS.monitor,
      json: alertmanagerPayload([
        { status: 'firing', labels: { alertname: 'A', service: other } },
        { status: 'firing', labels: { alertname: 'B', service: svc.name } },
      ]),
    });
    // Alertmanager sends a notification again only after a 5xx; a 4xx would be a lost rollback for the other alerts.
    expect(answer.status).toBe(200);
    expect(answer.body['results']).toEqual([
      { alert: 'A', fingerprint: 'f0', status: 'firing', service: other, result: 'forbidden', message: `token "monitor" may not rollback service "${other}"` },
      { alert: 'B', fingerprint: 'f1', status: 'firing', service: svc.name, result: 'nothing-to-roll-back', message: `nothing to roll back: ${svc.name} runs no canary` },
    ]);

    const unknown = await send(`${deployer.url}/hooks/alertmanager`, {
      method: 'POST',
      auth: AS.ops,
      json: alertmanagerPayload([{ status: 'firing', labels: { alertname: 'A', service: 'no-such-service' } }]),
    });
    expect(unknown.status).toBe(200);
    expect((unknown.body['results'] as unknown[])[0]).toMatchObject({ result: 'unknown-service', message: 'service "no-such-service" is not configured' });
  });

  it.each([
    ['another payload version', { ...(alertmanagerPayload([]) as object), version: '3' }, 'version must be "4" (the Alertmanager webhook payload this deployer reads)'],
    ['alerts that are no list', { version: '4', alerts: {} }, 'alerts must be a list'],
  ])('refuses %s (400)', async (_what, json, error) => {
    const answer = await send(`${deployer.url}/hooks/alertmanager`, { method: 'POST', auth: AS.monitor, json });
    expect(answer.status).toBe(400);
    expect(answer.body['error']).toBe(error);
  });

  it('an apiserver outage during a hook rollback answers 503, so that Alertmanager retries', async () => {
    const kube = ground('kube');
    const kubeconfig = join(kube.dir, `${uniqueName('nowhere')}.kubeconfig`);
    writeFileSync(kubeconfig, tokenKubeconfig({ server: `https://127.0.0.1:${await freePort()}`, caFile: kube.caFile, user: 'admin', token: kube.adminToken }));
    const cut = await startDeployer({
      kubernetes: { kubeconfig },
      tokens: { monitor: { secret: { value: SECRETS.monitor }, actions: ['rollback'] } },
      services: { [svc.name]: { repository: svc.repository, namespace } },
      versions: { registryWaitSeconds: 0 },
    });
    try {
      const answer = await send(`${cut.url}/hooks/alertmanager`, {
        method: 'POST',
        auth: AS.monitor,
        json: alertmanagerPayload([{ status: 'firing', labels: { alertname: 'A', service: svc.name } }]),
      });
      expect(answer.status).toBe(503);
      expect(answer.body['results']).toEqual([
        { alert: 'A', fingerprint: 'f0', status: 'firing', service: svc.name, result: 'failed', message: "rollback failed (503); see the deployer's log; send the alert again" },
      ]);
      expect(cut.logs).toContainEqual(expect.objectContaining({ msg: 'rollback from a monitor hook failed', status: 503 }));
    } finally {
      await cut.close();
    }
  });

  it('hooks need the rollback scope', async () => {
    const answer = await send(`${deployer.url}/hooks/alertmanager`, { method: 'POST', auth: AS.ci, json: alertmanagerPayload([]) });
    expect(answer.status).toBe(403);
    expect(answer.body['error']).toBe('token "ci" may not rollback');
  });

  it('promote with minAge refuses a younger canary (409), then the promote call promotes its exact version', async () => {
    const [c1, , c3] = shas as [string, string, string];
    const canary = await send(`${deployer.url}/${svc.name}/canary`, { auth: AS.ci, json: { commit: c3 } });
    expect(canary.status, JSON.stringify(canary.body)).toBe(200);

    const young = await send(`${deployer.url}/${svc.name}/promote`, { auth: AS.cron, json: { minAge: '30m' } });
    expect(young.status).toBe(409);
    expect(young.body).toMatchObject({
      error: expect.stringMatching(new RegExp(`^the canary of ${svc.name} \\(main-${short(c3)}\\) is \\d+s old, younger than 30m: not promoted$`)) as unknown,
      minAgeSeconds: 1800,
    });
    expect(await read('shop-canary')).toBeDefined();

    // The tag moves after the canary was deployed: promotion must still deploy the digest the canary ran.
    const registry = ground('registry').anonymous;
    const moved = await pushImage({ host: registry, repository: image.slice(registry.length + 1), tag: `main-${short(c3)}` });
    expect(moved.digest).not.toBe(digests[c3]);

    const promoted = await send(`${deployer.url}/${svc.name}/promote`, { auth: AS.cron, userAgent: 'curl/8.5.0' });
    expect(promoted.status, JSON.stringify(promoted.body)).toBe(200);
    expect(promoted.body).toMatchObject({
      message: `${svc.name} main-${short(c3)} is promoted`,
      outcome: 'promoted',
      kind: 'promote',
      commit: c3,
      tag: `main-${short(c3)}`,
      canary: { tag: `main-${short(c3)}`, commit: c3 },
      images: [{ original: image, applied: versionOf(c3) }],
    });
    expect(promoted.body['objects']).toContainEqual(expect.objectContaining({ kind: 'Deployment', name: 'shop-canary', action: 'deleted' }));
    expect(await read('shop-canary')).toBeUndefined();
    expect(appImage(await read('shop'))).toBe(versionOf(c3));
    const cm = await adminClient().core.readNamespacedConfigMap({ name: 'shop-config', namespace });
    expect(cm.data).toEqual({ value: 'three' });

    const [entry] = await state();
    expect(entry?.canary).toBeUndefined();
    expect(entry?.stable?.version).toMatchObject({ tag: `main-${short(c3)}`, digest: digests[c3], deployedBy: 'cron' });
    expect(entry?.previous).toMatchObject({ tag: `main-${short(c1)}`, commit: c1, digest: digests[c1] });
    expect(await eventLines('promote')).toEqual([
      // The refused promotion did not get as far as a version.
      expect.stringMatching(new RegExp(`^${svc.name};\\?;promote fail;`)),
      expect.stringMatching(new RegExp(`^${svc.name};${short(c3)};promote success;`)),
    ]);
  });

  it('promote with no canary running answers 409 (it was rolled back, or promoted already)', async () => {
    const answer = await send(`${deployer.url}/${svc.name}/promote`, { auth: AS.cron });
    expect(answer.status).toBe(409);
    expect(answer.body).toEqual({ error: `no canary of ${svc.name} to promote`, service: svc.name });
  });

  it('rollback to=previous restores the version before the last promotion, and then has nothing more to do', async () => {
    const [c1] = shas as [string];
    const answer = await send(`${deployer.url}/${svc.name}/rollback?to=previous`, { auth: AS.monitor });
    expect(answer.status, JSON.stringify(answer.body)).toBe(200);
    expect(answer.body).toMatchObject({
      message: `${svc.name} is rolled back to main-${short(c1)}`,
      outcome: 'rolled-back',
      commit: c1,
      tag: `main-${short(c1)}`,
      images: [{ original: image, applied: versionOf(c1) }],
    });
    expect(appImage(await read('shop'))).toBe(versionOf(c1));
    const cm = await adminClient().core.readNamespacedConfigMap({ name: 'shop-config', namespace });
    expect(cm.data).toEqual({ value: 'one' });
    // The version rolled back from was bad: it is not remembered as last-known-good.
    const [entry] = await state();
    expect(entry?.previous).toBeUndefined();
    expect((await eventLines('rollback')).at(-1)).toMatch(new RegExp(`^${svc.name};${short(c1)};rollback success;`));

    const again = await send(`${deployer.url}/${svc.name}/rollback`, { auth: AS.monitor, json: { to: 'previous' } });
    expect(again.status).toBe(200);
    expect(again.body['message']).toBe(`nothing to roll back: ${svc.name} runs no canary and no previous version is recorded`);
    expect(appImage(await read('shop'))).toBe(versionOf(c1));
  });

  it("rollback with the stable commit (the thesis' message) removes the canary and leaves stable as it is", async () => {
    const [c1, , , c4] = shas as [string, string, string, string];
    expect((await send(`${deployer.url}/${svc.name}/canary`, { auth: AS.ci, json: { commit: c4 } })).status).toBe(200);
    const before = await read('shop');

    const answer = await send(`${deployer.url}/${svc.name}/rollback`, { auth: AS.monitor, json: { commit: short(c1) } });
    expect(answer.status, JSON.stringify(answer.body)).toBe(200);
    expect(answer.body).toMatchObject({
      message: `${svc.name} canary main-${short(c4)} is rolled back`,
      commit: c1,
      canary: { tag: `main-${short(c4)}`, commit: c4 },
    });
    expect(await read('shop-canary')).toBeUndefined();
    expect((await read('shop'))?.metadata?.generation).toBe(before?.metadata?.generation);
  });

  it('rollback with another tag deploys it as stable (with the deploy scope); a second identical call has nothing to do', async () => {
    const [c1, c2] = shas as [string, string];
    // Neither the running stable version nor the recorded previous one: the monitor's rollback scope is not enough.
    const refused = await send(`${deployer.url}/${svc.name}/rollback`, { auth: AS.monitor, json: { tag: `main-${short(c2)}` } });
    expect(refused.status, JSON.stringify(refused.body)).toBe(403);
    expect(refused.body).toMatchObject({ token: 'monitor', action: 'deploy', service: svc.name });
    expect(appImage(await read('shop'))).toBe(versionOf(c1));

    const answer = await send(`${deployer.url}/${svc.name}/rollback`, { auth: AS.ops, json: { tag: `main-${short(c2)}` } });
    expect(answer.status, JSON.stringify(answer.body)).toBe(200);
    expect(answer.body['message']).toBe(`${svc.name} is rolled back to main-${short(c2)}`);
    expect(appImage(await read('shop'))).toBe(versionOf(c2));

    const again = await send(`${deployer.url}/${svc.name}/rollback`, { auth: AS.monitor, json: { tag: `main-${short(c2)}` } });
    expect(again.status).toBe(200);
    expect(again.body['message']).toBe(`nothing to roll back: ${svc.name} runs no canary and runs main-${short(c2)} already`);
  });

  it('the generic hook rolls a canary back: {"service", "action": "rollback"}', async () => {
    const [, c2, c3] = shas as [string, string, string];
    expect((await send(`${deployer.url}/${svc.name}/canary`, { auth: AS.ci, json: { commit: c3 } })).status).toBe(200);

    const answer = await send(`${deployer.url}/hooks/generic`, { method: 'POST', auth: AS.monitor, json: { service: svc.name, action: 'rollback' } });
    expect(answer.status, JSON.stringify(answer.body)).toBe(200);
    expect(answer.body).toMatchObject({ result: 'rolled-back', message: `${svc.name} canary main-${short(c3)} is rolled back`, outcome: 'rolled-back', tag: `main-${short(c2)}` });
    expect(await read('shop-canary')).toBeUndefined();

    const bad = await send(`${deployer.url}/hooks/generic`, { method: 'POST', auth: AS.monitor, json: { service: svc.name, action: 'promote' } });
    expect(bad.status).toBe(400);
    expect(bad.body).toEqual({ error: 'action must be "rollback"', field: 'action' });
    const foreign = await send(`${deployer.url}/hooks/generic`, { method: 'POST', auth: AS.monitor, json: { service: other, action: 'rollback' } });
    // One hook rule: a service outside the token's scope is a result, not a 4xx a monitor would drop.
    expect(foreign.status).toBe(200);
    expect(foreign.body).toEqual({ service: other, result: 'forbidden', message: `token "monitor" may not rollback service "${other}"` });
  });

  it.each([
    ['to and a version together', { to: 'previous', tag: 'main-abc1234' }, 'to=previous and a commit or tag exclude each other', 'to'],
    ['an unknown to', { to: 'first' }, 'to must be "previous"', 'to'],
    ['a bad wait', { wait: 'soon' }, 'wait must be true, false or a duration like 90s, 5m or 1h30m', 'wait'],
  ])('rollback refuses %s (400)', async (_what, json, error, field) => {
    const answer = await send(`${deployer.url}/${svc.name}/rollback`, { auth: AS.monitor, json });
    expect(answer.status).toBe(400);
    expect(answer.body).toEqual({ error, field });
  });

  it('promote refuses a minAge that is no duration (400)', async () => {
    const answer = await send(`${deployer.url}/${svc.name}/promote?minAge=soon`, { auth: AS.cron });
    expect(answer.status).toBe(400);
    expect(answer.body).toEqual({ error: 'minAge must be a duration like 90s, 5m or 1h30m', field: 'minAge' });
  });

  it('nothing secret reaches the log', () => {
    const text = JSON.stringify(deployer.logs);
    for (const secret of Object.values(SECRETS)) expect(text).not.toContain(secret);
  });
});
