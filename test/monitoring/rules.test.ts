import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { dump } from 'js-yaml';
import { afterAll, describe, expect, it } from 'vitest';
import { DEFAULT_COMPARISON } from '../../src/prometheus/comparisons.js';
import { ACTION_LABEL, ALERT_NAMES, DEFAULT_MONITORING, RULES_FILE, renderConfigMaps, renderFiles, type MonitoringParams } from '../../src/prometheus/render.js';
import { paramsFrom } from '../../scripts/monitoring.js';
import { podSeries, seriesName, seriesValues, type Series, type TrackTraffic } from './series.js';
import { AMTOOL, configMapData, folderWith, PROMTOOL, tool, withoutKubernetesDiscovery } from './tools.js';

const MONITORING_DIR = new URL('../../kubernetes/monitoring/', import.meta.url).pathname;
const DEFAULTS: MonitoringParams = { ...DEFAULT_COMPARISON, ...DEFAULT_MONITORING };
/** A rendering with short windows, as the end-to-end tests use: every rendering a test uses is checked. */
const SHORT: MonitoringParams = paramsFrom({ window: '1m', for: '15s', 'scrape-interval': '2s', 'evaluation-interval': '2s', 'group-wait': '1s', 'min-requests': '20' });

const cleanups: Array<() => void> = [];
afterAll(() => {
  for (const c of cleanups) c();
});

function folder(files: Readonly<Record<string, string>>): string {
  const f = folderWith(files);
  cleanups.push(f.remove);
  return f.dir;
}

describe('kubernetes/monitoring/ (the default rendering)', () => {
  it('is what the generator renders with its defaults (run `npm run monitoring` after changing the template)', () => {
    for (const [name, content] of Object.entries(renderConfigMaps(DEFAULTS))) {
      expect(readFileSync(join(MONITORING_DIR, name), 'utf8'), name).toBe(content);
    }
    expect(paramsFrom({})).toEqual(DEFAULTS);
  });

  it.each([
    ['the default rendering as committed', () => ({ ...configMapData(join(MONITORING_DIR, 'prometheus.yaml')), ...configMapData(join(MONITORING_DIR, 'alertmanager.yaml')) })],
    ['the short-window rendering of the end-to-end tests', () => renderFiles(SHORT)],
  ])('%s passes promtool check rules, promtool check config and amtool check-config', async (_, files) => {
    const f = files();
    const dir = folder({ ...f, 'prometheus.yml': withoutKubernetesDiscovery(f['prometheus.yml'] ?? '') });
    const rules = await tool(PROMTOOL, ['check', 'rules', RULES_FILE], dir);
    expect(rules.output).toContain('SUCCESS: 10 rules found');
    expect(rules.code).toBe(0);
    const config = await tool(PROMTOOL, ['check', 'config', '--syntax-only', 'prometheus.yml'], dir);
    expect(config.output, config.output).not.toContain('FAILED');
    expect(config.code).toBe(0);
    const am = await tool(AMTOOL, ['check-config', 'alertmanager.yml'], dir);
    expect(am.output).toContain('SUCCESS');
    expect(am.code).toBe(0);
  });

  it('the scrape configuration keeps the service, track and version of the pods the deployer labels', () => {
    const text = configMapData(join(MONITORING_DIR, 'prometheus.yaml'))['prometheus.yml'] ?? '';
    for (const meta of [
      '__meta_kubernetes_pod_label_deployer_internal_service',
      '__meta_kubernetes_pod_label_track',
      '__meta_kubernetes_pod_label_app_kubernetes_io_version',
    ]) {
      expect(text).toContain(meta);
    }
    expect(renderFiles({ ...DEFAULTS, domain: 'example.org', podTrackLabel: 'example.org/track' })['prometheus.yml']).toContain(
      '__meta_kubernetes_pod_label_example_org_track',
    );
  });

  it('Alertmanager sends regressions to the hook, with basic auth from a file, and keeps "not enough data" away from it', async () => {
    const files = configMapData(join(MONITORING_DIR, 'alertmanager.yaml'));
    const text = files['alertmanager.yml'] ?? '';
    expect(text).toContain('url: http://deployer.deployer.svc:8080/hooks/alertmanager');
    expect(text).toContain(`password_file: ${DEFAULT_MONITORING.hookPasswordFile}`);
    expect(text).not.toMatch(/password:/);
    const dir = folder(files);
    const route = async (...labels: string[]): Promise<string> => {
      const r = await tool(AMTOOL, ['config', 'routes', 'test', '--config.file=alertmanager.yml', ...labels], dir);
      expect(r.code, r.output).toBe(0);
      return r.output.split('\n')[0] ?? '';
    };
    for (const name of [ALERT_NAMES.latency, ALERT_NAMES.errorRatio, ALERT_NAMES.cpu, ALERT_NAMES.memory]) {
      expect(await route(`alertname=${name}`, `${ACTION_LABEL}=rollback`, 'service=web', 'namespace=shop')).toBe('deployer');
    }
    expect(await route(`alertname=${ALERT_NAMES.insufficientData}`, `${ACTION_LABEL}=hold`, 'service=web')).toBe('none');
    expect(await route('alertname=Watchdog')).toBe('none');
  });

  it('every alert carries the label the hook reads (hooks.serviceLabel), also when it is configured otherwise', () => {
    for (const params of [DEFAULTS, { ...DEFAULTS, labels: { ...DEFAULTS.labels, service: 'app' } }]) {
      const text = renderFiles(params)[RULES_FILE] ?? '';
      // Every comparison keeps the service label (`on (namespace, SERVICE)`), and the description names it.
      const alerts = text.split('- alert: ').slice(1);
      expect(alerts).toHaveLength(5);
      for (const a of alerts) {
        expect(a).toContain(`on (namespace, ${params.labels.service})`);
        expect(a).toContain(`{{ $labels.${params.labels.service} }}`);
      }
    }
  });
});

