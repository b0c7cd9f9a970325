import { renameSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { metaLabelName, type MonitoringParams } from '../../src/prometheus/render.js';
import { podSeries, type Pod, type Series, type TrackTraffic } from './series.js';

/**
 * Real loopback scrape targets for the ground's Prometheus: one HTTP server exposing, per pod, the series the pod
 * and cAdvisor would expose (counters that grow with wall time at the wanted rate), and the file discovery entries
 * that carry the meta labels Kubernetes discovery gives such a pod (its labels and `prometheus.io/*` annotations), so
 * that the shipped relabelling turns them into the target labels (namespace, pod, service, track, version).
 */
export interface Targets {
  /** Writes the discovery files of `name` (pods and cAdvisor); Prometheus picks them up within a second. */
  list(name: string, pods: ReadonlyArray<Pod & { traffic: TrackTraffic; version?: string }>): void;
  close(): Promise<void>;
}

const TARGET_LABELS = new Set(['job', 'namespace', 'pod', 'service', 'track']);

function exposition(series: readonly Series[], elapsedSeconds: number, cadvisor: boolean): string {
  const lines: string[] = [];
  for (const s of series) {
    if (s.name === 'up' || (s.name.startsWith('container_') !== cadvisor)) continue;
    const labels = Object.entries(s.labels).filter(([k]) => !cadvisor || k !== 'job');
    const value = s.gauge === true ? s.step : s.step * elapsedSeconds;
    lines.push(`${s.name}{${labels.map(([k, v]) => `${k}=${JSON.stringify(v)}`).join(',')}} ${value}`);
  }
  return lines.join('\n') + '\n';
}

export async function startTargets(params: MonitoringParams, targetsDir: string): Promise<Targets> {
  const started = Date.now();
  const pods = new Map<string, Series[]>();
  const server: Server = createServer((req, res) => {
    const match = /^\/(pods|cadvisor)\/([^/]+)\/metrics$/.exec(req.url ?? '');
    const series = match === null ? undefined : pods.get(decodeURIComponent(match[2] ?? ''));
    if (match === null || series === undefined) {
      res.writeHead(404).end();
      return;
    }
    res.writeHead(200, { 'content-type': 'text/plain; version=0.0.4' });
    res.end(exposition(series, (Date.now() - started) / 1000, match[1] === 'cadvisor'));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  const address = `127.0.0.1:${port}`;
  const label = (key: string): string => `__meta_kubernetes_pod_label_${metaLabelName(key)}`;
  const annotation = (key: string): string => `__meta_kubernetes_pod_annotation_${metaLabelName(key)}`;
  const { service: serviceLabel, track: trackLabel } = params.labels;
  // The pods job must not see the target labels in the exposition: they come from discovery, as in a cluster.
  const strip = new Set([...TARGET_LABELS, serviceLabel, trackLabel]);
  return {
    list(name, list) {
      const pods_ = list.map((p) => {
        const series = podSeries(params, p, p.traffic, 1).map((s) => ({
          ...s,
          labels: s.name.startsWith('container_') ? s.labels : Object.fromEntries(Object.entries(s.labels).filter(([k]) => !strip.has(k) || k === 'le' || k === 'code')),
        }));
        pods.set(p.pod, series);
        return p;
      });
      const entries = (kind: 'pods' | 'cadvisor'): unknown[] =>
        pods_.map((p) => ({
          targets: [address],
          labels: {
            ...(kind === 'pods'
              ? {
                  __meta_kubernetes_namespace: p.namespace,
                  __meta_kubernetes_pod_name: p.pod,
                  __meta_kubernetes_pod_phase: 'Running',
                  [label(params.podTrackLabel)]: p.track,
                  [label(`${params.domain}/service`)]: p.service,
                  [label('app.kubernetes.io/version')]: p.version ?? p.track,
                  [annotation('prometheus.io/port')]: String(port),
                  [annotation('prometheus.io/path')]: `/pods/${encodeURIComponent(p.pod)}/metrics`,
                }
              : { __metrics_path__: `/cadvisor/${encodeURIComponent(p.pod)}/metrics`, instance: `node-of-${p.pod}` }),
          },
        }));
      // Through a rename: Prometheus reads a file as soon as it appears, and must not see half of it.
      for (const kind of ['pods', 'cadvisor'] as const) {
        const file = join(targetsDir, `${kind}-${name}.json`);
        writeFileSync(`${file}.tmp`, JSON.stringify(entries(kind)));
        renameSync(`${file}.tmp`, file);
      }
    },
    // Prometheus scrapes over kept-alive connections every second: close them, or close() waits for ever.
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
