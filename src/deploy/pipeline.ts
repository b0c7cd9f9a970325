import type { Logger } from 'pino';
import type { Config, ServiceConfig } from '../config/load.js';
import { readKey, type Keys } from '../core/keys.js';
import type { Cluster, LiveReader, ReadOptions, Registry, Source } from '../core/ports.js';
import type { ImageRef, KubeObject, LabelledObject, ObjectFailure, ObjectResult, Track } from '../core/types.js';
import { shortCommit } from '../core/util.js';
import { ManifestError } from '../errors.js';
import { refuseDuplicates, refuseForeign, refuseReserved, refuseTooMany } from './guards.js';
import { parseImageRef, withVersion } from '../registry/image-ref.js';
import { withApiDefaults } from './defaults.js';
import type { Deadline, Hold } from './lock.js';
import { parseManifests } from './manifests.js';
import { untaggedImages } from './pod-template.js';
import { applyOrder, tierOf } from './order.js';
import { canaryName, rewrite } from './rewrite.js';
import { recordPrevious } from './state.js';
import { planJobs, replaceJobs } from './jobs.js';
import { planPrune, prune } from './prune.js';
import { planPreDeploy, runPreDeploy, splitPreDeploy, withRunVersion } from './predeploy.js';
import { isOriginalCanary } from './original-canary.js';
import type { DeployedImage, DeployRequest } from './types.js';
import { refOf, versionAt, type ResolvedVersion } from './versions.js';

/**
 * The deploy of thesis 5.3 as a pipeline: each step takes the plan and returns it with one more thing known.
 * resolve the commit → read the manifests at it → admit (object count, reserved names) → resolve the version (tag,
 * digests) → place (namespaces, kinds, duplicates) → rewrite → under the Lease, each step within the time limit:
 * remember the previous version → guard (ownership, canary names) → dry-run → the pre-deploy Jobs (predeploy.ts) → apply.
 * Nothing here locks or reports: `Deployer` wraps the pipeline in the service's lock and its one report.
 */
export interface PipelineDeps {
  readonly config: Pick<Config, 'versions' | 'deploy'>;
  /** The label and annotation keys (src/core/keys.ts), built from the configuration. */
  readonly keys: Keys;
  readonly source: Source;
  readonly registry: Registry;
  readonly cluster: Cluster;
  readonly live: Pick<LiveReader, 'getDeployment' | 'getJob' | 'listPods' | 'jobLogs'>;
  readonly logger: Logger;
  /** For tests of the registry wait. */
  readonly sleep?: ((ms: number) => Promise<void>) | undefined;
}

/** What is known of a deploy so far; each step adds to it. */
interface Located {
  readonly request: DeployRequest;
  readonly service: ServiceConfig;
  readonly track: Track;
  readonly commit: string;
}
interface Read extends Located {
  readonly objects: readonly KubeObject[];
  readonly untagged: readonly ImageRef[];
}
interface Versioned extends Read {
  readonly version: ResolvedVersion;
  /** The pre-deploy Jobs (predeploy.ts), rewritten: run before the rest is applied, kept by pruning. */
  readonly preDeploy?: readonly KubeObject[] | undefined;
}
interface Checked extends Versioned {
  /** This service's canaries a stable deploy removes before it applies, by namespace. */
  readonly canaries: ReadonlyMap<string, readonly string[]>;
}

/** A deploy that went through: the version, what each untagged image became, and what happened to each object. */
export interface Applied {
  readonly version: ResolvedVersion;
  readonly images: readonly DeployedImage[];
  readonly results: readonly ObjectResult[];
}

