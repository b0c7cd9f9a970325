import http from 'node:http';
import https from 'node:https';
import type { Duplex } from 'node:stream';
import { Socket } from 'node:net';
import BugsnagModule from '@bugsnag/js';
import type { Secret } from '../config/secret.js';
import type { DeployEvent } from '../core/types.js';
import type { Notifier } from '../core/ports.js';

export interface BugsnagOptions {
  readonly apiKey: Secret;
  readonly notifyEndpoint?: string | undefined;
  readonly sessionsEndpoint?: string | undefined;
  readonly releaseStage: string;
  /** The deployer's own version (Bugsnag's app.version); the deployed version goes into the metadata. */
  readonly appVersion?: string | undefined;
  /** A connection to Bugsnag that stays silent this long is dropped, so a hanging endpoint frees its socket. */
  readonly idleTimeoutMs: number;
}

/** The metadata section every deploy error carries in Bugsnag. */
export const METADATA_SECTION = 'deploy';

/**
 * Reports failed deploys to Bugsnag with the real @bugsnag/js. Each call makes its own client (not the
 * `Bugsnag.start` singleton), and everything that would hook the process is off: no handlers for uncaught
 * exceptions or rejections, no session tracking, no console breadcrumbs (which patch `console`), no source code
 * read from disk. `deployFailed` rejects when Bugsnag did not take the event; the composing notifier logs that.
 */
export function createBugsnagNotifier(options: BugsnagOptions): Notifier {
  const notify = options.notifyEndpoint;
  // @bugsnag/js is CommonJS typed with `export default`: from ESM the default import is `module.exports`, and
  // the notifier sits on its `default` property (which the package sets for exactly this).
  const client = BugsnagModule.default.createClient({
    apiKey: options.apiKey.reveal(),
    releaseStage: options.releaseStage,
    appVersion: options.appVersion,
    appType: 'deployer',
    autoDetectErrors: false,
    enabledErrorTypes: { unhandledExceptions: false, unhandledRejections: false },
    autoTrackSessions: false,
    enabledBreadcrumbTypes: [],
    maxBreadcrumbs: 0,
    sendCode: false,
    // Bugsnag requires both endpoints once one is set; sessions are never sent (no session tracking).
    endpoints: notify === undefined ? undefined : { notify, sessions: options.sessionsEndpoint ?? notify },
    agent: boundedAgent(notify ?? 'https://notify.bugsnag.com', options.idleTimeoutMs),
    // Delivery failures come back through notify's callback and are logged by the caller; Bugsnag's own logger
    // would print them to the console a second time.
    logger: null,
  });

  return {
    deployFailed(event: DeployEvent, error: Error): Promise<void> {
      return new Promise((resolve, reject) => {
        client.notify(
          error,
          (report) => {
            report.severity = 'error';
            report.context = `${event.kind} ${event.service}`;
            report.addMetadata(METADATA_SECTION, deployMetadata(event));
          },
          (err: unknown) => {
            if (err === null || err === undefined) resolve();
            else reject(err instanceof Error ? err : new Error('Bugsnag did not take the event'));
          },
        );
      });
    },
    deploySucceeded(): Promise<void> {
      // Bugsnag collects errors only.
      return Promise.resolve();
    },
  };
}

/** The facts of a deploy for Bugsnag: names and versions only, never a secret. */
export function deployMetadata(event: DeployEvent): Record<string, string | number | undefined> {
  return {
    service: event.service,
    kind: event.kind,
    version: event.tag ?? event.commit,
    commit: event.commit,
    tag: event.tag,
    caller: event.caller.token,
    // As the caller claimed it; the token is the authority.
    executor: event.caller.executor,
    userAgent: event.caller.userAgent,
    requestId: event.requestId,
    status: event.error?.status,
    durationMs: event.durationMs,
  };
}

/**
 * An agent whose sockets are destroyed after `idleMs` of silence. Bugsnag's Node delivery sets no timeout, so
 * without this a hanging endpoint would keep one socket per report open for as long as it hangs.
 */
function boundedAgent(endpoint: string, idleMs: number): http.Agent {
  const bound = (stream: Duplex | null | undefined): Duplex | null | undefined => {
    if (stream instanceof Socket) {
      stream.setTimeout(idleMs, () => stream.destroy(new Error(`no answer from Bugsnag within ${idleMs} ms`)));
    }
    return stream;
  };
  if (new URL(endpoint).protocol === 'https:') {
    return new (class extends https.Agent {
      override createConnection(
        opts: https.RequestOptions,
        cb?: (err: Error | null, stream: Duplex) => void,
      ): Duplex | null | undefined {
        return bound(super.createConnection(opts, cb));
      }
    })();
  }
  return new (class extends http.Agent {
    override createConnection(
      opts: http.ClientRequestArgs,
      cb?: (err: Error | null, stream: Duplex) => void,
    ): Duplex | null | undefined {
      return bound(super.createConnection(opts, cb));
    }
  })();
}
