import { pino, type Logger } from 'pino';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { z } from 'zod';
import { ConfigError, parseConfig } from '../../src/config/load.js';
import { UpstreamError } from '../../src/errors.js';
import { createNotifier, shouldReport } from '../../src/report/notifier.js';
import { startCaptureServer, type CaptureServer } from '../env/capture-server.js';
import type { Caller, DeployEvent } from '../../src/core/types.js';

// Bugsnag checks the key's form (32 hex digits); Slack's secret is the webhook URL's path.
const API_KEY = '5d1e0b7a9c3f4e2d8b6a0c1e3f5a7b9d';
const HOOK_SECRET = 'HookSecret7f3a9c2e';
const HOOK_PATH = `/services/T0001/B0002/${HOOK_SECRET}`;
const COMMIT = 'abc1234def5678abc1234def5678abc1234def56';

/** The parts of Bugsnag's event payload (v4) the tests look at. */
const BugsnagPayload = z.object({
  events: z.array(
    z.object({
      exceptions: z.array(z.object({ errorClass: z.string(), message: z.string() })),
      severity: z.string(),
      context: z.string().optional(),
      unhandled: z.boolean(),
      app: z.object({ releaseStage: z.string() }),
      metaData: z.record(z.string(), z.record(z.string(), z.unknown())),
      breadcrumbs: z.array(z.unknown()),
    }),
  ),
});
const SlackPayload = z.object({ text: z.string() });

let bugsnag: CaptureServer;
let slack: CaptureServer;
let out: string[];
let logger: Logger;

beforeEach(async () => {
  [bugsnag, slack] = await Promise.all([startCaptureServer(), startCaptureServer()]);
  out = [];
  logger = pino({ level: 'debug' }, { write: (s: string) => void out.push(s) });
});

afterEach(async () => {
  // Whatever happened in the test, no secret may have reached the log.
  const text = out.join('');
  expect(text).not.toContain(API_KEY);
  expect(text).not.toContain(HOOK_SECRET);
  await Promise.all([bugsnag.close(), slack.close()]);
});

function logLines(): Array<Record<string, unknown>> {
  return out.map((l) => JSON.parse(l) as Record<string, unknown>);
}

function warnings(): Array<Record<string, unknown>> {
  return logLines().filter((l) => l['level'] === 40);
}

function config(options: { bugsnag?: boolean; slack?: boolean; notifyOnSuccess?: boolean; slackUrl?: string } = {}) {
  return parseConfig(
    {
      insecureNoAuth: true,
      reports: {
        ...(options.bugsnag === false
          ? {}
          : {
              bugsnag: {
                apiKey: { value: API_KEY },
                notifyEndpoint: bugsnag.url,
                sessionsEndpoint: `${bugsnag.url}/sessions`,
                releaseStage: 'test',
              },
            }),
        ...(options.slack === false
          ? {}
          : {
              slack: {
                webhookUrl: { value: options.slackUrl ?? `${slack.url}${HOOK_PATH}` },
                notifyOnSuccess: options.notifyOnSuccess ?? false,
              },
            }),
      },
    },
    {},
  );
}

const CI: Caller = { token: 'ci', userAgent: 'curl/8.5.0' };
const DEPCTL: Caller = { token: 'jane', userAgent: 'depctl/0.1.0 (linux)' };

function failure(caller: Caller = CI): { event: DeployEvent; error: Error } {
  const error = new UpstreamError('registry', 'no image tag for commit abc1234 after 55 s <registry.example.com>');
  return {
    error,
    event: {
      service: 'web',
      kind: 'deploy',
      commit: COMMIT,
      result: 'failure',
      durationMs: 1520,
      author: 'Jane Doe',
      caller,
      requestId: 'req-7',
      error: { name: error.name, message: error.message, status: error.status },
    },
  };
}

function success(caller: Caller = CI): DeployEvent {
  return {
    service: 'web',
    kind: 'canary',
    commit: COMMIT,
    tag: 'v1.2.0',
    result: 'success',
    durationMs: 4200,
    author: 'Jane Doe',
    insertions: 12,
    deletions: 3,
    caller,
    requestId: 'req-8',
  };
}

describe('shouldReport', () => {
  it.each<[string | undefined, boolean]>([
    ['depctl/0.1.0', false],
    ['DepCtl/1.0 (darwin)', false],
    ['  depctl', false],
    ['depctl', false],
    ['curl/8.5.0', true],
    ['my-depctl/1.0', true],
    ['Go-http-client/1.1', true],
    ['', true],
    [undefined, true],
  ])('User-Agent %j → reported: %s', (userAgent, reported) => {
    expect(shouldReport({ token: 't', userAgent })).toBe(reported);
  });
});

