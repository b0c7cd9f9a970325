import type { Keys } from '../core/keys.js';
import type { CanaryAnalysis, Cluster, LiveReader } from '../core/ports.js';
import type { CanaryAnalysisResult, LiveDeployment, ObjectResult } from '../core/types.js';
import { shortCommit } from '../core/util.js';
import { AuthError, ConflictError, InputError } from '../errors.js';
import { ageSeconds, canaryDeployedAt, isCanary, previousOf, serviceDeployments, versionOf, type LiveVersion } from './state.js';
import type { DeployRequest, DeployRun, FlowResult, PromoteRequest, RollbackRequest } from './types.js';

/**
 * The flows that use the deploy (issue "used-by flows", thesis 4.2.4): the rollback a monitor or a person asks for
 * and the promotion a scheduled job asks for. Each reads the cluster and decides; `Deployer` runs it under the
 * service's lock, so that what it read is still true when it acts, and reports it once.
 */

/** What a flow decided and did, before the report: `reported` is the version its event line names, if any. */
export interface FlowDone {
  readonly result: Omit<FlowResult, 'service' | 'kind' | 'durationMs'>;
  /** The deploy it ran, whose commit facts the event line carries. */
  readonly deployed?: DeployRun | undefined;
  /** The version the event line names when nothing was deployed (the canary that was removed). */
  readonly removed?: LiveVersion | undefined;
  /** A rollback's: since when the version it removed or replaced ran (for the time to restore). */
  readonly failingSince?: string | undefined;
  /** A gated promotion's evidence, for the event log. */
  readonly analysis?: CanaryAnalysisResult | undefined;
}

export interface FlowDeps {
  readonly keys: Keys;
  readonly live: LiveReader;
  readonly cluster: Pick<Cluster, 'deleteDeployments'>;
  readonly now: () => number;
  /** Compares a canary with stable before a gated promotion. */
  readonly analysis: CanaryAnalysis;
  /** Deploys a stable version within the flow's lock. */
  readonly deploy: (request: DeployRequest) => Promise<DeployRun>;
}

const FULL_SHA = /^[0-9a-f]{40}$/;
const SHORT_SHA = /^[0-9a-f]{7,40}$/i;

/** Whether `live` is the commit a request names (a full or abbreviated SHA, or the same svn revision). */
function sameCommit(live: string, wanted: string): boolean {
  if (live === wanted) return true;
  return FULL_SHA.test(live) && SHORT_SHA.test(wanted) && live.startsWith(wanted.toLowerCase());
}

/** Whether `version` is the one a request names. */
function isVersion(version: LiveVersion, wanted: { commit?: string | undefined; tag?: string | undefined }): boolean {
  return (wanted.tag === undefined || version.tag === wanted.tag) && (wanted.commit === undefined || sameCommit(version.commit, wanted.commit));
}

/** Whether every versioned stable Deployment runs the version a request names. */
function runsVersion(keys: Keys, stables: readonly LiveDeployment[], wanted: { commit?: string | undefined; tag?: string | undefined }): boolean {
  const versions = stables.map((d) => versionOf(keys, d)).filter((v): v is LiveVersion => v !== undefined);
  if (versions.length === 0) return false;
  return versions.every((v) => isVersion(v, wanted));
}

/** The canary deployed last, with its version; canaries of one deploy share one. */
function newestCanary(keys: Keys, canaries: readonly LiveDeployment[]): { deployment: LiveDeployment; version: LiveVersion } | undefined {
  let newest: { deployment: LiveDeployment; version: LiveVersion; at: string } | undefined;
  for (const deployment of canaries) {
    const version = versionOf(keys, deployment);
    if (version === undefined) continue;
    const at = canaryDeployedAt(keys, deployment) ?? '';
    if (newest === undefined || at > newest.at) newest = { deployment, version, at };
  }
  return newest;
}

