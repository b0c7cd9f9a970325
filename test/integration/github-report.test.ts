import { pino, type Logger } from 'pino';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { ConfigError, parseConfig } from '../../src/config/load.js';
import { ManifestError, UpstreamError } from '../../src/errors.js';
import { createNotifier } from '../../src/report/notifier.js';
import { startCaptureServer, type CaptureServer } from '../env/capture-server.js';
import { githubAnswers, githubCalls } from '../env/github-fake.js';
import type { Caller, DeployEvent } from '../../src/core/types.js';

/**
 * GitHub deployments and commit statuses, and Slack per service, with the real clients (Octokit, @slack/webhook)
 * against loopback servers that record what they are sent.
 */

const TOKEN = 'ghp_TokenSecret0123456789abcdefABCDEF';
const HOOK_SECRET = 'ServiceHookSecret9d2';
const SHA = 'a1b2c3d4e5f60718293a4b5c6d7e8f9012345678';
const OLD = 'ffeeddccbbaa99887766554433221100ffeeddcc';
const CI: Caller = { token: 'ci', userAgent: 'curl/8.5.0' };
const DEPCTL: Caller = { token: 'jane', userAgent: 'depctl/0.1.0 (linux)', executor: 'jane@example.com' };

let github: CaptureServer;
let slack: CaptureServer;
let ownSlack: CaptureServer;
let out: string[];
let logger: Logger;

beforeEach(async () => {
  [github, slack, ownSlack] = await Promise.all([startCaptureServer({ answer: githubAnswers(() => [SHA, OLD]) }), startCaptureServer(), startCaptureServer()]);
  out = [];
  logger = pino({ level: 'debug' }, { write: (s: string) => void out.push(s) });
});

afterEach(async () => {
  const text = out.join('');
  expect(text).not.toContain(TOKEN);
  expect(text).not.toContain(HOOK_SECRET);
  await Promise.all([github.close(), slack.close(), ownSlack.close()]);
});

const warnings = (): Array<Record<string, unknown>> =>
  out.map((l) => JSON.parse(l) as Record<string, unknown>).filter((l) => l['level'] === 40);

/** Services: `web` on GitHub (Enterprise: the capture server), `quiet` with Slack off, `own` with its own Slack. */
function config(options: { github?: Record<string, unknown>; webUrl?: string; webType?: 'git' | 'svn' } = {}) {
  return parseConfig(
    {
      insecureNoAuth: true,
      reports: { slack: { webhookUrl: { value: `${slack.url}/services/T0/B0/shared` }, notifyOnSuccess: false } },
      services: {
        web: {
          repository: { url: options.webUrl ?? 'https://github.example.com/acme/web.git', type: options.webType ?? 'git' },
          notifications: { github: { token: { value: TOKEN }, apiUrl: `${github.url}/api/v3`, ...options.github } },
        },
        quiet: { repository: { url: 'https://git.example.com/quiet.git' }, notifications: { slack: { enabled: false } } },
        own: {
          repository: { url: 'https://git.example.com/own.git' },
          notifications: { slack: { webhookUrl: { value: `${ownSlack.url}/services/T1/B1/${HOOK_SECRET}` }, channel: '#own-deploys', notifyOnSuccess: true } },
        },
        plain: { repository: { url: 'https://git.example.com/plain.git' } },
      },
    },
    {},
  );
}

function event(fields: Partial<DeployEvent> & Pick<DeployEvent, 'kind'>): DeployEvent {
  return { service: 'web', commit: SHA, tag: 'v1.2.0', result: 'success', durationMs: 1200, caller: CI, requestId: 'req-1', ...fields };
}

function failed(error: Error & { status: number }, fields: Partial<DeployEvent> = {}): [DeployEvent, Error] {
  return [event({ kind: 'deploy', result: 'failure', error: { name: error.name, message: error.message, status: error.status }, ...fields }), error];
}