describe('createNotifier with the real Bugsnag and Slack clients', () => {
  it('reports a failed CI deploy to Bugsnag (with metadata) and to Slack, once each', async () => {
    const notifier = createNotifier({ config: config(), logger });
    const { event, error } = failure();

    await notifier.deployFailed(event, error);

    expect(bugsnag.requests).toHaveLength(1);
    const [report] = bugsnag.requests;
    expect(report?.method).toBe('POST');
    expect(report?.path).toBe('/');
    // Bugsnag authenticates by this header; the key belongs there and nowhere in the event itself.
    expect(report?.headers['bugsnag-api-key']).toBe(API_KEY);
    expect(report?.headers['bugsnag-payload-version']).toBe('4');
    const payload = BugsnagPayload.parse(report?.body);
    expect(payload.events).toHaveLength(1);
    const reported = payload.events[0];
    expect(reported?.exceptions[0]).toMatchObject({
      errorClass: 'UpstreamError',
      message: 'no image tag for commit abc1234 after 55 s <registry.example.com>',
    });
    expect(reported).toMatchObject({ severity: 'error', unhandled: false, context: 'deploy web', app: { releaseStage: 'test' } });
    expect(reported?.breadcrumbs).toEqual([]);
    expect(reported?.metaData['deploy']).toEqual({
      service: 'web',
      kind: 'deploy',
      version: COMMIT,
      commit: COMMIT,
      caller: 'ci',
      userAgent: 'curl/8.5.0',
      requestId: 'req-7',
      status: 502,
      durationMs: 1520,
    });
    const events = JSON.stringify(payload.events);
    expect(events).not.toContain(API_KEY);
    expect(events).not.toContain(HOOK_SECRET);

    expect(slack.requests).toHaveLength(1);
    expect(slack.requests[0]?.method).toBe('POST');
    expect(slack.requests[0]?.path).toBe(HOOK_PATH);
    expect(SlackPayload.parse(slack.requests[0]?.body).text).toBe(
      ':x: deploy of *web* abc1234 failed: no image tag for commit abc1234 after 55 s &lt;registry.example.com&gt; ' +
        '(caller ci, request req-7)',
    );
    expect(warnings()).toEqual([]);
  });

  it('reports each failure separately, with no breadcrumbs carried over from the one before', async () => {
    const notifier = createNotifier({ config: config({ slack: false }), logger });

    await notifier.deployFailed(failure().event, failure().error);
    await notifier.deployFailed({ ...failure().event, service: 'api', requestId: 'req-9' }, new Error('second'));

    const [first, second] = bugsnag.requests.map((r) => BugsnagPayload.parse(r.body).events[0]);
    expect(first?.metaData['deploy']).toMatchObject({ service: 'web', requestId: 'req-7' });
    expect(second?.exceptions[0]).toMatchObject({ errorClass: 'Error', message: 'second' });
    expect(second?.metaData['deploy']).toMatchObject({ service: 'api', requestId: 'req-9' });
    expect(second?.breadcrumbs).toEqual([]);
    expect(slack.requests).toEqual([]);
  });

  it.each(['depctl/0.1.0 (linux)', 'DEPCTL/2'])('reports nothing for a depctl caller (%s)', async (userAgent) => {
    const notifier = createNotifier({ config: config({ notifyOnSuccess: true }), logger });
    const { event, error } = failure({ token: 'jane', userAgent });

    await notifier.deployFailed(event, error);

    expect(bugsnag.requests).toEqual([]);
    expect(slack.requests).toEqual([]);
    expect(logLines()).toContainEqual(
      expect.objectContaining({ msg: 'error not reported: depctl caller', requestId: 'req-7' }),
    );
  });

  it('sends nothing on success unless Slack has notifyOnSuccess', async () => {
    const notifier = createNotifier({ config: config({ notifyOnSuccess: false }), logger });

    await notifier.deploySucceeded(success());

    expect(bugsnag.requests).toEqual([]);
    expect(slack.requests).toEqual([]);
  });

  it('announces a success in Slack only (never Bugsnag) with notifyOnSuccess, whoever deployed', async () => {
    const notifier = createNotifier({ config: config({ notifyOnSuccess: true }), logger });

    await notifier.deploySucceeded(success());
    await notifier.deploySucceeded(success(DEPCTL));

    expect(bugsnag.requests).toEqual([]);
    expect(slack.requests.map((r) => SlackPayload.parse(r.body).text)).toEqual([
      ':white_check_mark: canary of *web* v1.2.0 (abc1234) succeeded in 4.200s (caller ci, request req-8)',
      ':white_check_mark: canary of *web* v1.2.0 (abc1234) succeeded in 4.200s (caller jane, request req-8)',
    ]);
    expect(warnings()).toEqual([]);
  });

  it('uses only the configured notifiers', async () => {
    const onlySlack = createNotifier({ config: config({ bugsnag: false }), logger });
    await onlySlack.deployFailed(failure().event, failure().error);
    expect(bugsnag.requests).toEqual([]);
    expect(slack.requests).toHaveLength(1);

    const none = createNotifier({ config: config({ bugsnag: false, slack: false, notifyOnSuccess: true }), logger });
    await none.deployFailed(failure().event, failure().error);
    await none.deploySucceeded(success());
    expect(bugsnag.requests).toHaveLength(0);
    expect(slack.requests).toHaveLength(1);
    expect(warnings()).toEqual([]);
  });

  it('logs a Bugsnag answering 500 as a warning and still reports to Slack', async () => {
    bugsnag.setMode('error', 500);
    const notifier = createNotifier({ config: config(), logger });

    await expect(notifier.deployFailed(failure().event, failure().error)).resolves.toBeUndefined();

    expect(bugsnag.requests).toHaveLength(1);
    expect(slack.requests).toHaveLength(1);
    expect(warnings()).toHaveLength(1);
    expect(warnings()[0]).toMatchObject({
      msg: 'notifier failed',
      module: 'report',
      notifier: 'bugsnag',
      service: 'web',
      kind: 'deploy',
      requestId: 'req-7',
      error: { name: 'Error' },
    });
    expect(JSON.stringify(warnings()[0]?.['error'])).toContain('Bad statusCode from API: 500');
  });

  it.each([500, 404])('logs a Slack answering %d as a warning and still reports to Bugsnag', async (status) => {
    slack.setMode('error', status);
    const notifier = createNotifier({ config: config({ notifyOnSuccess: true }), logger });

    await expect(notifier.deployFailed(failure().event, failure().error)).resolves.toBeUndefined();
    await expect(notifier.deploySucceeded(success())).resolves.toBeUndefined();

    expect(bugsnag.requests).toHaveLength(1);
    // No retries: each message is tried once.
    expect(slack.requests).toHaveLength(2);
    const slackWarnings = warnings().filter((w) => w['notifier'] === 'slack');
    expect(slackWarnings).toHaveLength(2);
    expect(slackWarnings[0]?.['error']).toEqual({ name: 'Error', message: expect.stringContaining(`HTTP ${status}`) as unknown });
    expect(warnings().filter((w) => w['notifier'] === 'bugsnag')).toEqual([]);
  });

  it('gives up on a hanging Bugsnag and Slack after the bound and logs both', async () => {
    // The clients loaded beforehand, so that the bound is spent waiting for the servers, not importing the
    // libraries (which, on a loaded machine, can take longer than the bound itself).
    await Promise.all([import('../../src/report/bugsnag.js'), import('../../src/report/slack.js')]);
    bugsnag.setMode('hang');
    slack.setMode('hang');
    // Bound to 1 s: with 300 ms, the Bugsnag client, preparing its first report on a loaded machine, had not sent
    // the request when the bound dropped it (0 requests at the hanging server, in a run beside a second one).
    const notifier = createNotifier({ config: config(), logger, timeoutMs: 1_000 });

    // Both servers hold the request open for ever: resolving at all is the bound at work.
    await expect(notifier.deployFailed(failure().event, failure().error)).resolves.toBeUndefined();

    expect(bugsnag.requests).toHaveLength(1);
    expect(slack.requests).toHaveLength(1);
    const logged = warnings().map((w) => `${String(w['notifier'])}: ${JSON.stringify(w['error'])}`);
    expect(logged.sort()).toEqual([
      // Whichever bound fires first: the notifier's wait or the Bugsnag socket's silence.
      expect.stringMatching(/^bugsnag: .*within 1000 ms/),
      expect.stringMatching(/^slack: .*(within 1000 ms|Slack did not answer in time)/),
    ]);
    // Bugsnag's delivery has no timeout of its own: the notifier's agent drops the silent socket.
    await vi.waitFor(async () => expect(await bugsnag.openConnections()).toBe(0));
  });

  it('logs an unreachable Slack as a warning without its URL', async () => {
    const gone = await startCaptureServer();
    await gone.close();
    const notifier = createNotifier({ config: config({ slackUrl: `${gone.url}${HOOK_PATH}` }), logger });

    await notifier.deployFailed(failure().event, failure().error);

    expect(bugsnag.requests).toHaveLength(1);
    expect(warnings()).toEqual([
      expect.objectContaining({
        notifier: 'slack',
        error: { name: 'Error', message: 'cannot reach Slack (ECONNREFUSED)' },
      }),
    ]);
  });

  it('refuses a Slack webhook URL that is not a URL, without showing it', () => {
    const build = (): unknown => createNotifier({ config: config({ slackUrl: `not a url ${HOOK_SECRET}` }), logger });

    expect(build).toThrow(ConfigError);
    expect(build).toThrow('reports.slack.webhookUrl: not a URL');
  });
});
