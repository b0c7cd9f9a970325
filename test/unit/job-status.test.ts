import { describe, expect, it } from 'vitest';
import type { LiveJob, LivePod } from '../../src/core/types.js';
import { jobOutcome } from '../../src/deploy/job-status.js';

function job(overrides: Partial<LiveJob> = {}): LiveJob {
  return { namespace: 'ns', name: 'migrate', uid: 'u1', annotations: {}, completions: 1, backoffLimit: 6, active: 0, succeeded: 0, failed: 0, conditions: [], terminating: false, ...overrides };
}

function pod(waiting: string | undefined, message?: string): LivePod {
  return { name: `p-${waiting ?? 'running'}`, ownerUids: ['u1'], terminating: false, containers: [{ name: 'c', ready: false, restarts: 0, waiting, message }] };
}

describe('jobOutcome', () => {
  it.each<[string, Partial<LiveJob>, readonly LivePod[] | undefined, { state: string; reason: string }]>([
    ['Complete', { succeeded: 1, conditions: [{ type: 'Complete', status: 'True' }] }, undefined, { state: 'done', reason: 'complete: 1/1 succeeded, 0 active, 0 failed' }],
    ['every completion succeeded before the condition', { completions: 3, succeeded: 3 }, undefined, { state: 'done', reason: 'complete: 3/3 succeeded, 0 active, 0 failed' }],
    ['a work-queue Job (no completions) waits for its condition', { completions: undefined, succeeded: 1, active: 1 }, undefined, { state: 'progressing', reason: '1/1 succeeded, 1 active, 0 failed' }],
    [
      'Failed by the backoffLimit, naming it',
      { failed: 7, conditions: [{ type: 'Failed', status: 'True', reason: 'BackoffLimitExceeded', message: 'Job has reached the specified backoff limit' }] },
      undefined,
      { state: 'failed', reason: 'BackoffLimitExceeded: Job has reached the specified backoff limit (0/1 succeeded, 0 active, 7 failed, backoffLimit 6)' },
    ],
    ['Failed by its deadline', { conditions: [{ type: 'Failed', status: 'True', reason: 'DeadlineExceeded' }] }, undefined, { state: 'failed', reason: 'DeadlineExceeded (0/1 succeeded, 0 active, 0 failed, backoffLimit 6)' }],
    ['a condition that is not True is no outcome', { active: 1, conditions: [{ type: 'Failed', status: 'False' }] }, undefined, { state: 'progressing', reason: '0/1 succeeded, 1 active, 0 failed' }],
    ['pods that cannot pull their image fail it early', { active: 1 }, [pod('ImagePullBackOff', 'back-off pulling')], { state: 'failed', reason: 'pod p-ImagePullBackOff: container c: ImagePullBackOff (back-off pulling)' }],
    ['a crash loop is the Job retrying (its backoffLimit decides)', { active: 1, failed: 2 }, [pod('CrashLoopBackOff')], { state: 'progressing', reason: '0/1 succeeded, 1 active, 2 failed' }],
    ['one pod stuck beside one running is not yet a failure', { completions: 2, active: 2 }, [pod('ErrImagePull'), pod(undefined)], { state: 'progressing', reason: '0/2 succeeded, 2 active, 0 failed' }],
    ['a Job being deleted', { terminating: true, active: 1 }, undefined, { state: 'progressing', reason: 'the Job is being deleted' }],
  ])('%s', (_name, overrides, pods, expected) => {
    expect(jobOutcome(job(overrides), pods)).toEqual(expected);
  });
});
