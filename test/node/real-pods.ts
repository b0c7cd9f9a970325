import { request } from 'node:http';
import { serviceRepo, startDeployer, type RunningDeployer } from '../e2e/setup.js';
import type { FixtureCommit } from '../env/git-fixtures.js';
import { ground } from '../env/ground.js';
import { adminClient, createNamespace, kubeRequest } from '../env/kube-helpers.js';
import { deploymentYaml, serviceYaml, type DeploymentSpec } from '../env/manifests.js';
import { pushProgramImage } from '../env/node-images.js';

/**
 * Helpers of the tests whose pods really run on the ground's node: the sample service's image pushed under a
 * test's own repository, its manifests made to run on the node, and plain HTTP to pod and Service addresses.
 */

/** Pushes the sample service's image as `REGISTRY/repository:tag` (the anonymous registry); returns the image name. */
export async function pushSample(repository: string, tags: readonly string[]): Promise<string> {
  const host = ground('registry').anonymous;
  for (const tag of tags) await pushProgramImage({ host, repository, tag, program: 'sample' });
  return `${host}/${repository}`;
}

type ServiceRepo = Awaited<ReturnType<typeof serviceRepo>>;

export interface NodeDeployerOptions {
  /** The namespace every service deploys to; deleted by close(). */
  readonly namespace: string;
  /** The deployer's `tokens` block. */
  readonly tokens: Record<string, unknown>;
  /** The services, each with extra entries of its `services` block (e.g. `replaceJobs`). */
  readonly services: ReadonlyArray<{ readonly repo: ServiceRepo; readonly config?: Record<string, unknown> }>;
}

export interface NodeDeployer {
  readonly deployer: RunningDeployer;
  /** Stops the deployer and deletes the namespace. */
  close(): Promise<void>;
}

/** A deployer serving `services` in `namespace`, the registry's tags resolved at once; call close() in afterAll. */
export async function startNodeDeployer(options: NodeDeployerOptions): Promise<NodeDeployer> {
  const { namespace } = options;
  const deployer = await startDeployer({
    tokens: options.tokens,
    services: Object.fromEntries(options.services.map((s) => [s.repo.name, { repository: s.repo.repository, namespace, ...s.config }])),
    versions: { registryWaitSeconds: 0 },
  });
  return {
    deployer,
    close: async () => {
      await deployer.close();
      await adminClient().core.deleteNamespace({ name: namespace }).catch(() => undefined);
    },
  };
}

export interface SampleServiceOptions {
  /** Names the namespace, the image repository and the service. */
  readonly prefix: string;
  /** The service's commits, given the (untagged) image they deploy; each is pushed as `main-SHORT`. */
  readonly commits: (image: string) => FixtureCommit[];
  /** The deployer's `tokens` block. */
  readonly tokens: Record<string, unknown>;
}

export interface SampleService extends NodeDeployer {
  readonly namespace: string;
  readonly svc: ServiceRepo;
  /** The tag of commit `i`: `main-SHORT`. */
  tag(i: number): string;
  /** `DEPLOYER/SERVICE/path`. */
  url(path: string): string;
}

/**
 * One service of the sample image on the node: a namespace of its own, a repository of `commits`, an image tag pushed
 * for each commit, and a deployer serving it with `tokens`. Call close() in afterAll.
 */
export async function startSampleService(options: SampleServiceOptions): Promise<SampleService> {
  const namespace = await createNamespace(`real-${options.prefix}`);
  const repository = `real/${options.prefix}-${Date.now().toString(36)}`;
  const svc = await serviceRepo(options.prefix, options.commits(`${ground('registry').anonymous}/${repository}`));
  const tag = (i: number): string => `main-${(svc.repo.shas[i] ?? '').slice(0, 7)}`;
  await pushSample(repository, svc.repo.shas.map((_sha, i) => tag(i)));
  const started = await startNodeDeployer({ namespace, tokens: options.tokens, services: [{ repo: svc }] });
  return { ...started, namespace, svc, tag, url: (path) => `${started.deployer.url}/${svc.name}/${path}` };
}

/** The sample service's Deployment, scheduled on the node, with readiness on /ready; and its Service. */
export function sampleManifests(spec: Omit<DeploymentSpec, 'realNode'>): Record<string, string> {
  return {
    'kubernetes/deployment.yaml': deploymentYaml({ ...spec, realNode: { schedulerName: ground('node').schedulerName } }),
    'kubernetes/service.yaml': serviceYaml(spec.name),
  };
}

