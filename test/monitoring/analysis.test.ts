import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ServiceConfig } from '../../src/config/load.js';
import { UpstreamError } from '../../src/errors.js';
import { comparisonOf, judge, PrometheusAnalysis } from '../../src/prometheus/analysis.js';
import { ANSWER_LIMIT_BYTES, PrometheusClient } from '../../src/prometheus/client.js';
import type { MonitoringParams } from '../../src/prometheus/render.js';
import { FileConfig } from '../../src/config/schema.js';
import { ground } from '../env/ground.js';
import { GROUND_MONITORING } from '../env/prometheus.js';
import { freePort } from '../env/processes.js';
import type { TrackTraffic } from './series.js';
import { startTargets, type Targets } from './targets.js';

const logger = pino({ level: 'silent' });
const PARAMS: MonitoringParams = GROUND_MONITORING;
const STABLE: TrackTraffic = { perInterval: 20, latencySeconds: 0.02, errorRatio: 0.01, cpuCores: 0.2, memoryBytes: 100e6 };
const GOOD: TrackTraffic = { ...STABLE, perInterval: 10 };

function service(name: string): ServiceConfig {
  return { name, repository: { url: 'https://git.example.com/x.git', type: 'git', defaultBranch: 'main' }, manifestsDir: 'kubernetes', namespace: 'shop', allowNamespaces: [], allowClusterScoped: false };
}

function client(url: string, timeoutSeconds = 5): PrometheusClient {
  return new PrometheusClient({ connection: { url, timeoutSeconds }, logger });
}

