import type { LiveReader } from '../core/ports.js';
import type { LiveJob, LivePod } from '../core/types.js';

/**
 * A Job's outcome, as `kubectl wait --for=condition=complete|failed` sees it: done once the Job controller says
 * Complete (or every completion succeeded), failed once it says Failed (backoffLimit reached, activeDeadlineSeconds
 * passed), with the controller's reason. One case comes early, because the controller never counts it: pods that
 * cannot start at all (an image that cannot be pulled, a missing ConfigMap or Secret) wait forever without failing
 * the Job, so a Job whose every active pod waits for such a reason has failed. A container that crashes and restarts
 * (CrashLoopBackOff under restartPolicy OnFailure) is the Job's own retry, bounded by its backoffLimit: not judged.
 */

export type JobState = 'done' | 'failed' | 'progressing';

export interface JobOutcome {
  readonly state: JobState;
  /** The controller's reason of a failure, or how far the Job got. */
  readonly reason: string;
}

/** Waiting reasons that no retry of the Job controller gets past. */
const STUCK_REASONS: ReadonlySet<string> = new Set(['ErrImagePull', 'ImagePullBackOff', 'InvalidImageName', 'CreateContainerConfigError']);

/** Why a pod of a Job cannot start, or undefined if it may. */
function stuckOf(pod: LivePod): string | undefined {
  for (const c of pod.containers) {
    if (c.waiting !== undefined && STUCK_REASONS.has(c.waiting)) {
      return `pod ${pod.name}: container ${c.name}: ${c.waiting}${c.message === undefined ? '' : ` (${c.message})`}`;
    }
  }
  return undefined;
}

/** `pods`: the Job's pods not being deleted, or undefined when not looked at. */
export function jobOutcome(job: LiveJob, pods?: readonly LivePod[]): JobOutcome {
  const ended = (type: string) => job.conditions.find((c) => c.type === type && c.status === 'True');
  const progress = `${job.succeeded}/${job.completions ?? 1} succeeded, ${job.active} active, ${job.failed} failed`;
  const failed = ended('Failed');
  if (failed !== undefined) {
    const why = [failed.reason, failed.message].filter((s) => s !== undefined && s !== '').join(': ');
    return { state: 'failed', reason: `${why === '' ? 'Failed' : why} (${progress}, backoffLimit ${job.backoffLimit})` };
  }
  if (ended('Complete') !== undefined) return { state: 'done', reason: `complete: ${progress}` };
  // The controller sets Complete a moment after the last success; the counts say it first.
  if (job.completions !== undefined && job.succeeded >= job.completions) return { state: 'done', reason: `complete: ${progress}` };
  if (pods !== undefined && pods.length > 0 && job.active > 0) {
    const stuck = pods.map(stuckOf);
    if (stuck.every((s) => s !== undefined)) return { state: 'failed', reason: stuck.join('; ') };
  }
  return { state: 'progressing', reason: job.terminating ? 'the Job is being deleted' : progress };
}

/** The label selector of a Job's pods (the Job controller's label on Kubernetes 1.20 and later). */
export function jobPodSelector(job: LiveJob): string {
  return `controller-uid=${job.uid}`;
}

/** One Job's verdict, as the rollout verdict (verdict.ts) lists it beside the Deployments'. */
export interface JobVerdict extends JobOutcome {
  readonly kind: 'Job';
  readonly namespace: string;
  readonly name: string;
}

/** Reads the Job (and, while it runs, its pods) and judges it; a Job deleted meanwhile has failed. */
export async function checkJob(live: Pick<LiveReader, 'getJob' | 'listPods'>, target: { readonly namespace: string; readonly name: string }): Promise<JobVerdict> {
  const at = { kind: 'Job', namespace: target.namespace, name: target.name } as const;
  const job = await live.getJob(target.namespace, target.name);
  if (job === undefined) return { ...at, state: 'failed', reason: 'the Job was deleted' };
  const quick = jobOutcome(job);
  if (quick.state !== 'progressing' || job.active === 0) return { ...at, ...quick };
  const pods = (await live.listPods(job.namespace, jobPodSelector(job))).filter((p) => !p.terminating);
  return { ...at, ...jobOutcome(job, pods) };
}
