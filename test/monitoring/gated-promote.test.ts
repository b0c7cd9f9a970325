import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PrometheusClient } from '../../src/prometheus/client.js';
import { send } from '../e2e/flows-setup.js';
import { basic, serviceRepo, startDeployer, type RunningDeployer } from '../e2e/setup.js';
import { ground } from '../env/ground.js';
import { createNamespace } from '../env/kube-helpers.js';
import { deploymentYaml } from '../env/manifests.js';
import { freePort } from '../env/processes.js';
import { GROUND_MONITORING } from '../env/prometheus.js';
import { pushImage } from '../env/registry-helpers.js';
import { pino } from 'pino';
import type { TrackTraffic } from './series.js';
import { startTargets, type Targets } from './targets.js';

/**
 * The evidence-gated promotion end to end: a deployer on the test ground (real apiserver, registry, git) asks the
 * ground's real Prometheus, which scrapes loopback targets labelled as the services' pods would be.
 */

const SECRET = 'ci-secret-g4t3d';
const AS = basic('ci', SECRET);
const short = (sha: string): string => sha.slice(0, 7);
const STABLE: TrackTraffic = { perInterval: 20, latencySeconds: 0.02, errorRatio: 0.01 };
const CANARIES: Record<'quiet' | 'slow' | 'good', TrackTraffic> = {
  quiet: { ...STABLE, perInterval: 1 },
  slow: { ...STABLE, perInterval: 10, latencySeconds: STABLE.latencySeconds + 1.5 * GROUND_MONITORING.latencyThresholdSeconds },
  good: { ...STABLE, perInterval: 10 },
};

