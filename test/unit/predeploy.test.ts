import { describe, expect, it } from 'vitest';
import type { ServiceConfig } from '../../src/config/load.js';
import { DEFAULT_KEYS } from '../../src/core/keys.js';
import type { KubeObject, LiveJob, ObjectFailure } from '../../src/core/types.js';
import { planPreDeploy, splitPreDeploy, type PreDeployDeps } from '../../src/deploy/predeploy.js';
import { ConflictError, ManifestError } from '../../src/errors.js';

const KEY = DEFAULT_KEYS.preDeployAnnotation;
const a = DEFAULT_KEYS.annotations;

function object(kind: string, name: string, annotations?: Record<string, string>, apiVersion = kind === 'Job' ? 'batch/v1' : 'apps/v1'): KubeObject {
  return { apiVersion, kind, metadata: { name, namespace: 'ns', ...(annotations === undefined ? {} : { annotations }) } };
}

describe('splitPreDeploy', () => {
  it('takes out the Jobs marked "true", keeps the rest in order', () => {
    const objects = [object('Job', 'migrate', { [KEY]: 'true' }), object('Deployment', 'web'), object('Job', 'report', { [KEY]: 'false' }), object('Job', 'seed', { 'deployer.io/pre-deploy': 'true' })];

    const { preDeploy, rest } = splitPreDeploy(DEFAULT_KEYS, objects);

    expect(preDeploy.map((o) => o.metadata.name)).toEqual(['migrate', 'seed']);
    expect(rest.map((o) => o.metadata.name)).toEqual(['web', 'report']);
  });

  it.each([
    [object('Deployment', 'web', { [KEY]: 'true' }), 'Deployment "web": only a batch/v1 Job can be a pre-deploy Job (annotation deployer.internal/pre-deploy)'],
    [object('Job', 'migrate', { [KEY]: 'yes' }), 'Job "migrate": annotation deployer.internal/pre-deploy must be "true" or "false", not "yes"'],
  ])('refuses %j', (o, message) => {
    expect(() => splitPreDeploy(DEFAULT_KEYS, [o])).toThrow(new ManifestError(message));
  });
});

describe('planPreDeploy', () => {
  const service = { name: 'shop', namespace: 'ns' } as ServiceConfig;
  const version = { commit: 'c2', tag: 'main-c2' };
  const live = (overrides: Partial<LiveJob>): LiveJob => ({
    namespace: 'ns',
    name: 'migrate',
    uid: 'u1',
    annotations: { [DEFAULT_KEYS.serviceAnnotation]: 'shop', [a.commit]: 'c2', [a.tag]: 'main-c2' },
    completions: 1,
    backoffLimit: 6,
    active: 0,
    succeeded: 0,
    failed: 0,
    conditions: [],
    terminating: false,
    ...overrides,
  });
  function deps(job: LiveJob | undefined): PreDeployDeps & { dryRuns: string[] } {
    const dryRuns: string[] = [];
    return {
      keys: DEFAULT_KEYS,
      dryRuns,
      live: { getJob: () => Promise.resolve(job), listPods: () => Promise.resolve([]), jobLogs: () => Promise.resolve([]) },
      cluster: {
        dryRun: (objects: KubeObject[]): Promise<ObjectFailure[]> => {
          dryRuns.push(...objects.map((o) => `apply ${o.metadata.name}`));
          return Promise.resolve([]);
        },
        deleteObjects: (refs) => {
          dryRuns.push(...refs.map((r) => `delete ${r.name}`));
          return Promise.resolve([]);
        },
        waitGone: () => Promise.resolve(),
        apply: () => Promise.resolve([]),
      },
    };
  }
  const job = object('Job', 'migrate');
  const done = { succeeded: 1, conditions: [{ type: 'Complete', status: 'True' }] };

  it.each<[string, LiveJob | undefined, string]>([
    ['no Job yet: run it', undefined, 'run'],
    ['the Job of another version: run it again', live({ ...done, annotations: { [a.commit]: 'c1', [a.tag]: 'main-c1' } }), 'run'],
    ['complete at this version: leave it', live(done), 'skip'],
    ['running at this version: wait for it', live({ active: 1 }), 'wait'],
    ['failed at this version: run it again', live({ failed: 1, conditions: [{ type: 'Failed', status: 'True', reason: 'BackoffLimitExceeded' }] }), 'run'],
  ])('%s', async (_name, found, action) => {
    const d = deps(found);

    const steps = await planPreDeploy(d, { service, kind: 'deploy', ...version }, [job]);

    expect(steps.map((s) => s.action)).toEqual([action]);
    // What runs is dry-run first: the deletion and the new Job under a probe name.
    expect(d.dryRuns).toEqual(action === 'run' ? ['delete migrate', 'apply migrate-replace-check'] : []);
  });

  it.each(['promote', 'rollback'] as const)('a %s never runs it: the version ran before', async (kind) => {
    const steps = await planPreDeploy(deps(undefined), { service, kind, ...version }, [job]);

    expect(steps.map((s) => s.action)).toEqual(['skip']);
  });

  it("refuses another service's Job (409)", async () => {
    const found = live({ annotations: { [DEFAULT_KEYS.serviceAnnotation]: 'billing' } });

    await expect(planPreDeploy(deps(found), { service, kind: 'canary', ...version }, [job])).rejects.toThrow(ConflictError);
  });
});