/** The stable version's traffic in every scenario: two pods, p95 at 20 ms, 1% errors. */
const STABLE: TrackTraffic = { perInterval: 200, latencySeconds: 0.02, errorRatio: 0.01, cpuCores: 0.2, memoryBytes: 100e6 };

/**
 * A `promtool test rules` file: the service `web` with two stable pods and one canary, `minutes` samples a minute
 * apart, evaluated at the end against the expected alerts.
 */
function unitTest(params: MonitoringParams, canary: TrackTraffic, expect: { firing: readonly string[]; silent: readonly string[] }): string {
  const samples = 15;
  const pods = [
    { pod: 'web-7d9f-a', track: 'stable' as const, traffic: { ...STABLE, perInterval: STABLE.perInterval / 2 } },
    { pod: 'web-7d9f-b', track: 'stable' as const, traffic: { ...STABLE, perInterval: STABLE.perInterval / 2 } },
    { pod: 'web-canary-5c4f-a', track: 'canary' as const, traffic: canary },
  ];
  const series: Series[] = pods.flatMap((p) => podSeries(params, { namespace: 'shop', service: 'web', track: p.track, pod: p.pod }, p.traffic, 60));
  const evalTime = `${samples - 1}m`;
  const labels = { namespace: 'shop', [params.labels.service]: 'web', [params.labels.track]: 'canary' };
  const firing = expect.firing.map((alertname) => ({
    labels: `ALERTS{${Object.entries({ alertname, alertstate: 'firing', ...labels, severity: alertname === ALERT_NAMES.insufficientData ? 'info' : 'critical', [ACTION_LABEL]: alertname === ALERT_NAMES.insufficientData ? 'hold' : 'rollback' })
      .sort(([a], [b]) => a.localeCompare(b))
      .map(([k, v]) => `${k}="${v}"`)
      .join(', ')}}`,
    value: 1,
  }));
  return dump({
    rule_files: [RULES_FILE],
    evaluation_interval: '1m',
    tests: [
      {
        interval: '1m',
        input_series: series.map((s) => ({ series: seriesName(s), values: seriesValues(s, samples) })),
        alert_rule_test: expect.silent.map((alertname) => ({ eval_time: evalTime, alertname, exp_alerts: [] })),
        promql_expr_test: [{ expr: 'ALERTS{alertstate="firing"}', eval_time: evalTime, exp_samples: firing }],
      },
    ],
  });
}

