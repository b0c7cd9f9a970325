/**
 * Renders kubernetes/monitoring/ (Prometheus' scrape configuration and canary rules, Alertmanager's route to the
 * deployer's hook) from the template in src/prometheus/render.ts:
 *
 *   npm run monitoring                       # the default rendering, into kubernetes/monitoring/ (committed)
 *   npm run monitoring -- --window 10m --latency-threshold-ms 100 --out /tmp/mon
 *   npm run monitoring -- --raw /etc/prometheus   # the plain files instead of ConfigMaps
 *
 * Validate a rendering with `promtool check rules`, `promtool check config` and `amtool check-config` (the tests do).
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { z } from 'zod';
import { DEFAULT_COMPARISON, PROMETHEUS_DURATION } from '../src/prometheus/comparisons.js';
import { DEFAULT_MONITORING, renderConfigMaps, renderFiles, type MonitoringParams } from '../src/prometheus/render.js';

const duration = z.string().regex(PROMETHEUS_DURATION, 'a Prometheus duration such as 30s, 5m or 1h');
const number = (min: number, max: number) => z.coerce.number().min(min).max(max);
const labelName = z.string().regex(/^[a-zA-Z_][a-zA-Z0-9_]*$/, 'a Prometheus label name');

/** Each flag: its schema and the parameter it sets (a function of the parsed value). */
const FLAGS = {
  window: { schema: duration, help: `window of every figure (${DEFAULT_COMPARISON.window})` },
  quantile: { schema: number(0.5, 0.999), help: `latency quantile (${DEFAULT_COMPARISON.quantile})` },
  'latency-threshold-ms': { schema: number(1, 60_000), help: `canary slower than stable by more than this (${DEFAULT_COMPARISON.latencyThresholdSeconds * 1000})` },
  'error-ratio-threshold': { schema: number(0.0001, 1), help: `canary error ratio above stable by more than this (${DEFAULT_COMPARISON.errorRatioThreshold})` },
  'min-requests': { schema: number(1, 1e9), help: `fewer requests in the window is not enough data (${DEFAULT_COMPARISON.minRequests})` },
  'cpu-ratio': { schema: number(1, 100), help: `canary CPU per pod over stable's times this (${DEFAULT_COMPARISON.cpuRatio})` },
  'cpu-margin-cores': { schema: number(0, 1000), help: `... and by more than this (${DEFAULT_COMPARISON.cpuMarginCores})` },
  'memory-ratio': { schema: number(1, 100), help: `canary memory per pod over stable's times this (${DEFAULT_COMPARISON.memoryRatio})` },
  'memory-margin-bytes': { schema: number(0, 1e15), help: `... and by more than this (${DEFAULT_COMPARISON.memoryMarginBytes})` },
  for: { schema: duration, help: `how long a comparison holds before its alert fires (${DEFAULT_MONITORING.for})` },
  'scrape-interval': { schema: duration, help: `(${DEFAULT_MONITORING.scrapeInterval})` },
  'evaluation-interval': { schema: duration, help: `(${DEFAULT_MONITORING.evaluationInterval})` },
  'group-wait': { schema: duration, help: `Alertmanager's wait before the first notification (${DEFAULT_MONITORING.groupWait})` },
  'requests-metric': { schema: z.string().regex(/^[a-zA-Z_:][a-zA-Z0-9_:]*$/), help: `request counter with a code label (${DEFAULT_COMPARISON.metrics.requests})` },
  'latency-metric': { schema: z.string().regex(/^[a-zA-Z_:][a-zA-Z0-9_:]*$/), help: `latency histogram in seconds (${DEFAULT_COMPARISON.metrics.latency})` },
  'error-codes': { schema: z.string().min(1), help: `regular expression of error codes (${DEFAULT_COMPARISON.metrics.errorCodes})` },
  'service-label': { schema: labelName, help: `target and alert label naming the service, = the deployer's hooks.serviceLabel (${DEFAULT_COMPARISON.labels.service})` },
  domain: { schema: z.string().min(1), help: `the deployer's labels.domain (${DEFAULT_MONITORING.domain})` },
  'track-label': { schema: z.string().min(1), help: `the deployer's labels.track (${DEFAULT_MONITORING.podTrackLabel})` },
  'deployer-url': { schema: z.url(), help: `the deployer's base URL as Alertmanager reaches it (${DEFAULT_MONITORING.deployerUrl})` },
  'hook-username': { schema: z.string().min(1), help: `the deployer token Alertmanager uses (${DEFAULT_MONITORING.hookUsername})` },
  'hook-password-file': { schema: z.string().min(1), help: `file holding that token's secret (${DEFAULT_MONITORING.hookPasswordFile})` },
  alertmanager: { schema: z.string().min(1), help: `Alertmanager host:port, comma-separated (${DEFAULT_MONITORING.alertmanagers.join(',')})` },
  out: { schema: z.string().min(1), help: 'write the ConfigMaps here (kubernetes/monitoring)' },
  raw: { schema: z.string().min(1), help: 'write the plain files here instead' },
} as const;
type Flag = keyof typeof FLAGS;

