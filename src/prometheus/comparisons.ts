/**
 * The canary-versus-stable comparisons of nonfunctional regression testing (thesis 4.2.4, 5.5): per service, the
 * canary and the stable version over the same window, on latency (a quantile), error ratio, and CPU and memory per
 * pod. One definition serves the Prometheus rules the generator renders (scripts/monitoring.ts) and the queries the
 * deployer runs before a gated promotion (src/prometheus/analysis.ts), so both judge a canary the same way.
 *
 * The series come from two scrape jobs (see the generator's scrape configuration):
 * - the pods' own metrics (a request counter with a `code` label and a latency histogram), on targets that carry the
 *   service, track and namespace as target labels (relabelled from the pod labels the deployer writes);
 * - cAdvisor (the kubelet's /metrics/cadvisor), whose series know a pod only by namespace and name: they are joined
 *   to the service and track through the pods job's `up` series, so no kube-state-metrics is needed.
 */

/** A Prometheus duration: `30s`, `5m`, `1h`. */
export const PROMETHEUS_DURATION = /^[1-9][0-9]*(ms|s|m|h|d)$/;

export interface ComparisonParams {
  /** The window every figure is taken over (a rate's range): canary and stable over the same window. */
  readonly window: string;
  /** The latency quantile compared (0.95: the 95th percentile). */
  readonly quantile: number;
  /** A regression: the canary's latency quantile above the stable one's by more than this (seconds; thesis: 50 ms). */
  readonly latencyThresholdSeconds: number;
  /** A regression: the canary's error ratio above the stable one's by more than this (0.05: five percentage points). */
  readonly errorRatioThreshold: number;
  /** Fewer requests than this in the window (canary or stable) is not enough data: no verdict either way. */
  readonly minRequests: number;
  /** A regression: the canary's CPU per pod above the stable mean per pod times this ratio, and by more than the margin. */
  readonly cpuRatio: number;
  readonly cpuMarginCores: number;
  readonly memoryRatio: number;
  readonly memoryMarginBytes: number;
  readonly metrics: {
    /** A counter of requests with a `code` label (the status code). */
    readonly requests: string;
    /** A regular expression over `code` that counts as an error. */
    readonly errorCodes: string;
    /** A latency histogram, in seconds (without `_bucket`). */
    readonly latency: string;
  };
  /** The target label names the scrape configuration writes; `service` is also the label the deployer's hook reads. */
  readonly labels: { readonly service: string; readonly track: string };
  /** The scrape job of the pods' own metrics. */
  readonly job: string;
}

export const DEFAULT_COMPARISON: ComparisonParams = {
  window: '5m',
  quantile: 0.95,
  latencyThresholdSeconds: 0.05,
  errorRatioThreshold: 0.05,
  minRequests: 100,
  cpuRatio: 1.5,
  cpuMarginCores: 0.05,
  memoryRatio: 1.5,
  memoryMarginBytes: 32 * 1024 * 1024,
  metrics: { requests: 'http_requests_total', errorCodes: '5..', latency: 'http_request_duration_seconds' },
  labels: { service: 'service', track: 'track' },
  job: 'deployer-pods',
};

/** The figures compared, each a vector by namespace, service and track. */
export type Figure = 'requests' | 'latency' | 'errorRatio' | 'cpu' | 'memory';
export const FIGURES: readonly Figure[] = ['requests', 'latency', 'errorRatio', 'cpu', 'memory'];

/** A PromQL string literal (double-quoted, escaped as Go's strconv.Quote reads it). */
export function quote(value: string): string {
  return JSON.stringify(value);
}

/** `name{matchers}`; `matchers` are complete (`a="b"`), joined with commas. */
function selector(name: string, matchers: readonly string[]): string {
  return matchers.length === 0 ? name : `${name}{${matchers.join(', ')}}`;
}

/**
 * The per-(namespace, service, track) expression of each figure. `scope` narrows the series (matchers on the pods
 * job's target labels, e.g. one service in one namespace): the rules use none, the deployer names its service.
 */
