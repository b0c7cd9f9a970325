import { constants } from 'node:fs';
import { access, mkdir } from 'node:fs/promises';
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { Logger } from 'pino';
import type { Config } from '../config/load.js';
import type { Pinger } from '../core/ports.js';
import type { Metrics } from '../report/metrics.js';
import { withTimeout } from '../core/util.js';
import { authenticate } from './auth.js';
import type { HttpServer } from './server.js';

/** What `GET /readyz` checks: the configuration was loaded, the clone cache is writable, the apiserver answers. */
export type CheckName = 'config' | 'cache' | 'kubernetes';
export type CheckState = 'ok' | 'failed';

export interface Readiness {
  readonly ready: boolean;
  readonly checks: Readonly<Partial<Record<CheckName, CheckState>>>;
}

/** `GET /readyz`; a probe sees only ok/failed (it needs no token), the reasons go to the log. */
export interface ReadinessView {
  readonly status: 'ready' | 'not ready';
  readonly checks: Readiness['checks'];
}

/** Each check's bound: a probe must answer before the kubelet's timeout, whatever hangs behind it. */
export const READY_CHECK_TIMEOUT_MS = 3_000;

export interface ReadinessOptions {
  /** The clone cache (config `cache.dir`): git and svn write there on every deploy. */
  readonly cacheDir: string;
  /** The apiserver. */
  readonly apiserver: Pinger;
  readonly logger: Logger;
  readonly timeoutMs?: number | undefined;
}

/**
 * The readiness check behind `GET /readyz`. A pod that cannot write its cache or reach the apiserver could only
 * answer deploys with errors, so it is taken out of the Service until it can. Failures are logged when the state
 * changes, not on every probe.
 */
export function readinessCheck(options: ReadinessOptions): () => Promise<Readiness> {
  const log = options.logger.child({ module: 'readiness' });
  const timeoutMs = options.timeoutMs ?? READY_CHECK_TIMEOUT_MS;
  let wasReady: boolean | undefined;
  const checks: Array<[CheckName, () => Promise<void>]> = [
    // The app is only ever built from a parsed configuration; the check says so to whoever reads the probe.
    ['config', () => Promise.resolve()],
    [
      'cache',
      async () => {
        await mkdir(options.cacheDir, { recursive: true });
        await access(options.cacheDir, constants.W_OK);
      },
    ],
  ];
  const { apiserver } = options;
  checks.push(['kubernetes', () => apiserver.ping()]);

  return async () => {
    const failures: Partial<Record<CheckName, string>> = {};
    const states = await Promise.all(
      checks.map(async ([name, check]): Promise<[CheckName, CheckState]> => {
        try {
          await withTimeout(check(), timeoutMs, `no answer within ${timeoutMs} ms`);
          return [name, 'ok'];
        } catch (err) {
          failures[name] = err instanceof Error ? err.message : String(err);
          return [name, 'failed'];
        }
      }),
    );
    const ready = states.every(([, state]) => state === 'ok');
    if (ready !== wasReady) {
      if (ready) log.info('ready');
      else log.warn({ failures }, 'not ready');
      wasReady = ready;
    }
    return { ready, checks: Object.fromEntries(states) };
  };
}

export interface OpsRouteDeps {
  readonly config: Pick<Config, 'tokens' | 'insecureNoAuth' | 'metrics'>;
  readonly ready: () => Promise<Readiness>;
  readonly metrics: Metrics;
}

/**
 * The operations endpoints beside `/healthz` (src/http/routes.ts): `/readyz` for Kubernetes' readiness probe and
 * `/metrics` for Prometheus. Both are registered outside the API's authentication scope; `/metrics` asks for a
 * token only when `metrics.requireToken` is set.
 */
export function registerOpsRoutes(app: HttpServer, deps: OpsRouteDeps): void {
  app.get('/readyz', async (_request, reply): Promise<ReadinessView> => {
    const { ready, checks } = await deps.ready();
    void reply.code(ready ? 200 : 503);
    return { status: ready ? 'ready' : 'not ready', checks };
  });

  const { metrics } = deps;
  const requireToken = (request: FastifyRequest, _reply: FastifyReply, done: (err?: Error) => void): void => {
    try {
      authenticate(request.headers.authorization, deps.config);
    } catch (err) {
      done(err as Error);
      return;
    }
    done();
  };
  app.get('/metrics', { onRequest: deps.config.metrics.requireToken ? requireToken : [] }, async (_request, reply) => {
    const text = await metrics.render();
    return reply.header('content-type', metrics.contentType).send(text);
  });
}
