import { readFileSync } from 'node:fs';
import { ConfigError, loadConfig, type Config } from './config/load.js';
import { createLogger, exitOnSignals, LogOutput } from './log.js';
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

  // JSON lines to stdout, never blocking the process, not even at exit (src/log.ts says why).
  const output = new LogOutput();
  const logger = createLogger(config.logLevel, output);
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

  exitOnSignals({ close: () => app.close().then(() => wired.deployer.settled()), graceSeconds: config.shutdownGraceSeconds, logger, output });

  const address = await app.listen({ host: config.listen.host, port: config.listen.port });
  log.info({ address, version, insecureNoAuth: config.insecureNoAuth }, 'listening');
}

main().catch((err: unknown) => {
  process.stderr.write(`deployer: failed to start: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(1);
});
