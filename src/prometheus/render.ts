import { dump } from 'js-yaml';
import { conditions, figureExpressions, FIGURES, recordNames, type ComparisonParams } from './comparisons.js';

/**
 * The template of kubernetes/monitoring/: Prometheus' scrape configuration and rules, and Alertmanager's routing to the
 * deployer's hook, rendered from parameters (thresholds, windows, label keys, the deployer's address). Pure; the
 * generator (scripts/monitoring.ts) writes what it returns, and the tests validate each rendering with promtool and
 * amtool.
 */

export interface MonitoringParams extends ComparisonParams {
  /** How long a comparison must hold before its alert fires (Prometheus' `for`). */
  readonly for: string;
  readonly scrapeInterval: string;
  readonly evaluationInterval: string;
  /** The domain of the deployer's label keys (`labels.domain`): pods carry `DOMAIN/service`. */
  readonly domain: string;
  /** The pod label the deployer writes the track in (`labels.track`). */
  readonly podTrackLabel: string;
  /** Where Alertmanager reaches the deployer (its base URL) and the token it authenticates with. */
  readonly deployerUrl: string;
  readonly hookUsername: string;
  /** The file Alertmanager reads the token's secret from (a mounted Secret): never the secret itself. */
  readonly hookPasswordFile: string;
  /** Alertmanager addresses Prometheus sends alerts to (host:port). */
  readonly alertmanagers: readonly string[];
  /** How long Alertmanager waits to group a first alert: part of the time from a bad canary to its rollback. */
  readonly groupWait: string;
}

/** The label of every alert that tells Alertmanager's routes what it is for: `rollback` reaches the hook, `hold` does not. */
export const ACTION_LABEL = 'deployer_action';
export const RULES_FILE = 'deployer-rules.yml';
export const ALERT_NAMES = {
  latency: 'CanaryLatencyRegression',
  errorRatio: 'CanaryErrorRatioRegression',
  cpu: 'CanaryCpuRegression',
  memory: 'CanaryMemoryRegression',
  insufficientData: 'CanaryInsufficientData',
} as const;

/** A label name as Prometheus' Kubernetes discovery writes it into meta labels: every other character becomes `_`. */
export function metaLabelName(label: string): string {
  return label.replace(/[^a-zA-Z0-9_]/g, '_');
}

type Yaml = Record<string, unknown>;

function podsJob(p: MonitoringParams): Yaml {
  const podLabel = (key: string): string => `__meta_kubernetes_pod_label_${metaLabelName(key)}`;
  const annotation = (key: string): string => `__meta_kubernetes_pod_annotation_${metaLabelName(key)}`;
  return {
    job_name: p.job,
    scrape_interval: p.scrapeInterval,
    kubernetes_sd_configs: [{ role: 'pod' }],
    relabel_configs: [
      // Only the pods of versioned workloads the deployer applied: a track and the service label.
      { source_labels: [podLabel(p.podTrackLabel)], regex: 'stable|canary', action: 'keep' },
      { source_labels: [podLabel(`${p.domain}/service`)], regex: '.+', action: 'keep' },
      { source_labels: ['__meta_kubernetes_pod_phase'], regex: 'Running', action: 'keep' },
      { source_labels: [annotation('prometheus.io/scrape')], regex: 'false', action: 'drop' },
      // One target per pod: the port the pod names in `prometheus.io/port`, else its container port named `metrics`.
      {
        source_labels: [annotation('prometheus.io/port'), '__meta_kubernetes_pod_container_port_name'],
        regex: '[0-9]+;.*|;metrics',
        action: 'keep',
      },
      {
        source_labels: ['__address__', annotation('prometheus.io/port')],
        regex: '(.+?)(?::[0-9]+)?;([0-9]+)',
        replacement: '$1:$2',
        target_label: '__address__',
      },
      { source_labels: [annotation('prometheus.io/path')], regex: '(.+)', target_label: '__metrics_path__' },
      { source_labels: ['__meta_kubernetes_namespace'], target_label: 'namespace' },
      { source_labels: ['__meta_kubernetes_pod_name'], target_label: 'pod' },
      { source_labels: [podLabel(`${p.domain}/service`)], target_label: p.labels.service },
      { source_labels: [podLabel(p.podTrackLabel)], target_label: p.labels.track },
      { source_labels: [podLabel('app.kubernetes.io/version')], target_label: 'version' },
    ],
  };
}

