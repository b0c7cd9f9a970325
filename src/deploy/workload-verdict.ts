import type { LiveDaemonSet, LiveStatefulSet } from '../core/types.js';

/**
 * The rollout state of a StatefulSet or a DaemonSet, as `kubectl rollout status` judges it (kubectl's
 * polymorphichelpers/rollout_status.go), plus the early failure the Deployments have: once every pod of the newest
 * revision waits for a reason that does not pass by itself (`doom`, found by the caller), the rollout failed. Pure:
 * verdict.ts reads the objects and their pods.
 */

export type WorkloadState = 'done' | 'failed' | 'progressing';

export interface WorkloadJudgement {
  readonly state: WorkloadState;
  readonly reason: string;
}

/** The label a StatefulSet's (and a DaemonSet's) controller puts on each pod: the ControllerRevision it was made from. */
export const CONTROLLER_REVISION_LABEL = 'controller-revision-hash';
/** The label a DaemonSet's controller puts on each pod: the template generation it was made from. */
export const TEMPLATE_GENERATION_LABEL = 'pod-template-generation';

const NOT_OBSERVED = 'the controller has not seen the new spec yet';
const ON_DELETE = 'updateStrategy OnDelete: pods take the new template only when they are deleted, so there is no rollout to wait for';

/** Whether the controller's status is about the current spec (StatefulSets report 0 before their first sync). */
function observed(o: { readonly generation: number; readonly status: { readonly observedGeneration: number } }): boolean {
  return o.status.observedGeneration > 0 && o.status.observedGeneration >= o.generation;
}

/**
 * The pods of the newest revision, as a label selector (with the StatefulSet's own), or undefined while the
 * controller has not seen the spec (its updateRevision is of the previous one).
 */
export function statefulSetNewPods(s: LiveStatefulSet): string | undefined {
  if (!observed(s) || s.status.updateRevision === undefined) return undefined;
  return selectorOf({ ...s.selector, [CONTROLLER_REVISION_LABEL]: s.status.updateRevision });
}

/** The DaemonSet's pods of its current template, as a label selector, or undefined when that cannot be told. */
export function daemonSetNewPods(d: LiveDaemonSet): string | undefined {
  if (!observed(d) || d.templateGeneration === undefined) return undefined;
  return selectorOf({ ...d.selector, [TEMPLATE_GENERATION_LABEL]: d.templateGeneration });
}

/**
 * Done: the controller saw the spec, every desired pod is ready, and the pods the strategy updates are updated (all
 * of them, or those at or above the partition's ordinal; without a partition, the current revision is the update
 * revision). OnDelete: done at once, as kubectl says (nothing replaces a pod). Failed: not done, and `doom` says why
 * every pod of the newest revision will not start.
 */
export function judgeStatefulSet(s: LiveStatefulSet, doom: string | undefined): WorkloadJudgement {
  if (s.updateStrategy.type === 'OnDelete') return { state: 'done', reason: ON_DELETE };
  if (!observed(s)) return { state: 'progressing', reason: NOT_OBSERVED };
  const { ready, updated } = s.status;
  const progressing = (reason: string): WorkloadJudgement => (doom === undefined ? { state: 'progressing', reason } : { state: 'failed', reason: doom });
  if (ready < s.desired) return progressing(`${ready}/${s.desired} ready, ${updated} updated`);
  const partition = s.updateStrategy.partition;
  if (partition !== undefined) {
    const due = Math.max(s.desired - partition, 0);
    const kept = partition > 0 ? ` (partition ${partition}: ordinals below it keep their revision)` : '';
    if (updated < due) return progressing(`${updated}/${due} updated${kept}`);
    return { state: 'done', reason: `${ready}/${s.desired} ready, ${updated} updated${kept}` };
  }
  if (s.status.updateRevision !== s.status.currentRevision) {
    return progressing(`${updated}/${s.desired} updated to revision ${s.status.updateRevision ?? '?'}`);
  }
  return { state: 'done', reason: `${ready}/${s.desired} ready at revision ${s.status.currentRevision ?? '?'}` };
}

/**
 * Done: the controller saw the spec, and on every node that should run it the pod is updated and available (no such
 * node: done, nothing to run). OnDelete: done at once, as for StatefulSets. Failed as for StatefulSets.
 */
export function judgeDaemonSet(d: LiveDaemonSet, doom: string | undefined): WorkloadJudgement {
  if (d.updateStrategy.type === 'OnDelete') return { state: 'done', reason: ON_DELETE };
  if (!observed(d)) return { state: 'progressing', reason: NOT_OBSERVED };
  const { desired, updated, available } = d.status;
  const progressing = (reason: string): WorkloadJudgement => (doom === undefined ? { state: 'progressing', reason } : { state: 'failed', reason: doom });
  if (updated < desired) return progressing(`${updated}/${desired} updated, ${available} available`);
  if (available < desired) return progressing(`${available}/${desired} available`);
  if (desired === 0) return { state: 'done', reason: 'no node should run it (0 scheduled)' };
  return { state: 'done', reason: `${available}/${desired} available` };
}

export function selectorOf(labels: Readonly<Record<string, string>>): string {
  return Object.entries(labels)
    .map(([k, v]) => `${k}=${v}`)
    .join(',');
}