describe('GitHub deployments and commit statuses', () => {
  it('records a deploy as a deployment with status success and a commit status, authenticated, in that order', async () => {
    const notifier = createNotifier({ config: config(), logger, appVersion: '1.4.0' });

    await notifier.deploySucceeded(event({ kind: 'deploy', caller: { ...CI, executor: 'jane@example.com' } }));

    expect(githubCalls(github.requests)).toEqual(['deployment production ' + SHA, 'deployment-status 1 success', `status ${SHA} deployer/production success`]);
    const [create, status, commitStatus] = github.requests;
    expect(create?.path).toBe('/api/v3/repos/acme/web/deployments');
    expect(create?.headers['authorization']).toBe(`token ${TOKEN}`);
    expect(create?.headers['user-agent']).toMatch(/^deployer\/1\.4\.0 /);
    expect(create?.body).toEqual({
      ref: SHA,
      task: 'deploy',
      auto_merge: false,
      required_contexts: [],
      environment: 'production',
      description: 'v1.2.0 deployed by ci (jane@example.com)',
      payload: { service: 'web', kind: 'deploy', tag: 'v1.2.0', caller: 'ci', executor: 'jane@example.com', requestId: 'req-1' },
      transient_environment: false,
    });
    expect(status?.body).toMatchObject({ state: 'success', environment: 'production', auto_inactive: true });
    expect(commitStatus?.body).toEqual({ state: 'success', context: 'deployer/production', description: 'v1.2.0 deployed by ci (jane@example.com)' });
    expect(warnings()).toEqual([]);
  });

  it('marks a failed deploy failure when the version cannot be deployed, error when the deployer or a system failed', async () => {
    const notifier = createNotifier({ config: config({ github: { environment: 'live' } }), logger });

    await notifier.deployFailed(...failed(new ManifestError('deployment.yaml: spec.replicas: not a number')));
    await notifier.deployFailed(...failed(new UpstreamError('kubernetes', 'the Kubernetes apiserver is unreachable')));

    expect(githubCalls(github.requests)).toEqual([
      `deployment live ${SHA}`,
      'deployment-status 1 failure',
      `status ${SHA} deployer/live failure`,
      `deployment live ${SHA}`,
      'deployment-status 2 error',
      `status ${SHA} deployer/live error`,
    ]);
    expect(github.requests[2]?.body).toMatchObject({ description: 'deploy failed (422): deployment.yaml: spec.replicas: not a number' });
    expect(github.requests[1]?.body).toMatchObject({ auto_inactive: false });
  });

  it('looks up the full SHA of an abbreviated commit, and reports nothing for a commit GitHub does not know', async () => {
    const notifier = createNotifier({ config: config(), logger });

    await notifier.deployFailed(...failed(new ManifestError('bad manifest'), { commit: SHA.slice(0, 7) }));
    expect(githubCalls(github.requests)).toEqual([`commit ${SHA.slice(0, 7)}`, `deployment production ${SHA}`, 'deployment-status 1 failure', `status ${SHA} deployer/production failure`]);

    await notifier.deployFailed(...failed(new ManifestError('no such commit'), { commit: 'deadbee' }));
    expect(githubCalls(github.requests.slice(4))).toEqual(['commit deadbee']);
    expect(warnings()).toEqual([
      expect.objectContaining({ notifier: 'github', service: 'web', error: { name: 'Error', message: 'GitHub answered HTTP 422: No commit found for SHA: deadbee' } }),
    ]);
  });

  it('reports a failure of a depctl user to GitHub (a record) but not to Slack (an alarm)', async () => {
    const notifier = createNotifier({ config: config(), logger });

    await notifier.deployFailed(...failed(new ManifestError('bad manifest'), { caller: DEPCTL }));

    expect(githubCalls(github.requests)).toHaveLength(3);
    expect(slack.requests).toEqual([]);
  });

  it('puts a canary in ENVIRONMENT-canary; a promotion makes it inactive and deploys the version to the environment', async () => {
    const notifier = createNotifier({ config: config(), logger });

    await notifier.deploySucceeded(event({ kind: 'canary' }));
    await notifier.deploySucceeded(event({ kind: 'promote', flow: { removedCanary: { commit: SHA, tag: 'v1.2.0' }, deployedStable: true } }));

    expect(githubCalls(github.requests)).toEqual([
      `deployment production-canary ${SHA}`,
      'deployment-status 1 success',
      `status ${SHA} deployer/production-canary success`,
      'list production-canary',
      'inactive 1',
      `deployment production ${SHA}`,
      'deployment-status 2 success',
      `status ${SHA} deployer/production success`,
    ]);
    expect(github.requests[0]?.body).toMatchObject({ transient_environment: true, production_environment: false });
    expect(github.requests[4]?.body).toMatchObject({ state: 'inactive', description: 'canary v1.2.0 promoted by ci' });
  });

  it('a rollback of a canary makes it inactive and fails its commit; a rollback to a version deploys that one', async () => {
    const notifier = createNotifier({ config: config(), logger });
    await notifier.deploySucceeded(event({ kind: 'canary' }));
    const before = github.requests.length;

    await notifier.deploySucceeded(event({ kind: 'rollback', flow: { removedCanary: { commit: SHA, tag: 'v1.2.0' }, deployedStable: false } }));
    await notifier.deploySucceeded(event({ kind: 'rollback', commit: OLD, tag: 'v1.1.0', flow: { deployedStable: true } }));

    expect(githubCalls(github.requests.slice(before))).toEqual([
      'list production-canary',
      'inactive 1',
      `status ${SHA} deployer/production-canary failure`,
      `deployment production ${OLD}`,
      'deployment-status 2 success',
      `status ${OLD} deployer/production success`,
    ]);
    expect(github.requests[before + 2]?.body).toMatchObject({ description: 'canary v1.2.0 rolled back by ci' });
  });

  it('logs a GitHub answering 500 as a warning, without the token, and Slack still gets its message', async () => {
    github.setMode('error', 500);
    const notifier = createNotifier({ config: config(), logger });

    await notifier.deployFailed(...failed(new ManifestError('bad manifest')));

    expect(github.requests).toHaveLength(1);
    expect(slack.requests).toHaveLength(1);
    expect(warnings()).toEqual([expect.objectContaining({ notifier: 'github', error: { name: 'Error', message: 'GitHub answered HTTP 500' } })]);
  });

  it('gives up on a hanging GitHub after the bound, and closes the connection', async () => {
    // Octokit loaded beforehand, so that the bound is spent waiting for GitHub, not importing the client.
    await import('../../src/report/github.js');
    github.setMode('hang');
    const notifier = createNotifier({ config: config(), logger, timeoutMs: 1000 });

    // The server never answers: resolving at all is the bound at work.
    await expect(notifier.deploySucceeded(event({ kind: 'deploy' }))).resolves.toBeUndefined();

    expect(github.requests).toHaveLength(1);
    expect(warnings()).toEqual([
      expect.objectContaining({ notifier: 'github', error: { name: 'Error', message: expect.stringMatching(/did not answer within 1000 ms$/) as unknown } }),
    ]);
    await vi.waitFor(async () => expect(await github.openConnections()).toBe(0));
  });

  it('logs an unreachable GitHub as a warning', async () => {
    const gone = await startCaptureServer();
    await gone.close();
    const notifier = createNotifier({ config: config({ github: { apiUrl: gone.url } }), logger });

    await notifier.deploySucceeded(event({ kind: 'deploy' }));

    expect(warnings()).toEqual([expect.objectContaining({ notifier: 'github', error: { name: 'Error', message: 'cannot reach GitHub (ECONNREFUSED)' } })]);
  });

  it('tells GitHub nothing of a service without a GitHub block, or of an event without a commit', async () => {
    const notifier = createNotifier({ config: config(), logger });

    await notifier.deploySucceeded(event({ kind: 'deploy', service: 'plain' }));
    await notifier.deploySucceeded(event({ kind: 'deploy', commit: undefined }));

    expect(github.requests).toEqual([]);
  });

  it.each([
    [{ webUrl: 'https://github.example.com/just-a-path' }, 'services.web.notifications.github.repository: the repository URL names no GitHub OWNER/NAME; set it'],
    [{ webUrl: 'svn://svn.example.com/web/trunk', webType: 'svn' as const, github: { repository: 'acme/web' } }, 'services.web.notifications.github: the repository is svn, not git'],
  ])('refuses at start a GitHub block it cannot use (%j)', (options, message) => {
    expect(() => createNotifier({ config: config(options), logger })).toThrow(new ConfigError(message));
  });
});

