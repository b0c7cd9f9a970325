import type { ServiceConfig } from '../config/load.js';
import type { Cluster } from '../core/ports.js';
import type { KubeObject, ObjectRef, ObjectResult } from '../core/types.js';
import { ManifestError } from '../errors.js';
import { groupOf } from './pod-template.js';

/**
 * Jobs whose pod template changed. A Job's `spec.template` is immutable, and every new version changes it (the
 * image, the version's labels and environment), so a Job that ran at the version before cannot be applied again:
 * `kubectl apply` fails the same way. With the service's `replaceJobs: true` such a Job is replaced (deleted with
 * its pods, then created); without it the deploy is refused naming the Job, before anything is applied.
 */

/** How long the deletion of a replaced Job (its pods first: Foreground) may take before the deploy fails. */
const REPLACE_WAIT_MS = 120_000;
const IMMUTABLE = /field is immutable/;
/** What the replacement Job is dry-run as: its own name is taken until the old Job is gone. */
const PROBE_SUFFIX = '-replace-check';

const isJob = (o: KubeObject): boolean => o.kind === 'Job' && groupOf(o.apiVersion) === 'batch';

const refOf = (o: KubeObject): ObjectRef => ({ apiVersion: o.apiVersion, kind: o.kind, namespace: o.metadata.namespace, name: o.metadata.name });

export interface JobPlan {
  /** The objects the deploy applies as usual: all but the Jobs to replace. */
  readonly objects: readonly KubeObject[];
  /** The Jobs to delete and create again after the apply. */
  readonly replace: readonly KubeObject[];
}

/**
 * Before the dry-run: which Jobs of the deploy cannot be applied because their template changed. Those are either
 * refused (422 naming each Job) or, with `replaceJobs`, taken out of the apply and checked as far as the apiserver
 * can before they exist: the deletion, and the new Job under a probe name. Only the gap between the deletion and
 * the creation is not covered by a dry-run.
 */
export async function planJobs(cluster: Cluster, service: ServiceConfig, objects: readonly KubeObject[]): Promise<JobPlan> {
  const jobs = objects.filter(isJob);
  if (jobs.length === 0) return { objects, replace: [] };
  const immutable = (await cluster.dryRun(jobs)).filter((f) => IMMUTABLE.test(f.reason));
  if (immutable.length === 0) return { objects, replace: [] };
  const names = immutable.map((f) => `Job "${f.name}"`).join(', ');
  if (service.replaceJobs !== true) {
    throw new ManifestError(
      `${names}: the pod template changed, and a Job's spec.template is immutable (kubectl apply fails the same way). ` +
        `Set replaceJobs: true for service ${service.name} to have the deployer delete the Job with its pods and create it ` +
        'again, or give the Job a new name per version; nothing was applied',
      { detail: { failures: immutable } },
    );
  }
  const replaced = new Set(immutable.map((f) => `${f.namespace ?? ''}/${f.name}`));
  const replace = jobs.filter((j) => replaced.has(`${j.metadata.namespace ?? ''}/${j.metadata.name}`));
  await checkReplacement(cluster, replace);
  return { objects: objects.filter((o) => !replace.includes(o)), replace };
}

/**
 * Dry-runs the replacement of Jobs as far as the apiserver can before they exist: the deletion of the live ones, and
 * the new ones under a probe name (their own is taken until the old Job is gone); 422 naming the Job when refused.
 */
export async function checkReplacement(cluster: Pick<Cluster, 'deleteObjects' | 'dryRun'>, replace: readonly KubeObject[]): Promise<void> {
  if (replace.length === 0) return;
  await cluster.deleteObjects(replace.map(refOf), { dryRun: true, propagation: 'Foreground', action: 'replaced' });
  const original = new Map(replace.map((j) => [probeName(j.metadata.name), j.metadata.name]));
  const probes = replace.map((j) => ({ ...j, metadata: { ...j.metadata, name: probeName(j.metadata.name) } }));
  const failures = (await cluster.dryRun(probes)).map((f) => {
    const name = original.get(f.name) ?? f.name;
    return { ...f, name, reason: f.reason.replaceAll(f.name, name) };
  });
  if (failures.length > 0) {
    throw new ManifestError(
      `the apiserver refused the new ${failures.map((f) => `Job "${f.name}"`).join(', ')}: ${failures.map((f) => f.reason).join('; ')}; nothing was applied`,
      { detail: { failures } },
    );
  }
}

/** After the apply: deletes each Job to replace with its pods, waits until it is gone, creates it again. */
export async function replaceJobs(cluster: Cluster, jobs: readonly KubeObject[]): Promise<ObjectResult[]> {
  const results: ObjectResult[] = [];
  for (const job of jobs) results.push(await replaceJob(cluster, job));
  return results;
}

/** Deletes the live Job with its pods (if there is one), waits until it is gone, and creates `job`. */
export async function replaceJob(cluster: Pick<Cluster, 'deleteObjects' | 'waitGone' | 'apply'>, job: KubeObject): Promise<ObjectResult> {
  const deleted = await cluster.deleteObjects([refOf(job)], { dryRun: false, propagation: 'Foreground', action: 'replaced' });
  await cluster.waitGone(refOf(job), REPLACE_WAIT_MS);
  const [created] = await cluster.apply([job]);
  const result = created ?? { ...refOf(job), action: 'created' as const };
  return deleted.length > 0 ? { ...result, action: 'replaced' } : result;
}

/** A name for the dry-run of the new Job: a Job's name must stay a label value (63 characters). */
function probeName(name: string): string {
  return `${name.slice(0, 63 - PROBE_SUFFIX.length).replace(/[-.]+$/, '')}${PROBE_SUFFIX}`;
}
