import type { ServiceConfig } from '../config/load.js';
import { readKey, type Keys } from '../core/keys.js';
import type { Cluster, LiveReader } from '../core/ports.js';
import type { DeployKind, KubeObject, LiveJob, ObjectResult } from '../core/types.js';
import { sleep } from '../core/util.js';
import { ConflictError, ManifestError } from '../errors.js';
import type { Deadline } from './lock.js';
import { checkJob, jobOutcome } from './job-status.js';
import { checkReplacement, replaceJob } from './jobs.js';
import { groupOf } from './pod-template.js';

/**
 * Pre-deploy Jobs: the migration pattern (Helm's pre-install/pre-upgrade hooks, krane's predeploy). A Job annotated
 * `DOMAIN/pre-deploy: "true"` is taken out of the apply, run first, and must complete before anything else of the
 * deploy is applied; when it fails, nothing else is, and the answer carries the tail of its pods' logs.
 *
 * It runs once per version: before the first deploy of a version, canary or stable. The live Job remembers the
 * version it ran for (the commit and tag annotations), so a later deploy of the same version (a canary's version
 * deployed as stable, a retried CI job) finds it complete and leaves it; a promotion or a rollback never runs it (the
 * version ran before: a canary is only applied after its Job completed). A Job's template is immutable, so as with
 * Helm's default hook-delete-policy (before-hook-creation) the Job of another version, or a failed run of this one,
 * is deleted with its pods and created again under its own name, whatever `replaceJobs` says: the annotation asks
 * for exactly that. Its wait counts within the service's time under the lock.
 */

/** How often a running pre-deploy Job is looked at. */
const POLL_MS = 1000;
/** The log tail of a failed pre-deploy Job in the answer: its newest pods, the last lines of each container. */
const LOG_LIMITS = { maxPods: 2, tailLines: 20, limitBytes: 4096 } as const;

const isJob = (o: KubeObject): boolean => o.kind === 'Job' && groupOf(o.apiVersion) === 'batch';

/** The manifests' pre-deploy Jobs, and the rest. A pre-deploy annotation on anything but a Job, or not "true"/"false", is refused. */
export function splitPreDeploy(keys: Keys, objects: readonly KubeObject[]): { readonly preDeploy: KubeObject[]; readonly rest: KubeObject[] } {
  const preDeploy: KubeObject[] = [];
  const rest: KubeObject[] = [];
  for (const o of objects) {
    const value = readKey(keys, o.metadata.annotations, (k) => k.preDeployAnnotation);
    if (value === undefined || value === 'false') {
      rest.push(o);
      continue;
    }
    const key = keys.preDeployAnnotation;
    if (value !== 'true') throw new ManifestError(`${o.kind} "${o.metadata.name}": annotation ${key} must be "true" or "false", not "${value}"`);
    if (!isJob(o)) throw new ManifestError(`${o.kind} "${o.metadata.name}": only a batch/v1 Job can be a pre-deploy Job (annotation ${key})`);
    preDeploy.push(o);
  }
  return { preDeploy, rest };
}

export interface PreDeployDeps {
  readonly keys: Keys;
  readonly cluster: Pick<Cluster, 'dryRun' | 'deleteObjects' | 'waitGone' | 'apply'>;
  readonly live: Pick<LiveReader, 'getJob' | 'listPods' | 'jobLogs'>;
}

/** What to do with one pre-deploy Job: leave it (complete at this version), wait for its run, or (re)create it. */
export interface PreDeployStep {
  readonly job: KubeObject;
  readonly action: 'skip' | 'wait' | 'run';
}

/**
 * Before the dry-run of the rest: decides each Job's step and dry-runs what it will do (the deletion of the Job of
 * another version, the new Job); refuses a Job another service deployed (409).
 */
export async function planPreDeploy(
  deps: PreDeployDeps,
  plan: { readonly service: ServiceConfig; readonly kind: DeployKind; readonly commit: string; readonly tag: string },
  jobs: readonly KubeObject[],
): Promise<PreDeployStep[]> {
  if (jobs.length === 0) return [];
  if (plan.kind === 'promote' || plan.kind === 'rollback') return jobs.map((job) => ({ job, action: 'skip' }));
  const steps: PreDeployStep[] = [];
  for (const job of jobs) {
    const live = await deps.live.getJob(job.metadata.namespace ?? plan.service.namespace, job.metadata.name);
    steps.push({ job, action: live === undefined ? 'run' : stepFor(deps.keys, plan, live) });
  }
  const run = steps.filter((s) => s.action === 'run').map((s) => s.job);
  await checkReplacement(deps.cluster, run);
  return steps;
}

