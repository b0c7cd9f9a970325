import { sleep } from '../core/util.js';
import { POD_TEMPLATE_HASH_LABEL, REVISION_ANNOTATION } from '../core/keys.js';
import type { LiveDeployment, LivePod, ObjectResult, Replicas } from '../core/types.js';
import type { LiveReader } from '../core/ports.js';
import { checkJob } from './job-status.js';
import { daemonSetNewPods, judgeDaemonSet, judgeStatefulSet, selectorOf, statefulSetNewPods, type WorkloadState } from './workload-verdict.js';

/**
 * The rollout verdict (`wait=`): after the objects are applied, whether the new version runs. Kubernetes never says
 * "failed" by itself before the progress deadline (10 minutes by default), so pods that cannot start are judged
 * early: once every pod of the new ReplicaSet waits for a reason that does not pass by itself, the rollout failed.
 * StatefulSets and DaemonSets are judged as `kubectl rollout status` judges them, with the same early failure
 * (workload-verdict.ts). A service's verdict is the worst of its workloads'.
 */

export type VerdictResult = 'success' | 'failure' | 'timeout';

/** Waiting reasons after which a pod will not become ready without a new version or a new manifest. */
export const DOOMED_REASONS: ReadonlySet<string> = new Set([
  'CrashLoopBackOff',
  'ErrImagePull',
  'ImagePullBackOff',
  'CreateContainerConfigError',
  'InvalidImageName',
]);


/** The kinds whose rollout a verdict waits for. */
export type RolloutKind = 'Deployment' | 'StatefulSet' | 'DaemonSet' | 'Job';

export interface RolloutTarget {
  /** A Job's verdict: job-status.ts; the others': workload-verdict.ts and below. */
  readonly kind: RolloutKind;
  readonly namespace: string;
  readonly name: string;
}

/** One workload's state in a verdict (`deployments` of the answer, whatever the kind: the name stays for clients). */
export interface DeploymentVerdict extends RolloutTarget {
  readonly state: WorkloadState;
  /** Why it failed, or how far it got. */
  readonly reason: string;
  readonly replicas?: Replicas | undefined;
}

export interface Verdict {
  readonly result: VerdictResult;
  readonly message: string;
  readonly deployments: readonly DeploymentVerdict[];
  readonly waitedMs: number;
}

const ROLLOUT_KINDS: ReadonlySet<string> = new Set<RolloutKind>(['Deployment', 'StatefulSet', 'DaemonSet']);

function isRolloutKind(o: ObjectResult): o is ObjectResult & { kind: RolloutKind } {
  if (o.kind === 'Job') return o.apiVersion.startsWith('batch/');
  return ROLLOUT_KINDS.has(o.kind) && o.apiVersion.startsWith('apps/');
}

/** The workloads and Jobs a deploy applied (not those it deleted or pruned): what a verdict waits for. */
export function rolloutTargets(objects: readonly ObjectResult[]): RolloutTarget[] {
  return objects
    .filter((o) => isRolloutKind(o) && o.action !== 'deleted' && o.action !== 'pruned' && o.namespace !== undefined)
    .map((o) => ({ kind: o.kind as RolloutKind, namespace: o.namespace ?? '', name: o.name }));
}

/** Why a pod will not start, or undefined if it may still. */
export function doomOf(pod: LivePod): string | undefined {
  for (const c of pod.containers) {
    if (c.waiting !== undefined && DOOMED_REASONS.has(c.waiting)) {
      return `pod ${pod.name}: container ${c.name}: ${c.waiting}${c.message === undefined ? '' : ` (${c.message})`}`;
    }
  }
  return undefined;
}

/**
 * One Deployment's state. Done: the controller saw the current spec, and all desired replicas are updated and
 * available with no old pod left. Failed: the controller reports ProgressDeadlineExceeded, or every pod of the new
 * ReplicaSet is doomed (`newPods`, undefined when not looked at).
 */