export interface SampleAnswer {
  status: number;
  version: string;
  pod: string;
}

/**
 * GET http://ADDRESS/ on a new connection each time (a kept-alive connection would stick to one pod behind a
 * ClusterIP), answered by the sample service.
 */
export function getSample(address: string, path = '/'): Promise<SampleAnswer & { body: string }> {
  return new Promise((resolve, reject) => {
    const req = request(`http://${address}${path}`, { agent: false, timeout: 5_000 }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('error', reject);
      res.on('end', () => {
        const body = Buffer.concat(chunks).toString('utf8');
        let parsed: { version?: string; pod?: string } = {};
        try {
          parsed = JSON.parse(body) as { version?: string; pod?: string };
        } catch {
          // /metrics and the probes answer text
        }
        resolve({ status: res.statusCode ?? 0, version: parsed.version ?? '', pod: parsed.pod ?? '', body });
      });
    });
    req.on('timeout', () => req.destroy(new Error(`GET http://${address}${path} timed out`)));
    req.on('error', reject);
    req.end();
  });
}

/** The ClusterIP of Service `name`. */
export async function clusterIp(namespace: string, name: string): Promise<string> {
  const service = await adminClient().core.readNamespacedService({ name, namespace });
  const ip = service.spec?.clusterIP;
  if (ip === undefined || ip === 'None') throw new Error(`service ${namespace}/${name} has no ClusterIP`);
  return ip;
}

/** The Running pods of a Deployment's selector `app=NAME`, with their IPs and whether they are Ready. */
export async function runningPods(namespace: string, app: string): Promise<Array<{ name: string; ip: string; ready: boolean; node: string }>> {
  const pods = await adminClient().core.listNamespacedPod({ namespace, labelSelector: `app=${app}` });
  return pods.items
    .filter((p) => p.status?.phase === 'Running' && p.metadata?.deletionTimestamp === undefined)
    .map((p) => ({
      name: p.metadata?.name ?? '',
      ip: p.status?.podIP ?? '',
      node: p.spec?.nodeName ?? '',
      ready: p.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True') ?? false,
    }));
}

/**
 * The last lines each container of the pods `app=NAME` wrote, the previous (crashed) run's where there is one: put in
 * a failing assertion's message, they say why a pod did not come up.
 */
export async function podLogs(namespace: string, app: string, lines = 20): Promise<string> {
  const pods = await adminClient().core.listNamespacedPod({ namespace, labelSelector: `app=${app}` });
  const parts: string[] = [];
  for (const pod of pods.items) {
    const name = pod.metadata?.name ?? '';
    for (const container of pod.spec?.containers ?? []) {
      const base = `/api/v1/namespaces/${namespace}/pods/${name}/log?container=${container.name}&tailLines=${lines}`;
      let res = await kubeRequest('GET', `${base}&previous=true`);
      if (res.status !== 200) res = await kubeRequest('GET', base);
      parts.push(`--- ${name}/${container.name} (${res.status}) ---\n${typeof res.body === 'string' ? res.body : JSON.stringify(res.body)}`);
    }
  }
  return parts.join('\n');
}

/** Waits until `count` pods of `app=NAME` are Running and Ready (a rollout or a replaced pod may still be on its way). */
export async function readyPods(namespace: string, app: string, count: number, timeoutMs = 120_000): Promise<Array<{ name: string; ip: string }>> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const ready = (await runningPods(namespace, app)).filter((p) => p.ready);
    if (ready.length >= count) return ready;
    if (Date.now() > deadline) throw new Error(`${namespace}: ${ready.length} of ${count} pods app=${app} are ready`);
    await new Promise((r) => setTimeout(r, 500));
  }
}

/** The sample service's container (readiness on /ready, liveness on /healthz), as YAML lines at `indent` spaces. */
function sampleContainer(image: string, env: Readonly<Record<string, string>>, indent: number, extra: readonly string[] = []): string[] {
  const vars = Object.entries(env).map(([key, value]) => `{ name: ${key}, value: ${JSON.stringify(value)} }`);
  return [
    '- name: app',
    `  image: ${image}`,
    '  ports: [{ containerPort: 8080, protocol: TCP }]',
    ...(vars.length === 0 ? [] : [`  env: [${vars.join(', ')}]`]),
    '  readinessProbe: { httpGet: { path: /ready, port: 8080 }, periodSeconds: 1, failureThreshold: 1 }',
    '  livenessProbe: { httpGet: { path: /healthz, port: 8080 }, periodSeconds: 5 }',
    ...extra,
  ].map((l) => `${' '.repeat(indent)}${l}`);
}