/** Runs the pipeline; `hold` takes the Lease for the cluster phase (or runs it as it is, when a flow holds it). */
export async function runPipeline(deps: PipelineDeps, request: DeployRequest, hold: Hold): Promise<Applied> {
  const located = await locate(deps, request);
  const read = admit(deps, await readManifests(deps, located));
  const versioned = await resolveVersion(deps, read);
  const placed = await place(deps, versioned);
  // A pre-deploy Job belongs to the version, not to a track: rewritten as on a stable deploy, whichever deploy runs it.
  const { preDeploy, rest } = splitPreDeploy(deps.keys, placed.objects);
  const jobs = preDeploy.length === 0 ? [] : withRunVersion(deps.keys, rewriteFor(deps.keys, { ...placed, track: 'stable', objects: preDeploy }).objects, placed.version);
  const rewritten = { ...rewriteFor(deps.keys, { ...placed, objects: rest }), preDeploy: jobs };
  return hold(async (deadline) => {
    const steps = await planPreDeploy(deps, { service: placed.service, kind: placed.request.kind, ...placed.version }, jobs);
    const { checked, changes } = await check(deps, rewritten, deadline);
    const ran = await runPreDeploy(deps, steps, deadline);
    deadline.check('the apply');
    const applied = await apply(deps, checked);
    return completeChanges(deps, changes, { ...applied, results: [...ran, ...applied.results] });
  });
}

/** What a deploy changes besides applying: Jobs to replace (jobs.ts) and objects to prune (prune.ts). */
interface Changes {
  /** The plan without the Jobs to replace. */
  readonly plan: Versioned;
  readonly replace: readonly KubeObject[];
  readonly prune: readonly LabelledObject[];
}

/** Before the dry-run: decides and dry-runs the Job replacements and the pruning, refusing before anything is applied. */
async function planChanges(deps: PipelineDeps, plan: Versioned): Promise<Changes> {
  const jobs = await planJobs(deps.cluster, plan.service, plan.objects);
  const pruning = await planPrune(deps, plan.service, plan.track, [...plan.objects, ...(plan.preDeploy ?? [])]);
  return { plan: { ...plan, objects: jobs.objects }, replace: jobs.replace, prune: pruning };
}

/** After a successful apply: replaces the Jobs, then prunes; the answer lists both. */
async function completeChanges(deps: PipelineDeps, changes: Changes, applied: Applied): Promise<Applied> {
  const replaced = await replaceJobs(deps.cluster, changes.replace);
  const pruned = await prune(deps, changes.plan.service.name, changes.prune);
  return { ...applied, results: [...applied.results, ...replaced, ...pruned] };
}

async function locate(deps: PipelineDeps, request: DeployRequest): Promise<Located> {
  const { service } = request;
  const commit = await deps.source.resolve(service, refOf(service, request));
  return {
    request,
    service,
    track: request.kind === 'canary' ? 'canary' : 'stable',
    commit,
  };
}

async function readManifests(deps: PipelineDeps, plan: Located): Promise<Read> {
  const objects = await manifestsAt(deps.source, plan.service, plan.commit);
  return { ...plan, objects, untagged: untaggedImages(objects, plan.service.images).map((image) => parseImageRef(image)) };
}

/** Refuses, before anything else is asked of the registry or the cluster, too many objects and the deployer's own names. */
function admit(deps: PipelineDeps, plan: Read): Read {
  refuseTooMany(plan.service, plan.objects, deps.config.deploy.maxObjects);
  refuseReserved(plan.service, plan.objects);
  return plan;
}

async function resolveVersion(deps: PipelineDeps, plan: Read): Promise<Versioned> {
  const version = await versionAt(
    { source: deps.source, registry: deps.registry, sleep: deps.sleep },
    deps.config.versions,
    plan.service,
    plan.request,
    plan.commit,
    plan.untagged,
  );
  return { ...plan, version };
}

/**
 * Puts namespaced objects into the service's namespace and refuses what the service may not touch: other
 * namespaces and cluster-scoped kinds, unless its config allows them (a repository must not grant itself rights).
 */