export function figureExpressions(p: ComparisonParams, scope: readonly string[] = []): Record<Figure, string> {
  const { service, track } = p.labels;
  const by = `namespace, ${service}, ${track}`;
  const w = p.window;
  const requests = selector(p.metrics.requests, scope);
  const errors = selector(p.metrics.requests, [...scope, `code=~${quote(p.metrics.errorCodes)}`]);
  const buckets = selector(`${p.metrics.latency}_bucket`, scope);
  // Every pod of the job, with its service and track: the key cAdvisor's series are joined on.
  const pods = `group by (namespace, pod, ${service}, ${track}) (${selector('up', [`job=${quote(p.job)}`, ...scope])})`;
  // cAdvisor's per-container series; the pod's sandbox (container="POD") and the pod total (container="") left out.
  const perPod = (metric: string, rate: boolean): string => {
    const s = selector(metric, ['container!=""', 'container!="POD"']);
    return `sum by (namespace, pod) (${rate ? `rate(${s}[${w}])` : s})`;
  };
  return {
    requests: `sum by (${by}) (increase(${requests}[${w}]))`,
    latency: `histogram_quantile(${p.quantile}, sum by (${by}, le) (rate(${buckets}[${w}])))`,
    // No error series yet (no 5xx ever answered) is a ratio of 0, not a missing figure.
    errorRatio:
      `(sum by (${by}) (rate(${errors}[${w}])) or sum by (${by}) (rate(${requests}[${w}])) * 0)` +
      ` / sum by (${by}) (rate(${requests}[${w}]))`,
    cpu: `avg by (${by}) (${perPod('container_cpu_usage_seconds_total', true)} * on (namespace, pod) group_left (${service}, ${track}) ${pods})`,
    memory: `avg by (${by}) (${perPod('container_memory_working_set_bytes', false)} * on (namespace, pod) group_left (${service}, ${track}) ${pods})`,
  };
}

/** The recording rule names, `level:metric:operations` as Prometheus' naming practice has it. */
export function recordNames(p: ComparisonParams): Record<Figure, string> {
  const w = p.window;
  const q = `p${String(Math.round(p.quantile * 1000) / 10).replace('.', '_')}`;
  return {
    requests: `service_track:http_requests:increase${w}`,
    latency: `service_track:http_request_duration_seconds:${q}_rate${w}`,
    errorRatio: `service_track:http_error_ratio:rate${w}`,
    cpu: `service_track:pod_cpu_cores:avg_rate${w}`,
    memory: `service_track:pod_memory_working_set_bytes:avg`,
  };
}

/** A recorded figure of one track. */
function ofTrack(p: ComparisonParams, record: string, track: 'canary' | 'stable'): string {
  return `${record}{${p.labels.track}=${quote(track)}}`;
}

/** The conditions of the alerting rules, over recorded figures. */
export interface Conditions {
  readonly latency: string;
  readonly errorRatio: string;
  readonly cpu: string;
  readonly memory: string;
  readonly insufficientData: string;
}

/**
 * The alert conditions: each comparison holds (a vector by namespace and service) only when both tracks have at
 * least `minRequests` requests in the window; otherwise `insufficientData` holds, for a service whose canary is
 * being scraped. Resource comparisons need no requests, only both tracks' figures.
 */
export function conditions(p: ComparisonParams): Conditions {
  const source = recordNames(p);
  const on = `on (namespace, ${p.labels.service})`;
  const canary = (f: Figure): string => ofTrack(p, source[f], 'canary');
  const stable = (f: Figure): string => ofTrack(p, source[f], 'stable');
  const enough = `(${canary('requests')} >= ${p.minRequests} and ${on} ${stable('requests')} >= ${p.minRequests})`;
  const above = (f: Figure, threshold: number): string => `(${canary(f)} - ${on} ${stable(f)}) > ${threshold}`;
  const resource = (f: Figure, ratio: number, margin: number): string =>
    `(${canary(f)} > ${on} (${stable(f)} * ${ratio})) and ${on} (${above(f, margin)})`;
  const scraped = `group by (namespace, ${p.labels.service}) (up{job=${quote(p.job)}, ${p.labels.track}="canary"})`;
  return {
    latency: `${above('latency', p.latencyThresholdSeconds)} and ${on} ${enough}`,
    errorRatio: `${above('errorRatio', p.errorRatioThreshold)} and ${on} ${enough}`,
    cpu: resource('cpu', p.cpuRatio, p.cpuMarginCores),
    memory: resource('memory', p.memoryRatio, p.memoryMarginBytes),
    insufficientData: `${scraped} unless ${on} ${enough}`,
  };
}
