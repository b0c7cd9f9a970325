import type { Logger } from 'pino';
import { withTimeout } from '../core/util.js';
import { ConfigError, type Config } from '../config/load.js';
import type { Secret } from '../config/secret.js';
import type { Caller, DeployEvent } from '../core/types.js';
import type { Notifier } from '../core/ports.js';
import { githubTarget } from './github-target.js';

/** How long a deploy's answer may wait for its reports; a slower Bugsnag or Slack is logged and left behind. */
export const DEFAULT_REPORT_TIMEOUT_MS = 5_000;

export interface NotifierOptions {
  readonly config: Pick<Config, 'reports' | 'services'>;
  readonly logger: Logger;
  /** Bound on each report (and so on the whole call, since they run in parallel). */
  readonly timeoutMs?: number | undefined;
  /** The deployer's own version, for Bugsnag's app.version and GitHub's User-Agent. */
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
  readonly name: 'bugsnag' | 'slack' | 'github';
  readonly notifier: Notifier;
  /** Values that must never show in a log line even if a library puts them into an error message. */
  readonly secrets: readonly string[];
  /**
   * Told of failures whoever the caller is: a record of deploys (GitHub's), not an alarm that depctl's user, who
   * reads the error in the answer, need not be woken by.
   */
  readonly everyCaller?: boolean;
}

/**
 * The configured notifiers behind one `Notifier`: Bugsnag for every service; Slack with the deployer's webhook or
 * a service's own (`services.NAME.notifications.slack`), each only when configured; GitHub deployments and commit
 * statuses for services that ask for them. Each client library is loaded at its first report. A report's notifiers
 * run in parallel; each is bounded by `timeoutMs`; a failure or timeout is logged as a warning (without the API
 * key, webhook URL or token) and never thrown, so reporting can not fail or stall a deploy.
 */
export function createNotifier(options: NotifierOptions): Notifier {
  const log = options.logger.child({ module: 'report' });
  const timeoutMs = options.timeoutMs ?? DEFAULT_REPORT_TIMEOUT_MS;
  const { bugsnag, slack } = options.config.reports;
  const shared: Channel[] = [];
  if (bugsnag !== undefined) {
    shared.push({
      name: 'bugsnag',
      notifier: lazy(() => import('./bugsnag.js').then((m) => m.createBugsnagNotifier({ ...bugsnag, appVersion: options.appVersion, idleTimeoutMs: timeoutMs }))),
      secrets: [bugsnag.apiKey.reveal()],
    });
  }
  const sharedSlack = slack === undefined ? undefined : slackChannel(slack.webhookUrl, slack.channel, slack.notifyOnSuccess, 'reports.slack', timeoutMs);
  // Services are known at start, so each one's channels (and any configuration mistake in them) are settled here.
  const byService = new Map<string, Channel[]>();
  for (const service of Object.values(options.config.services)) {
    const own = service.notifications;
    const key = `services.${service.name}.notifications`;
    const channels = [...shared];
    const s = own?.slack;
    if (s === undefined || (s.enabled && s.webhookUrl === undefined && s.channel === undefined && s.notifyOnSuccess === undefined)) {
      // Nothing of its own: the deployer's Slack, one client shared by every such service.
      if (sharedSlack !== undefined) channels.push(sharedSlack);
    } else if (s.enabled) {
      const url = s.webhookUrl ?? slack?.webhookUrl;
      if (url === undefined) throw new ConfigError(`${key}.slack.webhookUrl: needed, since reports.slack sets no webhook`);
      channels.push(slackChannel(url, s.channel ?? slack?.channel, s.notifyOnSuccess ?? slack?.notifyOnSuccess ?? false, `${key}.slack`, timeoutMs));
    }
    const github = own?.github;
    if (github !== undefined) {
      if (service.repository.type !== 'git') throw new ConfigError(`${key}.github: the repository is ${service.repository.type}, not git`);
      const target = githubTarget(service.repository.url, github, `${key}.github`);
      const settings = { ...target, token: github.token, environment: github.environment, timeoutMs, appVersion: options.appVersion };
      channels.push({
        name: 'github',
        notifier: lazy(() => import('./github.js').then((m) => m.createGitHubNotifier(settings))),
        secrets: [github.token.reveal()],
        everyCaller: true,
      });
    }
    byService.set(service.name, channels);
  }
  const fallback = sharedSlack === undefined ? shared : [...shared, sharedSlack];
  const channelsOf = (service: string): readonly Channel[] => byService.get(service) ?? fallback;

  const run = async (
    what: 'deployFailed' | 'deploySucceeded',
    event: DeployEvent,
    channels: readonly Channel[],
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
      const everyone = shouldReport(event.caller);
      const channels = channelsOf(event.service).filter((c) => everyone || c.everyCaller === true);
      // Bugsnag and Slack, not GitHub's record.
      if (!everyone) log.debug({ service: event.service, requestId: event.requestId }, 'error not reported: depctl caller');
      await run('deployFailed', event, channels, (n) => n.deployFailed(event, error));
    },
    // A success is news for everybody, whoever deployed, so it is not filtered by caller.
    async deploySucceeded(event: DeployEvent): Promise<void> {
      await run('deploySucceeded', event, channelsOf(event.service), (n) => n.deploySucceeded(event));
    },
  };
}

/** A Slack channel: the webhook URL is checked here, at start, and is the secret (its path above all). */
function slackChannel(webhookUrl: Secret, channel: string | undefined, notifyOnSuccess: boolean, key: string, timeoutMs: number): Channel {
  const url = webhookUrl.reveal();
  if (!URL.canParse(url)) throw new ConfigError(`${key}.webhookUrl: not a URL`);
  return {
    name: 'slack',
    notifier: lazy(() => import('./slack.js').then((m) => m.createSlackNotifier({ webhookUrl, channel, notifyOnSuccess, timeoutMs }))),
    secrets: [url, new URL(url).pathname].filter((s) => s.length > 1),
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
 * memory, which an idle deployer (or one that never fails) need not pay; Slack's and Octokit's likewise.
 */
function lazy(load: () => Promise<Notifier>): Notifier {
  let loaded: Promise<Notifier> | undefined;
  const get = (): Promise<Notifier> => (loaded ??= load());
  return {
    deployFailed: async (event, error) => (await get()).deployFailed(event, error),
    deploySucceeded: async (event) => (await get()).deploySucceeded(event),
  };
}
