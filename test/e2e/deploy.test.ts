import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { V1Deployment } from '@kubernetes/client-node';
import { ground } from '../env/ground.js';
import { adminClient, createNamespace } from '../env/kube-helpers.js';
import { pushImage } from '../env/registry-helpers.js';
import { configMapYaml, deploymentYaml, serviceYaml } from '../env/manifests.js';
import { startCaptureServer, type CaptureServer } from '../env/capture-server.js';
import { basic, call, serviceRepo, startDeployer, type RunningDeployer } from './setup.js';

const CI_SECRET = 'ci-secret-0123456789';
const BUGSNAG_KEY = 'bugsnag-key-abcdef0123456789abcdef01';

/** The web service's Deployment: two replicas, an environment the tests read back, and a tagged sidecar. */
const deployment = (name: string, image: string): string =>
  deploymentYaml({ name, image, replicas: 2, env: { GREETING: 'hello' }, sidecar: { name: 'statsd', image: 'statsd/statsd:v0.10.2' } });
const configMap = (name: string, value: string): string => configMapYaml(`${name}-config`, { value });

const short = (sha: string): string => sha.slice(0, 7);

describe('deploy end to end: HTTP → git → registry → rewrite → Kubernetes', () => {
  let deployer: RunningDeployer;
  let bugsnag: CaptureServer;
  let slack: CaptureServer;
  let namespace: string;
  let image: string;
  let web: Awaited<ReturnType<typeof serviceRepo>>;
  const digests: Record<string, string> = {};
  const kube = () => adminClient();
  const auth = basic('ci', CI_SECRET);

  const readDeployment = async (name: string): Promise<V1Deployment | undefined> => {
    try {
      return await kube().apps.readNamespacedDeployment({ name, namespace });
    } catch {
      return undefined;
    }
  };

  beforeAll(async () => {
    const registry = ground('registry').anonymous;
    namespace = await createNamespace('e2e');
    [bugsnag, slack] = await Promise.all([startCaptureServer(), startCaptureServer()]);
    const repoName = `team/web-${Date.now().toString(36)}`;
    image = `${registry}/${repoName}`;
    web = await serviceRepo('web', [
      {
        files: {
          'kubernetes/deployment.yaml': deployment('web', image),
          'kubernetes/service.yaml': serviceYaml('web'),
          'kubernetes/config.yml': configMap('web', 'one'),
          'README.md': 'the web service',
        },
      },
      { files: { 'kubernetes/config.yml': configMap('web', 'two') } },
      { files: { 'kubernetes/config.yml': configMap('web', 'three') } },
      // CI has not pushed an image for this one.
      { files: { 'kubernetes/config.yml': configMap('web', 'four') } },
    ]);
    for (const sha of web.repo.shas.slice(0, 3)) {
      const pushed = await pushImage({ host: registry, repository: repoName, tag: `main-${short(sha)}` });
      digests[sha] = pushed.digest;
    }
    // A tag without a commit suffix, for the both-given path.
    await pushImage({ host: registry, repository: repoName, tag: 'release-candidate' });

    const bad = await serviceRepo('bad', [
      {
        files: {
          'kubernetes/deployment.yaml': deployment('bad', image),
          // Valid YAML, refused by the apiserver's validation: a port out of range.
          'kubernetes/service.yaml': serviceYaml('bad').replace('port: 80', 'port: 99999'),
        },
      },
    ]);
    const foreign = await serviceRepo('foreign', [
      { files: { 'kubernetes/all.yaml': `${deployment('foreign', image)}---\n${configMap('foreign', 'x').replace('metadata:\n', 'metadata:\n  namespace: kube-system\n')}` } },
    ]);
    const crb = await serviceRepo('crb', [
      {
        files: {
          'kubernetes/deployment.yaml': deployment('crb', image),
          'kubernetes/rbac.yaml': `apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata:
  name: crb-takes-over
roleRef: { apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: cluster-admin }
subjects: [{ kind: ServiceAccount, name: default, namespace: ${namespace} }]
`,
        },
      },
    ]);
    // Same commits as `web` by tag (the tags of `web` name web's commits, unknown in this repository).
    deployer = await startDeployer({
      tokens: { ci: { secret: { value: CI_SECRET }, services: [web.name, bad.name, foreign.name, crb.name], actions: ['read', 'deploy', 'canary'] } },
      services: Object.fromEntries(
        [web, bad, foreign, crb].map((s) => [s.name, { repository: s.repository, namespace }]),
      ),
      versions: { registryWaitSeconds: 0 },
      reports: {
        bugsnag: { apiKey: { value: BUGSNAG_KEY }, notifyEndpoint: `${bugsnag.url}/notify`, sessionsEndpoint: `${bugsnag.url}/sessions` },
        slack: { webhookUrl: { value: `${slack.url}/services/T000/B000/XXXXSECRET` } },
      },
    });
    Object.assign(services, { bad: bad.name, foreign: foreign.name, crb: crb.name });
  });

  const services = { bad: '', foreign: '', crb: '' };

  afterAll(async () => {
    await deployer?.close();
    await Promise.all([bugsnag?.close(), slack?.close()]);
  });

  it('deploys by commit only: the tag is found in the registry, images get tag and digest', async () => {
    const [c1] = web.repo.shas as [string];
    const answer = await call(`${deployer.url}/${web.name}/deploy`, { auth, form: { commit: short(c1) } });

    expect(answer.status, JSON.stringify(answer.body)).toBe(200);
    expect(answer.body).toMatchObject({
      message: `${web.name} main-${short(c1)} is deployed`,
      commit: c1,
      tag: `main-${short(c1)}`,
      images: [{ original: image, applied: `${image}:main-${short(c1)}@${digests[c1]}` }],
    });
    const d = await readDeployment('web');
    const containers = d?.spec?.template.spec?.containers ?? [];
    expect(containers.map((c) => c.image)).toEqual([`${image}:main-${short(c1)}@${digests[c1]}`, 'statsd/statsd:v0.10.2']);
    expect(d?.metadata?.labels).toMatchObject({ app: 'web', tag: `main-${short(c1)}` });
    expect(d?.metadata?.annotations).toMatchObject({
      'deployer.internal/commit': c1,
      'deployer.internal/tag': `main-${short(c1)}`,
      'deployer.internal/caller': 'ci',
    });
    expect(d?.spec?.template.metadata?.labels).toMatchObject({ app: 'web', track: 'stable' });
    for (const c of containers) {
      expect(c.env).toEqual(expect.arrayContaining([{ name: 'TRACK', value: 'stable' }, { name: 'VERSION', value: `main-${short(c1)}` }]));
    }
    expect(containers[0]?.env).toContainEqual({ name: 'GREETING', value: 'hello' });
    const cm = await kube().core.readNamespacedConfigMap({ name: 'web-config', namespace });
    expect(cm.data).toEqual({ value: 'one' });
    await kube().core.readNamespacedService({ name: 'web', namespace });
    // The controller manager picked it up: a ReplicaSet exists for the new template.
    const objects = answer.body['objects'] as Array<{ kind: string; action: string }>;
    expect(objects.map((o) => `${o.kind}:${o.action}`).sort()).toEqual(['ConfigMap:created', 'Deployment:created', 'Service:created']);
    // The event log line in the original's grep-able form (written once the commit facts are read, after the answer).
    await deployer.settled();
    expect(deployer.logs.map((l) => l['msg'])).toContainEqual(expect.stringMatching(new RegExp(`^${web.name};${short(c1)};deploy success;`)));
  });

  it('deploys a canary by tag only: NAME-canary with one replica next to the unchanged stable Deployment', async () => {
    const [c1, c2] = web.repo.shas as [string, string];
    const answer = await call(`${deployer.url}/${web.name}/canary`, { auth, form: { tag: `main-${short(c2)}` } });

    expect(answer.status, JSON.stringify(answer.body)).toBe(200);
    expect(answer.body['message']).toBe(`${web.name} main-${short(c2)} is deployed as canary`);
    const canary = await readDeployment('web-canary');
    expect(canary?.spec?.replicas).toBe(1);
    expect(canary?.spec?.selector.matchLabels).toEqual({ app: 'web', track: 'canary' });
    expect(canary?.spec?.template.metadata?.labels).toMatchObject({ app: 'web', track: 'canary' });
    expect(canary?.spec?.template.spec?.containers[0]?.image).toBe(`${image}:main-${short(c2)}@${digests[c2]}`);
    expect(canary?.spec?.template.spec?.containers[0]?.env).toContainEqual({ name: 'TRACK', value: 'canary' });
    const stable = await readDeployment('web');
    expect(stable?.spec?.template.spec?.containers[0]?.image).toBe(`${image}:main-${short(c1)}@${digests[c1]}`);
    // A canary applies only the canary Deployments: the ConfigMap still has the stable version's value.
    const cm = await kube().core.readNamespacedConfigMap({ name: 'web-config', namespace });
    expect(cm.data).toEqual({ value: 'one' });
  });

  it('a following deploy (commit and tag both given) removes the canary and updates stable', async () => {
    const [, , c3] = web.repo.shas as [string, string, string];
    const answer = await call(`${deployer.url}/${web.name}/deploy`, { auth, form: { commit: c3, tag: `main-${short(c3)}` } });

    expect(answer.status, JSON.stringify(answer.body)).toBe(200);
    expect(await readDeployment('web-canary')).toBeUndefined();
    const stable = await readDeployment('web');
    expect(stable?.spec?.template.spec?.containers[0]?.image).toBe(`${image}:main-${short(c3)}@${digests[c3]}`);
    const objects = answer.body['objects'] as Array<{ kind: string; name: string; action: string }>;
    expect(objects).toContainEqual(expect.objectContaining({ kind: 'Deployment', name: 'web-canary', action: 'deleted' }));
    const cm = await kube().core.readNamespacedConfigMap({ name: 'web-config', namespace });
    expect(cm.data).toEqual({ value: 'three' });
  });

  it('a tag from another commit is refused when both are given', async () => {
    const [c1, c2] = web.repo.shas as [string, string];
    const answer = await call(`${deployer.url}/${web.name}/deploy`, { auth, form: { commit: c1, tag: `main-${short(c2)}` } });
    expect(answer.status).toBe(400);
    expect(answer.body).toMatchObject({ error: `tag "main-${short(c2)}" was not built from commit ${short(c1)}`, field: 'tag' });
  });

  it('a free-form tag with a commit deploys when the registry has it', async () => {
    const [c1] = web.repo.shas as [string];
    const answer = await call(`${deployer.url}/${web.name}/deploy`, { auth, form: { commit: c1, tag: 'release-candidate' } });
    expect(answer.status, JSON.stringify(answer.body)).toBe(200);
    expect((await readDeployment('web'))?.spec?.template.spec?.containers[0]?.image).toMatch(/:release-candidate@sha256:/);
  });

  it('a commit without an image tag in the registry is 404 naming the image, nothing applied', async () => {
    const c4 = web.repo.shas[3] as string;
    const before = await readDeployment('web');
    const answer = await call(`${deployer.url}/${web.name}/deploy`, { auth, form: { commit: 'main' }, userAgent: 'depctl/1.0' });
    expect(answer.status).toBe(404);
    expect(answer.body['error']).toBe(`no tag for commit ${short(c4)} in the registry for ${image}`);
    // generation moves only with the spec (the controller manager may still be writing the status).
    const after = await readDeployment('web');
    expect(after?.metadata?.generation).toBe(before?.metadata?.generation);
    expect(after?.spec?.template).toEqual(before?.spec?.template);
  });

  it('a bad object in the set leaves the cluster unchanged (422 naming the object)', async () => {
    const answer = await call(`${deployer.url}/${services.bad}/deploy`, { auth, form: { commit: 'main', tag: 'release-candidate' } });
    expect(answer.status).toBe(422);
    expect(answer.body['error']).toMatch(/refused 1 object\(s\); nothing was applied/);
    expect(answer.body['failures']).toEqual([expect.objectContaining({ kind: 'Service', name: 'bad' })]);
    expect(await readDeployment('bad')).toBeUndefined();
  });

  it.each([
    ['foreign', /namespace kube-system is not allowed/],
    ['crb', /cluster-scoped ClusterRoleBinding is not allowed/],
  ] as const)('objects the service may not touch are refused (%s), nothing applied', async (which, reason) => {
    const answer = await call(`${deployer.url}/${services[which]}/deploy`, { auth, form: { commit: 'main', tag: 'release-candidate' } });
    expect(answer.status).toBe(422);
    expect(JSON.stringify(answer.body['failures'])).toMatch(reason);
    expect(await readDeployment(which)).toBeUndefined();
    await expect(kube().rbac.readClusterRoleBinding({ name: 'crb-takes-over' })).rejects.toThrow();
  });

  it('a deploy removes only its own canary: a Deployment of another service named NAME-canary stays', async () => {
    const [c1] = web.repo.shas as [string];
    await kube().apps.createNamespacedDeployment({
      namespace,
      body: {
        metadata: { name: 'web-canary', annotations: { 'deployer.internal/service': 'someone-else' } },
        spec: {
          selector: { matchLabels: { app: 'other' } },
          template: { metadata: { labels: { app: 'other' } }, spec: { containers: [{ name: 'c', image: 'other:1' }] } },
        },
      },
    });

    const answer = await call(`${deployer.url}/${web.name}/deploy`, { auth, form: { commit: c1 } });

    expect(answer.status, JSON.stringify(answer.body)).toBe(200);
    const objects = answer.body['objects'] as Array<{ name: string; action: string }>;
    expect(objects).not.toContainEqual(expect.objectContaining({ name: 'web-canary' }));
    expect((await readDeployment('web-canary'))?.spec?.template.spec?.containers[0]?.image).toBe('other:1');
    await kube().apps.deleteNamespacedDeployment({ name: 'web-canary', namespace });
  });

  it('reports a failing CI deploy to Bugsnag and Slack once, and a failing depctl deploy to neither', async () => {
    const before = { bugsnag: bugsnag.requests.length, slack: slack.requests.length };
    const ci = await call(`${deployer.url}/${web.name}/deploy`, { auth, form: { commit: 'deadbeef' } });
    expect(ci.status).toBe(404);
    await bugsnag.waitForRequests(before.bugsnag + 1);
    await slack.waitForRequests(before.slack + 1);

    const manual = await call(`${deployer.url}/${web.name}/deploy`, { auth, form: { commit: 'deadbee' }, userAgent: 'depctl/0.1.0' });
    expect(manual.status).toBe(404);
    expect(manual.body['error']).toMatch(/deadbee/);
    // Give a wrongly sent report time to arrive before counting.
    await new Promise((r) => setTimeout(r, 500));
    expect(bugsnag.requests.filter((r) => r.path === '/notify')).toHaveLength(before.bugsnag + 1);
    expect(slack.requests).toHaveLength(before.slack + 1);
    expect(JSON.stringify(slack.requests.at(-1)?.body)).toContain('deadbeef');
    expect(deployer.logText()).not.toContain(CI_SECRET);
    expect(deployer.logText()).not.toContain(BUGSNAG_KEY);
    expect(deployer.logText()).not.toContain(ground('git').password);
  });
});
