import { readFileSync } from 'node:fs';
import { buildApp } from './app.js';
import { ConfigError, loadConfig, type Config } from './config/load.js';
import { createDeployer } from './deploy/create.js';
import { READY_CHECK_TIMEOUT_MS } from './http/ops-routes.js';
import { KubeClient } from './kube/client.js';
import { createLogger, exitOnSignals, LogOutput } from './log.js';
import { Metrics } from './report/metrics.js';

/** The deployer's version: package.json sits one level above both src/main.ts and dist/main.js. */
function readVersion(): string {
  const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version?: unknown };
  return typeof pkg.version === 'string' ? pkg.version : 'unknown';
}

async function main(): Promise<void> {
  let config: Config;
  try {
    config = loadConfig(process.env);
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    // Before a logger exists, and for a human reading `kubectl logs`: one plain line naming the key.
    process.stderr.write(`deployer: ${err.message}\n`);
    process.exitCode = 1;
    return;
  }

  // JSON lines to stdout, never blocking the process, not even at exit (src/log.ts says why).
  const output = new LogOutput();
  const logger = createLogger(config.logLevel, output);
  const log = logger.child({ module: 'main' });
  const version = readVersion();
  const metrics = new Metrics();
  const { engine, flows } = createDeployer({ config, logger, version, metrics });
  // A client of its own for the readiness probe: a short timeout, and its pings are not deploy calls in the metrics.
  const apiserver = new KubeClient({
    kubeconfig: config.kubernetes.kubeconfig,
    fieldManager: config.kubernetes.fieldManager,
    logger,
    timeoutMs: READY_CHECK_TIMEOUT_MS,
  });
  const app = buildApp({ config, logger, engine, flows, version, metrics, apiserver });

  exitOnSignals({ close: () => app.close(), graceSeconds: config.shutdownGraceSeconds, logger, output });

  const address = await app.listen({ host: config.listen.host, port: config.listen.port });
  log.info({ address, version, insecureNoAuth: config.insecureNoAuth }, 'listening');
}

main().catch((err: unknown) => {
  process.stderr.write(`deployer: failed to start: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(1);
});
