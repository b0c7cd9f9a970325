import { describe, expect, it } from 'vitest';
import type { LiveReader } from '../../src/core/ports.js';
import type { LiveDaemonSet, LiveDeployment, LivePod, LiveStatefulSet } from '../../src/core/types.js';
import { awaitVerdict, rolloutTargets } from '../../src/deploy/verdict.js';
import { daemonSetNewPods, judgeDaemonSet, judgeStatefulSet, statefulSetNewPods } from '../../src/deploy/workload-verdict.js';

/** A StatefulSet of 2 replicas, rolled out at revision db-2 (the fields `kubectl rollout status` reads). */
function sts(overrides: Partial<Omit<LiveStatefulSet, 'status'>> & { status?: Partial<LiveStatefulSet['status']> } = {}): LiveStatefulSet {
  const { status, ...rest } = overrides;
  return {
    namespace: 'shop',
    name: 'db',
    uid: 'sts-uid',
    generation: 2,
    selector: { app: 'db' },
    desired: 2,
    updateStrategy: { type: 'RollingUpdate', partition: 0 },
    ...rest,
    status: { observedGeneration: 2, ready: 2, current: 2, updated: 2, currentRevision: 'db-2', updateRevision: 'db-2', ...status },
  };
}

function ds(overrides: Partial<Omit<LiveDaemonSet, 'status'>> & { status?: Partial<LiveDaemonSet['status']> } = {}): LiveDaemonSet {
  const { status, ...rest } = overrides;
  return {
    namespace: 'shop',
    name: 'agent',
    uid: 'ds-uid',
    generation: 3,
    selector: { app: 'agent' },
    templateGeneration: '3',
    updateStrategy: { type: 'RollingUpdate' },
    ...rest,
    status: { observedGeneration: 3, desired: 2, updated: 2, available: 2, ready: 2, ...status },
  };
}

const DOOM = 'pod db-1: container app: CrashLoopBackOff';

describe('judgeStatefulSet: kubectl rollout status semantics', () => {
  it.each([
    ['done: all ready and updated', sts(), undefined, 'done', '2/2 ready, 2 updated'],
    ['progressing: the controller has not seen the new spec (generation ahead)', sts({ generation: 3 }), undefined, 'progressing', 'the controller has not seen the new spec yet'],
    ['progressing: no status yet (observedGeneration 0), even with a doomed pod', sts({ status: { observedGeneration: 0 } }), DOOM, 'progressing', 'the controller has not seen the new spec yet'],
    ['progressing: a pod is not ready', sts({ status: { ready: 1, updated: 1 } }), undefined, 'progressing', '1/2 ready, 1 updated'],
    ['failed: not ready and every pod of the new revision is doomed', sts({ status: { ready: 1, updated: 1 } }), DOOM, 'failed', DOOM],
    ['progressing: all ready but one pod of the old revision left', sts({ status: { updated: 1, updateRevision: 'db-3' } }), undefined, 'progressing', '1/2 updated'],
    [
      'done: a partition keeps ordinals below it at the old revision',
      sts({ desired: 3, updateStrategy: { type: 'RollingUpdate', partition: 2 }, status: { ready: 3, updated: 1, updateRevision: 'db-3' } }),
      undefined,
      'done',
      '3/3 ready, 1 updated (partition 2: ordinals below it keep their revision)',
    ],
    [
      'progressing: the pods at or above the partition are not updated yet',
      sts({ desired: 3, updateStrategy: { type: 'RollingUpdate', partition: 1 }, status: { ready: 3, updated: 1, updateRevision: 'db-3' } }),
      undefined,
      'progressing',
      '1/2 updated (partition 1: ordinals below it keep their revision)',
    ],
    [
      'done: a partition above the replicas updates nothing',
      sts({ updateStrategy: { type: 'RollingUpdate', partition: 5 }, status: { updated: 0, updateRevision: 'db-3' } }),
      undefined,
      'done',
      '2/2 ready, 0 updated (partition 5: ordinals below it keep their revision)',
    ],
    [
      'progressing: without a partition, until the current revision is the update revision',
      sts({ updateStrategy: { type: 'RollingUpdate' }, status: { updated: 2, updateRevision: 'db-3' } }),
      undefined,
      'progressing',
      '2/2 updated to revision db-3',
    ],
    ['done: without a partition, at one revision', sts({ updateStrategy: { type: 'RollingUpdate' } }), undefined, 'done', '2/2 ready at revision db-2'],
    [
      'done at once: OnDelete has no rollout to wait for (pods change only when deleted)',
      sts({ updateStrategy: { type: 'OnDelete' }, generation: 5, status: { ready: 0, updated: 0 } }),
      DOOM,
      'done',
      'updateStrategy OnDelete: pods take the new template only when they are deleted, so there is no rollout to wait for',
    ],
    ['done: a doomed pod does not undo a finished rollout', sts(), DOOM, 'done', '2/2 ready, 2 updated'],
  ] as const)('%s', (_what, s, doom, state, reason) => {
    expect(judgeStatefulSet(s, doom)).toEqual({ state, reason });
  });

  it('looks for new pods by the update revision, only once the controller saw the spec', () => {
    expect(statefulSetNewPods(sts({ status: { updateRevision: 'db-3' } }))).toBe('app=db,controller-revision-hash=db-3');
    expect(statefulSetNewPods(sts({ generation: 3, status: { updateRevision: 'db-2' } }))).toBeUndefined();
  });
});