describe('promtool test rules: the canary against stable, with synthetic series', () => {
  const threshold = DEFAULTS.latencyThresholdSeconds;
  const errorThreshold = DEFAULTS.errorRatioThreshold;
  const enough = { perInterval: 100, latencySeconds: STABLE.latencySeconds, errorRatio: STABLE.errorRatio, cpuCores: 0.2, memoryBytes: 100e6 };
  const tooFew = { ...enough, perInterval: 10 };
  const rollbacks = [ALERT_NAMES.latency, ALERT_NAMES.errorRatio, ALERT_NAMES.cpu, ALERT_NAMES.memory];
  const others = (firing: readonly string[]): string[] => [...rollbacks, ALERT_NAMES.insufficientData].filter((a) => !firing.includes(a));

  const cases: Array<[string, TrackTraffic, readonly string[]]> = [
    ['a canary as good as stable: no alert', enough, []],
    ['latency 1.5× the threshold above stable: the rollback alert', { ...enough, latencySeconds: STABLE.latencySeconds + 1.5 * threshold }, [ALERT_NAMES.latency]],
    ['latency 0.5× the threshold above stable: no alert', { ...enough, latencySeconds: STABLE.latencySeconds + 0.5 * threshold }, []],
    ['latency 1.5× the threshold, too few requests: not enough data, no rollback', { ...tooFew, latencySeconds: STABLE.latencySeconds + 1.5 * threshold }, [ALERT_NAMES.insufficientData]],
    ['error ratio 1.5× the threshold above stable: the rollback alert', { ...enough, errorRatio: STABLE.errorRatio + 1.5 * errorThreshold }, [ALERT_NAMES.errorRatio]],
    ['error ratio 0.5× the threshold above stable: no alert', { ...enough, errorRatio: STABLE.errorRatio + 0.5 * errorThreshold }, []],
    ['error ratio 1.5× the threshold, too few requests: not enough data, no rollback', { ...tooFew, errorRatio: STABLE.errorRatio + 1.5 * errorThreshold }, [ALERT_NAMES.insufficientData]],
    ['a canary serving no request at all: not enough data', { ...tooFew, perInterval: 0 }, [ALERT_NAMES.insufficientData]],
    ['CPU per pod 2× stable: the rollback alert', { ...enough, cpuCores: 0.4 }, [ALERT_NAMES.cpu]],
    ['memory per pod 2× stable: the rollback alert', { ...enough, memoryBytes: 200e6 }, [ALERT_NAMES.memory]],
  ];
  it.each(cases)('%s', async (_, canary, firing) => {
    const dir = folder({ [RULES_FILE]: renderFiles(DEFAULTS)[RULES_FILE] ?? '', 'test.yml': unitTest(DEFAULTS, canary, { firing, silent: others(firing) }) });
    const result = await tool(PROMTOOL, ['test', 'rules', 'test.yml'], dir);
    expect(result.output).toContain('SUCCESS');
    expect(result.code).toBe(0);
  });

  it('a failing expectation fails promtool (the harness can tell a regression)', async () => {
    const canary = { ...enough, latencySeconds: STABLE.latencySeconds + 1.5 * threshold };
    const dir = folder({ [RULES_FILE]: renderFiles(DEFAULTS)[RULES_FILE] ?? '', 'test.yml': unitTest(DEFAULTS, canary, { firing: [], silent: rollbacks }) });
    const result = await tool(PROMTOOL, ['test', 'rules', 'test.yml'], dir);
    expect(result.code).not.toBe(0);
    expect(result.output).toContain(ALERT_NAMES.latency);
  });
});