function formatAge(seconds: number): string {
  if (seconds < 60) return `${seconds}s`;
  const m = Math.floor(seconds / 60);
  if (m < 60) return `${m}m${seconds % 60 === 0 ? '' : `${seconds % 60}s`}`;
  return `${Math.floor(m / 60)}h${m % 60 === 0 ? '' : `${m % 60}m`}`;
}

async function deleteCanaries(deps: FlowDeps, canaries: readonly LiveDeployment[]): Promise<ObjectResult[]> {
  const byNamespace = new Map<string, string[]>();
  for (const c of canaries) byNamespace.set(c.namespace, [...(byNamespace.get(c.namespace) ?? []), c.name]);
  const results: ObjectResult[] = [];
  for (const [namespace, names] of byNamespace) results.push(...(await deps.cluster.deleteDeployments(namespace, names)));
  return results;
}

/**
 * Removes the service's canaries; with a version, deploys it as stable; with `to: 'previous'`, deploys the
 * last-known-good stable version. Nothing left to roll back is an answer, not an error.
 */
export async function rollback(deps: FlowDeps, request: RollbackRequest): Promise<FlowDone> {
  const { service } = request;
  const { keys } = deps;
  const deployments = await serviceDeployments(keys, deps.live, service);
  const canaries = deployments.filter((d) => isCanary(keys, d));
  const stables = deployments.filter((d) => !isCanary(keys, d));
  const canary = newestCanary(keys, canaries)?.version;
  const stable = stables.map((d) => versionOf(keys, d)).find((v) => v !== undefined);
  const stays = stable === undefined ? {} : { commit: stable.commit, tag: stable.tag };

  let target: { commit?: string | undefined; tag?: string | undefined; digests?: Readonly<Record<string, string>> } | undefined;
  const previous = stables.map((d) => previousOf(keys, d.annotations)).find((v) => v !== undefined);
  if (request.to === 'previous') {
    target = previous === undefined ? undefined : { commit: previous.commit, tag: previous.tag, digests: previous.digests };
  } else if (request.commit !== undefined || request.tag !== undefined) {
    target = { commit: request.commit, tag: request.tag };
  }
  // A version that runs already needs no deploy: a monitor sending the stable commit again changes nothing.
  const running = target !== undefined && request.to !== 'previous' && runsVersion(keys, stables, target);
  // A rollback moves a service back to a version it ran; any other version is a deploy, and needs its scope.
  if (target !== undefined && request.to !== 'previous' && !running && !request.mayDeploy && (previous === undefined || !isVersion(previous, target))) {
    const { token } = request.caller;
    const named = target.tag ?? shortCommit(target.commit ?? '');
    throw new AuthError(
      403,
      `token "${token}" may not deploy service "${service.name}": ${named} is neither the running stable version nor the ` +
        'recorded previous one, and deploying it needs the deploy scope (rollback alone may remove the canary, ' +
        'redeploy the running stable version or roll back with to=previous)',
      { detail: { token, action: 'deploy', service: service.name } },
    );
  }

  if (canaries.length === 0 && (target === undefined || running)) {
    const why =
      request.to === 'previous'
        ? ' and no previous version is recorded'
        : running
          ? ` and runs ${target?.tag ?? shortCommit(target?.commit ?? '')} already`
          : '';
    return {
      result: { outcome: 'nothing-to-roll-back', message: `nothing to roll back: ${service.name} runs no canary${why}`, ...stays, images: [], objects: [] },
    };
  }

  const removed = await deleteCanaries(deps, canaries);
  const removedVersion = canary === undefined ? undefined : { tag: canary.tag, commit: canary.commit };
  if (target === undefined || running) {
    return {
      result: {
        outcome: 'rolled-back',
        message: `${service.name} canary ${canary === undefined ? '' : `${canary.tag} `}is rolled back`,
        ...stays,
        canary: removedVersion,
        images: [],
        objects: removed,
      },
      // The event line names the version that was rolled back.
      removed: canary,
      failingSince: canary?.deployedAt,
    };
  }

  const deployed = await deps.deploy({
    service,
    kind: 'rollback',
    commit: target.commit,
    tag: target.tag,
    digests: target.digests,
    caller: request.caller,
    requestId: request.requestId,
  });
  return {
    result: {
      outcome: 'rolled-back',
      message: `${service.name} is rolled back to ${deployed.tag}`,
      commit: deployed.commit,
      tag: deployed.tag,
      canary: removedVersion,
      images: deployed.images,
      objects: [...removed, ...deployed.objects],
    },
    deployed,
    // The bad version was the canary, if one ran, else the stable version this rollback replaced.
    failingSince: canary?.deployedAt ?? stable?.deployedAt,
  };
}