/** cAdvisor through the apiserver's node proxy, with the service account Prometheus runs as (needs nodes/proxy). */
function cadvisorJob(p: MonitoringParams): Yaml {
  const sa = '/var/run/secrets/kubernetes.io/serviceaccount';
  return {
    job_name: 'kubernetes-cadvisor',
    scrape_interval: p.scrapeInterval,
    scheme: 'https',
    kubernetes_sd_configs: [{ role: 'node' }],
    tls_config: { ca_file: `${sa}/ca.crt` },
    authorization: { credentials_file: `${sa}/token` },
    relabel_configs: [
      { target_label: '__address__', replacement: 'kubernetes.default.svc:443' },
      { source_labels: ['__meta_kubernetes_node_name'], regex: '(.+)', target_label: '__metrics_path__', replacement: '/api/v1/nodes/$1/proxy/metrics/cadvisor' },
    ],
    // Only what the comparisons read: cAdvisor exposes thousands of series per node.
    metric_relabel_configs: [
      { source_labels: ['__name__'], regex: 'container_cpu_usage_seconds_total|container_memory_working_set_bytes', action: 'keep' },
    ],
  };
}

export function prometheusConfig(p: MonitoringParams): Yaml {
  return {
    global: { scrape_interval: p.scrapeInterval, evaluation_interval: p.evaluationInterval },
    rule_files: [RULES_FILE],
    alerting: { alertmanagers: [{ static_configs: [{ targets: [...p.alertmanagers] }] }] },
    scrape_configs: [podsJob(p), cadvisorJob(p)],
  };
}

function percent(ratio: number): string {
  return `${Math.round(ratio * 10_000) / 100}%`;
}

export function rules(p: MonitoringParams): Yaml {
  const records = recordNames(p);
  const expressions = figureExpressions(p);
  const when = conditions(p);
  const service = `{{ $labels.${p.labels.service} }}`;
  const where = `${service} (namespace {{ $labels.namespace }})`;
  const window = `over ${p.window}`;
  const rollback = { severity: 'critical', [ACTION_LABEL]: 'rollback', [p.labels.track]: 'canary' };
  const alert = (name: string, expr: string, labels: Yaml, summary: string, description: string): Yaml => ({
    alert: name,
    expr,
    for: p.for,
    labels,
    annotations: { summary, description },
  });
  const q = `p${Math.round(p.quantile * 1000) / 10}`;
  return {
    groups: [
      {
        name: 'deployer-canary-figures',
        interval: p.evaluationInterval,
        rules: FIGURES.map((f) => ({ record: records[f], expr: expressions[f] })),
      },
      {
        name: 'deployer-canary-alerts',
        interval: p.evaluationInterval,
        rules: [
          alert(
            ALERT_NAMES.latency,
            when.latency,
            rollback,
            `The canary of ${service} is slower than stable`,
            `Its ${q} latency is {{ $value | humanizeDuration }} above stable's ${window} (more than ${p.latencyThresholdSeconds * 1000} ms): ${where}.`,
          ),
          alert(
            ALERT_NAMES.errorRatio,
            when.errorRatio,
            rollback,
            `The canary of ${service} fails more requests than stable`,
            `Its error ratio is {{ $value | humanizePercentage }} above stable's ${window} (more than ${percent(p.errorRatioThreshold)}): ${where}.`,
          ),
          alert(
            ALERT_NAMES.cpu,
            when.cpu,
            rollback,
            `The canary of ${service} uses more CPU per pod than stable`,
            `Its CPU per pod is over ${p.cpuRatio}× stable's mean ${window}, by more than ${p.cpuMarginCores} cores: ${where}.`,
          ),
          alert(
            ALERT_NAMES.memory,
            when.memory,
            rollback,
            `The canary of ${service} uses more memory per pod than stable`,
            `Its working set per pod is over ${p.memoryRatio}× stable's mean, by more than {{ ${p.memoryMarginBytes} | humanize1024 }}B: ${where}.`,
          ),
          // Not enough data is no verdict: it holds a promotion back (the deployer's gated promote refuses it) but
          // never rolls back by itself, so it is routed away from the hook.
          alert(
            ALERT_NAMES.insufficientData,
            when.insufficientData,
            { severity: 'info', [ACTION_LABEL]: 'hold', [p.labels.track]: 'canary' },
            `Not enough traffic to judge the canary of ${service}`,
            `The canary or stable version served fewer than ${p.minRequests} requests ${window}: ${where}. No verdict; the canary is not promoted by a gated promotion.`,
          ),
        ],
      },
    ],
  };
}

