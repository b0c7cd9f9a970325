import type { FastifyInstance } from 'fastify';
import type { Logger } from 'pino';
import { buildApp } from './app.js';
import type { Config } from './config/load.js';
import { keysFor } from './core/keys.js';
import { Deployer } from './deploy/deployer.js';
import { deployerNamespace, holderIdentity, LeaseLock } from './deploy/lease.js';
import { DeployLock } from './deploy/lock.js';
import { READY_CHECK_TIMEOUT_MS } from './http/ops-routes.js';
import { Kubernetes } from './kube/kubernetes.js';
import { RegistryClient } from './registry/client.js';
import { Metrics, sourceSystemOf, timed } from './report/metrics.js';
import { createAnalysis } from './prometheus/index.js';
import { createNotifier } from './report/notifier.js';
import { createReporter } from './report/reporter.js';
import { createSource } from './source/index.js';

export interface WireOptions {
  readonly config: Config;
  readonly logger: Logger;
  /** The deployer's own version, for `GET /version` and Bugsnag. */
  readonly version: string;
  /** Who holds the deploy leases; default: the POD_NAME environment variable, else host name and process id. */
  readonly identity?: string | undefined;
}

/** The running deployer: the HTTP app (not yet listening) and what it was built from. */
export interface Wired {
  readonly app: FastifyInstance;
  readonly deployer: Deployer;
  readonly kube: Kubernetes;
  readonly metrics: Metrics;
}

/**
 * The composition root (STYLE.md habit 1): builds every adapter once from the configuration — one kubeconfig load
 * and one transport to the apiserver, one source, one registry client, one notifier — times each outside call into
 * the metrics, and hands them to the domain (Deployer) and the HTTP app. main.ts, the demo, the end-to-end tests
 * and the bench all start the deployer through here.
 */
export function wire(options: WireOptions): Wired {
  const { config, logger, version } = options;
  const metrics = new Metrics({ version });
  const timeoutMs = config.versions.remoteTimeoutSeconds * 1000;
  const kube = new Kubernetes({
    kubeconfig: config.kubernetes.kubeconfig,
    fieldManager: config.kubernetes.fieldManager,
    logger,
    pingTimeoutMs: READY_CHECK_TIMEOUT_MS,
  });
  // Every call to an outside system is timed at the boundary; the readiness pings are not deploy calls.
  const cluster = timed(kube, metrics, 'kubernetes');
  const lease = new LeaseLock({
    store: timed(kube.leases, metrics, 'kubernetes', 'lease.'),
    identity: options.identity ?? holderIdentity(process.env),
    // The deployer's own namespace by default: no service's manifests can write there (and pipeline guards refuse its Leases).
    namespace: config.kubernetes.leaseNamespace ?? deployerNamespace(process.env),
    logger,
  });
  const deployer = new Deployer({
    config,
    keys: keysFor({ domain: config.labels.domain, trackLabel: config.labels.track }),
    logger,
    source: timed(createSource({ cacheDir: config.cache.dir, timeoutMs, logger }), metrics, sourceSystemOf),
    registry: timed(new RegistryClient({ credentials: config.registries, timeoutMs, logger }), metrics, 'registry'),
    cluster,
    live: cluster,
    lock: new DeployLock({ lease, waitMs: config.deploy.lockWaitSeconds * 1000, maxLockMs: config.deploy.maxLockSeconds * 1000 }),
    reporter: createReporter({ logger, metrics, notifier: createNotifier({ config, logger, appVersion: version }) }),
    analysis: createAnalysis(config.analysis, logger),
  });
  const app = buildApp({ config, logger, version, metrics, deployer, apiserver: kube });
  return { app, deployer, kube, metrics };
}
