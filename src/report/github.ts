import { Octokit } from '@octokit/core';
import { z } from 'zod';
import type { Secret } from '../config/secret.js';
import type { Notifier } from '../core/ports.js';
import type { DeployEvent } from '../core/types.js';
import { githubSteps, type GitHubStep } from './github-plan.js';
import type { GitHubTarget } from './github-target.js';

export interface GitHubOptions extends GitHubTarget {
  readonly token: Secret;
  /** The environment of stable deploys (a canary's is `ENVIRONMENT-canary`). */
  readonly environment: string;
  /** The whole report (every request it makes) gives up after this long. */
  readonly timeoutMs: number;
  /** The deployer's own version, for the User-Agent. */
  readonly appVersion?: string | undefined;
}

/** The parts of GitHub's answers the deployer reads. */
const Created = z.object({ id: z.number().int() });
const Listed = z.array(z.object({ id: z.number().int() }));
const Commit = z.object({ sha: z.string().regex(/^[0-9a-f]{40}([0-9a-f]{24})?$/) });

const FULL_SHA = /^[0-9a-f]{40}([0-9a-f]{24})?$/;

/**
 * GitHub deployments and commit statuses for one service's repository, with @octokit/core: GitHub's own client,
 * kept up to date with its API, which sets the API version header, authenticates and turns an answer into a typed
 * error. Only core: the few endpoints are called by route, so the REST plugins (a method for every endpoint,
 * pagination, retries) would load for nothing; retries stay off as for Slack: a late report is worth less than the
 * next deploy. `deploySucceeded`/`deployFailed` reject when GitHub did not take a step; the
 * composing notifier logs that. Each report is one AbortSignal's worth of time, so a hanging GitHub frees its
 * sockets when the report gives up.
 */
export function createGitHubNotifier(options: GitHubOptions): Notifier {
  const octokit = new Octokit({
    auth: options.token.reveal(),
    baseUrl: options.apiUrl,
    userAgent: `deployer/${options.appVersion ?? 'unknown'}`,
    // Octokit would print deprecation notices with console.warn; the composing notifier logs what matters.
    log: { debug: () => undefined, info: () => undefined, warn: () => undefined, error: () => undefined },
  });
  const repo = { owner: options.owner, repo: options.repo };

  const report = async (event: DeployEvent): Promise<void> => {
    const steps = githubSteps(event, options.environment);
    if (steps.length === 0) return;
    const signal = AbortSignal.timeout(options.timeoutMs);
    const request = { signal };
    const shas = new Map<string, Promise<string>>();
    // GitHub takes statuses by full SHA only; a caller may have sent an abbreviated one.
    const fullSha = (ref: string): Promise<string> => {
      if (FULL_SHA.test(ref)) return Promise.resolve(ref);
      let sha = shas.get(ref);
      if (sha === undefined) {
        sha = octokit.request('GET /repos/{owner}/{repo}/commits/{ref}', { ...repo, ref, request }).then((r) => Commit.parse(r.data).sha);
        shas.set(ref, sha);
      }
      return sha;
    };
    const run = async (step: GitHubStep): Promise<void> => {
      switch (step.kind) {
        case 'deployment': {
          const created = await octokit.request('POST /repos/{owner}/{repo}/deployments', {
            ...repo,
            ref: await fullSha(step.ref),
            task: 'deploy',
            // The deployer has deployed already: GitHub records it, and must neither merge nor wait for checks.
            auto_merge: false,
            required_contexts: [],
            environment: step.environment,
            description: step.description,
            payload: step.payload,
            transient_environment: step.transient,
            ...(step.transient ? { production_environment: false } : {}),
            request,
          });
          const { id } = Created.parse(created.data);
          await octokit.request('POST /repos/{owner}/{repo}/deployments/{deployment_id}/statuses', {
            ...repo,
            deployment_id: id,
            state: step.state,
            description: step.description,
            environment: step.environment,
            // A successful deploy makes the environment's earlier deployments inactive: they no longer run.
            auto_inactive: step.state === 'success',
            request,
          });
          return;
        }
        case 'inactive': {
          const listed = await octokit.request('GET /repos/{owner}/{repo}/deployments', { ...repo, environment: step.environment, per_page: 1, request });
          const [newest] = Listed.parse(listed.data);
          if (newest === undefined) return;
          await octokit.request('POST /repos/{owner}/{repo}/deployments/{deployment_id}/statuses', {
            ...repo,
            deployment_id: newest.id,
            state: 'inactive',
            description: step.description,
            request,
          });
          return;
        }
        case 'status':
          await octokit.request('POST /repos/{owner}/{repo}/statuses/{sha}', {
            ...repo,
            sha: await fullSha(step.sha),
            state: step.state,
            context: step.context,
            description: step.description,
            request,
          });
          return;
      }
    };
    try {
      // In order: a deployment's status follows its creation, and one inactive canary is marked before the next.
      for (const step of steps) await run(step);
    } catch (err) {
      throw describeGitHubError(err, signal, options.timeoutMs);
    }
  };

  return { deployFailed: (event) => report(event), deploySucceeded: (event) => report(event) };
}

/**
 * A plain error that says what went wrong — GitHub's status and its short message ("Bad credentials", "Validation
 * Failed"), no answer in time, or no connection — without the request Octokit attaches (its headers carry the token,
 * redacted by Octokit, but nothing of it belongs in a log line).
 */
export function describeGitHubError(err: unknown, signal: AbortSignal, timeoutMs: number): Error {
  if (signal.aborted) return new Error(`GitHub did not answer within ${timeoutMs} ms`);
  if (err instanceof z.ZodError) return new Error('GitHub answered with an unexpected body');
  const e = err as { status?: unknown; response?: { data?: unknown }; cause?: unknown };
  if (typeof e.status === 'number' && e.response !== undefined) {
    const data = e.response.data as { message?: unknown } | undefined;
    const said = typeof data?.message === 'string' ? `: ${data.message.slice(0, 200)}` : '';
    return new Error(`GitHub answered HTTP ${e.status}${said}`);
  }
  const cause = (e.cause as { cause?: { code?: unknown } } | undefined)?.cause;
  const code = typeof cause?.code === 'string' ? ` (${cause.code})` : '';
  return new Error(`cannot reach GitHub${code}`);
}