/** Waits until Prometheus holds a full window of every pod of `services` (file discovery, then scrapes). */
async function windowFilled(c: PrometheusClient, services: readonly string[], pods: number): Promise<void> {
  const expr = `count(count_over_time(up{job="${PARAMS.job}", service=~"${services.join('|')}"}[${PARAMS.window}]) >= 9)`;
  for (let i = 0; ; i++) {
    const [sample] = await c.query(expr);
    if ((sample?.value ?? 0) >= pods) return;
    if (i > 600) throw new Error(`Prometheus never scraped ${pods} pods of ${services.join(', ')} for ${PARAMS.window}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

describe('the canary analysis against a real Prometheus scraping loopback targets', () => {
  let targets: Targets;
  let prometheus: PrometheusClient;
  const threshold = PARAMS.latencyThresholdSeconds;
  const scenarios: Record<string, TrackTraffic> = {
    good: GOOD,
    'slow-1-5x': { ...GOOD, latencySeconds: STABLE.latencySeconds + 1.5 * threshold },
    'slow-0-5x': { ...GOOD, latencySeconds: STABLE.latencySeconds + 0.5 * threshold },
    'failing-1-5x': { ...GOOD, errorRatio: STABLE.errorRatio + 1.5 * PARAMS.errorRatioThreshold },
    quiet: { ...GOOD, perInterval: 1, latencySeconds: STABLE.latencySeconds + 1.5 * threshold },
    hungry: { ...GOOD, cpuCores: 0.6 },
  };
  const names = Object.keys(scenarios).map((s) => `an-${s}-${Date.now().toString(36)}`);

  beforeAll(async () => {
    const g = ground('prometheus');
    targets = await startTargets(PARAMS, g.targetsDir);
    prometheus = client(g.url);
    Object.values(scenarios).forEach((canary, i) => {
      const name = names[i] ?? '';
      targets.list(name, [
        { namespace: 'shop', service: name, track: 'stable', pod: `${name}-a`, traffic: { ...STABLE, perInterval: STABLE.perInterval / 2 } },
        { namespace: 'shop', service: name, track: 'stable', pod: `${name}-b`, traffic: { ...STABLE, perInterval: STABLE.perInterval / 2 } },
        { namespace: 'shop', service: name, track: 'canary', pod: `${name}-canary`, traffic: canary },
      ]);
    });
    await windowFilled(prometheus, names, names.length * 3);
  });

  afterAll(async () => {
    await targets?.close();
  });

  const analyse = (scenario: string) => {
    const name = names[Object.keys(scenarios).indexOf(scenario)] ?? '';
    return new PrometheusAnalysis({ params: PARAMS, query: (e) => prometheus.query(e) }).analyse(service(name));
  };

  it('a canary like stable passes, with the figures of both tracks', async () => {
    const a = await analyse('good');
    expect(a.verdict, a.message).toBe('pass');
    expect(a.canary.requests).toBeGreaterThanOrEqual(PARAMS.minRequests);
    expect(a.stable.requests).toBeGreaterThan(a.canary.requests ?? Infinity);
    expect(a.canary.latencySeconds).toBeCloseTo(STABLE.latencySeconds, 2);
    expect(a.stable.latencySeconds).toBeCloseTo(STABLE.latencySeconds, 2);
    expect(a.canary.errorRatio).toBeCloseTo(STABLE.errorRatio, 2);
    // rate() extrapolates over a 10 s window of wall-clock scrapes: close, not exact.
    expect(a.canary.cpuCores).toBeCloseTo(0.2, 1);
    expect(a.stable.memoryBytes).toBe(100e6);
    expect(a).toMatchObject({ window: PARAMS.window, quantile: PARAMS.quantile, minRequests: PARAMS.minRequests, regressions: [] });
  });

  it('a canary slower than stable by 1.5× the threshold regresses; by 0.5× it passes', async () => {
    const slow = await analyse('slow-1-5x');
    expect(slow.verdict, slow.message).toBe('regression');
    expect(slow.regressions.map((r) => r.figure)).toEqual(['latency']);
    expect(slow.regressions[0]?.canary).toBeCloseTo(STABLE.latencySeconds + 1.5 * threshold, 2);
    expect(slow.message).toMatch(/^the canary of an-slow-1-5x-\w+ regresses: p95 latency 9\d(\.\d)? ms is 7\d(\.\d)? ms above stable.s \d+(\.\d)? ms \(at most 50 ms\)$/);
    const fine = await analyse('slow-0-5x');
    expect(fine.verdict, fine.message).toBe('pass');
  });

  it('a canary failing 1.5× the threshold more often than stable regresses', async () => {
    const a = await analyse('failing-1-5x');
    expect(a.verdict, a.message).toBe('regression');
    expect(a.regressions.map((r) => r.figure)).toEqual(['errorRatio']);
  });

  it('too few canary requests is not enough data, however slow the canary is: never a pass', async () => {
    const a = await analyse('quiet');
    expect(a.verdict).toBe('insufficient-data');
    expect(a.canary.requests).toBeLessThan(PARAMS.minRequests);
    expect(a.message).toMatch(/^not enough data: the canary of an-quiet-\w+ served \d+ requests in the last 10s \(stable \d+\); at least 50 each are needed$/);
  });

  it('a canary using 3× stable CPU per pod (cAdvisor, joined through up) regresses', async () => {
    const a = await analyse('hungry');
    expect(a.verdict, a.message).toBe('regression');
    expect(a.regressions.map((r) => r.figure)).toEqual(['cpu']);
  });

  it('a service Prometheus knows nothing of is not enough data', async () => {
    const a = await new PrometheusAnalysis({ params: PARAMS, query: (e) => prometheus.query(e) }).analyse(service('never-scraped'));
    expect(a).toMatchObject({ verdict: 'insufficient-data', canary: { requests: null }, stable: { requests: null } });
  });

  it("the ground's Prometheus evaluates the shipped rules on the same series: the slow canary's alert fires, the quiet one only holds", async () => {
    const [slow, , , quiet] = [names[1], names[2], names[3], names[4]];
    const firing = async (): Promise<Array<Record<string, string>>> =>
      (await prometheus.query('ALERTS{alertstate="firing"}')).map((s) => s.labels).filter((l) => l['service'] === slow || l['service'] === quiet);
    let alerts: Array<Record<string, string>> = [];
    for (let i = 0; i < 300; i++) {
      alerts = await firing();
      if (alerts.length >= 2) break;
      await new Promise((r) => setTimeout(r, 100));
    }
    expect(alerts.map((l) => [l['service'], l['alertname'], l['deployer_action']]).sort()).toEqual(
      [
        [slow, 'CanaryLatencyRegression', 'rollback'],
        [quiet, 'CanaryInsufficientData', 'hold'],
      ].sort(),
    );
  });
});

describe('judge: the verdict on figures', () => {
  const none = { requests: null, latencySeconds: null, errorRatio: null, cpuCores: null, memoryBytes: null };
  const figures = (requests: number, latencySeconds: number) => ({ ...none, requests, latencySeconds, errorRatio: 0 });
  it.each([
    ['enough and alike', figures(100, 0.02), figures(100, 0.02), 'pass'],
    ['canary at the minimum but stable under it', figures(100, 0.02), figures(99, 0.02), 'insufficient-data'],
    ['enough requests but no latency histogram', { ...figures(100, 0), latencySeconds: null }, figures(100, 0.02), 'insufficient-data'],
    ['exactly the threshold above stable', figures(100, 0.07), figures(100, 0.02), 'pass'],
  ] as const)('%s: %s', (_, canary, stable, verdict) => {
    const params = comparisonOf({ ...FileConfig.parse({}).analysis, prometheus: undefined });
    expect(params.minRequests).toBe(100);
    const result = judge({ ...params, latencyThresholdSeconds: 0.05 + 1e-9 }, 'web', canary, stable);
    expect(result.verdict).toBe(verdict);
  });
});

describe('the Prometheus client: bounded, timed out, every answer checked', () => {
  const servers: Server[] = [];
  afterAll(async () => {
    await Promise.all(servers.map((s) => new Promise((r) => s.close(r))));
  });
  const serve = async (handler: Parameters<typeof createServer>[1]): Promise<string> => {
    const server = createServer(handler);
    servers.push(server);
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  };
  const failure = async (promise: Promise<unknown>): Promise<UpstreamError> => {
    const err = await promise.then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(UpstreamError);
    return err as UpstreamError;
  };

  it('Prometheus down: 503, naming where it was asked', async () => {
    const url = `http://127.0.0.1:${await freePort()}`;
    const err = await failure(client(url).query('up'));
    expect(err.status).toBe(503);
    expect(err.message).toBe(`Prometheus at ${url} cannot be reached`);
    expect(err.system).toBe('prometheus');
  });

  it('an answer that is no query result: 502 with what was wrong', async () => {
    const url = await serve((_, res) => res.end(JSON.stringify({ status: 'success', data: { resultType: 'matrix', result: [] } })));
    const err = await failure(client(url).query('up'));
    expect(err.status).toBe(502);
    expect(err.message).toBe(`Prometheus at ${url} answered something that is no query result (data.resultType: an instant query answers a vector)`);
    const html = await serve((_, res) => res.writeHead(404, { 'content-type': 'text/html' }).end('<html>not found</html>'));
    expect((await failure(client(html).query('up'))).message).toBe(`Prometheus at ${html} answered 404 with no JSON: not a Prometheus query API`);
    const value = await serve((_, res) => res.end(JSON.stringify({ status: 'success', data: { resultType: 'vector', result: [{ metric: {}, value: [1, 'lots'] }] } })));
    expect((await failure(client(value).query('up'))).message).toMatch(/no query result \(data\.result\.0\.value\.1: "lots" is no sample value\)$/);
  });

  it('an answer over the size bound is refused, and a server that never answers times out (504)', async () => {
    const big = await serve((_, res) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end('x'.repeat(ANSWER_LIMIT_BYTES + 1));
    });
    const tooBig = await failure(client(big).query('up'));
    expect(tooBig.status).toBe(502);
    expect(tooBig.message).toBe(`Prometheus at ${big} answered more than 4 MiB`);
    const silent = await serve(() => undefined);
    const err = await failure(client(silent, 0.5).query('up'));
    expect(err.status).toBe(504);
    expect(err.message).toBe(`Prometheus at ${silent} did not answer within 0.5s`);
  });

  it("Prometheus' own error (a query it cannot run) is a 502 with its words", async () => {
    const err = await failure(client(ground('prometheus').url).query('sum('));
    expect(err.status).toBe(502);
    expect(err.message).toMatch(/could not run the analysis' query: bad_data: /);
  });
});