export function judge(d: LiveDeployment, newPods: readonly LivePod[] | undefined): DeploymentVerdict {
  const at = { kind: 'Deployment' as const, namespace: d.namespace, name: d.name, replicas: d.replicas };
  const r = d.replicas;
  const observed = d.status.observedGeneration >= d.generation;
  if (observed) {
    const deadline = d.status.conditions.find((c) => c.type === 'Progressing' && c.status === 'False' && c.reason === 'ProgressDeadlineExceeded');
    if (deadline !== undefined) {
      return { ...at, state: 'failed', reason: `ProgressDeadlineExceeded${deadline.message === undefined ? '' : `: ${deadline.message}`}` };
    }
    if (r.updated === r.desired && r.available === r.desired && r.total === r.desired) {
      return { ...at, state: 'done', reason: `${r.available}/${r.desired} available` };
    }
  }
  if (newPods !== undefined && newPods.length > 0) {
    const dooms = newPods.map(doomOf);
    if (dooms.every((r) => r !== undefined)) return { ...at, state: 'failed', reason: dooms.join('; ') };
  }
  const old = Math.max(r.total - r.updated, 0);
  return {
    ...at,
    state: 'progressing',
    reason: observed
      ? `${r.updated}/${r.desired} updated, ${r.available} available${old > 0 ? `, ${old} old` : ''}`
      : 'the controller has not seen the new spec yet',
  };
}

export interface VerdictOptions {
  readonly timeoutMs: number;
  readonly pollMs?: number | undefined;
  readonly now?: (() => number) | undefined;
  readonly sleep?: ((ms: number) => Promise<void>) | undefined;
  /** The caller left: stop polling (no one would read the verdict) and answer what was seen last. */
  readonly signal?: AbortSignal | undefined;
}

/** `ms`, or less once `signal` aborts. */
function pause(wait: (ms: number) => Promise<void>, ms: number, signal: AbortSignal | undefined): Promise<void> {
  if (signal === undefined) return wait(ms);
  if (signal.aborted) return Promise.resolve();
  return new Promise((resolve) => {
    const done = (): void => {
      signal.removeEventListener('abort', done);
      resolve();
    };
    signal.addEventListener('abort', done, { once: true });
    void wait(ms).then(done);
  });
}

/** The pods of the Deployment's current ReplicaSet (its revision), or undefined before the controller made it. */
async function newPodsOf(live: LiveReader, d: LiveDeployment): Promise<LivePod[] | undefined> {
  const revision = d.annotations[REVISION_ANNOTATION];
  if (revision === undefined || d.status.observedGeneration < d.generation) return undefined;
  const sets = await live.listReplicaSets(d.namespace, selectorOf(d.selector));
  const current = sets.find((rs) => rs.ownerUids.includes(d.uid) && rs.annotations[REVISION_ANNOTATION] === revision);
  const hash = current?.labels[POD_TEMPLATE_HASH_LABEL];
  if (current === undefined || hash === undefined) return undefined;
  const pods = await live.listPods(d.namespace, `${POD_TEMPLATE_HASH_LABEL}=${hash}`);
  return pods.filter((p) => p.ownerUids.includes(current.uid) && !p.terminating);
}

/** Why every pod of `selector` (of the owner `uid`, not being deleted) will not start; undefined if one may. */
async function doomOfAll(live: LiveReader, namespace: string, selector: string | undefined, uid: string): Promise<string | undefined> {
  if (selector === undefined) return undefined;
  const pods = (await live.listPods(namespace, selector)).filter((p) => p.ownerUids.includes(uid) && !p.terminating);
  const dooms = pods.map(doomOf);
  if (dooms.length === 0 || dooms.some((d) => d === undefined)) return undefined;
  return dooms.join('; ');
}

