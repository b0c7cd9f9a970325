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
  /** Why each failed check failed. */
  readonly failures: Readonly<Partial<Record<CheckName, string>>>;
}

/**
 * `GET /readyz`. A probe (no token) sees only ok/failed; a request with a valid token also sees why each failed
 * check failed (an error message may name hosts and paths, which anonymous callers need not learn). The reasons
 * always go to the log.
 */
export interface ReadinessView {
  readonly status: 'ready' | 'not ready';
  readonly checks: Readiness['checks'];
  readonly failures?: Readiness['failures'];
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
  let was: string | undefined;
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
    // Logged when the state or a reason changes, not on every probe.
    const now = JSON.stringify(failures);
    if (now !== was) {
      if (ready) log.info('ready');
      else log.warn({ failures }, 'not ready');
      was = now;
    }
    return { ready, checks: Object.fromEntries(states), failures };
  };
}

/** Whether the request carries a valid token; a probe without one, or with a wrong one, is not refused. */
function hasValidToken(header: string | undefined, config: OpsRouteDeps['config']): boolean {
  if (header === undefined) return false;
  try {
    authenticate(header, config);
    return true;
  } catch {
    return false;
  }
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
  app.get('/readyz', async (request, reply): Promise<ReadinessView> => {
    const { ready, checks, failures } = await deps.ready();
    void reply.code(ready ? 200 : 503);
    const view: ReadinessView = { status: ready ? 'ready' : 'not ready', checks };
    return ready || !hasValidToken(request.headers.authorization, deps.config) ? view : { ...view, failures };
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