export interface WorkloadSpec {
  readonly name: string;
  /** Untagged: the deployer writes the version. */
  readonly image: string;
  readonly env?: Readonly<Record<string, string>>;
}

/**
 * The lines of an apps/v1 workload `name` up to its containers (which the caller adds): labelled and selected by
 * `app: NAME`, its pods on the node (its scheduler), stopped within 5 s; `specLines` go before the selector.
 */
function workloadYaml(kind: 'StatefulSet' | 'DaemonSet', name: string, specLines: readonly string[]): string[] {
  return [
    'apiVersion: apps/v1',
    `kind: ${kind}`,
    'metadata:',
    `  name: ${name}`,
    `  labels: { app: ${name} }`,
    'spec:',
    ...specLines,
    `  selector: { matchLabels: { app: ${name} } }`,
    '  template:',
    `    metadata: { labels: { app: ${name} } }`,
    '    spec:',
    '      terminationGracePeriodSeconds: 5',
    `      schedulerName: ${ground('node').schedulerName}`,
    '      containers:',
  ];
}

/**
 * A StatefulSet of the sample service with its headless Service, scheduled on the node; each pod mounts a volume
 * claim `data` of 1 MiB with no storage class, which binds to a PersistentVolume the test creates (see
 * createHostPathVolumes).
 */
export function statefulSetManifests(spec: WorkloadSpec & { readonly replicas: number }): Record<string, string> {
  const { name } = spec;
  const statefulSet = [
    ...workloadYaml('StatefulSet', name, [`  serviceName: ${name}`, `  replicas: ${spec.replicas}`]),
    ...sampleContainer(spec.image, spec.env ?? {}, 8, ['  volumeMounts: [{ name: data, mountPath: /data }]']),
    '  volumeClaimTemplates:',
    '    - metadata: { name: data }',
    '      spec:',
    '        accessModes: [ReadWriteOnce]',
    '        storageClassName: ""',
    '        resources: { requests: { storage: 1Mi } }',
  ];
  const headless = [
    'apiVersion: v1',
    'kind: Service',
    'metadata:',
    `  name: ${name}`,
    'spec:',
    '  clusterIP: None',
    `  selector: { app: ${name} }`,
    '  ports: [{ port: 8080, protocol: TCP }]',
  ];
  return { 'kubernetes/statefulset.yaml': `${statefulSet.join('\n')}\n`, 'kubernetes/service.yaml': `${headless.join('\n')}\n` };
}

/** A DaemonSet of the sample service, its pods placed on the node by the node's scheduler. */
export function daemonSetYaml(spec: WorkloadSpec): string {
  const { name } = spec;
  const lines = [...workloadYaml('DaemonSet', name, []), ...sampleContainer(spec.image, spec.env ?? {}, 8)];
  return `${lines.join('\n')}\n`;
}

/**
 * PersistentVolumes (hostPath, under the node's run directory) for the claims `CLAIM-STATEFULSET-ORDINAL` of a
 * StatefulSet's pods, each bound in advance to its claim (`claimRef`) so that no other test's claim takes it. The
 * PersistentVolume binder of the controller-manager binds them; no provisioner is needed. Returns their names.
 */
export async function createHostPathVolumes(namespace: string, claims: readonly string[]): Promise<string[]> {
  const names: string[] = [];
  for (const claim of claims) {
    const name = `${namespace}-${claim}`;
    await adminClient().core.createPersistentVolume({
      body: {
        metadata: { name, labels: { 'deployer-test': 'true' } },
        spec: {
          capacity: { storage: '1Mi' },
          accessModes: ['ReadWriteOnce'],
          storageClassName: '',
          persistentVolumeReclaimPolicy: 'Retain',
          hostPath: { path: `${ground('node').runDir}/volumes/${name}`, type: 'DirectoryOrCreate' },
          claimRef: { namespace, name: claim },
        },
      },
    });
    names.push(name);
  }
  return names;
}

/** Deletes PersistentVolumes (cluster-wide objects, not removed with a test's namespace). */
export async function deleteVolumes(names: readonly string[]): Promise<void> {
  for (const name of names) await adminClient().core.deletePersistentVolume({ name }).catch(() => undefined);
}
