import { IncomingWebhook, IncomingWebhookHTTPError } from '@slack/webhook';
import type { Secret } from '../config/secret.js';
import { formatDuration } from './event-log.js';
import type { DeployEvent } from '../core/types.js';
import type { Notifier } from '../core/ports.js';

export interface SlackOptions {
  readonly webhookUrl: Secret;
  /** `#channel` or `@user`; a legacy webhook posts there, an app's webhook posts to its own channel whatever it says. */
  readonly channel?: string | undefined;
  readonly notifyOnSuccess: boolean;
  /** Each message gives up after this long (the request is aborted). */
  readonly timeoutMs: number;
}

/**
 * Posts deploy messages to a Slack incoming webhook with the real @slack/webhook: every failure it is given, and
 * successes when `notifyOnSuccess`. No retries: a report that comes late is worth less than a deploy answered in
 * time. `deployFailed` rejects when Slack did not take the message; the composing notifier logs that.
 */
export function createSlackNotifier(options: SlackOptions): Notifier {
  const webhook = new IncomingWebhook(options.webhookUrl.reveal(), {
    timeout: options.timeoutMs,
    retryConfig: { retries: 0 },
  });
  const send = async (text: string): Promise<void> => {
    try {
      await webhook.send({ text, unfurl_links: false, unfurl_media: false, ...(options.channel === undefined ? {} : { channel: options.channel }) });
    } catch (err) {
      throw describeSlackError(err);
    }
  };
  return {
    deployFailed: (event, error) => send(failureText(event, error)),
    deploySucceeded: async (event) => {
      if (options.notifyOnSuccess) await send(successText(event));
    },
  };
}

/** `:x: deploy of *web* v1.2 (abc1234) failed: no tag for commit abc1234 (caller ops, executor jane, request r-1)` */
export function failureText(event: DeployEvent, error: Error): string {
  return `:x: ${event.kind} of *${escape(event.service)}*${version(event)} failed: ${escape(error.message)} ${trailer(event)}`;
}

/** `:white_check_mark: deploy of *web* v1.2 (abc1234) succeeded in 4.200s (caller ci, request r-1)` */
export function successText(event: DeployEvent): string {
  return (
    `:white_check_mark: ${event.kind} of *${escape(event.service)}*${version(event)} succeeded in ` +
    `${formatDuration(event.durationMs)} ${trailer(event)}`
  );
}

function version(event: DeployEvent): string {
  const commit = event.commit === undefined ? undefined : event.commit.slice(0, 7);
  if (event.tag !== undefined && commit !== undefined && event.tag !== event.commit) {
    return ` ${escape(event.tag)} (${escape(commit)})`;
  }
  const v = event.tag ?? commit;
  return v === undefined ? '' : ` ${escape(v)}`;
}

function trailer(event: DeployEvent): string {
  const { token, executor } = event.caller;
  const by = executor === undefined ? '' : `, executor ${escape(executor)}`;
  return `(caller ${escape(token)}${by}, request ${escape(event.requestId)})`;
}

/** Slack reads `<...>` as links and mentions; an error message must show as written. */
function escape(text: string): string {
  return text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
}

/**
 * A plain error that names what went wrong without the webhook URL (the URL is the secret) or anything the
 * library attached to the original error.
 */
function describeSlackError(err: unknown): Error {
  if (err instanceof IncomingWebhookHTTPError) {
    return new Error(`Slack answered HTTP ${err.statusCode} ${err.statusMessage}`.trim());
  }
  const original = (err as { original?: unknown }).original ?? err;
  if (original instanceof Error && (original.name === 'TimeoutError' || original.name === 'AbortError')) {
    return new Error('Slack did not answer in time');
  }
  const cause = original instanceof Error ? (original.cause as { code?: unknown } | undefined) : undefined;
  const code = typeof cause?.code === 'string' ? ` (${cause.code})` : '';
  return new Error(`cannot reach Slack${code}`);
}
