import type { FastifyInstance } from 'fastify';
import type { Logger } from 'pino';
import type { Config } from './config/load.js';
import type { Flows } from './deploy/flows.js';
import type { DeployEngine } from './deploy/types.js';
import { readinessCheck, registerOpsRoutes } from './http/ops-routes.js';
import { registerRoutes } from './http/routes.js';
import { createHttpServer } from './http/server.js';
import type { Metrics } from './report/metrics.js';

export interface AppDeps {
  readonly config: Config;
  readonly logger: Logger;
  /** The deploy flow (src/deploy). Left out, deploy, canary and tags answer 501 and the rest works. */
  readonly engine?: DeployEngine | undefined;
  /** Rollback, promote, monitor hooks, live state and rollout verdicts (src/deploy/flows.ts); left out, none of them. */
  readonly flows?: Flows | undefined;
  /** The deployer's own version, for `GET /version`. */
  readonly version: string;
  /** For `GET /metrics`; left out, there is no such endpoint. */
  readonly metrics?: Metrics | undefined;
  /** The apiserver, which `GET /readyz` pings; left out, readiness does not check it. */
  readonly apiserver?: { ping(): Promise<void> } | undefined;
}

/**
 * Wires the HTTP API (STYLE.md habit 1): the one place that knows both Fastify and the domain. Returns the Fastify
 * instance, not yet listening; domain code never sees it.
 */
export function buildApp(deps: AppDeps): FastifyInstance {
  const { config, logger } = deps;
  if (config.insecureNoAuth) {
    logger.child({ module: 'app' }).warn('insecureNoAuth is set: every request is allowed without a token (demos only)');
  }
  const app = createHttpServer({ logger });
  registerRoutes(app, { config, engine: deps.engine, flows: deps.flows, version: deps.version });
  const ready = readinessCheck({ cacheDir: config.cache.dir, apiserver: deps.apiserver, logger });
  registerOpsRoutes(app, { config, ready, metrics: deps.metrics });
  return app;
}
