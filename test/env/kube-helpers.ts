import { randomBytes } from 'node:crypto';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { request } from 'node:https';
import { join } from 'node:path';
import {
  AppsV1Api,
  CoreV1Api,
  KubeConfig,
  RbacAuthorizationV1Api,
  type V1ContainerState,
  type V1Deployment,
  type V1Pod,
  type V1PolicyRule,
  type V1ReplicaSet,
} from '@kubernetes/client-node';
import { ground } from './ground.js';
import { tokenKubeconfig } from './kube-plane.js';

/**
 * Helpers for tests against the test ground's control plane. There is no kubelet: the controller manager creates
 * replica sets and pods, and these helpers play the kubelet's part by writing pod status.
 */

export interface AdminClient {
  kubeConfig: KubeConfig;
  core: CoreV1Api;
  apps: AppsV1Api;
  rbac: RbacAuthorizationV1Api;
}

let admin: AdminClient | undefined;

/** Typed clients authenticated as cluster-admin (system:masters). */
export function adminClient(): AdminClient {
  if (admin !== undefined) return admin;
  const kubeConfig = new KubeConfig();
  kubeConfig.loadFromFile(ground('kube').adminKubeconfig);
  admin = {
    kubeConfig,
    core: kubeConfig.makeApiClient(CoreV1Api),
    apps: kubeConfig.makeApiClient(AppsV1Api),
    rbac: kubeConfig.makeApiClient(RbacAuthorizationV1Api),
  };
  return admin;
}

function suffix(): string {
  return randomBytes(4).toString('hex');
}

/** A DNS-label name `PREFIX-RANDOM`, unique per call. */
export function uniqueName(prefix: string): string {
  const clean = prefix.toLowerCase().replace(/[^a-z0-9-]/g, '-').replace(/^-+|-+$/g, '').slice(0, 50) || 'test';
  return `${clean}-${suffix()}`;
}

/** Creates a namespace with a unique name (`PREFIX-RANDOM`) and returns its name. */
export async function createNamespace(prefix: string): Promise<string> {
  const name = uniqueName(prefix);
  await adminClient().core.createNamespace({ body: { metadata: { name, labels: { 'deployer-test': 'true' } } } });
  return name;
}

export interface KubeResponse {
  status: number;
  body: unknown;
}

/** A raw request to the apiserver (admin token unless `token` is given); the body is parsed when it is JSON. */
export function kubeRequest(
  method: string,
  path: string,
  options: { body?: string; contentType?: string; token?: string } = {},
): Promise<KubeResponse> {
  const kube = ground('kube');
  return new Promise((resolve, reject) => {
    const headers: Record<string, string> = {
      authorization: `Bearer ${options.token ?? kube.adminToken}`,
      accept: 'application/json',
    };
    if (options.body !== undefined) headers['content-type'] = options.contentType ?? 'application/json';
    const req = request(new URL(path, kube.server), { method, headers, ca: readFileSync(kube.caFile), timeout: 30_000 }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('error', reject);
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        let body: unknown = text;
        try {
          body = JSON.parse(text);
        } catch {
          // not JSON: keep the text
        }
        resolve({ status: res.statusCode ?? 0, body });
      });
    });
    req.on('timeout', () => req.destroy(new Error(`${method} ${path} timed out`)));
    req.on('error', reject);
    if (options.body !== undefined) req.write(options.body);
    req.end();
  });
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

async function eventually<T>(what: string, probe: () => Promise<T | undefined>, timeoutMs: number): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(200);
  }
}

function revisionOf(o: { metadata?: { annotations?: Record<string, string> } }): number {
  return Number(o.metadata?.annotations?.['deployment.kubernetes.io/revision'] ?? 0);
}

