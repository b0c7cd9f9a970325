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

type Params = { -readonly [K in keyof MonitoringParams]: MonitoringParams[K] };

/** A flag that sets a parameter: its help line, and how its value (parsed by its schema) changes the parameters. */
interface ParamFlag {
  readonly help: string;
  apply(name: string, raw: string, params: Params): void;
}

function flag<T>(schema: z.ZodType<T>, help: string, set: (params: Params, value: T) => void): ParamFlag {
  return {
    help,
    apply(name, raw, params) {
      const parsed = schema.safeParse(raw);
      if (!parsed.success) throw new Error(`--${name} ${raw}: ${parsed.error.issues.map((i) => i.message).join('; ')}`);
      set(params, parsed.data);
    },
  };
}

const C = DEFAULT_COMPARISON;
const M = DEFAULT_MONITORING;
const metricName = z.string().regex(/^[a-zA-Z_:][a-zA-Z0-9_:]*$/, 'a Prometheus metric name');

/** One table: every parameter flag, its schema, its help (with its default) and what it sets. */
const PARAM_FLAGS = {
  window: flag(duration, `window of every figure (${C.window})`, (p, v) => (p.window = v)),
  quantile: flag(number(0.5, 0.999), `latency quantile (${C.quantile})`, (p, v) => (p.quantile = v)),
  'latency-threshold-ms': flag(number(1, 60_000), `canary slower than stable by more than this (${C.latencyThresholdSeconds * 1000})`, (p, v) => (p.latencyThresholdSeconds = v / 1000)),
  'error-ratio-threshold': flag(number(0.0001, 1), `canary error ratio above stable by more than this (${C.errorRatioThreshold})`, (p, v) => (p.errorRatioThreshold = v)),
  'min-requests': flag(number(1, 1e9), `fewer requests in the window is not enough data (${C.minRequests})`, (p, v) => (p.minRequests = v)),
  'cpu-ratio': flag(number(1, 100), `canary CPU per pod over stable's times this (${C.cpuRatio})`, (p, v) => (p.cpuRatio = v)),
  'cpu-margin-cores': flag(number(0, 1000), `... and by more than this (${C.cpuMarginCores})`, (p, v) => (p.cpuMarginCores = v)),
  'memory-ratio': flag(number(1, 100), `canary memory per pod over stable's times this (${C.memoryRatio})`, (p, v) => (p.memoryRatio = v)),
  'memory-margin-bytes': flag(number(0, 1e15), `... and by more than this (${C.memoryMarginBytes})`, (p, v) => (p.memoryMarginBytes = v)),
  for: flag(duration, `how long a comparison holds before its alert fires (${M.for})`, (p, v) => (p.for = v)),
  'scrape-interval': flag(duration, `(${M.scrapeInterval})`, (p, v) => (p.scrapeInterval = v)),
  'evaluation-interval': flag(duration, `(${M.evaluationInterval})`, (p, v) => (p.evaluationInterval = v)),
  'group-wait': flag(duration, `Alertmanager's wait before the first notification (${M.groupWait})`, (p, v) => (p.groupWait = v)),
  'requests-metric': flag(metricName, `request counter with a code label (${C.metrics.requests})`, (p, v) => (p.metrics = { ...p.metrics, requests: v })),
  'latency-metric': flag(metricName, `latency histogram in seconds (${C.metrics.latency})`, (p, v) => (p.metrics = { ...p.metrics, latency: v })),
  'error-codes': flag(z.string().min(1), `regular expression of error codes (${C.metrics.errorCodes})`, (p, v) => (p.metrics = { ...p.metrics, errorCodes: v })),
  'service-label': flag(labelName, `target and alert label naming the service, = the deployer's hooks.serviceLabel (${C.labels.service})`, (p, v) => (p.labels = { ...p.labels, service: v })),
  domain: flag(z.string().min(1), `the deployer's labels.domain (${M.domain})`, (p, v) => (p.domain = v)),
  'track-label': flag(z.string().min(1), `the deployer's labels.track (${M.podTrackLabel})`, (p, v) => (p.podTrackLabel = v)),
  'deployer-url': flag(z.url(), `the deployer's base URL as Alertmanager reaches it (${M.deployerUrl})`, (p, v) => (p.deployerUrl = v)),
  'hook-username': flag(z.string().min(1), `the deployer token Alertmanager uses (${M.hookUsername})`, (p, v) => (p.hookUsername = v)),
  'hook-password-file': flag(z.string().min(1), `file holding that token's secret (${M.hookPasswordFile})`, (p, v) => (p.hookPasswordFile = v)),
  alertmanager: flag(z.string().min(1), `Alertmanager host:port, comma-separated (${M.alertmanagers.join(',')})`, (p, v) => (p.alertmanagers = v.split(','))),
} as const satisfies Record<string, ParamFlag>;
type ParamFlagName = keyof typeof PARAM_FLAGS;

/** Where the rendering goes (not parameters of it). */
const OUTPUT_FLAGS = {
  out: 'write the ConfigMaps here (kubernetes/monitoring)',
  raw: 'write the plain files here instead',
} as const;

/** The parameters the flags `values` give (flag name → its text), each checked by its schema; the defaults otherwise. */
export function paramsFrom(values: Partial<Record<ParamFlagName, string>>): MonitoringParams {
  const params: Params = { ...C, ...M, alertmanagers: [...M.alertmanagers] };
  for (const [name, raw] of Object.entries(values)) {
    if (raw !== undefined && Object.hasOwn(PARAM_FLAGS, name)) PARAM_FLAGS[name as ParamFlagName].apply(name, raw, params);
  }
  return params;
}

function main(argv: readonly string[]): void {
  const names = [...Object.keys(PARAM_FLAGS), ...Object.keys(OUTPUT_FLAGS)];
  const options = Object.fromEntries(names.map((f) => [f, { type: 'string' as const }]));
  const { values } = parseArgs({ args: [...argv], options: { ...options, help: { type: 'boolean' } }, strict: true });
  if (values['help'] === true) {
    const helps: Array<[string, string]> = [...Object.entries(PARAM_FLAGS).map(([f, { help }]): [string, string] => [f, help]), ...Object.entries(OUTPUT_FLAGS)];
    process.stdout.write(`Usage: npm run monitoring -- [flags]\n${helps.map(([f, help]) => `  --${f.padEnd(22)} ${help}`).join('\n')}\n`);
    return;
  }
  const flags = values as Partial<Record<ParamFlagName | keyof typeof OUTPUT_FLAGS, string>>;
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