async function checkStatefulSet(live: LiveReader, target: RolloutTarget): Promise<DeploymentVerdict> {
  const s = await live.getStatefulSet(target.namespace, target.name);
  if (s === undefined) return { ...target, state: 'failed', reason: 'the StatefulSet was deleted' };
  const quick = judgeStatefulSet(s, undefined);
  if (quick.state !== 'progressing') return { ...target, ...quick };
  return { ...target, ...judgeStatefulSet(s, await doomOfAll(live, s.namespace, statefulSetNewPods(s), s.uid)) };
}

async function checkDaemonSet(live: LiveReader, target: RolloutTarget): Promise<DeploymentVerdict> {
  const d = await live.getDaemonSet(target.namespace, target.name);
  if (d === undefined) return { ...target, state: 'failed', reason: 'the DaemonSet was deleted' };
  const quick = judgeDaemonSet(d, undefined);
  if (quick.state !== 'progressing') return { ...target, ...quick };
  return { ...target, ...judgeDaemonSet(d, await doomOfAll(live, d.namespace, daemonSetNewPods(d), d.uid)) };
}

function check(live: LiveReader, target: RolloutTarget): Promise<DeploymentVerdict> {
  switch (target.kind) {
    case 'Deployment':
      return checkDeployment(live, target);
    case 'StatefulSet':
      return checkStatefulSet(live, target);
    case 'DaemonSet':
      return checkDaemonSet(live, target);
    case 'Job':
      return checkJob(live, target);
  }
}

async function checkDeployment(live: LiveReader, target: RolloutTarget): Promise<DeploymentVerdict> {
  const d = await live.getDeployment(target.namespace, target.name);
  if (d === undefined) return { ...target, state: 'failed', reason: 'the Deployment was deleted' };
  const quick = judge(d, undefined);
  if (quick.state !== 'progressing') return quick;
  return judge(d, await newPodsOf(live, d));
}

function summary(verdicts: readonly DeploymentVerdict[], state: DeploymentVerdict['state']): string {
  return verdicts
    .filter((v) => v.state === state)
    .map((v) => `${v.kind === 'Deployment' ? v.name : `${v.kind} ${v.name}`}: ${v.reason}`)
    .join('; ');
}

/** Polls the workloads until all are done (success), one failed (failure), or `timeoutMs` passed (timeout). */
export async function awaitVerdict(live: LiveReader, targets: readonly RolloutTarget[], options: VerdictOptions): Promise<Verdict> {
  const now = options.now ?? Date.now;
  const wait = options.sleep ?? sleep;
  const pollMs = options.pollMs ?? 1000;
  const started = now();
  // A caller that left before the wait began (its deploy took longer than it would wait) is owed no read at all.
  const callerLeft = (): boolean => options.signal?.aborted === true;
  if (callerLeft()) {
    return { result: 'timeout', message: 'stopped waiting after 0s: the caller left before the wait began', deployments: [], waitedMs: 0 };
  }
  for (;;) {
    const verdicts = await Promise.all(targets.map((t) => check(live, t)));
    const waitedMs = now() - started;
    if (verdicts.some((v) => v.state === 'failed')) {
      return { result: 'failure', message: `the rollout failed: ${summary(verdicts, 'failed')}`, deployments: verdicts, waitedMs };
    }
    if (verdicts.every((v) => v.state === 'done')) {
      const message = verdicts.length === 0 ? 'nothing to roll out' : `rolled out: ${summary(verdicts, 'done')}`;
      return { result: 'success', message, deployments: verdicts, waitedMs };
    }
    const remaining = options.timeoutMs - waitedMs;
    if (remaining <= 0) {
      return {
        result: 'timeout',
        message: `the rollout did not finish within ${Math.round(options.timeoutMs / 1000)}s: ${summary(verdicts, 'progressing')}`,
        deployments: verdicts,
        waitedMs,
      };
    }
    await pause(wait, Math.min(pollMs, remaining), options.signal);
    if (callerLeft()) {
      const left = Math.round((now() - started) / 1000);
      return { result: 'timeout', message: `stopped waiting after ${left}s: the caller left; ${summary(verdicts, 'progressing')}`, deployments: verdicts, waitedMs: now() - started };
    }
  }
}