/** The Deployment's current ReplicaSet (the one with its revision), once the controller manager created it. */
export async function currentReplicaSet(namespace: string, name: string, timeoutMs = 30_000): Promise<V1ReplicaSet> {
  const { apps } = adminClient();
  return eventually(
    `the current replica set of deployment ${namespace}/${name}`,
    async () => {
      const deployment = await apps.readNamespacedDeployment({ name, namespace });
      const generation = deployment.metadata?.generation ?? 0;
      if ((deployment.status?.observedGeneration ?? 0) < generation) return undefined;
      const revision = revisionOf(deployment);
      const sets = await apps.listNamespacedReplicaSet({ namespace });
      return sets.items.find(
        (rs) =>
          rs.metadata?.ownerReferences?.some((o) => o.uid === deployment.metadata?.uid) === true && revisionOf(rs) === revision,
      );
    },
    timeoutMs,
  );
}

/** The live pods of a replica set (not being deleted). */
async function podsOf(rs: V1ReplicaSet): Promise<V1Pod[]> {
  const namespace = rs.metadata?.namespace ?? 'default';
  const hash = rs.metadata?.labels?.['pod-template-hash'] ?? '';
  const pods = await adminClient().core.listNamespacedPod({ namespace, labelSelector: `pod-template-hash=${hash}` });
  return pods.items.filter(
    (p) => p.metadata?.deletionTimestamp === undefined && p.metadata?.ownerReferences?.some((o) => o.uid === rs.metadata?.uid) === true,
  );
}

/** Writes a pod's status the way a kubelet would: every container in `state`, ready or not. */
async function writePodStatus(pod: V1Pod, ready: boolean, state: V1ContainerState, restartCount = 0): Promise<void> {
  const now = new Date();
  const condition = (type: string, status: boolean) => ({ type, status: status ? 'True' : 'False', lastTransitionTime: now });
  pod.status = {
    ...pod.status,
    phase: 'Running',
    hostIP: '127.0.0.1',
    podIP: '10.1.0.1',
    startTime: pod.status?.startTime ?? now,
    conditions: [
      condition('PodScheduled', true),
      condition('Initialized', true),
      condition('ContainersReady', ready),
      condition('Ready', ready),
    ],
    containerStatuses: (pod.spec?.containers ?? []).map((c) => ({
      name: c.name,
      image: c.image ?? '',
      imageID: `docker-pullable://${c.image ?? ''}`,
      ready,
      started: ready,
      restartCount,
      state,
    })),
  };
  await adminClient().core.replaceNamespacedPodStatus({
    name: pod.metadata?.name ?? '',
    namespace: pod.metadata?.namespace ?? 'default',
    body: pod,
  });
}

function isReady(pod: V1Pod): boolean {
  return pod.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True') === true;
}

/**
 * Marks the pods of the Deployment's current ReplicaSet Running and Ready (pods/status), again as the controller
 * manager scales the set up during a rolling update, until the Deployment reports all replicas updated and
 * available. Returns the Deployment as it is then.
 */
export async function markDeploymentReady(namespace: string, name: string, timeoutMs = 45_000): Promise<V1Deployment> {
  const { apps } = adminClient();
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const deployment = await apps.readNamespacedDeployment({ name, namespace });
    const want = deployment.spec?.replicas ?? 1;
    const s = deployment.status;
    if (
      (s?.observedGeneration ?? 0) >= (deployment.metadata?.generation ?? 0) &&
      (s?.updatedReplicas ?? 0) === want &&
      (s?.availableReplicas ?? 0) === want &&
      (s?.replicas ?? 0) === want
    ) {
      return deployment;
    }
    const rs = await currentReplicaSet(namespace, name, Math.max(deadline - Date.now(), 1_000));
    for (const pod of await podsOf(rs)) {
      if (!isReady(pod)) {
        await writePodStatus(pod, true, { running: { startedAt: new Date() } }).catch((err: unknown) => {
          // The pod may have been replaced meanwhile (409/404): the next round sees the new one.
          if (!isConflictOrGone(err)) throw err;
        });
      }
    }
    if (Date.now() > deadline) {
      throw new Error(`timed out waiting for deployment ${namespace}/${name} to become available: ${JSON.stringify(s)}`);
    }
    await sleep(200);
  }
}