describe('Slack per service', () => {
  it('posts to the service’s own webhook and channel, with its own notifyOnSuccess', async () => {
    const notifier = createNotifier({ config: config(), logger });

    await notifier.deploySucceeded(event({ kind: 'deploy', service: 'own' }));
    await notifier.deployFailed(...failed(new ManifestError('bad manifest'), { service: 'own' }));

    expect(slack.requests).toEqual([]);
    expect(ownSlack.requests.map((r) => r.path)).toEqual([`/services/T1/B1/${HOOK_SECRET}`, `/services/T1/B1/${HOOK_SECRET}`]);
    expect(ownSlack.requests.map((r) => (r.body as { channel?: string }).channel)).toEqual(['#own-deploys', '#own-deploys']);
    expect(JSON.stringify(ownSlack.requests[0]?.body)).toContain(':white_check_mark: deploy of *own* v1.2.0');
  });

  it('uses the deployer’s webhook for a service without its own, and none for a service that turned Slack off', async () => {
    const notifier = createNotifier({ config: config(), logger });

    await notifier.deployFailed(...failed(new ManifestError('bad manifest'), { service: 'plain' }));
    await notifier.deployFailed(...failed(new ManifestError('bad manifest'), { service: 'quiet' }));
    await notifier.deploySucceeded(event({ kind: 'deploy', service: 'plain' }));

    expect(slack.requests).toHaveLength(1);
    expect(JSON.stringify(slack.requests[0]?.body)).toContain('deploy of *plain* v1.2.0');
    expect((slack.requests[0]?.body as { channel?: string }).channel).toBeUndefined();
    expect(ownSlack.requests).toEqual([]);
  });

  it('logs a service’s Slack answering 500 without its webhook URL', async () => {
    ownSlack.setMode('error', 500);
    const notifier = createNotifier({ config: config(), logger });

    await notifier.deploySucceeded(event({ kind: 'deploy', service: 'own' }));

    expect(warnings()).toEqual([expect.objectContaining({ notifier: 'slack', service: 'own', error: { name: 'Error', message: expect.stringContaining('HTTP 500') as unknown } })]);
  });

  it('refuses at start a service channel without any webhook', () => {
    const build = (): unknown =>
      createNotifier({
        config: parseConfig({ insecureNoAuth: true, services: { web: { repository: { url: 'https://x/y.git' }, notifications: { slack: { channel: '#web' } } } } }, {}),
        logger,
      });
    expect(build).toThrow(new ConfigError('services.web.notifications.slack.webhookUrl: needed, since reports.slack sets no webhook'));
  });
});