async function place(deps: PipelineDeps, plan: Versioned): Promise<Versioned> {
  const { service } = plan;
  const refused: ObjectFailure[] = [];
  const placed: KubeObject[] = [];
  for (const object of plan.objects) {
    const { kind, metadata } = object;
    const scope = await deps.cluster.scopeOf(object.apiVersion, kind);
    if (scope === undefined) {
      refused.push({ kind, name: metadata.name, reason: await unservedReason(deps.cluster, object.apiVersion, kind) });
    } else if (!scope.namespaced) {
      if (service.allowClusterScoped) placed.push(object);
      else refused.push({ kind, name: metadata.name, reason: `cluster-scoped ${kind} is not allowed for service ${service.name}` });
    } else {
      const namespace = metadata.namespace ?? service.namespace;
      if (namespace === service.namespace || service.allowNamespaces.includes(namespace)) {
        placed.push({ ...object, metadata: { ...metadata, namespace } });
      } else {
        refused.push({ kind, namespace, name: metadata.name, reason: `namespace ${namespace} is not allowed for service ${service.name}` });
      }
    }
  }
  if (refused.length > 0) {
    throw new ManifestError(`${refused.length} object(s) refused; nothing was applied`, { detail: { failures: refused } });
  }
  refuseDuplicates(placed);
  return { ...plan, objects: placed };
}

/** Why a kind is refused as unknown, and which of its group's versions the cluster serves it in, if any. */
async function unservedReason(cluster: Cluster, apiVersion: string, kind: string): Promise<string> {
  const served = await cluster.servedVersions(apiVersion, kind);
  const instead =
    served.length > 0
      ? `: the cluster serves ${kind} as ${served.join(', ')}; use that apiVersion`
      : `: the cluster does not serve ${kind} in any version of its API group (is its CRD installed?)`;
  return `unknown kind ${apiVersion}/${kind}${instead}`;
}

/** The thesis' rewrite (rewrite.ts), with the API's defaults, in apply order, each object marked as the service's own. */
function rewriteFor(keys: Keys, plan: Versioned): Versioned {
  const { service, version, request } = plan;
  const rewritten = rewrite(plan.objects, {
    track: plan.track,
    tag: version.tag,
    commit: version.commit,
    digests: version.digests,
    caller: request.caller.token,
    executor: request.caller.executor,
    requestId: request.requestId,
    namespace: service.namespace,
    now: new Date().toISOString(),
    service: service.name,
    keys,
    ownImages: service.images,
    canaryReplicas: service.canary?.replicas,
  });
  // Defaults server-side apply needs before Kubernetes 1.21 (defaults.ts): only what is sent changes.
  const objects = applyOrder(withApiDefaults(rewritten)).map((o) => ownedBy(keys, o, service.name));
  if (objects.length === 0) {
    throw new ManifestError(
      plan.track === 'canary'
        ? `${noCanaryReason(service)} in ${service.manifestsDir}/ at ${shortCommit(version.commit)}: nothing to deploy as canary ` +
            '(a canary is a copy of each Deployment whose image CI builds per version: one written without a tag)'
        : `no objects in ${service.manifestsDir}/ at ${shortCommit(version.commit)}`,
    );
  }
  return { ...plan, objects };
}

function noCanaryReason(service: ServiceConfig): string {
  return service.images === undefined
    ? 'no Deployment with an untagged image'
    : `no Deployment with an untagged image of this service (images: ${service.images.join(', ')})`;
}

/** Each stable Deployment remembers the version it replaces (last-known-good), for a rollback to it. */
async function rememberPrevious(deps: PipelineDeps, plan: Versioned): Promise<Versioned> {
  if (plan.track !== 'stable') return plan;
  return { ...plan, objects: await recordPrevious(deps.keys, deps.live, plan.objects, plan.request.kind, plan.version) };
}

/**
 * The checks before the apply, at once, since none of them writes: the ownership check (guards.ts), the read of the
 * canaries a stable deploy removes, and — after remembering the previous version — the dry-run. Each is a round trip
 * to the apiserver; in turn they made most of a warm deploy's time. A refusal of the ownership check wins over the
 * dry-run's, as when they ran one after the other.
 */
async function check(deps: PipelineDeps, plan: Versioned, deadline: Deadline): Promise<{ checked: Checked; changes: Changes }> {
  deadline.check('the ownership check');
  const [guarded, dryRan, canaries] = await Promise.allSettled([
    refuseForeign(deps, plan.service, plan.objects),
    rememberPrevious(deps, plan).then(async (remembered) => {
      const changes = await planChanges(deps, remembered);
      deadline.check('the dry-run');
      return { changes, checked: await dryRun(deps, changes.plan) };
    }),
    ownCanaries(deps, plan),
  ]);
  if (guarded.status === 'rejected') throw guarded.reason;
  if (dryRan.status === 'rejected') throw dryRan.reason;
  if (canaries.status === 'rejected') throw canaries.reason;
  return { checked: { ...dryRan.value.checked, canaries: canaries.value }, changes: dryRan.value.changes };
}

