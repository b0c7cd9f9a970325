import type { AnalysisConfig, ServiceConfig } from '../config/load.js';
import type { CanaryAnalysis } from '../core/ports.js';
import type { CanaryAnalysisResult, Regression, TrackFigures } from '../core/types.js';
import { figureExpressions, FIGURES, quote, type ComparisonParams, type Figure } from './comparisons.js';
import type { Sample } from './client.js';

/**
 * The canary analysis of an evidence-gated promotion: the figures of src/prometheus/comparisons.ts for one service,
 * canary and stable, from Prometheus, judged with the thresholds the alerting rules use.
 */

/** The comparison parameters of the deployer's `analysis` configuration. */
export function comparisonOf(config: AnalysisConfig): ComparisonParams {
  return {
    window: config.window,
    quantile: config.quantile,
    latencyThresholdSeconds: config.latencyThresholdMs / 1000,
    errorRatioThreshold: config.errorRatioThreshold,
    minRequests: config.minRequests,
    cpuRatio: config.cpuRatio,
    cpuMarginCores: config.cpuMarginCores,
    memoryRatio: config.memoryRatio,
    memoryMarginBytes: config.memoryMarginBytes,
    metrics: { ...config.metrics },
    labels: { service: config.serviceLabel, track: config.trackLabel },
    job: config.job,
  };
}

const KEY: Record<Figure, keyof TrackFigures> = {
  requests: 'requests',
  latency: 'latencySeconds',
  errorRatio: 'errorRatio',
  cpu: 'cpuCores',
  memory: 'memoryBytes',
};

const NONE: TrackFigures = { requests: null, latencySeconds: null, errorRatio: null, cpuCores: null, memoryBytes: null };

function ms(seconds: number): string {
  return `${Math.round(seconds * 10_000) / 10} ms`;
}
function pct(ratio: number): string {
  return `${Math.round(ratio * 10_000) / 100}%`;
}
function cores(n: number): string {
  return `${Math.round(n * 1000)}m cores`;
}
function mib(bytes: number): string {
  return `${Math.round((bytes / 1024 / 1024) * 10) / 10} MiB`;
}

/** The verdict on a canary's figures against stable's (pure; the same comparisons as the alerting rules). */
export function judge(p: ComparisonParams, service: string, canary: TrackFigures, stable: TrackFigures): CanaryAnalysisResult {
  const base = { window: p.window, quantile: p.quantile, minRequests: p.minRequests, canary, stable };
  const served = `the canary of ${service} served ${Math.round(canary.requests ?? 0)} requests in the last ${p.window} (stable ${Math.round(stable.requests ?? 0)})`;
  if ((canary.requests ?? 0) < p.minRequests || (stable.requests ?? 0) < p.minRequests) {
    return { ...base, verdict: 'insufficient-data', message: `not enough data: ${served}; at least ${p.minRequests} each are needed`, regressions: [] };
  }
  if (canary.latencySeconds === null || stable.latencySeconds === null || canary.errorRatio === null || stable.errorRatio === null) {
    return {
      ...base,
      verdict: 'insufficient-data',
      message: `not enough data: ${served}, but Prometheus has no latency (${p.metrics.latency}) or error ratio for both`,
      regressions: [],
    };
  }
  const q = `p${Math.round(p.quantile * 1000) / 10}`;
  const regressions: Regression[] = [];
  // Latency and error ratio: the canary may exceed stable by at most the threshold.
  const above = (figure: 'latency' | 'errorRatio', c: number, st: number, threshold: number, what: string, show: (n: number) => string): void => {
    const delta = c - st;
    if (delta <= threshold) return;
    regressions.push({ figure, canary: c, stable: st, threshold, message: `${what} ${show(c)} is ${show(delta)} above stable's ${show(st)} (at most ${show(threshold)})` });
  };
  above('latency', canary.latencySeconds, stable.latencySeconds, p.latencyThresholdSeconds, `${q} latency`, ms);
  above('errorRatio', canary.errorRatio, stable.errorRatio, p.errorRatioThreshold, 'error ratio', pct);
  const resource = (figure: 'cpu' | 'memory', c: number | null, s: number | null, ratio: number, margin: number, show: (n: number) => string): void => {
    if (c === null || s === null) return;
    if (c > s * ratio && c - s > margin) {
      regressions.push({ figure, canary: c, stable: s, threshold: margin, message: `${figure === 'cpu' ? 'CPU' : 'memory'} per pod ${show(c)} is over ${ratio}× stable's ${show(s)}` });
    }
  };
  resource('cpu', canary.cpuCores, stable.cpuCores, p.cpuRatio, p.cpuMarginCores, cores);
  resource('memory', canary.memoryBytes, stable.memoryBytes, p.memoryRatio, p.memoryMarginBytes, mib);
  if (regressions.length > 0) {
    return { ...base, verdict: 'regression', message: `the canary of ${service} regresses: ${regressions.map((r) => r.message).join('; ')}`, regressions };
  }
  return {
    ...base,
    verdict: 'pass',
    message: `${served}: ${q} latency ${ms(canary.latencySeconds)} (stable ${ms(stable.latencySeconds)}), error ratio ${pct(canary.errorRatio)} (stable ${pct(stable.errorRatio)})`,
    regressions: [],
  };
}

export interface PrometheusAnalysisOptions {
  readonly params: ComparisonParams;
  /** An instant query (PrometheusClient.query). */
  readonly query: (expr: string) => Promise<Sample[]>;
}

/** The figures of each track of one service, in its namespace, from Prometheus. */
export class PrometheusAnalysis implements CanaryAnalysis {
  readonly #params: ComparisonParams;
  readonly #query: (expr: string) => Promise<Sample[]>;

  constructor(options: PrometheusAnalysisOptions) {
    this.#params = options.params;
    this.#query = options.query;
  }

  /** The expressions asked for `service`: each figure by track, narrowed to the service and its namespace. */
  expressions(service: ServiceConfig): Record<Figure, string> {
    const p = this.#params;
    return figureExpressions(p, [`${p.labels.service}=${quote(service.name)}`, `namespace=${quote(service.namespace)}`]);
  }

  async analyse(service: ServiceConfig): Promise<CanaryAnalysisResult> {
    const p = this.#params;
    const expressions = this.expressions(service);
    const answers = await Promise.all(FIGURES.map(async (f) => [f, await this.#query(expressions[f])] as const));
    const figures = { canary: { ...NONE } as Record<keyof TrackFigures, number | null>, stable: { ...NONE } as Record<keyof TrackFigures, number | null> };
    for (const [figure, samples] of answers) {
      for (const sample of samples) {
        const track = sample.labels[p.labels.track];
        if (track !== 'canary' && track !== 'stable') continue;
        // NaN (no traffic in the window) and ±Inf are no figure: JSON cannot carry them, and they prove nothing.
        figures[track][KEY[figure]] = Number.isFinite(sample.value) ? sample.value : null;
      }
    }
    return judge(p, service.name, figures.canary, figures.stable);
  }
}
