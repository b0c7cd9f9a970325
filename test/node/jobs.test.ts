import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { send } from '../e2e/flows-setup.js';
import { basic, serviceRepo, type RunningDeployer } from '../e2e/setup.js';
import { ground } from '../env/ground.js';
import { adminClient, createNamespace, kubeRequest } from '../env/kube-helpers.js';
import { pushProgramImage } from '../env/node-images.js';
import { pushSample, sampleManifests, startNodeDeployer, type NodeDeployer } from './real-pods.js';

/**
 * Jobs on real pods: the rollout verdict of a Job (complete, failed by its backoffLimit) and pre-deploy Jobs (the
 * migration pattern) whose containers really exit 0 or 1 on the ground's node (test/images/job).
 */

const SECRET = 'ops-secret-real-jobs';
const auth = basic('ops', SECRET);
const short = (sha: string): string => sha.slice(0, 7);

/** A Job on the node running the ground's job program: OUTPUT lines ("|"-separated), then EXIT_CODE. */
function jobYaml(spec: { name: string; image: string; output: string; exitCode: number; preDeploy?: boolean }): string {
  return [
    'apiVersion: batch/v1',
    'kind: Job',
    'metadata:',
    `  name: ${spec.name}`,
    ...(spec.preDeploy === true ? ['  annotations:', '    deployer.internal/pre-deploy: "true"'] : []),
    'spec:',
    '  backoffLimit: 0',
    '  template:',
    '    spec:',
    '      restartPolicy: Never',
    '      terminationGracePeriodSeconds: 1',
    `      schedulerName: ${ground('node').schedulerName}`,
    '      containers:',
    '        - name: migrate',
    `          image: ${spec.image}`,
    `          env: [{ name: OUTPUT, value: ${JSON.stringify(spec.output)} }, { name: EXIT_CODE, value: "${spec.exitCode}" }]`,
    '',
  ].join('\n');
}

interface LiveJob {
  uid: string;
  image: string;
  completionTime?: string;
}