async function dryRun(deps: PipelineDeps, plan: Versioned): Promise<Versioned> {
  const failures = await deps.cluster.dryRun([...plan.objects]);
  if (failures.length === 0) return plan;
  // A namespace nobody created is the usual first-deploy mistake: say so first, not "refused N object(s)".
  const missing = [...new Set(failures.flatMap((f) => /^namespaces "([^"]+)" not found/.exec(f.reason)?.[1] ?? []))];
  const why =
    missing.length === 0
      ? ''
      : `namespace ${missing.join(', ')} does not exist in the cluster: create it (kubectl create namespace ${missing[0] ?? ''}) ` +
        "or fix the service's namespace in the configuration; ";
  throw new ManifestError(`${why}the apiserver refused ${failures.length} object(s); nothing was applied`, { detail: { failures } });
}

/**
 * A stable deploy removes the canaries first, so that never more than two versions run (thesis 5.5); then applies,
 * each dependency tier at once (order.ts).
 */
async function apply(deps: PipelineDeps, plan: Checked): Promise<Applied> {
  const deleted: ObjectResult[] = [];
  for (const [ns, names] of plan.canaries) deleted.push(...(await deps.cluster.deleteDeployments(ns, [...names])));
  const applied = await deps.cluster.apply([...plan.objects], tierOf);
  return {
    version: plan.version,
    images: plan.untagged.map((ref) => ({
      original: ref.original,
      applied: withVersion(ref, plan.version.tag, Object.hasOwn(plan.version.digests, ref.original) ? plan.version.digests[ref.original] : undefined),
    })),
    results: [...deleted, ...applied],
  };
}

/**
 * The canaries of the stable Deployments about to be applied that a stable deploy removes: only those this service
 * deployed (by the ownership annotation), or the original deployer's (original-canary.ts), so a Deployment that
 * merely has the name `NAME-canary` is never deleted.
 */
async function ownCanaries(deps: PipelineDeps, plan: Versioned): Promise<Map<string, string[]>> {
  const { service } = plan;
  const byNamespace = new Map<string, string[]>();
  if (plan.track !== 'stable') return byNamespace;
  const stables = plan.objects.filter((o) => o.kind === 'Deployment');
  // One read per canary: it says whether the canary exists, whose it is, and whether the original deployer left it.
  const found = await Promise.all(
    stables.map(async (stable) => {
      const namespace = stable.metadata.namespace ?? service.namespace;
      const live = await deps.live.getDeployment(namespace, canaryName(stable.metadata.name));
      if (live === undefined) return undefined;
      const owner = readKey(deps.keys, live.annotations, (k) => k.serviceAnnotation);
      // Unannotated: only a canary the original deployer left (original-canary.ts).
      const own = owner === undefined ? isOriginalCanary(live, stable) : owner === service.name;
      return own ? { namespace, name: live.name } : undefined;
    }),
  );
  for (const canary of found) {
    if (canary !== undefined) byNamespace.set(canary.namespace, [...(byNamespace.get(canary.namespace) ?? []), canary.name]);
  }
  return byNamespace;
}

/** The objects of a service's manifests directory at `commit`; a read (`GET /:service/tags`) says so in `options`. */
export async function manifestsAt(source: Source, service: ServiceConfig, commit: string, options?: ReadOptions): Promise<KubeObject[]> {
  const files = await source.filesAt(service, commit, options);
  return parseManifests(files, service.manifestsDir, {}, service.exclude).map((m) => m.object);
}

function ownedBy(keys: Keys, object: KubeObject, service: string): KubeObject {
  return { ...object, metadata: { ...object.metadata, annotations: { ...object.metadata.annotations, [keys.serviceAnnotation]: service } } };
}

/**
 * The service that deployed each object's live counterpart, by the ownership annotation; for objects without it,
 * by the one an earlier release wrote (read only for those, so a cluster deployed by this release costs no more).
 */