export function paramsFrom(values: Partial<Record<Flag, string>>): MonitoringParams {
  const get = <F extends Flag>(flag: F): z.infer<(typeof FLAGS)[F]['schema']> | undefined => {
    const raw = values[flag];
    if (raw === undefined) return undefined;
    const parsed = FLAGS[flag].schema.safeParse(raw);
    if (!parsed.success) throw new Error(`--${flag} ${raw}: ${parsed.error.issues.map((i) => i.message).join('; ')}`);
    return parsed.data as z.infer<(typeof FLAGS)[F]['schema']>;
  };
  const d = DEFAULT_COMPARISON;
  const m = DEFAULT_MONITORING;
  const latencyMs = get('latency-threshold-ms');
  return {
    window: get('window') ?? d.window,
    quantile: get('quantile') ?? d.quantile,
    latencyThresholdSeconds: latencyMs === undefined ? d.latencyThresholdSeconds : latencyMs / 1000,
    errorRatioThreshold: get('error-ratio-threshold') ?? d.errorRatioThreshold,
    minRequests: get('min-requests') ?? d.minRequests,
    cpuRatio: get('cpu-ratio') ?? d.cpuRatio,
    cpuMarginCores: get('cpu-margin-cores') ?? d.cpuMarginCores,
    memoryRatio: get('memory-ratio') ?? d.memoryRatio,
    memoryMarginBytes: get('memory-margin-bytes') ?? d.memoryMarginBytes,
    metrics: {
      requests: get('requests-metric') ?? d.metrics.requests,
      errorCodes: get('error-codes') ?? d.metrics.errorCodes,
      latency: get('latency-metric') ?? d.metrics.latency,
    },
    labels: { service: get('service-label') ?? d.labels.service, track: d.labels.track },
    job: d.job,
    for: get('for') ?? m.for,
    scrapeInterval: get('scrape-interval') ?? m.scrapeInterval,
    evaluationInterval: get('evaluation-interval') ?? m.evaluationInterval,
    groupWait: get('group-wait') ?? m.groupWait,
    domain: get('domain') ?? m.domain,
    podTrackLabel: get('track-label') ?? m.podTrackLabel,
    deployerUrl: get('deployer-url') ?? m.deployerUrl,
    hookUsername: get('hook-username') ?? m.hookUsername,
    hookPasswordFile: get('hook-password-file') ?? m.hookPasswordFile,
    alertmanagers: get('alertmanager')?.split(',') ?? [...m.alertmanagers],
  };
}

function main(argv: readonly string[]): void {
  const options = Object.fromEntries(Object.keys(FLAGS).map((f) => [f, { type: 'string' as const }]));
  const { values } = parseArgs({ args: [...argv], options: { ...options, help: { type: 'boolean' } }, strict: true });
  if (values['help'] === true) {
    const lines = Object.entries(FLAGS).map(([flag, { help }]) => `  --${flag.padEnd(22)} ${help}`);
    process.stdout.write(`Usage: npm run monitoring -- [flags]\n${lines.join('\n')}\n`);
    return;
  }
  const flags = values as Partial<Record<Flag, string>>;
  const params = paramsFrom(flags);
  const raw = flags.raw;
  const dir = resolve(raw ?? flags.out ?? join(import.meta.dirname, '..', 'kubernetes', 'monitoring'));
  const files = raw === undefined ? renderConfigMaps(params) : renderFiles(params);
  mkdirSync(dir, { recursive: true });
  for (const [name, content] of Object.entries(files)) {
    writeFileSync(join(dir, name), content);
    process.stdout.write(`wrote ${join(dir, name)}\n`);
  }
}

if (process.argv[1] !== undefined && resolve(process.argv[1]) === resolve(import.meta.filename)) {
  try {
    main(process.argv.slice(2));
  } catch (err) {
    process.stderr.write(`monitoring: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exitCode = 1;
  }
}