/** Deploys the running canary's exact version as stable, which removes the canary; 409 when none runs. */
export async function promote(deps: FlowDeps, request: PromoteRequest): Promise<FlowDone> {
  const { service } = request;
  const { keys } = deps;
  const canaries = (await serviceDeployments(keys, deps.live, service)).filter((d) => isCanary(keys, d));
  const newest = newestCanary(keys, canaries);
  // The thesis' scheduled job promotes "in case the new version still exists ... and was not rolled back".
  if (newest === undefined) throw new ConflictError(`no canary of ${service.name} to promote`, { detail: { service: service.name } });
  const { version } = newest;
  if (request.minAgeSeconds !== undefined) {
    const age = ageSeconds(canaryDeployedAt(keys, newest.deployment), deps.now()) ?? 0;
    if (age < request.minAgeSeconds) {
      throw new ConflictError(
        `the canary of ${service.name} (${version.tag}) is ${formatAge(age)} old, younger than ${formatAge(request.minAgeSeconds)}: not promoted`,
        { detail: { service: service.name, tag: version.tag, ageSeconds: age, minAgeSeconds: request.minAgeSeconds } },
      );
    }
  }

  const analysis = await gate(deps, request, version);

  const deployed = await deps.deploy({
    service,
    kind: 'promote',
    commit: version.commit,
    tag: version.tag,
    digests: version.digests,
    caller: request.caller,
    requestId: request.requestId,
  });
  // The stable deploy removed the canaries of the Deployments in its manifests; one whose Deployment is no longer
  // there would stay behind, next to a stable version it was never a canary of.
  const deleted = new Set(deployed.objects.filter((o) => o.action === 'deleted').map((o) => `${o.namespace ?? ''}/${o.name}`));
  const leftover = await deleteCanaries(deps, canaries.filter((c) => !deleted.has(`${c.namespace}/${c.name}`)));
  return {
    result: {
      outcome: 'promoted',
      message: `${service.name} ${deployed.tag} is promoted`,
      commit: deployed.commit,
      tag: deployed.tag,
      canary: { tag: version.tag, commit: version.commit },
      ...(analysis === undefined ? {} : { analysis }),
      images: deployed.images,
      objects: [...deployed.objects, ...leftover],
    },
    deployed,
    analysis,
  };
}

/**
 * The evidence gate of a promotion (thesis 5.5: promote a canary that survived): when the service or the request
 * asks for it, the canary must have served enough requests and must not regress against stable; not enough data is
 * no evidence, and refuses as a regression does (409, the figures in the answer). Undefined when not asked for.
 */
async function gate(deps: FlowDeps, request: PromoteRequest, version: LiveVersion): Promise<CanaryAnalysisResult | undefined> {
  const { service } = request;
  if (service.requireAnalysis === true && request.analysis === false) {
    throw new InputError(`service ${service.name} requires an analysis before every promotion; analysis=false is refused`, { field: 'analysis' });
  }
  if (service.requireAnalysis !== true && request.analysis !== true) return undefined;
  const analysis = await deps.analysis.analyse(service);
  if (analysis.verdict === 'pass') return analysis;
  throw new ConflictError(`the canary of ${service.name} (${version.tag}) is not promoted: ${analysis.message}`, {
    detail: { service: service.name, tag: version.tag, analysis },
  });
}
