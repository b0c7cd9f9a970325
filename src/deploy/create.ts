import type { Logger } from 'pino';
import type { Config } from '../config/load.js';
import { KubeClient } from '../kube/client.js';
import { RegistryClient } from '../registry/client.js';
import { engineWithMetrics, instrumentAdapters, type Metrics } from '../report/metrics.js';
import { createNotifier } from '../report/notifier.js';
import { createSource } from '../source/index.js';
import { Engine } from './engine.js';

/** The real adapters, built from the configuration, behind the deploy engine (main.ts and end-to-end tests). */
export function createEngine(options: { config: Config; logger: Logger; version?: string; metrics?: Metrics }): Engine {
  const { config, logger, metrics } = options;
  const timeoutMs = config.versions.remoteTimeoutSeconds * 1000;
  // With metrics, each adapter call is timed and each reported deploy counted, at the boundary: the engine is unaware.
  const engine = new Engine({
    config,
    logger,
    ...instrumentAdapters(
      {
        source: createSource({ cacheDir: config.cache.dir, timeoutMs, logger }),
        registry: new RegistryClient({ credentials: config.registries, timeoutMs, logger }),
        cluster: new KubeClient({ kubeconfig: config.kubernetes.kubeconfig, fieldManager: config.kubernetes.fieldManager, logger }),
        notifier: createNotifier({ config, logger, appVersion: options.version }),
      },
      metrics,
    ),
  });
  return metrics === undefined ? engine : engineWithMetrics(engine, metrics);
}
