import type { Logger } from 'pino';
import type { Config } from '../config/load.js';
import { KubeClient } from '../kube/client.js';
import { RegistryClient } from '../registry/client.js';
import { createNotifier } from '../report/notifier.js';
import { createSource } from '../source/index.js';
import { Engine } from './engine.js';

/** The real adapters, built from the configuration, behind the deploy engine (main.ts and end-to-end tests). */
export function createEngine(options: { config: Config; logger: Logger; version?: string }): Engine {
  const { config, logger } = options;
  const timeoutMs = config.versions.remoteTimeoutSeconds * 1000;
  return new Engine({
    config,
    logger,
    source: createSource({ cacheDir: config.cache.dir, timeoutMs, logger }),
    registry: new RegistryClient({ credentials: config.registries, timeoutMs, logger }),
    cluster: new KubeClient({ kubeconfig: config.kubernetes.kubeconfig, fieldManager: config.kubernetes.fieldManager, logger }),
    notifier: createNotifier({ config, logger, appVersion: options.version }),
  });
}
