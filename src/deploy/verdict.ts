import { sleep } from '../core/util.js';
import { POD_TEMPLATE_HASH_LABEL, REVISION_ANNOTATION } from '../core/keys.js';
import type { LiveDeployment, LivePod, ObjectResult, Replicas } from '../core/types.js';
import type { LiveReader } from '../core/ports.js';

/**
 * The rollout verdict (`wait=`): after the objects are applied, whether the new version runs. Kubernetes never says
 * "failed" by itself before the progress deadline (10 minutes by default), so pods that cannot start are judged
 * early: once every pod of the new ReplicaSet waits for a reason that does not pass by itself, the rollout failed.
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


export interface RolloutTarget {
  readonly namespace: string;
  readonly name: string;
}

export interface DeploymentVerdict extends RolloutTarget {
  readonly state: 'done' | 'failed' | 'progressing';
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

/** The Deployments a deploy applied (not those it deleted): what a verdict waits for. */
export function rolloutTargets(objects: readonly ObjectResult[]): RolloutTarget[] {
  return objects
    .filter((o) => o.kind === 'Deployment' && o.action !== 'deleted' && o.namespace !== undefined)
    .map((o) => ({ namespace: o.namespace ?? '', name: o.name }));
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
  const at = { namespace: d.namespace, name: d.name, replicas: d.replicas };
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

function selectorOf(labels: Readonly<Record<string, string>>): string {
  return Object.entries(labels)
    .map(([k, v]) => `${k}=${v}`)
    .join(',');
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

async function check(live: LiveReader, target: RolloutTarget): Promise<DeploymentVerdict> {
  const d = await live.getDeployment(target.namespace, target.name);
  if (d === undefined) return { ...target, state: 'failed', reason: 'the Deployment was deleted' };
  const quick = judge(d, undefined);
  if (quick.state !== 'progressing') return quick;
  return judge(d, await newPodsOf(live, d));
}

function summary(verdicts: readonly DeploymentVerdict[], state: DeploymentVerdict['state']): string {
  return verdicts
    .filter((v) => v.state === state)
    .map((v) => `${v.name}: ${v.reason}`)
    .join('; ');
}

/** Polls the Deployments until all are done (success), one failed (failure), or `timeoutMs` passed (timeout). */
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
