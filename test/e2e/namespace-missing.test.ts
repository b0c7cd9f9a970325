import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ConflictError } from '../../src/errors.js';
import { Kubernetes } from '../../src/kube/kubernetes.js';
import { ground } from '../env/ground.js';
import { uniqueName } from '../env/kube-helpers.js';
import { basic, call, serviceRepo, startDeployer, type RunningDeployer } from './setup.js';

const SECRET = 'namespace-missing-secret';

/** A service whose namespace nobody created: the answer names the namespace, not an apiserver status code. */
describe('a service whose namespace does not exist', () => {
  let deployer: RunningDeployer;
  let svc: Awaited<ReturnType<typeof serviceRepo>>;
  const namespace = uniqueName('nowhere');

  beforeAll(async () => {
    svc = await serviceRepo('homeless', [
      {
        files: {
          // A tagged image: no registry is asked.
          'kubernetes/deploy.yaml': `apiVersion: apps/v1
kind: Deployment
metadata: { name: homeless }
spec:
  selector: { matchLabels: { app: homeless } }
  template:
    metadata: { labels: { app: homeless } }
    spec:
      containers:
        - { name: app, image: registry.example/homeless:1.0 }
`,
        },
      },
    ]);
    deployer = await startDeployer({
      tokens: { ci: { secret: { value: SECRET } } },
      services: { [svc.name]: { repository: svc.repository, namespace } },
    });
  });
  afterAll(async () => {
    await deployer?.close();
  });

  it('a deploy answers 4xx naming the missing namespace, and applies nothing', async () => {
    const [c1] = svc.repo.shas as [string];
    const answer = await call(`${deployer.url}/${svc.name}/deploy`, { auth: basic('ci', SECRET), form: { commit: c1 } });
    expect(answer.status, JSON.stringify(answer.body)).toBeGreaterThanOrEqual(400);
    expect(answer.status).toBeLessThan(500);
    expect(answer.body['error']).toBe(
      `namespace ${namespace} does not exist in the cluster: create it (kubectl create namespace ${namespace}) ` +
        "or fix the service's namespace in the configuration; the apiserver refused 1 object(s); nothing was applied",
    );
    expect(answer.body['failures']).toEqual([
      { kind: 'Deployment', namespace, name: 'homeless', reason: `namespaces "${namespace}" not found` },
    ]);
  });

  it('a deploy lock in a namespace that does not exist says so, with what to do', async () => {
    const kube = new Kubernetes({ kubeconfig: ground('kube').adminKubeconfig, fieldManager: 'deployer-test', logger: pino({ level: 'silent' }) });
    const error = await kube.leases
      .create(namespace, 'deployer-homeless', { holder: 'me', durationSeconds: 15, acquireTime: new Date(), renewTime: new Date(), transitions: 0 })
      .then(
        () => undefined,
        (e: unknown) => e,
      );
    expect(error).toBeInstanceOf(ConflictError);
    expect((error as Error).message).toBe(
      `namespace ${namespace} does not exist in the cluster (the apiserver says: namespaces "${namespace}" not found); create it ` +
        `(kubectl create namespace ${namespace}) or fix the service's namespace, or kubernetes.leaseNamespace, in the configuration`,
    );
  });
});