/**
 * Puts every container of the Deployment's current ReplicaSet pods in the waiting state `reason` (for example
 * CrashLoopBackOff or ImagePullBackOff), not ready. Waits until the set has created all its pods; returns their names.
 */
export async function setPodsWaiting(namespace: string, name: string, reason: string, timeoutMs = 30_000): Promise<string[]> {
  const rs = await currentReplicaSet(namespace, name, timeoutMs);
  const want = rs.spec?.replicas ?? 1;
  const pods = await eventually(
    `${want} pods of replica set ${namespace}/${rs.metadata?.name ?? ''}`,
    async () => {
      const found = await podsOf(rs);
      return found.length >= want ? found : undefined;
    },
    timeoutMs,
  );
  const restarts = reason === 'CrashLoopBackOff' ? 3 : 0;
  for (const pod of pods) {
    await writePodStatus(pod, false, { waiting: { reason, message: `test ground: ${reason}` } }, restarts);
  }
  return pods.map((p) => p.metadata?.name ?? '');
}

function isConflictOrGone(err: unknown): boolean {
  const code = (err as { code?: unknown }).code;
  return code === 409 || code === 404;
}

export interface RestrictedIdentityOptions {
  namespace: string;
  /** Rules of a Role in `namespace`. */
  rules?: V1PolicyRule[];
  /** Rules of a ClusterRole bound cluster-wide. */
  clusterRules?: V1PolicyRule[];
  /** Service account name prefix. */
  name?: string;
}

/**
 * Creates a ServiceAccount in `namespace` with exactly the given rules (a Role and/or a ClusterRole, bound to it)
 * and returns the path of a kubeconfig that authenticates as it (its token secret, created by the controller
 * manager; context namespace = `namespace`).
 */
export async function createRestrictedIdentity(options: RestrictedIdentityOptions): Promise<string> {
  const { core, rbac } = adminClient();
  const { namespace } = options;
  const name = uniqueName(options.name ?? 'restricted');
  await core.createNamespacedServiceAccount({ namespace, body: { metadata: { name } } });
  const subjects = [{ kind: 'ServiceAccount', name, namespace }];
  if (options.rules !== undefined) {
    await rbac.createNamespacedRole({ namespace, body: { metadata: { name }, rules: options.rules } });
    await rbac.createNamespacedRoleBinding({
      namespace,
      body: { metadata: { name }, roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name }, subjects },
    });
  }
  if (options.clusterRules !== undefined) {
    const clusterName = `${namespace}-${name}`;
    await rbac.createClusterRole({ body: { metadata: { name: clusterName }, rules: options.clusterRules } });
    await rbac.createClusterRoleBinding({
      body: {
        metadata: { name: clusterName },
        roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: clusterName },
        subjects,
      },
    });
  }
  // Kubernetes 1.20: the token controller writes a kubernetes.io/service-account-token secret for the account.
  const token = await eventually(
    `the token secret of service account ${namespace}/${name}`,
    async () => {
      const secrets = await core.listNamespacedSecret({ namespace });
      const secret = secrets.items.find(
        (s) => s.type === 'kubernetes.io/service-account-token' && s.metadata?.annotations?.['kubernetes.io/service-account.name'] === name,
      );
      const data = secret?.data?.['token'];
      return data === undefined ? undefined : Buffer.from(data, 'base64').toString('utf8');
    },
    30_000,
  );
  const kube = ground('kube');
  const dir = join(kube.dir, 'identities');
  mkdirSync(dir, { recursive: true });
  const path = join(dir, `${namespace}-${name}.kubeconfig`);
  writeFileSync(path, tokenKubeconfig({ server: kube.server, caFile: kube.caFile, user: name, token, namespace }), { mode: 0o600 });
  return path;
}