export function alertmanagerConfig(p: MonitoringParams): Yaml {
  const hook = new URL('hooks/alertmanager', p.deployerUrl.endsWith('/') ? p.deployerUrl : `${p.deployerUrl}/`).toString();
  return {
    route: {
      receiver: 'none',
      group_by: ['alertname', 'namespace', p.labels.service],
      group_wait: p.groupWait,
      group_interval: '1m',
      repeat_interval: '1h',
      routes: [{ receiver: 'deployer', matchers: [`${ACTION_LABEL}="rollback"`], group_wait: p.groupWait }],
    },
    receivers: [
      { name: 'none' },
      {
        name: 'deployer',
        webhook_configs: [
          {
            url: hook,
            // The hook ignores resolved alerts; a rollback is asked for once per firing group.
            send_resolved: false,
            http_config: { basic_auth: { username: p.hookUsername, password_file: p.hookPasswordFile } },
          },
        ],
      },
    ],
  };
}

export const DEFAULT_MONITORING = {
  for: '1m',
  scrapeInterval: '15s',
  evaluationInterval: '15s',
  domain: 'deployer.internal',
  podTrackLabel: 'track',
  deployerUrl: 'http://deployer.deployer.svc:8080',
  hookUsername: 'alertmanager',
  hookPasswordFile: '/etc/alertmanager/secrets/deployer-hook/password',
  alertmanagers: ['alertmanager:9093'],
  groupWait: '10s',
} as const;

function yaml(value: unknown): string {
  return dump(value, { lineWidth: 140, noRefs: true });
}

/** The raw configuration files by name, as Prometheus and Alertmanager read them. */
export function renderFiles(p: MonitoringParams): Record<string, string> {
  return {
    'prometheus.yml': yaml(prometheusConfig(p)),
    [RULES_FILE]: yaml(rules(p)),
    'alertmanager.yml': yaml(alertmanagerConfig(p)),
  };
}

/**
 * The files of kubernetes/monitoring/: ConfigMaps holding the raw files (mount them as Prometheus' and Alertmanager's
 * configuration directories). Manifests rather than raw files, because everything below kubernetes/ is read as one.
 */
export function renderConfigMaps(p: MonitoringParams): Record<string, string> {
  const files = renderFiles(p);
  const configMap = (name: string, what: string, keys: readonly string[]): string =>
    `# ${what}\n# Rendered by scripts/monitoring.ts (npm run monitoring -- --help): change its parameters, not this file.\n` +
    yaml({
      apiVersion: 'v1',
      kind: 'ConfigMap',
      metadata: { name, labels: { 'app.kubernetes.io/part-of': 'deployer-monitoring' } },
      data: Object.fromEntries(keys.map((k) => [k, files[k]])),
    });
  return {
    'prometheus.yaml': configMap(
      'deployer-prometheus',
      "Prometheus: scrapes the deployer's pods and cAdvisor; rules compare each canary with its stable version.",
      ['prometheus.yml', RULES_FILE],
    ),
    'alertmanager.yaml': configMap(
      'deployer-alertmanager',
      "Alertmanager: a canary's regression alerts to the deployer's POST /hooks/alertmanager.",
      ['alertmanager.yml'],
    ),
  };
}