describe('Jobs on real pods', () => {
  let deployer: RunningDeployer;
  let node: NodeDeployer;
  let namespace: string;
  let app: Awaited<ReturnType<typeof serviceRepo>>;
  let batch: Awaited<ReturnType<typeof serviceRepo>>;
  const tagOf = (s: Awaited<ReturnType<typeof serviceRepo>>, i: number): string => `main-${short(s.repo.shas[i] ?? '')}`;
  const url = (s: Awaited<ReturnType<typeof serviceRepo>>, path: string): string => `${deployer.url}/${s.name}/${path}`;

  const liveJob = async (name: string): Promise<LiveJob | undefined> => {
    const res = await kubeRequest('GET', `/apis/batch/v1/namespaces/${namespace}/jobs/${name}`);
    if (res.status === 404) return undefined;
    const job = res.body as { metadata: { uid: string }; spec: { template: { spec: { containers: { image: string }[] } } }; status: { completionTime?: string } };
    return { uid: job.metadata.uid, image: job.spec.template.spec.containers[0]?.image ?? '', completionTime: job.status.completionTime };
  };
  const liveDeployment = async (name: string): Promise<{ image: string; createdAt: string } | undefined> => {
    const d = await adminClient()
      .apps.readNamespacedDeployment({ name, namespace })
      .catch(() => undefined);
    if (d === undefined) return undefined;
    return { image: d.spec?.template.spec?.containers[0]?.image ?? '', createdAt: d.metadata?.creationTimestamp?.toISOString() ?? '' };
  };

  beforeAll(async () => {
    namespace = await createNamespace('real-jobs');
    const host = ground('registry').anonymous;
    const repository = `real/jobs-${Date.now().toString(36)}`;
    const image = `${host}/${repository}`;
    const migrator = `${host}/${repository}-migrate`;
    const version = (v: string, exitCode: number, output: string) => ({
      files: {
        ...sampleManifests({ name: 'web', image, env: { VERSION: v } }),
        'kubernetes/migrate.yaml': jobYaml({ name: 'migrate', image: migrator, output, exitCode, preDeploy: true }),
      },
    });
    app = await serviceRepo('migrating', [
      version('v1', 0, 'migrating to v1|done'),
      version('v2', 1, 'migrating to v2|ERROR: relation "users" already exists'),
      version('v3', 0, 'migrating to v3|done'),
    ]);
    const tags = app.repo.shas.map((sha) => `main-${short(sha)}`);
    await pushSample(repository, tags);
    for (const tag of tags) await pushProgramImage({ host, repository: `${repository}-migrate`, tag, program: 'job' });

    const reporter = `${host}/${repository}-report`;
    batch = await serviceRepo('batch', [
      { files: { 'kubernetes/report.yaml': jobYaml({ name: 'report', image: reporter, output: 'report written', exitCode: 0 }) } },
      { files: { 'kubernetes/report.yaml': jobYaml({ name: 'report', image: reporter, output: 'report: disk full', exitCode: 1 }) } },
    ]);
    for (const sha of batch.repo.shas) await pushProgramImage({ host, repository: `${repository}-report`, tag: `main-${short(sha)}`, program: 'job' });

    node = await startNodeDeployer({
      namespace,
      tokens: { ops: { secret: { value: SECRET } } },
      services: [{ repo: app }, { repo: batch, config: { replaceJobs: true } }],
    });
    ({ deployer } = node);
  });

  afterAll(async () => {
    await node?.close();
  });

  it('a Job that completes → success; one that fails → failure naming BackoffLimitExceeded', async () => {
    const done = await send(url(batch, 'deploy'), { auth, json: { tag: tagOf(batch, 0), wait: '3m' } });

    expect(done.status, JSON.stringify(done.body)).toBe(200);
    expect(done.body['verdict']).toMatchObject({
      result: 'success',
      deployments: [{ kind: 'Job', namespace, name: 'report', state: 'done', reason: 'complete: 1/1 succeeded, 0 active, 0 failed' }],
    });

    const failed = await send(url(batch, 'deploy'), { auth, json: { tag: tagOf(batch, 1), wait: '3m' } });

    expect(failed.status, JSON.stringify(failed.body)).toBe(422);
    expect(failed.body['objects']).toEqual([expect.objectContaining({ kind: 'Job', name: 'report', action: 'replaced' })]);
    expect(failed.body['verdict']).toMatchObject({ result: 'failure', deployments: [{ kind: 'Job', name: 'report', state: 'failed' }] });
    expect(failed.body['error']).toMatch(/^the rollout failed: Job report: BackoffLimitExceeded: Job has reached the specified backoff limit \(0\/1 succeeded, 0 active, 1 failed, backoffLimit 0\)$/);
  }, 240_000);

  it('a migration Job completes before the Deployment is applied; the verdict covers both', async () => {
    const answer = await send(url(app, 'deploy'), { auth, json: { tag: tagOf(app, 0), wait: '3m' } });

    expect(answer.status, JSON.stringify(answer.body)).toBe(200);
    const objects = answer.body['objects'] as Array<{ kind: string; name: string; action: string }>;
    expect(objects.map((o) => `${o.kind}/${o.name} ${o.action}`)).toEqual(['Job/migrate created', 'Service/web created', 'Deployment/web created']);
    const job = await liveJob('migrate');
    const web = await liveDeployment('web');
    expect(job?.image).toContain(`-migrate:${tagOf(app, 0)}@sha256:`);
    // Seconds are the API's resolution: created in the second the Job completed, or later.
    expect(Date.parse(web?.createdAt ?? '')).toBeGreaterThanOrEqual(Date.parse(job?.completionTime ?? 'x'));
    expect(answer.body['verdict']).toMatchObject({ result: 'success' });
  }, 240_000);

  it('a failing migration Job fails the deploy with its log tail; the Deployment stays as it was', async () => {
    const before = await liveDeployment('web');

    const answer = await send(url(app, 'deploy'), { auth, json: { tag: tagOf(app, 1) } });

    expect(answer.status, JSON.stringify(answer.body)).toBe(422);
    expect(answer.body['error']).toBe(
      'pre-deploy Job "migrate" failed: BackoffLimitExceeded: Job has reached the specified backoff limit (0/1 succeeded, 0 active, 1 failed, backoffLimit 0); nothing else was applied',
    );
    expect(answer.body['preDeploy']).toMatchObject({ kind: 'Job', namespace, name: 'migrate' });
    const logs = answer.body['logs'] as Array<{ pod: string; container: string; lines: string[] }>;
    expect(logs).toHaveLength(1);
    expect(logs[0]?.pod).toMatch(/^migrate-/);
    expect(logs[0]).toMatchObject({ container: 'migrate', lines: ['migrating to v2', 'ERROR: relation "users" already exists'] });
    expect(await liveDeployment('web')).toEqual(before);
    expect((await liveJob('migrate'))?.image).toContain(`-migrate:${tagOf(app, 1)}@`);
  }, 240_000);

  it('a canary runs the migration of its version; promote and a redeploy of that version do not run it again', async () => {
    const canary = await send(url(app, 'canary'), { auth, json: { tag: tagOf(app, 2) } });

    expect(canary.status, JSON.stringify(canary.body)).toBe(200);
    const objects = canary.body['objects'] as Array<{ kind: string; name: string; action: string }>;
    expect(objects.map((o) => `${o.kind}/${o.name} ${o.action}`)).toEqual(['Job/migrate replaced', 'Deployment/web-canary created']);
    const ran = await liveJob('migrate');
    expect(ran?.image).toContain(`-migrate:${tagOf(app, 2)}@`);
    expect(ran?.completionTime).toBeDefined();

    const promoted = await send(url(app, 'promote'), { auth });

    expect(promoted.status, JSON.stringify(promoted.body)).toBe(200);
    expect((promoted.body['objects'] as Array<{ kind: string }>).filter((o) => o.kind === 'Job')).toEqual([]);
    expect((await liveJob('migrate'))?.uid).toBe(ran?.uid);
    expect((await liveDeployment('web'))?.image).toContain(`:${tagOf(app, 2)}@`);

    const again = await send(url(app, 'deploy'), { auth, json: { tag: tagOf(app, 2) } });

    expect(again.status, JSON.stringify(again.body)).toBe(200);
    expect((again.body['objects'] as Array<{ kind: string }>).filter((o) => o.kind === 'Job')).toEqual([]);
    expect((await liveJob('migrate'))?.uid).toBe(ran?.uid);
  }, 240_000);
});
