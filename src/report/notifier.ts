import type { Logger } from 'pino';
import { withTimeout } from '../core/util.js';
import { ConfigError, type Config } from '../config/load.js';
import type { Caller, DeployEvent } from '../core/types.js';
import type { Notifier } from '../core/ports.js';

/** How long a deploy's answer may wait for its reports; a slower Bugsnag or Slack is logged and left behind. */
export const DEFAULT_REPORT_TIMEOUT_MS = 5_000;

export interface NotifierOptions {
  readonly config: Pick<Config, 'reports'>;
  readonly logger: Logger;
  /** Bound on each report (and so on the whole call, since they run in parallel). */
  readonly timeoutMs?: number | undefined;
  /** The deployer's own version, for Bugsnag's app.version. */
  readonly appVersion?: string | undefined;
}

/**
 * Thesis 5.3.5: a developer using depctl reads the error in the HTTP answer; every other caller (CI, curl) has
 * nobody watching the answer, so its errors go to the error report system and chat.
 */
export function shouldReport(caller: Caller): boolean {
  return !/^depctl/i.test(caller.userAgent?.trim() ?? '');
}

interface Channel {
  readonly name: 'bugsnag' | 'slack';
  readonly notifier: Notifier;
  /** Values that must never show in a log line even if a library puts them into an error message. */
  readonly secrets: readonly string[];
}

/**
 * The configured notifiers (Bugsnag, Slack, each only when configured) behind one `Notifier`. They run in
 * parallel; each is bounded by `timeoutMs`; a failure or timeout is logged as a warning (without the API key or
 * webhook URL) and never thrown, so reporting can not fail or stall a deploy.
 */
export function createNotifier(options: NotifierOptions): Notifier {
  const log = options.logger.child({ module: 'report' });
  const timeoutMs = options.timeoutMs ?? DEFAULT_REPORT_TIMEOUT_MS;
  const { bugsnag, slack } = options.config.reports;
  const channels: Channel[] = [];
  if (bugsnag !== undefined) {
    channels.push({
      name: 'bugsnag',
      notifier: lazy(() => import('./bugsnag.js').then((m) => m.createBugsnagNotifier({ ...bugsnag, appVersion: options.appVersion, idleTimeoutMs: timeoutMs }))),
      secrets: [bugsnag.apiKey.reveal()],
    });
  }
  if (slack !== undefined) {
    const url = slack.webhookUrl.reveal();
    if (!URL.canParse(url)) throw new ConfigError('reports.slack.webhookUrl: not a URL');
    channels.push({
      name: 'slack',
      notifier: lazy(() => import('./slack.js').then((m) => m.createSlackNotifier({ ...slack, timeoutMs }))),
      secrets: [url, new URL(url).pathname].filter((s) => s.length > 1),
    });
  }

  const run = async (
    what: 'deployFailed' | 'deploySucceeded',
    event: DeployEvent,
    send: (n: Notifier) => Promise<void>,
  ): Promise<void> => {
    await Promise.all(
      channels.map(async (channel) => {
        try {
          await withTimeout(send(channel.notifier), timeoutMs, `${channel.name} did not answer within ${timeoutMs} ms`);
          log.debug({ notifier: channel.name, service: event.service, requestId: event.requestId }, `${what} reported`);
        } catch (err) {
          log.warn(
            {
              notifier: channel.name,
              service: event.service,
              kind: event.kind,
              requestId: event.requestId,
              error: safeError(err, channel.secrets),
            },
            'notifier failed',
          );
        }
      }),
    );
  };

  return {
    async deployFailed(event: DeployEvent, error: Error): Promise<void> {
      if (!shouldReport(event.caller)) {
        log.debug({ service: event.service, requestId: event.requestId }, 'error not reported: depctl caller');
        return;
      }
      await run('deployFailed', event, (n) => n.deployFailed(event, error));
    },
    // A success is news for everybody, whoever deployed, so it is not filtered by caller.
    async deploySucceeded(event: DeployEvent): Promise<void> {
      await run('deploySucceeded', event, (n) => n.deploySucceeded(event));
    },
  };
}

/** Name and message only (no stack, no library fields such as a request config), with secrets cut out. */
function safeError(err: unknown, secrets: readonly string[]): { name: string; message: string } {
  const name = err instanceof Error ? err.name : 'Error';
  let message = (err instanceof Error ? err.message : String(err)).slice(0, 500);
  for (const secret of secrets) message = message.split(secret).join('[redacted]');
  return { name, message };
}

/**
 * A notifier whose client library is loaded at its first report, not at start: Bugsnag's alone costs ~14 MiB of
 * memory, which an idle deployer (or one that never fails) need not pay.
 */
function lazy(load: () => Promise<Notifier>): Notifier {
  let loaded: Promise<Notifier> | undefined;
  const get = (): Promise<Notifier> => (loaded ??= load());
  return {
    deployFailed: async (event, error) => (await get()).deployFailed(event, error),
    deploySucceeded: async (event) => (await get()).deploySucceeded(event),
  };
}
