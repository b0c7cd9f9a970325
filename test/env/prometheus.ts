import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { dump } from 'js-yaml';
import { DEFAULT_COMPARISON } from '../../src/prometheus/comparisons.js';
import { RULES_FILE, renderFiles } from '../../src/prometheus/render.js';
import { paramsFrom } from '../../scripts/monitoring.js';
import type { Started } from './global-setup.js';
import type { PrometheusGround } from './ground.js';
import { freePort, spawnServer, waitForUrl } from './processes.js';

const PROMETHEUS_BIN = '/usr/bin/prometheus';

/**
 * The rendering of kubernetes/monitoring the ground's Prometheus evaluates: the shipped template with short windows
 * (the tests of test/monitoring check it with promtool too).
 */
export const GROUND_MONITORING = paramsFrom({
  window: '10s',
  for: '2s',
  'scrape-interval': '1s',
  'evaluation-interval': '1s',
  'group-wait': '1s',
  'min-requests': '50',
});

/**
 * The `prometheus` part: Debian's Prometheus on a free loopback port, its tsdb in the ground's folder, scraping
 * every second what the tests list in `targetsDir` (file discovery: Debian builds Prometheus without the Kubernetes
 * discovery). A test writes `pods-NAME.json` (targets with the labels the scrape configuration's relabelling gives a
 * pod: namespace, pod, service, track, version) and `cadvisor-NAME.json` (targets exposing cAdvisor's series).
 */
export async function startPrometheus(dir: string, logsDir: string): Promise<Started<PrometheusGround>> {
  const targetsDir = join(dir, 'targets');
  mkdirSync(targetsDir, { recursive: true });
  mkdirSync(join(dir, 'data'), { recursive: true });
  writeFileSync(join(dir, RULES_FILE), renderFiles(GROUND_MONITORING)[RULES_FILE] ?? '');
  const config = {
    global: { scrape_interval: '1s', evaluation_interval: '1s', scrape_timeout: '1s' },
    rule_files: [RULES_FILE],
    scrape_configs: [
      { job_name: DEFAULT_COMPARISON.job, file_sd_configs: [{ files: [join(targetsDir, 'pods-*.json')], refresh_interval: '1s' }] },
      { job_name: 'kubernetes-cadvisor', honor_labels: true, file_sd_configs: [{ files: [join(targetsDir, 'cadvisor-*.json')], refresh_interval: '1s' }] },
    ],
  };
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
  try {
    await waitForUrl(`${url}/-/ready`, { what: 'prometheus to be ready', process, timeoutMs: 60_000 });
  } catch (err) {
    await process.stop();
    throw err;
  }
  return { info: { url, targetsDir }, stop: () => process.stop() };
}
