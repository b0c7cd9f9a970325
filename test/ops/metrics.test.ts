import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildApp } from '../../src/app.js';
import { parseConfig, type Config } from '../../src/config/load.js';
import { UpstreamError } from '../../src/errors.js';
import { readinessCheck } from '../../src/http/ops-routes.js';
import { Kubernetes } from '../../src/kube/kubernetes.js';
import { Metrics, timed } from '../../src/report/metrics.js';
import { createReporter } from '../../src/report/reporter.js';
import { wire } from '../../src/wire.js';
import { FakeDeployer } from '../http/helpers.js';
import { createRepo } from '../env/git-fixtures.js';
import { ground } from '../env/ground.js';
import { createNamespace, createRestrictedIdentity, uniqueName } from '../env/kube-helpers.js';
import { serviceManifests } from '../env/manifests.js';
import { freePort } from '../env/processes.js';
import { pushImage } from '../env/registry-helpers.js';
import { basic, memoryLogger, short, silentLogger } from './helpers.js';
import { sampleValue, samplesOf } from './prometheus.js';
import type { DeployEvent } from '../../src/core/types.js';
import type { Notifier } from '../../src/core/ports.js';

const work = mkdtempSync(join(tmpdir(), 'ops-metrics-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));

const SECRET = 'metrics-token-secret-0123';
const up = { ping: (): Promise<void> => Promise.resolve() };

function event(overrides: Partial<DeployEvent> = {}): DeployEvent {
  return {
    service: 'web',
    kind: 'deploy',
    result: 'success',
    durationMs: 1500,
    insertions: 3,
    deletions: 2,
    caller: { token: 'ci' },
    requestId: 'r-1',
    ...overrides,
  };
}

function config(raw: Record<string, unknown> = {}): Config {
  return parseConfig({ tokens: { ops: { secret: { value: SECRET } } }, cache: { dir: join(work, 'cache') }, ...raw }, {});
}

describe('Metrics', () => {
  it('counts finished deploys by service, kind and result, with their duration and lines changed', async () => {
    const metrics = new Metrics({ defaultMetrics: false });
    metrics.deployFinished(event());
    metrics.deployFinished(event({ kind: 'canary', durationMs: 400, insertions: 10, deletions: 0 }));
    metrics.deployFinished(event({ result: 'failure', durationMs: 20_000 }));
    // A success whose commit facts are unknown (svn without diff stats) adds no lines sample.
    metrics.deployFinished(event({ insertions: undefined, deletions: undefined }));

    const text = await metrics.render();
    expect(sampleValue(text, 'deployer_deploys_total', { deployer_service: 'web', kind: 'deploy', result: 'success' })).toBe(2);
    expect(sampleValue(text, 'deployer_deploys_total', { deployer_service: 'web', kind: 'canary', result: 'success' })).toBe(1);
    expect(sampleValue(text, 'deployer_deploys_total', { deployer_service: 'web', kind: 'deploy', result: 'failure' })).toBe(1);
    expect(sampleValue(text, 'deployer_deploy_duration_seconds_sum', { kind: 'deploy', result: 'success' })).toBe(3);
    expect(sampleValue(text, 'deployer_deploy_duration_seconds_bucket', { kind: 'deploy', result: 'failure', le: '10' })).toBe(0);
    expect(sampleValue(text, 'deployer_deploy_duration_seconds_bucket', { kind: 'deploy', result: 'failure', le: '20' })).toBe(1);
    expect(sampleValue(text, 'deployer_deploy_lines_changed_count', { deployer_service: 'web', kind: 'deploy' })).toBe(1);
    expect(sampleValue(text, 'deployer_deploy_lines_changed_sum', { deployer_service: 'web', kind: 'deploy' })).toBe(5);
    expect(sampleValue(text, 'deployer_deploy_lines_changed_sum', { deployer_service: 'web', kind: 'canary' })).toBe(10);
    expect(sampleValue(text, 'deployer_deploys_in_flight')).toBe(0);
    // No process metrics when asked not to; two instances never share a series.
    expect(text).not.toContain('process_cpu');
    expect(await new Metrics({ defaultMetrics: false }).render()).not.toContain('deployer_service="web"');
  });

  it('includes the process metrics by default, unprefixed as stock dashboards expect, in its own registry', async () => {
    const text = await new Metrics().render();
    expect(samplesOf(text, 'process_cpu_seconds_total')).toHaveLength(1);
    expect(samplesOf(text, 'nodejs_eventloop_lag_seconds')).toHaveLength(1);
    expect(text).not.toContain('deployer_process_');
    expect(text).not.toContain('deployer_nodejs_');
  });

  it('names the build in deployer_build_info', async () => {
    const text = await new Metrics({ defaultMetrics: false, version: '1.2.3' }).render();
    expect(sampleValue(text, 'deployer_build_info', { version: '1.2.3', nodejs_version: process.versions.node })).toBe(1);
  });

  it('labels the service deployer_service, never service (prometheus-operator would rename it exported_service)', async () => {
    const metrics = new Metrics({ defaultMetrics: false });
    metrics.deployFinished(event());
    const text = await metrics.render();
    expect(text).toContain('deployer_service="web"');
    expect(text).not.toMatch(/[{,]service="/);
  });

  it('observes the lead time of stable deploys and promotions, from the commit time', async () => {
    const now = Date.parse('2026-01-02T12:00:00Z');
    const metrics = new Metrics({ defaultMetrics: false, now: () => now });
    metrics.deployFinished(event({ committedAt: '2026-01-02T11:00:00Z' }));
    metrics.deployFinished(event({ kind: 'promote', committedAt: '2026-01-02T11:30:00+00:00' }));
    // A canary, a failure, an unknown or unreadable commit time: no lead time.
    metrics.deployFinished(event({ kind: 'canary', committedAt: '2026-01-02T11:00:00Z' }));
    metrics.deployFinished(event({ result: 'failure', committedAt: '2026-01-02T11:00:00Z' }));
    metrics.deployFinished(event({ committedAt: 'yesterday' }));
    metrics.deployFinished(event());
    const text = await metrics.render();
    expect(sampleValue(text, 'deployer_lead_time_seconds_sum', { deployer_service: 'web', kind: 'deploy' })).toBe(3600);
    expect(sampleValue(text, 'deployer_lead_time_seconds_count', { deployer_service: 'web', kind: 'deploy' })).toBe(1);
    expect(sampleValue(text, 'deployer_lead_time_seconds_bucket', { deployer_service: 'web', kind: 'promote', le: '1800' })).toBe(1);
    expect(samplesOf(text, 'deployer_lead_time_seconds_count').map((s) => s.labels['kind']).sort()).toEqual(['deploy', 'promote']);
  });

  it('observes the time to restore of rollbacks, from the deploy of the version rolled back', async () => {
    const now = Date.parse('2026-01-02T12:00:00Z');
    const metrics = new Metrics({ defaultMetrics: false, now: () => now });
    metrics.deployFinished(event({ kind: 'rollback', failingSince: '2026-01-02T11:50:00Z' }));
    metrics.deployFinished(event({ kind: 'rollback', result: 'failure', failingSince: '2026-01-02T11:00:00Z' }));
    metrics.deployFinished(event({ kind: 'rollback' }));
    const text = await metrics.render();
    expect(sampleValue(text, 'deployer_time_to_restore_seconds_count', { deployer_service: 'web' })).toBe(1);
    expect(sampleValue(text, 'deployer_time_to_restore_seconds_sum', { deployer_service: 'web' })).toBe(600);
  });

  it('timed(): times each promise-returning method by outcome, on the target itself (private fields work)', async () => {
    class Adapter {
      readonly #answer = 42;
      calls = 0;
      fetch(): Promise<number> {
        this.calls++;
        return Promise.resolve(this.#answer);
      }
      fail(): Promise<never> {
        return Promise.reject(new UpstreamError('registry', 'registry down'));
      }
      name(): string {
        return 'plain';
      }
    }
    const metrics = new Metrics({ defaultMetrics: false });
    const target = new Adapter();
    const adapter = timed(target, metrics, 'registry');

    expect(await adapter.fetch()).toBe(42);
    expect(await adapter.fetch()).toBe(42);
    await expect(adapter.fail()).rejects.toBeInstanceOf(UpstreamError);
    expect(adapter.name()).toBe('plain');
    expect(adapter.calls).toBe(2);
    expect(target.calls).toBe(2);
    expect(adapter).toBeInstanceOf(Adapter);

    const text = await metrics.render();
    const name = 'deployer_upstream_call_duration_seconds_count';
    expect(sampleValue(text, name, { system: 'registry', operation: 'fetch', outcome: 'ok' })).toBe(2);
    expect(sampleValue(text, name, { system: 'registry', operation: 'fail', outcome: 'error' })).toBe(1);
    // A method that returns no promise is not a remote call.
    expect(samplesOf(text, name, { operation: 'name' })).toEqual([]);
  });

  it('timed(): the system may depend on the arguments (git or svn by the service)', async () => {
    const metrics = new Metrics({ defaultMetrics: false });
    const source = timed({ resolve: (s: { repository: { type: string } }) => Promise.resolve(s.repository.type) }, metrics, (args) =>
      (args[0] as { repository: { type: string } }).repository.type === 'svn' ? 'svn' : 'git',
    );
    await source.resolve({ repository: { type: 'svn' } });
    await source.resolve({ repository: { type: 'git' } });
    const text = await metrics.render();
    expect(sampleValue(text, 'deployer_upstream_call_duration_seconds_count', { system: 'svn', operation: 'resolve' })).toBe(1);
    expect(sampleValue(text, 'deployer_upstream_call_duration_seconds_count', { system: 'git', operation: 'resolve' })).toBe(1);
  });

  it('createReporter(): counts a request in flight until done; each report is a log line, a count and a notification', async () => {
    const metrics = new Metrics({ defaultMetrics: false });
    const seen: string[] = [];
    const notifier: Notifier = {
      deployFailed: (e, err) => Promise.resolve(void seen.push(`failed ${e.service} ${err.message}`)),
      deploySucceeded: (e) => Promise.resolve(void seen.push(`succeeded ${e.service}`)),
    };
    const { logger, logs } = memoryLogger();
    const reporter = createReporter({ logger, notifier, metrics });
    const inFlight = async (): Promise<number | undefined> => sampleValue(await metrics.render(), 'deployer_deploys_in_flight');

    const first = reporter.started();
    const second = reporter.started();
    expect(await inFlight()).toBe(2);
    reporter.succeeded(event());
    first();
    first();
    expect(await inFlight()).toBe(1);
    reporter.failed(event({ result: 'failure' }), new Error('boom'));
    reporter.failed(event({ result: 'failure', service: 'quiet' }), new Error('young canary'), { notify: false });
    second();
    expect(await inFlight()).toBe(0);

    await Promise.resolve();
    expect(seen).toEqual(['succeeded web', 'failed web boom']);
    const text = await metrics.render();
    expect(sampleValue(text, 'deployer_deploys_total', { deployer_service: 'web', result: 'success' })).toBe(1);
    expect(sampleValue(text, 'deployer_deploys_total', { deployer_service: 'web', result: 'failure' })).toBe(1);
    expect(sampleValue(text, 'deployer_deploys_total', { deployer_service: 'quiet', result: 'failure' })).toBe(1);
    expect(logs.map((l) => l['msg'])).toEqual([
      expect.stringMatching(/^web;[^;]*;deploy success;/),
      expect.stringMatching(/^web;[^;]*;deploy fail;/),
      expect.stringMatching(/^quiet;[^;]*;deploy fail;/),
    ]);
  });
});

describe('GET /metrics and GET /readyz', () => {
  it('/metrics answers the Prometheus text format without a token by default', async () => {
    const metrics = new Metrics();
    metrics.deployFinished(event());
    const app = buildApp({ config: config(), logger: silentLogger(), version: 't', metrics, deployer: new FakeDeployer(), apiserver: up });
    const res = await app.inject({ method: 'GET', url: '/metrics' });
    expect(res.statusCode).toBe(200);
    expect(res.headers['content-type']).toBe('text/plain; version=0.0.4; charset=utf-8');
    expect(sampleValue(res.body, 'deployer_deploys_total', { deployer_service: 'web' })).toBe(1);
    await app.close();
  });

  it('/metrics asks for a token when metrics.requireToken is set', async () => {
    const app = buildApp({ config: config({ metrics: { requireToken: true } }), logger: silentLogger(), version: 't', metrics: new Metrics(), deployer: new FakeDeployer(), apiserver: up });
    const without = await app.inject({ method: 'GET', url: '/metrics' });
    expect(without.statusCode).toBe(401);
    expect(without.json()).toEqual({ error: 'authentication required' });
    expect(without.headers['www-authenticate']).toBe('Basic realm="deployer", charset="UTF-8"');
    const wrong = await app.inject({ method: 'GET', url: '/metrics', headers: { authorization: basic('ops', 'nope') } });
    expect(wrong.statusCode).toBe(401);
    const right = await app.inject({ method: 'GET', url: '/metrics', headers: { authorization: basic('ops', SECRET) } });
    expect(right.statusCode).toBe(200);
    expect(right.body).toContain('deployer_deploys_in_flight 0');
    await app.close();
  });

  it.each(['readyz', 'metrics'])('a service may not be named %s (its endpoint would shadow it)', (name) => {
    expect(() => config({ services: { [name]: { repository: { url: 'https://git.example.com/x.git' } } } })).toThrow(
      `services.${name}: the name is reserved for the deployer's own endpoint /${name}`,
    );
  });

  it('/readyz is 200 when the cache is writable and the apiserver answers; no token needed', async () => {
    const app = buildApp({ config: config(), logger: silentLogger(), version: 't', apiserver: up, metrics: new Metrics(), deployer: new FakeDeployer() });
    const res = await app.inject({ method: 'GET', url: '/readyz' });
    expect(res.statusCode).toBe(200);
    expect(res.json()).toEqual({ status: 'ready', checks: { config: 'ok', cache: 'ok', kubernetes: 'ok' } });
    await app.close();
  });

  it('/readyz is 503 naming the failed checks, and the reasons go to the log only, once per change', async () => {
    const file = join(work, 'not-a-dir');
    writeFileSync(file, 'x');
    let apiserverUp = false;
    const { logger, logs } = memoryLogger();
    const app = buildApp({
      // A cache below a regular file can never be created (whoever runs the test, root included).
      config: config({ cache: { dir: join(file, 'cache') } }),
      logger,
      version: 't',
      metrics: new Metrics(),
      deployer: new FakeDeployer(),
      apiserver: {
        ping: () =>
          apiserverUp ? Promise.resolve() : Promise.reject(new UpstreamError('kubernetes', 'the Kubernetes apiserver at https://10.0.0.1 is unreachable')),
      },
    });
    const first = await app.inject({ method: 'GET', url: '/readyz' });
    expect(first.statusCode).toBe(503);
    expect(first.json()).toEqual({ status: 'not ready', checks: { config: 'ok', cache: 'failed', kubernetes: 'failed' } });
    expect(first.body).not.toContain('10.0.0.1');
    await app.inject({ method: 'GET', url: '/readyz' });
    const notReady = logs.filter((l) => l['msg'] === 'not ready');
    expect(notReady).toHaveLength(1);
    expect(JSON.stringify(notReady[0])).toContain('10.0.0.1 is unreachable');
    expect(JSON.stringify(notReady[0])).toContain('ENOTDIR');

    apiserverUp = true;
    const second = await app.inject({ method: 'GET', url: '/readyz' });
    expect(second.json()).toMatchObject({ checks: { cache: 'failed', kubernetes: 'ok' } });
    await app.close();
  });

  it('a check that hangs fails at its bound instead of holding the probe', async () => {
    const ready = readinessCheck({
      cacheDir: join(work, 'cache-hang'),
      apiserver: { ping: () => new Promise<void>(() => undefined) },
      logger: silentLogger(),
      timeoutMs: 50,
    });
    expect(await ready()).toEqual({
      ready: false,
      checks: { config: 'ok', cache: 'ok', kubernetes: 'failed' },
      failures: { kubernetes: 'no answer within 50 ms' },
    });
  });
});

describe('Kubernetes.ping against the test ground', () => {
  it('resolves for an identity without any RBAC rule (readiness needs no rights)', async () => {
    const namespace = await createNamespace('ops-ping');
    const kubeconfig = await createRestrictedIdentity({ namespace, rules: [] });
    await new Kubernetes({ kubeconfig, fieldManager: 'deployer', logger: silentLogger() }).ping();
  });

  it('rejects with a 503 UpstreamError when nothing listens', async () => {
    const kube = ground('kube');
    const dir = mkdtempSync(join(work, 'kc-'));
    const kubeconfig = join(dir, 'kubeconfig');
    const port = await freePort();
    writeFileSync(
      kubeconfig,
      JSON.stringify({
        apiVersion: 'v1',
        kind: 'Config',
        clusters: [{ name: 'c', cluster: { server: `https://127.0.0.1:${port}`, 'certificate-authority': kube.caFile } }],
        users: [{ name: 'u', user: { token: 'x' } }],
        contexts: [{ name: 'c', context: { cluster: 'c', user: 'u' } }],
        'current-context': 'c',
      }),
    );
    const err = await new Kubernetes({ kubeconfig, fieldManager: 'deployer', logger: silentLogger() }).ping().then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(UpstreamError);
    expect(err).toMatchObject({ system: 'kubernetes', status: 503 });
  });
});

describe('metrics of real deploys (HTTP → deployer → git, registry, apiserver)', () => {
  let url: string;
  let close: () => Promise<void>;
  let settled: () => Promise<void>;
  let service: string;
  let shas: string[];

  beforeAll(async () => {
    const git = ground('git');
    const registry = ground('registry').anonymous;
    const namespace = await createNamespace('ops-metrics');
    service = uniqueName('metered');
    const image = `${registry}/ops/${service}`;
    const manifests = serviceManifests({ name: service, image, replicas: 2 });
    const repo = await createRepo(git.root, service, [
      { files: manifests },
      // One line changed: one insertion, one deletion.
      { files: { 'kubernetes/config.yaml': (manifests['kubernetes/config.yaml'] ?? '').replace('"one"', '"two"') } },
    ]);
    shas = repo.shas;
    await pushImage({ host: registry, repository: `ops/${service}`, tag: `main-${short(shas[1] ?? '')}` });
    const cfg = config({
      services: {
        [service]: {
          repository: { url: `${git.baseUrl}${repo.urlPath}`, credentials: { username: git.username, password: { value: git.password } } },
          namespace,
        },
      },
      registries: { [registry]: { insecure: true } },
      kubernetes: { kubeconfig: ground('kube').adminKubeconfig },
      versions: { registryWaitSeconds: 0 },
    });
    const { app, deployer } = wire({ config: cfg, logger: silentLogger(), version: 't' });
    url = await app.listen({ host: '127.0.0.1', port: 0 });
    settled = () => deployer.settled();
    close = () => app.close();
  });
  afterAll(async () => close?.());

  const deploy = (commit: string) =>
    fetch(`${url}/${service}/deploy`, {
      method: 'PUT',
      headers: { authorization: basic('ops', SECRET), 'content-type': 'application/x-www-form-urlencoded', 'user-agent': 'depctl/1' },
      body: new URLSearchParams({ commit }).toString(),
    });

  it('counts a success and a failure, their duration, the lines changed and each call to git, registry and apiserver', async () => {
    const ok = await deploy(shas[1] ?? '');
    expect(ok.status, await ok.clone().text()).toBe(200);
    // No image was pushed for the first commit: 404 from the registry wait.
    const missing = await deploy(shas[0] ?? '');
    expect(missing.status).toBe(404);
    // A success is counted with its commit facts (lines changed), read after the answer.
    await settled();

    const res = await fetch(`${url}/metrics`);
    expect(res.status).toBe(200);
    const text = await res.text();
    expect(sampleValue(text, 'deployer_deploys_total', { deployer_service: service, kind: 'deploy', result: 'success' })).toBe(1);
    expect(sampleValue(text, 'deployer_deploys_total', { deployer_service: service, kind: 'deploy', result: 'failure' })).toBe(1);
    expect(sampleValue(text, 'deployer_deploy_duration_seconds_count', { deployer_service: service, kind: 'deploy', result: 'success' })).toBe(1);
    expect(sampleValue(text, 'deployer_deploy_duration_seconds_sum', { deployer_service: service, kind: 'deploy', result: 'success' })).toBeGreaterThan(0);
    expect(sampleValue(text, 'deployer_deploy_lines_changed_sum', { deployer_service: service, kind: 'deploy' })).toBe(2);
    expect(sampleValue(text, 'deployer_deploys_in_flight')).toBe(0);

    const calls = (labels: Record<string, string>): number =>
      samplesOf(text, 'deployer_upstream_call_duration_seconds_count', labels).reduce((n, s) => n + s.value, 0);
    expect(calls({ system: 'git', operation: 'resolve', outcome: 'ok' })).toBe(2);
    expect(calls({ system: 'git', operation: 'filesAt', outcome: 'ok' })).toBe(2);
    expect(calls({ system: 'registry', operation: 'tags', outcome: 'ok' })).toBe(2);
    expect(calls({ system: 'registry', operation: 'digestOf', outcome: 'ok' })).toBe(1);
    expect(calls({ system: 'kubernetes', operation: 'dryRun', outcome: 'ok' })).toBe(1);
    expect(calls({ system: 'kubernetes', operation: 'apply', outcome: 'ok' })).toBe(1);
    // The deploy lock (a Lease, taken only for the cluster part: the failing deploy never got there) and the live
    // reads are apiserver calls as well.
    expect(calls({ system: 'kubernetes', operation: 'lease.get', outcome: 'ok' })).toBeGreaterThanOrEqual(1);
    expect(calls({ system: 'kubernetes', operation: 'getDeployment', outcome: 'ok' })).toBeGreaterThanOrEqual(1);
    expect(calls({ system: 'kubernetes', outcome: 'error' })).toBe(0);
  });

  it('/readyz pings the real apiserver', async () => {
    const res = await fetch(`${url}/readyz`);
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ status: 'ready', checks: { config: 'ok', cache: 'ok', kubernetes: 'ok' } });
  });
});
