import { readFileSync } from 'node:fs';
import { pino } from 'pino';
import { ConfigError, loadConfig, type Config } from './config/load.js';
import { wire } from './wire.js';

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

  // JSON lines to stdout, synchronously, so nothing is lost on exit. No pretty printer: it would be a dependency,
  // and `kubectl logs` readers pipe through jq anyway.
  const logger = pino({ level: config.logLevel, base: { app: 'deployer' } });
  const log = logger.child({ module: 'main' });
  const version = readVersion();
  let wired: ReturnType<typeof wire>;
  try {
    wired = wire({ config, logger, version });
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    process.stderr.write(`deployer: ${err.message}\n`);
    process.exitCode = 1;
    return;
  }
  const { app } = wired;

  let closing = false;
  const shutdown = (signal: NodeJS.Signals): void => {
    // A repeated signal changes nothing: `npm start` in a terminal delivers Ctrl-C twice (to npm and to us), and
    // Kubernetes follows up with SIGKILL after the grace period anyway.
    if (closing) return;
    closing = true;
    log.info({ signal }, 'closing: no new requests, waiting for requests in flight');
    // Bounded, so that the exit is ours and logged rather than the kubelet's SIGKILL at terminationGracePeriodSeconds.
    const graceSeconds = config.shutdownGraceSeconds;
    setTimeout(() => {
      log.error({ graceSeconds }, 'requests still in flight at the end of the shutdown grace: exiting anyway');
      process.exit(1);
    }, graceSeconds * 1000).unref();
    app.close().then(
      () => {
        log.info('closed');
        process.exit(0);
      },
      (err: unknown) => {
        log.error({ err }, 'closing failed');
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', shutdown);
  process.on('SIGINT', shutdown);

  const address = await app.listen({ host: config.listen.host, port: config.listen.port });
  log.info({ address, version, insecureNoAuth: config.insecureNoAuth }, 'listening');
}

main().catch((err: unknown) => {
  process.stderr.write(`deployer: failed to start: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(1);
});