describe('judgeDaemonSet: kubectl rollout status semantics', () => {
  it.each([
    ['done: updated and available on every node', ds(), undefined, 'done', '2/2 available'],
    ['progressing: the controller has not seen the new spec', ds({ generation: 4 }), DOOM, 'progressing', 'the controller has not seen the new spec yet'],
    ['progressing: a node still runs the old pod', ds({ status: { updated: 1, available: 1 } }), undefined, 'progressing', '1/2 updated, 1 available'],
    ['progressing: updated, one not available yet', ds({ status: { available: 1 } }), undefined, 'progressing', '1/2 available'],
    ['failed: every new pod is doomed', ds({ status: { updated: 1, available: 1 } }), DOOM, 'failed', DOOM],
    ['done: no node should run it', ds({ status: { desired: 0, updated: 0, available: 0 } }), undefined, 'done', 'no node should run it (0 scheduled)'],
    [
      'done at once: OnDelete',
      ds({ updateStrategy: { type: 'OnDelete' }, status: { updated: 0 } }),
      undefined,
      'done',
      'updateStrategy OnDelete: pods take the new template only when they are deleted, so there is no rollout to wait for',
    ],
  ] as const)('%s', (_what, d, doom, state, reason) => {
    expect(judgeDaemonSet(d, doom)).toEqual({ state, reason });
  });

  it('looks for new pods by the template generation', () => {
    expect(daemonSetNewPods(ds())).toBe('app=agent,pod-template-generation=3');
    expect(daemonSetNewPods(ds({ templateGeneration: undefined }))).toBeUndefined();
  });
});

describe('rolloutTargets', () => {
  it('waits for the Deployments, StatefulSets and DaemonSets (apps group) and Jobs (batch) applied, not for deleted ones or other kinds', () => {
    expect(
      rolloutTargets([
        { apiVersion: 'apps/v1', kind: 'Deployment', namespace: 'a', name: 'web-canary', action: 'deleted' },
        { apiVersion: 'apps/v1', kind: 'Deployment', namespace: 'a', name: 'web', action: 'unchanged' },
        { apiVersion: 'apps/v1', kind: 'StatefulSet', namespace: 'a', name: 'db', action: 'created' },
        { apiVersion: 'apps/v1', kind: 'DaemonSet', namespace: 'a', name: 'agent', action: 'configured' },
        { apiVersion: 'apps/v1', kind: 'DaemonSet', namespace: 'a', name: 'old-agent', action: 'pruned' },
        { apiVersion: 'example.com/v1', kind: 'StatefulSet', namespace: 'a', name: 'custom', action: 'created' },
        { apiVersion: 'v1', kind: 'Service', namespace: 'a', name: 'web', action: 'created' },
        { apiVersion: 'batch/v1', kind: 'Job', namespace: 'a', name: 'migrate', action: 'created' },
        { apiVersion: 'example.com/v1', kind: 'Job', namespace: 'a', name: 'custom-job', action: 'created' },
      ]),
    ).toEqual([
      { kind: 'Deployment', namespace: 'a', name: 'web' },
      { kind: 'StatefulSet', namespace: 'a', name: 'db' },
      { kind: 'DaemonSet', namespace: 'a', name: 'agent' },
      { kind: 'Job', namespace: 'a', name: 'migrate' },
    ]);
  });
});

