import { renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { request } from 'node:http';
import { paramsFrom } from '../../scripts/monitoring.js';
import { renderFiles, type MonitoringParams } from '../../src/prometheus/render.js';
import type { Started } from './global-setup.js';
import { freePort, spawnServer, waitForUrl } from './processes.js';

const ALERTMANAGER_BIN = '/usr/bin/prometheus-alertmanager';
const CONFIG = 'alertmanager.yml';
const PASSWORD = 'deployer-hook-password';

/** Alertmanager of the `prometheus` part, and where its configuration lives (routeAlertsTo rewrites it). */
export interface AlertmanagerGround {
  /** http://127.0.0.1:PORT */
  url: string;
  /** Its folder: the configuration and the hook's password file. */
  dir: string;
}

/**
 * Alertmanager's configuration as the shipped template renders it (`params`: the ground's short windows), routing
 * to `deployerUrl` with basic auth whose password Alertmanager reads from a file of its folder.
 */
function writeConfig(dir: string, params: MonitoringParams, deployerUrl: string, username: string): void {
  const file = join(dir, CONFIG);
  const rendered = renderFiles({ ...params, deployerUrl, hookUsername: username, hookPasswordFile: join(dir, PASSWORD) })[CONFIG] ?? '';
  writeFileSync(`${file}.tmp`, rendered);
  renameSync(`${file}.tmp`, file);
}

/**
 * Debian's Alertmanager on a free loopback port, clustering off, configured from the shipped template. Until a test
 * (or the demo) calls routeAlertsTo, its hook receiver points at a port nothing listens on.
 */
export async function startAlertmanager(dir: string, logsDir: string, params: MonitoringParams): Promise<Started<AlertmanagerGround>> {
  writeFileSync(join(dir, PASSWORD), '', { mode: 0o600 });
  writeConfig(dir, params, 'http://127.0.0.1:9/', 'nobody');
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  const process = spawnServer({
    name: 'alertmanager',
    command: ALERTMANAGER_BIN,
    args: [
      `--config.file=${join(dir, CONFIG)}`,
      `--storage.path=${join(dir, 'data')}`,
      `--web.listen-address=127.0.0.1:${port}`,
      // One instance: no gossip port opened on every interface.
      '--cluster.listen-address=',
      '--log.level=warn',
    ],
    logsDir,
    cwd: dir,
  });
  try {
    await waitForUrl(`${url}/-/ready`, { what: 'alertmanager to be ready', process, timeoutMs: 30_000 });
  } catch (err) {
    await process.stop();
    throw err;
  }
  return { info: { url, dir }, stop: () => process.stop() };
}

function post(url: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = request(url, { method: 'POST', timeout: 10_000 }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode ?? 0));
    });
    req.on('timeout', () => req.destroy(new Error(`POST ${url} timed out`)));
    req.on('error', reject);
    req.end();
  });
}

/**
 * Points the ground's Alertmanager at a deployer: the shipped route to `DEPLOYER/hooks/alertmanager`, with the token
 * `username` whose secret goes into the password file (never into the configuration), then reloads it. One deployer
 * at a time: the test or demo that calls it owns the loop.
 */
export async function routeAlertsTo(alertmanager: AlertmanagerGround, deployer: { url: string; username: string; secret: string }): Promise<void> {
  const passwordFile = join(alertmanager.dir, PASSWORD);
  writeFileSync(`${passwordFile}.tmp`, deployer.secret, { mode: 0o600 });
  renameSync(`${passwordFile}.tmp`, passwordFile);
  writeConfig(alertmanager.dir, groundMonitoring(), deployer.url, deployer.username);
  const status = await post(`${alertmanager.url}/-/reload`);
  if (status !== 200) throw new Error(`Alertmanager did not reload its configuration (${status}): see alertmanager.log`);
}

/**
 * The rendering of kubernetes/monitoring the ground evaluates: the shipped template with short windows (the tests of
 * test/monitoring check it with promtool and amtool too).
 */
export function groundMonitoring(): MonitoringParams {
  return paramsFrom({
    window: '10s',
    for: '2s',
    'scrape-interval': '1s',
    'evaluation-interval': '1s',
    'group-wait': '1s',
    'min-requests': '50',
  });
}
