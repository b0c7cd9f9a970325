import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { dump, load } from 'js-yaml';
import { RULES_FILE, renderFiles, type MonitoringParams } from '../../src/prometheus/render.js';
import { groundMonitoring, startAlertmanager } from './alertmanager.js';
import type { Started } from './global-setup.js';
import type { KubeGround, PrometheusGround } from './ground.js';
import { startPodDiscovery } from './pod-sd.js';
import { freePort, spawnServer, waitForUrl } from './processes.js';

const PROMETHEUS_BIN = '/usr/bin/prometheus';

/**
 * The rendering of kubernetes/monitoring the ground's Prometheus evaluates: the shipped template with short windows
 * (the tests of test/monitoring check it with promtool too).
 */
export const GROUND_MONITORING: MonitoringParams = groundMonitoring();

/** The job of the loopback targets that stand in for cAdvisor (test/monitoring/targets.ts). */
export const SYNTHETIC_CADVISOR_JOB = 'synthetic-cadvisor';

type Yaml = Record<string, unknown>;
interface ScrapeJob extends Yaml {
  job_name: string;
  relabel_configs?: Yaml[];
}

export interface GroundScrape {
  /** The loopback discovery server (pod-sd.ts). */
  discoveryUrl: string;
  /** Where tests write file-discovery entries (`pods-*.json`, `cadvisor-*.json`). */
  targetsDir: string;
  /** host:port of the ground's Alertmanager. */
  alertmanager: string;
  /** The apiserver cAdvisor is read through, and the files of the credentials it takes (absent: no apiserver). */
  apiserver?: { hostPort: string; caFile: string; tokenFile: string } | undefined;
}

/**
 * The ground's Prometheus configuration, derived from the shipped rendering: the same jobs and relabelling, with only
 * what differs on the ground swapped:
 * - each `kubernetes_sd_configs` becomes `http_sd_configs` on the ground's discovery server (Debian's build has no
 *   Kubernetes discovery; pod-sd.ts gives the same meta labels), and the pods job also reads file-discovery entries,
 *   whose meta labels the tests write as a pod's would be (test/monitoring/targets.ts);
 * - cAdvisor through the ground's apiserver (its address, CA and a token file) instead of the in-cluster service
 *   account; and the tests' stand-in cAdvisor targets as a job of their own;
 * - the Alertmanager address.
 */
export function groundPrometheusConfig(params: MonitoringParams, scrape: GroundScrape): Yaml {
  const shipped = load(renderFiles(params)['prometheus.yml'] ?? '') as Yaml & { scrape_configs: ScrapeJob[] };
  const sd = (role: 'pods' | 'nodes'): Yaml[] => [{ url: `${scrape.discoveryUrl}/${role}`, refresh_interval: '1s' }];
  const jobs: ScrapeJob[] = [];
  for (const shippedJob of shipped.scrape_configs) {
    const job: ScrapeJob = { ...shippedJob };
    const roles = (job['kubernetes_sd_configs'] as Array<{ role: string }> | undefined)?.map((c) => c.role) ?? [];
    delete job['kubernetes_sd_configs'];
    if (roles.includes('pod')) {
      job['http_sd_configs'] = sd('pods');
      job['file_sd_configs'] = [{ files: [join(scrape.targetsDir, 'pods-*.json')], refresh_interval: '1s' }];
    }
    if (roles.includes('node')) {
      if (scrape.apiserver === undefined) continue;
      const api = scrape.apiserver;
      job['http_sd_configs'] = sd('nodes');
      job['tls_config'] = { ca_file: api.caFile };
      job['authorization'] = { credentials_file: api.tokenFile };
      job.relabel_configs = (job.relabel_configs ?? []).map((r) =>
        r['target_label'] === '__address__' && r['source_labels'] === undefined ? { ...r, replacement: api.hostPort } : r,
      );
    }
    jobs.push(job);
  }
  jobs.push({
    job_name: SYNTHETIC_CADVISOR_JOB,
    honor_labels: true,
    file_sd_configs: [{ files: [join(scrape.targetsDir, 'cadvisor-*.json')], refresh_interval: '1s' }],
  });
  return {
    ...shipped,
    global: { ...(shipped['global'] as Yaml), scrape_timeout: '1s' },
    alerting: { alertmanagers: [{ static_configs: [{ targets: [scrape.alertmanager] }] }] },
    scrape_configs: jobs,
  };
}

/**
 * The `prometheus` part: Debian's Prometheus and Alertmanager on free loopback ports, their data in the ground's
 * folder, configured from the shipped rendering with the ground's short windows (groundPrometheusConfig). Prometheus
 * finds the real pods of the node through the discovery server of pod-sd.ts (after the `kube` part is up), and the
 * targets tests list by file in `targetsDir`.
 */
export async function startPrometheus(dir: string, logsDir: string, kube: KubeGround | undefined): Promise<Started<PrometheusGround>> {
  const targetsDir = join(dir, 'targets');
  mkdirSync(targetsDir, { recursive: true });
  mkdirSync(join(dir, 'data'), { recursive: true });
  mkdirSync(join(dir, 'alertmanager'), { recursive: true });
  const params = GROUND_MONITORING;
  writeFileSync(join(dir, RULES_FILE), renderFiles(params)[RULES_FILE] ?? '');
  const stops: Array<() => Promise<void>> = [];
  const stop = async (): Promise<void> => {
    for (const s of stops.reverse()) await s().catch(() => undefined);
  };
  try {
    const [discovery, alertmanager] = await Promise.all([
      startPodDiscovery(() => kube),
      startAlertmanager(join(dir, 'alertmanager'), logsDir, params),
    ]);
    stops.push(() => discovery.close(), () => alertmanager.stop());
    let apiserver: GroundScrape['apiserver'];
    if (kube !== undefined) {
      const tokenFile = join(dir, 'apiserver-token');
      writeFileSync(tokenFile, kube.adminToken, { mode: 0o600 });
      apiserver = { hostPort: new URL(kube.server).host, caFile: kube.caFile, tokenFile };
    }
    const config = groundPrometheusConfig(params, {
      discoveryUrl: discovery.url,
      targetsDir,
      alertmanager: new URL(alertmanager.info.url).host,
      apiserver,
    });
    const configFile = join(dir, 'prometheus.yml');
    writeFileSync(configFile, dump(config));
    const port = await freePort();
    const url = `http://127.0.0.1:${port}`;
    const process = spawnServer({
      name: 'prometheus',
      command: PROMETHEUS_BIN,
      args: [
        `--config.file=${configFile}`,
        `--storage.tsdb.path=${join(dir, 'data')}`,
        `--web.listen-address=127.0.0.1:${port}`,
        '--storage.tsdb.retention.time=1h',
        '--log.level=warn',
      ],
      logsDir,
      cwd: dir,
    });
    stops.push(() => process.stop());
    await waitForUrl(`${url}/-/ready`, { what: 'prometheus to be ready', process, timeoutMs: 60_000 });
    return { info: { url, targetsDir, alertmanager: alertmanager.info, discoveryUrl: discovery.url }, stop };
  } catch (err) {
    await stop();
    throw err;
  }
}
