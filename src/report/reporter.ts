import type { Logger } from 'pino';
import type { Notifier, Reporter } from '../core/ports.js';
import type { DeployEvent } from '../core/types.js';
import { logDeployEvent } from './event-log.js';
import type { Metrics } from './metrics.js';

/**
 * Every report of a finished request in one place (the `Reporter` port): the event log line, the metrics, then the
 * notifiers. The notifiers are never awaited: the caller hears of its result at once, Bugsnag and Slack as they can.
 */
export function createReporter(options: { readonly logger: Logger; readonly notifier: Notifier; readonly metrics: Metrics }): Reporter {
  const log = options.logger.child({ module: 'deploy' });
  const { notifier, metrics } = options;
  return {
    started: () => metrics.deployStarted(),
    succeeded(event: DeployEvent): void {
      logDeployEvent(log, event);
      metrics.deployFinished(event);
      void notifier.deploySucceeded(event);
    },
    failed(event: DeployEvent, error: Error, opts: { readonly notify?: boolean } = {}): void {
      logDeployEvent(log, event);
      metrics.deployFinished(event);
      if (opts.notify !== false) void notifier.deployFailed(event, error);
    },
  };
}