describe('gated promotion against a real Prometheus', () => {
  let deployer: RunningDeployer;
  let targets: Targets;
  const services: Record<string, { name: string; tags: string[]; namespace: string }> = {};
  const config: Record<string, unknown> = {};

  beforeAll(async () => {
    const registry = ground('registry').anonymous;
    const prometheus = ground('prometheus');
    for (const kind of Object.keys(CANARIES)) {
      // A namespace each: the three services' Deployments share a name.
      const namespace = await createNamespace(`gated-${kind}`);
      const repository = `team/gated-${kind}-${Date.now().toString(36)}`;
      const image = `${registry}/${repository}`;
      const svc = await serviceRepo(`gated-${kind}`, [{ files: { 'kubernetes/deployment.yaml': deploymentYaml({ name: 'web', image, replicas: 2, port: false }) } }, { files: { 'kubernetes/note.txt': 'two' } }]);
      const tags: string[] = [];
      for (const sha of svc.repo.shas) {
        tags.push(`main-${short(sha)}`);
        await pushImage({ host: registry, repository, tag: `main-${short(sha)}` });
      }
      services[kind] = { name: svc.name, tags, namespace };
      config[svc.name] = { repository: svc.repository, namespace, manifestsDir: 'kubernetes', ...(kind === 'good' ? {} : { requireAnalysis: true }) };
    }
    deployer = await startDeployer({
      tokens: { ci: { secret: { value: SECRET } } },
      services: config,
      versions: { registryWaitSeconds: 0 },
      analysis: {
        prometheus: { url: prometheus.url, timeoutSeconds: 5 },
        window: GROUND_MONITORING.window,
        minRequests: GROUND_MONITORING.minRequests,
      },
    });
    targets = await startTargets(GROUND_MONITORING, prometheus.targetsDir);
    for (const [kind, canary] of Object.entries(CANARIES)) {
      const name = services[kind]?.name ?? '';
      const namespace = services[kind]?.namespace ?? '';
      targets.list(name, [
        { namespace, service: name, track: 'stable', pod: `${name}-a`, traffic: { ...STABLE, perInterval: STABLE.perInterval / 2 } },
        { namespace, service: name, track: 'stable', pod: `${name}-b`, traffic: { ...STABLE, perInterval: STABLE.perInterval / 2 } },
        { namespace, service: name, track: 'canary', pod: `${name}-canary`, traffic: canary },
      ]);
    }
    const client = new PrometheusClient({ connection: { url: prometheus.url, timeoutSeconds: 5 }, logger: pino({ level: 'silent' }) });
    const names = Object.values(services).map((s) => s.name);
    const expr = `count(count_over_time(up{job="${GROUND_MONITORING.job}", service=~"${names.join('|')}"}[${GROUND_MONITORING.window}]) >= 9)`;
    for (let i = 0; ; i++) {
      const [sample] = await client.query(expr);
      if ((sample?.value ?? 0) >= names.length * 3) break;
      if (i > 600) throw new Error('Prometheus never filled the window');
      await new Promise((r) => setTimeout(r, 100));
    }
    // Each service: its stable version, then its canary.
    for (const { name, tags } of Object.values(services)) {
      for (const [route, tag] of [['deploy', tags[0]], ['canary', tags[1]]] as const) {
        const answer = await send(`${deployer.url}/${name}/${route}`, { auth: AS, json: { tag } });
        expect(answer.status, JSON.stringify(answer.body)).toBe(200);
      }
    }
  });

  afterAll(async () => {
    await targets?.close();
    await deployer?.close();
  });

  it('too few canary requests: 409 with the figures, the canary stays', async () => {
    const { name, tags } = services['quiet'] ?? { name: '', tags: [] };
    const answer = await send(`${deployer.url}/${name}/promote`, { auth: AS });
    expect(answer.status, JSON.stringify(answer.body)).toBe(409);
    expect(answer.body['error']).toMatch(new RegExp(`^the canary of ${name} \\(${tags[1]}\\) is not promoted: not enough data: the canary of ${name} served \\d+ requests in the last 10s \\(stable \\d+\\); at least 50 each are needed$`));
    expect(answer.body).toMatchObject({ service: name, tag: tags[1], analysis: { verdict: 'insufficient-data', window: '10s', minRequests: 50 } });
    const state = await send(`${deployer.url}/${name}`, { method: 'GET', auth: AS });
    expect(JSON.stringify(state.body)).toContain('"canary":{"name":"web-canary"');
  });

  it('a canary 1.5× the latency threshold slower than stable: 409 naming the regression; the event log has the figures', async () => {
    const { name } = services['slow'] ?? { name: '' };
    const answer = await send(`${deployer.url}/${name}/promote`, { auth: AS });
    expect(answer.status, JSON.stringify(answer.body)).toBe(409);
    expect(answer.body).toMatchObject({ analysis: { verdict: 'regression', regressions: [{ figure: 'latency', threshold: 0.05 }] } });
    await deployer.settled();
    const line = deployer.logs.find((l) => typeof l['msg'] === 'string' && l['msg'].startsWith(`${name};`) && l['msg'].includes(';promote fail;'));
    expect(line?.['analysis']).toMatchObject({ verdict: 'regression' });
  });

  it('analysis=false cannot skip a required analysis (400)', async () => {
    const { name } = services['slow'] ?? { name: '' };
    const answer = await send(`${deployer.url}/${name}/promote`, { auth: AS, json: { analysis: false } });
    expect(answer.status).toBe(400);
    expect(answer.body).toEqual({ error: `service ${name} requires an analysis before every promotion; analysis=false is refused`, field: 'analysis' });
  });

  it('a good canary, analysis asked by the request: promoted, with the figures in the answer and the event log', async () => {
    const { name, tags } = services['good'] ?? { name: '', tags: [] };
    const answer = await send(`${deployer.url}/${name}/promote?analysis=true`, { auth: AS });
    expect(answer.status, JSON.stringify(answer.body)).toBe(200);
    expect(answer.body).toMatchObject({ outcome: 'promoted', tag: tags[1], analysis: { verdict: 'pass', regressions: [] } });
    const analysis = answer.body['analysis'] as { canary: { requests: number; latencySeconds: number }; stable: { requests: number } };
    expect(analysis.canary.requests).toBeGreaterThanOrEqual(50);
    expect(analysis.canary.latencySeconds).toBeCloseTo(0.02, 2);
    // The event line comes a moment after the answer (its commit facts are read after it).
    await deployer.settled();
    const line = deployer.logs.find((l) => typeof l['msg'] === 'string' && l['msg'].startsWith(`${name};`) && l['msg'].includes(';promote success;'));
    expect(line?.['analysis']).toMatchObject({ verdict: 'pass' });
  });

  it('Prometheus down: 503 naming it, and nothing promoted', async () => {
    const { name } = services['quiet'] ?? { name: '' };
    const url = `http://127.0.0.1:${await freePort()}`;
    const down = await startDeployer({
      tokens: { ci: { secret: { value: SECRET } } },
      services: { [name]: config[name] },
      analysis: { prometheus: { url } },
    });
    try {
      const answer = await send(`${down.url}/${name}/promote`, { auth: AS });
      expect(answer.status).toBe(503);
      expect(answer.body).toMatchObject({ error: `Prometheus at ${url} cannot be reached`, system: 'prometheus', requestId: expect.any(String) as unknown });
    } finally {
      await down.close();
    }
  });
});
