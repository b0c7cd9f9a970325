import type { Logger } from 'pino';
import type { Config } from '../config/load.js';
import { KubeClient } from '../kube/client.js';
import { KubeLeases } from '../kube/leases.js';
import { KubeLive } from '../kube/live.js';
import { RegistryClient } from '../registry/client.js';
import { engineWithMetrics, instrumentAdapters, timed, type Metrics } from '../report/metrics.js';
import { createNotifier } from '../report/notifier.js';
import { createSource } from '../source/index.js';
import { Engine } from './engine.js';
import { Flows } from './flows.js';
import { holderIdentity, LeaseLock } from './lease.js';

export interface CreateOptions {
  readonly config: Config;
  readonly logger: Logger;
  readonly version?: string;
  readonly metrics?: Metrics;
  /** Who holds the deploy leases; default: the POD_NAME environment variable, else host name and process id. */
  readonly identity?: string;
}

/** The real adapters, built from the configuration, behind the deploy engine (main.ts and end-to-end tests). */
export function createEngine(options: CreateOptions): Engine {
  return createDeployer(options).engine;
}

/** The deploy engine and the flows on it (rollback, promote, live state, verdicts), sharing their adapters. */
export function createDeployer(options: CreateOptions): { engine: Engine; flows: Flows } {
  const { config, logger, metrics } = options;
  const timeoutMs = config.versions.remoteTimeoutSeconds * 1000;
  const { kubeconfig } = config.kubernetes;
  // Live reads and lease calls go to the apiserver too: timed like the cluster adapter's calls.
  const kube = <T extends object>(client: T, prefix = ''): T => (metrics === undefined ? client : timed(client, metrics, 'kubernetes', prefix));
  const live = kube(new KubeLive({ kubeconfig, logger }));
  const lease = new LeaseLock({
    store: kube(new KubeLeases({ kubeconfig, logger }), 'lease.'),
    identity: options.identity ?? holderIdentity(process.env),
    namespace: config.kubernetes.leaseNamespace,
    logger,
  });
  // With metrics, each adapter call is timed and each reported deploy counted, at the boundary: the engine is unaware.
  const adapters = instrumentAdapters(
    {
      source: createSource({ cacheDir: config.cache.dir, timeoutMs, logger }),
      registry: new RegistryClient({ credentials: config.registries, timeoutMs, logger }),
      cluster: new KubeClient({ kubeconfig, fieldManager: config.kubernetes.fieldManager, logger }),
      notifier: createNotifier({ config, logger, appVersion: options.version }),
    },
    metrics,
  );
  const created = new Engine({ config, logger, ...adapters, live, lease });
  const engine = metrics === undefined ? created : engineWithMetrics(created, metrics);
  const flows = new Flows({ engine, live, cluster: adapters.cluster, notifier: adapters.notifier, logger });
  return { engine, flows };
}
