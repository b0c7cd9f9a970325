import type { DeployEvent } from '../core/types.js';

/** GitHub's states: of a deployment status (`inactive` too) and of a commit status. */
export type GitHubState = 'success' | 'failure' | 'error';

/** One thing to tell GitHub about a finished deploy. */
export type GitHubStep =
  | {
      /** A deployment of `ref` to `environment`, with its one status. */
      readonly kind: 'deployment';
      readonly ref: string;
      readonly environment: string;
      /** A canary's environment goes away with the canary. */
      readonly transient: boolean;
      readonly state: GitHubState;
      readonly description: string;
      readonly payload: Readonly<Record<string, string>>;
    }
  | {
      /** The newest deployment of `environment` no longer runs (a canary removed by a rollback or a promotion). */
      readonly kind: 'inactive';
      readonly environment: string;
      readonly description: string;
    }
  | {
      /** A commit status, shown next to the commit and on its pull request. */
      readonly kind: 'status';
      readonly sha: string;
      readonly context: string;
      readonly state: GitHubState;
      readonly description: string;
    };

/** GitHub cuts descriptions at 140 characters. */
const MAX_DESCRIPTION = 140;

export function canaryEnvironment(environment: string): string {
  return `${environment}-canary`;
}

/**
 * What GitHub is told about one finished deploy, canary, rollback or promotion (nothing without a commit: GitHub
 * knows versions by commit):
 * - deploy, promote, a rollback that deployed a stable version: a deployment of the commit to `environment` and the
 *   commit status `deployer/ENVIRONMENT`; a canary the same in `ENVIRONMENT-canary`;
 * - a rollback or promotion that removed a canary: the canary environment's deployment becomes inactive, and after a
 *   rollback the canary's commit gets the status `failure` ("canary rolled back"), since that is what a rollback says;
 * - a failed request: the same deployment and commit status with `failure` when the version could not be deployed
 *   (its manifests, its image or the commit itself: 400, 404, 422) and `error` when the deployer or a system it
 *   needs failed (5xx), or the request was refused (401, 403, 409).
 */
export function githubSteps(event: DeployEvent, environment: string): GitHubStep[] {
  const canaryEnv = canaryEnvironment(environment);
  const by = byline(event);
  const payload = payloadOf(event);
  const deployed = (ref: string, env: string, state: GitHubState, description: string): GitHubStep[] => [
    { kind: 'deployment', ref, environment: env, transient: env === canaryEnv, state, description: cut(description), payload },
    { kind: 'status', sha: ref, context: `deployer/${env}`, state, description: cut(description) },
  ];

  if (event.result === 'failure') {
    if (event.commit === undefined) return [];
    const env = event.kind === 'canary' ? canaryEnv : environment;
    const status = event.error?.status ?? 500;
    const state: GitHubState = [400, 404, 422].includes(status) ? 'failure' : 'error';
    return deployed(event.commit, env, state, `${event.kind} failed (${status}): ${event.error?.message ?? 'error'}`);
  }

  const steps: GitHubStep[] = [];
  const removed = event.flow?.removedCanary;
  if (removed !== undefined) {
    const why = event.kind === 'rollback' ? `canary ${removed.tag} rolled back${by}` : `canary ${removed.tag} promoted${by}`;
    steps.push({ kind: 'inactive', environment: canaryEnv, description: cut(why) });
    if (event.kind === 'rollback') steps.push({ kind: 'status', sha: removed.commit, context: `deployer/${canaryEnv}`, state: 'failure', description: cut(why) });
  }
  if (event.commit === undefined) return steps;
  const version = event.tag ?? event.commit.slice(0, 7);
  switch (event.kind) {
    case 'deploy':
      return [...steps, ...deployed(event.commit, environment, 'success', `${version} deployed${by}`)];
    case 'canary':
      return [...steps, ...deployed(event.commit, canaryEnv, 'success', `${version} deployed as canary${by}`)];
    case 'promote':
      return [...steps, ...deployed(event.commit, environment, 'success', `${version} promoted from canary${by}`)];
    case 'rollback':
      // Without a stable deploy, the event's commit is the removed canary's, whose steps are above.
      return event.flow?.deployedStable === false ? steps : [...steps, ...deployed(event.commit, environment, 'success', `rolled back to ${version}${by}`)];
  }
}

function byline(event: DeployEvent): string {
  const { token, executor } = event.caller;
  return ` by ${token}${executor === undefined ? '' : ` (${executor})`}`;
}

/** Shown to whoever reads the repository: names and versions, never a secret. */
function payloadOf(event: DeployEvent): Record<string, string> {
  const fields: Record<string, string | undefined> = {
    service: event.service,
    kind: event.kind,
    tag: event.tag,
    caller: event.caller.token,
    executor: event.caller.executor,
    requestId: event.requestId,
  };
  return Object.fromEntries(Object.entries(fields).filter((e): e is [string, string] => e[1] !== undefined));
}

function cut(text: string): string {
  const flat = text.replace(/\s+/g, ' ').trim();
  return flat.length <= MAX_DESCRIPTION ? flat : `${flat.slice(0, MAX_DESCRIPTION - 1)}…`;
}