/** A small fake of the live reads: fixed objects and pods, as a verdict's polls would see them. */
function fakeLive(objects: { statefulSets?: LiveStatefulSet[]; daemonSets?: LiveDaemonSet[]; deployments?: LiveDeployment[]; pods?: Record<string, LivePod[]> }): LiveReader {
  return {
    getDeployment: (_ns, name) => Promise.resolve(objects.deployments?.find((d) => d.name === name)),
    listDeployments: () => Promise.resolve([]),
    listReplicaSets: () => Promise.resolve([]),
    listPods: (_ns, selector) => Promise.resolve(objects.pods?.[selector] ?? []),
    getStatefulSet: (_ns, name) => Promise.resolve(objects.statefulSets?.find((s) => s.name === name)),
    getDaemonSet: (_ns, name) => Promise.resolve(objects.daemonSets?.find((d) => d.name === name)),
    getJob: () => Promise.resolve(undefined),
    jobLogs: () => Promise.resolve([]),
  };
}

const pod = (name: string, owner: string, waiting?: string): LivePod => ({
  name,
  ownerUids: [owner],
  terminating: false,
  containers: [{ name: 'app', ready: waiting === undefined, restarts: 3, waiting }],
});

describe('awaitVerdict over several workloads: the worst of them, each named', () => {
  const options = { timeoutMs: 0, sleep: () => Promise.resolve() };

  it('success names each workload with its kind', async () => {
    const live = fakeLive({ statefulSets: [sts()], daemonSets: [ds()] });
    const verdict = await awaitVerdict(live, [
      { kind: 'StatefulSet', namespace: 'shop', name: 'db' },
      { kind: 'DaemonSet', namespace: 'shop', name: 'agent' },
    ], options);
    expect(verdict).toMatchObject({
      result: 'success',
      message: 'rolled out: StatefulSet db: 2/2 ready, 2 updated; DaemonSet agent: 2/2 available',
      deployments: [
        { kind: 'StatefulSet', namespace: 'shop', name: 'db', state: 'done' },
        { kind: 'DaemonSet', namespace: 'shop', name: 'agent', state: 'done' },
      ],
    });
  });

  it('one workload whose new pods crash fails the service while another is done', async () => {
    const rolling = sts({ status: { ready: 1, updated: 1, updateRevision: 'db-3' } });
    const live = fakeLive({
      statefulSets: [rolling],
      daemonSets: [ds()],
      // The old pod db-0 runs; db-1 of the new revision crashes. A pod of another owner is not looked at.
      pods: { 'app=db,controller-revision-hash=db-3': [pod('db-1', 'sts-uid', 'CrashLoopBackOff'), pod('stray', 'other-uid')] },
    });
    const verdict = await awaitVerdict(live, [
      { kind: 'DaemonSet', namespace: 'shop', name: 'agent' },
      { kind: 'StatefulSet', namespace: 'shop', name: 'db' },
    ], options);
    expect(verdict.result).toBe('failure');
    expect(verdict.message).toBe('the rollout failed: StatefulSet db: pod db-1: container app: CrashLoopBackOff');
    expect(verdict.deployments.map((d) => [d.kind, d.name, d.state])).toEqual([
      ['DaemonSet', 'agent', 'done'],
      ['StatefulSet', 'db', 'failed'],
    ]);
  });

  it('a DaemonSet still rolling out after the wait → timeout naming it; a deleted StatefulSet → failure', async () => {
    const live = fakeLive({ daemonSets: [ds({ status: { updated: 1, available: 1 } })], pods: { 'app=agent,pod-template-generation=3': [pod('agent-x', 'ds-uid')] } });
    const slow = await awaitVerdict(live, [{ kind: 'DaemonSet', namespace: 'shop', name: 'agent' }], options);
    expect(slow).toMatchObject({ result: 'timeout', message: 'the rollout did not finish within 0s: DaemonSet agent: 1/2 updated, 1 available' });
    const gone = await awaitVerdict(live, [{ kind: 'StatefulSet', namespace: 'shop', name: 'db' }], options);
    expect(gone).toMatchObject({ result: 'failure', message: 'the rollout failed: StatefulSet db: the StatefulSet was deleted' });
  });
});
