import type { ComparisonParams } from '../../src/prometheus/comparisons.js';

/**
 * Synthetic series of one service's pods, as the pods scrape job and cAdvisor would give them, for `promtool test
 * rules` (input_series notation `START+STEPxN`, one sample per interval) and for the loopback targets a real
 * Prometheus scrapes. Every figure is exact: a latency quantile is placed by the share of requests in the bucket
 * below it, so that histogram_quantile's linear interpolation lands on the wanted value.
 */

/** The sample service's buckets (test/images/sample/main.go). */
export const BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5] as const;

export interface TrackTraffic {
  /** Requests per interval. */
  readonly perInterval: number;
  /** The latency quantile (seconds) the histogram should give at `quantile`. */
  readonly latencySeconds: number;
  /** The share of requests answered 500. */
  readonly errorRatio: number;
  /** CPU cores per pod and working set bytes per pod (cAdvisor). */
  readonly cpuCores?: number;
  readonly memoryBytes?: number;
}

/**
 * Cumulative bucket increments per interval for `n` requests whose `q` quantile interpolates to `value`: requests
 * `m` fall in the first bucket, the rest in the bucket (a, b] holding `value`, with m = n (q - t) / (1 - t) and
 * t = (value - a) / (b - a).
 */
export function bucketIncrements(n: number, q: number, value: number): Map<string, number> {
  const index = BUCKETS.findIndex((le) => value <= le);
  if (index <= 0) throw new Error(`latency ${value} must lie above the first bucket and within the last`);
  const a = BUCKETS[index - 1] ?? 0;
  const b = BUCKETS[index] ?? 0;
  const t = (value - a) / (b - a);
  if (t >= q) throw new Error(`latency ${value} sits too high in its bucket (${a}, ${b}] for quantile ${q}`);
  const low = (n * (q - t)) / (1 - t);
  const out = new Map<string, number>();
  for (const [i, le] of BUCKETS.entries()) out.set(String(le), i < index ? low : n);
  out.set('+Inf', n);
  return out;
}

export interface Pod {
  readonly namespace: string;
  readonly service: string;
  readonly track: 'stable' | 'canary';
  readonly pod: string;
}

/** One series: a metric name, its labels, and its increment per interval (a constant for gauges). */
export interface Series {
  readonly name: string;
  readonly labels: Readonly<Record<string, string>>;
  readonly step: number;
  readonly gauge?: boolean;
}

/** The series of one pod serving `traffic` (its share of the track's traffic), sampled every `intervalSeconds`. */
export function podSeries(p: ComparisonParams, pod: Pod, traffic: TrackTraffic, intervalSeconds: number, job = p.job): Series[] {
  const target = { job, namespace: pod.namespace, pod: pod.pod, [p.labels.service]: pod.service, [p.labels.track]: pod.track };
  const errors = traffic.perInterval * traffic.errorRatio;
  const series: Series[] = [
    { name: 'up', labels: target, step: 1, gauge: true },
    { name: p.metrics.requests, labels: { ...target, code: '200' }, step: traffic.perInterval - errors },
  ];
  if (errors > 0) series.push({ name: p.metrics.requests, labels: { ...target, code: '500' }, step: errors });
  for (const [le, step] of bucketIncrements(traffic.perInterval, p.quantile, traffic.latencySeconds)) {
    series.push({ name: `${p.metrics.latency}_bucket`, labels: { ...target, le }, step });
  }
  const container = { job: 'kubernetes-cadvisor', namespace: pod.namespace, pod: pod.pod, container: 'app' };
  if (traffic.cpuCores !== undefined) series.push({ name: 'container_cpu_usage_seconds_total', labels: container, step: traffic.cpuCores * intervalSeconds });
  if (traffic.memoryBytes !== undefined) {
    series.push({ name: 'container_memory_working_set_bytes', labels: container, step: traffic.memoryBytes, gauge: true });
  }
  return series;
}

/** `name{labels}` in PromQL series notation. */
export function seriesName(s: Series): string {
  const labels = Object.entries(s.labels).map(([k, v]) => `${k}=${JSON.stringify(v)}`);
  return `${s.name}{${labels.join(', ')}}`;
}

/** promtool's input_series `values` for `samples` samples: counters grow by their step, gauges stay at it. */
export function seriesValues(s: Series, samples: number): string {
  return s.gauge === true ? `${s.step}x${samples}` : `0+${s.step}x${samples}`;
}
