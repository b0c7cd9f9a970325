import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ground } from '../env/ground.js';
import { adminClient, createNamespace } from '../env/kube-helpers.js';
import { pushImage } from '../env/registry-helpers.js';
import { basic, call, serviceRepo, startDeployer, type RunningDeployer } from './setup.js';

const SECRET = 'versions-secret-42';
const short = (sha: string): string => sha.slice(0, 7);

/** A Deployment with two untagged images (app and worker), each built by CI with the commit's tag. */
function twoImages(name: string, app: string, worker: string): string {
  return `apiVersion: apps/v1
kind: Deployment
metadata: { name: ${name} }
spec:
  selector: { matchLabels: { app: ${name} } }
  template:
    metadata: { labels: { app: ${name} } }
    spec:
      containers:
        - { name: app, image: ${app} }
        - { name: worker, image: ${worker} }
`;
}

describe('version resolution against the real registry (thesis 5.3.2)', () => {
  let deployer: RunningDeployer;
  let namespace: string;
  let svc: Awaited<ReturnType<typeof serviceRepo>>;
  let app: string;
  let worker: string;
  let appRepo: string;
  let workerRepo: string;
  const auth = basic('ci', SECRET);

  beforeAll(async () => {
    const registry = ground('registry').anonymous;
    namespace = await createNamespace('versions');
    const id = Date.now().toString(36);
    appRepo = `versions/app-${id}`;
    workerRepo = `versions/worker-${id}`;
    app = `${registry}/${appRepo}`;
    worker = `${registry}/${workerRepo}`;
    svc = await serviceRepo('two', [
      { files: { 'kubernetes/deploy.yaml': twoImages('two', app, worker) } },
      { files: { 'kubernetes/deploy.yaml': twoImages('two', app, worker).replace('metadata: { name: two }', 'metadata: { name: two, labels: { rev: "2" } }') } },
    ]);
    deployer = await startDeployer({
      tokens: { ci: { secret: { value: SECRET } } },
      services: { [svc.name]: { repository: svc.repository, namespace } },
      // Long enough for CI's push to land during the wait on a loaded machine (4 s was not, once, at load average 8),
      // short enough for the failing case.
      versions: { registryWaitSeconds: 8 },
    });
  });

  afterAll(async () => {
    await deployer?.close();
  });

  it('waits for the tag CI pushes while the deploy is already waiting', async () => {
    const [c1] = svc.repo.shas as [string];
    const tag = `main-${short(c1)}`;
    await pushImage({ host: ground('registry').anonymous, repository: workerRepo, tag });
    const pending = call(`${deployer.url}/${svc.name}/deploy`, { auth, form: { commit: c1 } });
    // The app image arrives a little later, as a slow CI push would.
    await new Promise((r) => setTimeout(r, 1200));
    const pushed = await pushImage({ host: ground('registry').anonymous, repository: appRepo, tag });

    const answer = await pending;
    expect(answer.status, JSON.stringify(answer.body)).toBe(200);
    expect(answer.body['tag']).toBe(tag);
    const d = await adminClient().apps.readNamespacedDeployment({ name: 'two', namespace });
    expect(d.spec?.template.spec?.containers[0]?.image).toBe(`${app}:${tag}@${pushed.digest}`);
  });

  it('refuses a commit whose images do not agree on one tag (409), after the wait, nothing applied', async () => {
    const [, c2] = svc.repo.shas as [string, string];
    await pushImage({ host: ground('registry').anonymous, repository: appRepo, tag: `main-${short(c2)}` });
    await pushImage({ host: ground('registry').anonymous, repository: workerRepo, tag: `feature-${short(c2)}` });
    const before = await adminClient().apps.readNamespacedDeployment({ name: 'two', namespace });

    const answer = await call(`${deployer.url}/${svc.name}/deploy`, { auth, form: { commit: c2 } });

    expect(answer.status).toBe(409);
    expect(answer.body['error']).toBe(
      `the images do not agree on a tag for commit ${short(c2)}: ${app}: main-${short(c2)}; ${worker}: feature-${short(c2)}`,
    );
    const after = await adminClient().apps.readNamespacedDeployment({ name: 'two', namespace });
    // generation moves only with the spec (the controller manager may still be writing the status).
    expect(after.metadata?.generation).toBe(before.metadata?.generation);
    expect(after.spec?.template).toEqual(before.spec?.template);
  });

  it('GET /:service/tags lists the registry tags of each untagged image', async () => {
    const res = await fetch(`${deployer.url}/${svc.name}/tags`, { headers: { authorization: auth } });
    expect(res.status).toBe(200);
    const body = (await res.json()) as Record<string, unknown>;
    expect(JSON.stringify(body)).toContain(`main-${short(svc.repo.shas[0] as string)}`);
    expect(JSON.stringify(body)).toContain(worker);
  });
});
