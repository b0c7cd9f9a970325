import type { FastifyInstance } from 'fastify';
import type { Logger } from 'pino';
import type { Config } from './config/load.js';
import type { Pinger } from './core/ports.js';
import type { DeployService } from './deploy/types.js';
import { readinessCheck, registerOpsRoutes } from './http/ops-routes.js';
import { registerRoutes } from './http/routes.js';
import { createHttpServer } from './http/server.js';
import type { Metrics } from './report/metrics.js';

export interface AppDeps {
  readonly config: Config;
  readonly logger: Logger;
  /** The deployer's domain (src/deploy/deployer.ts): deploys, flows, live state, verdicts, tags. */
  readonly deployer: DeployService;
  /** The deployer's own version, for `GET /version`. */
  readonly version: string;
  /** For `GET /metrics`. */
  readonly metrics: Metrics;
  /** The apiserver, which `GET /readyz` pings. */
  readonly apiserver: Pinger;
}

/**
 * Wires the HTTP API (STYLE.md habit 1): the one place that knows both Fastify and the domain. Returns the Fastify
 * instance, not yet listening; domain code never sees it. src/wire.ts builds its dependencies.
 */
export function buildApp(deps: AppDeps): FastifyInstance {
  const { config, logger } = deps;
  if (config.insecureNoAuth) {
    logger.child({ module: 'app' }).warn('insecureNoAuth is set: every request is allowed without a token (demos only)');
  }
  const app = createHttpServer({ logger, limits: config.http, version: deps.version });
  registerRoutes(app, { config, deployer: deps.deployer, version: deps.version });
  const ready = readinessCheck({ cacheDir: config.cache.dir, apiserver: deps.apiserver, logger });
  registerOpsRoutes(app, { config, ready, metrics: deps.metrics });
  return app;
}