function stepFor(keys: Keys, plan: { readonly service: ServiceConfig; readonly commit: string; readonly tag: string }, live: LiveJob): PreDeployStep['action'] {
  const owner = readKey(keys, live.annotations, (k) => k.serviceAnnotation);
  if (owner !== undefined && owner !== plan.service.name) {
    throw new ConflictError(`Job "${live.name}" belongs to service ${owner}; service ${plan.service.name} may not run it as its pre-deploy Job; nothing was applied`, {
      detail: { failures: [{ kind: 'Job', namespace: live.namespace, name: live.name, reason: `belongs to service ${owner}` }] },
    });
  }
  const sameVersion =
    readKey(keys, live.annotations, (k) => k.annotations.commit) === plan.commit && readKey(keys, live.annotations, (k) => k.annotations.tag) === plan.tag;
  if (!sameVersion || live.terminating) return 'run';
  const { state } = jobOutcome(live);
  return state === 'done' ? 'skip' : state === 'progressing' ? 'wait' : 'run';
}

/**
 * Runs the steps in manifest order: each Job is (re)created or found running, then waited for until it completes.
 * A failure throws 422 with the Job's reason and its pods' log tail; the deadline of the lock bounds the wait (504).
 */
export async function runPreDeploy(deps: PreDeployDeps, steps: readonly PreDeployStep[], deadline: Deadline): Promise<ObjectResult[]> {
  const results: ObjectResult[] = [];
  for (const { job, action } of steps) {
    const ref = { apiVersion: job.apiVersion, kind: job.kind, namespace: job.metadata.namespace, name: job.metadata.name };
    // Not listed: the verdict would wait for a Job that may be gone since (ttlSecondsAfterFinished).
    if (action === 'skip') continue;
    deadline.check(`pre-deploy Job "${ref.name}"`);
    results.push(action === 'run' ? await replaceJob(deps.cluster, job) : { ...ref, action: 'unchanged' });
    await awaitJob(deps, { namespace: ref.namespace ?? '', name: ref.name }, deadline);
  }
  return results;
}

async function awaitJob(deps: PreDeployDeps, target: { readonly namespace: string; readonly name: string }, deadline: Deadline): Promise<void> {
  for (;;) {
    const verdict = await checkJob(deps.live, target);
    if (verdict.state === 'done') return;
    if (verdict.state === 'failed') throw await failure(deps, target, verdict.reason);
    deadline.check(`the rest of the deploy: pre-deploy Job "${target.name}" has not completed (${verdict.reason}); it keeps running`);
    await sleep(POLL_MS);
  }
}

/** 422 naming the Job and the controller's reason; the log tail goes in the answer's detail only (not to chat or the event log). */
async function failure(deps: PreDeployDeps, target: { readonly namespace: string; readonly name: string }, reason: string): Promise<ManifestError> {
  const job = await deps.live.getJob(target.namespace, target.name);
  const logs = job === undefined ? [] : await deps.live.jobLogs(job, LOG_LIMITS);
  return new ManifestError(`pre-deploy Job "${target.name}" failed: ${reason}; nothing else was applied`, {
    detail: { preDeploy: { kind: 'Job', namespace: target.namespace, name: target.name, reason }, logs },
  });
}

/**
 * The version a pre-deploy Job runs for, on the Job itself (not its template): the rewrite writes it on a Job of the
 * service's own image, this on one of a tagged image (a migration tool reading a ConfigMap), so each is run once per version.
 */
export function withRunVersion(keys: Keys, jobs: readonly KubeObject[], version: { readonly commit: string; readonly tag: string }): KubeObject[] {
  const a = keys.annotations;
  return jobs.map((j) => ({ ...j, metadata: { ...j.metadata, annotations: { ...j.metadata.annotations, [a.commit]: version.commit, [a.tag]: version.tag } } }));
}
