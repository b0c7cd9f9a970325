import { z } from 'zod';
import { UpstreamError } from '../errors.js';
import { refusal, type RequestContext } from './failures.js';
import { Conditions, Labels, ObjectMeta } from './schemas.js';
import { KUBE_ANSWER_LIMITS, type KubeTransport } from './transport.js';
import { getDaemonSet, getStatefulSet } from './live-workloads.js';
import type { LiveDaemonSet, LiveDeployment, LivePod, LiveReplicaSet, LiveStatefulSet } from '../core/types.js';
import type { LiveReader } from '../core/ports.js';

/**
 * Reads of the cluster's live state, for what the deployer shows and decides from it: the service's Deployments
 * (their version annotations and rollout status), and the replica sets and pods of a rollout in progress. The
 * deployer stores nothing itself; the annotations its rewrite writes are its memory.
 */

const Meta = ObjectMeta;
const Containers = z.array(z.looseObject({ name: z.string(), image: z.string().optional() })).optional();

const DeploymentItem = z.looseObject({
  metadata: Meta,
  spec: z
    .looseObject({
      replicas: z.number().optional(),
      selector: z.looseObject({ matchLabels: Labels.optional() }).optional(),
      template: z
        .looseObject({
          metadata: z.looseObject({ labels: Labels.optional() }).optional(),
          spec: z.looseObject({ containers: Containers, initContainers: Containers }).optional(),
        })
        .optional(),
    })
    .optional(),
  status: z
    .looseObject({
      observedGeneration: z.number().optional(),
      replicas: z.number().optional(),
      updatedReplicas: z.number().optional(),
      readyReplicas: z.number().optional(),
      availableReplicas: z.number().optional(),
      conditions: Conditions,
    })
    .optional(),
});

const ReplicaSetItem = z.looseObject({
  metadata: Meta,
  spec: z.looseObject({ replicas: z.number().optional() }).optional(),
});

const ContainerStatus = z.looseObject({
  name: z.string(),
  ready: z.boolean().optional(),
  restartCount: z.number().optional(),
  state: z
    .looseObject({ waiting: z.looseObject({ reason: z.string().optional(), message: z.string().optional() }).optional() })
    .optional(),
});
const PodItem = z.looseObject({
  metadata: Meta,
  status: z
    .looseObject({
      phase: z.string().optional(),
      containerStatuses: z.array(ContainerStatus).optional(),
      initContainerStatuses: z.array(ContainerStatus).optional(),
    })
    .optional(),
});

const List = <T extends z.ZodType>(item: T) =>
  z.object({ items: z.array(item), metadata: z.object({ continue: z.string().optional() }).optional() });

export interface KubeLiveOptions {
  transport: KubeTransport;
}

/** The live-state reads over the apiserver's REST API (see KubeClient for writes). */
export class KubeLive implements Omit<LiveReader, 'getJob' | 'jobLogs'> {
  readonly #transport: KubeTransport;

  constructor(options: KubeLiveOptions) {
    this.#transport = options.transport;
  }

  async getDeployment(namespace: string, name: string): Promise<LiveDeployment | undefined> {
    const context: RequestContext = { verb: 'get', resource: 'deployments', group: 'apps', namespace, name };
    const res = await this.#transport.send({ method: 'GET', path: `${appsPath(namespace, 'deployments')}/${encodeURIComponent(name)}` });
    if (res.status === 404) return undefined;
    if (res.status !== 200) throw refusal(res, context);
    const parsed = DeploymentItem.safeParse(res.body);
    if (!parsed.success) throw unexpected(`deployment ${namespace}/${name}`, parsed.error);
    return deploymentOf(parsed.data, namespace);
  }

  async listDeployments(namespace: string, labelSelector: string): Promise<LiveDeployment[]> {
    const items = await this.#list('apps', 'deployments', namespace, DeploymentItem, labelSelector);
    return items.map((d) => deploymentOf(d, namespace));
  }

  async listReplicaSets(namespace: string, labelSelector: string): Promise<LiveReplicaSet[]> {
    const items = await this.#list('apps', 'replicasets', namespace, ReplicaSetItem, labelSelector);
    return items.map((rs) => ({
      name: rs.metadata.name,
      uid: rs.metadata.uid ?? '',
      ownerUids: (rs.metadata.ownerReferences ?? []).map((o) => o.uid),
      annotations: rs.metadata.annotations ?? {},
      labels: rs.metadata.labels ?? {},
      desired: rs.spec?.replicas ?? 1,
    }));
  }

  async listPods(namespace: string, labelSelector: string): Promise<LivePod[]> {
    const items = await this.#list('', 'pods', namespace, PodItem, labelSelector);
    return items.map((p) => ({
      name: p.metadata.name,
      ownerUids: (p.metadata.ownerReferences ?? []).map((o) => o.uid),
      terminating: p.metadata.deletionTimestamp !== undefined,
      containers: [...(p.status?.initContainerStatuses ?? []), ...(p.status?.containerStatuses ?? [])].map((c) => ({
        name: c.name,
        ready: c.ready ?? false,
        restarts: c.restartCount ?? 0,
        waiting: c.state?.waiting?.reason,
        message: c.state?.waiting?.message,
      })),
    }));
  }

  getStatefulSet(namespace: string, name: string): Promise<LiveStatefulSet | undefined> {
    return getStatefulSet(this.#transport, namespace, name);
  }

  getDaemonSet(namespace: string, name: string): Promise<LiveDaemonSet | undefined> {
    return getDaemonSet(this.#transport, namespace, name);
  }

  /** Every item of a namespaced resource matching `labelSelector`, page by page; `group` '' is the core group. */
  async #list<T extends z.ZodType>(group: string, resource: string, namespace: string, item: T, labelSelector: string): Promise<z.output<T>[]> {
    const path = `${group === '' ? '/api/v1' : `/apis/${group}/v1`}/namespaces/${encodeURIComponent(namespace)}/${resource}`;
    const context: RequestContext = { verb: 'list', resource, group: group === '' ? undefined : group, namespace };
    const schema = List(item);
    const out: z.output<T>[] = [];
    let next: string | undefined;
    let bytes = 0;
    do {
      const res = await this.#transport.send({ method: 'GET', path, query: { labelSelector, limit: '250', continue: next } });
      if (res.status !== 200) throw refusal(res, context);
      bytes += res.bytes;
      if (bytes > KUBE_ANSWER_LIMITS.list) {
        throw new UpstreamError(
          'kubernetes',
          `the Kubernetes apiserver at ${this.#transport.server} listed more than ${KUBE_ANSWER_LIMITS.list / 1024 / 1024} MiB of ${resource} in namespace ${namespace} (${labelSelector})`,
          { detail: { limitBytes: KUBE_ANSWER_LIMITS.list } },
        );
      }
      const list = schema.safeParse(res.body);
      if (!list.success) throw unexpected(`the list of ${context.resource} in ${context.namespace ?? ''}`, list.error);
      out.push(...(list.data.items as z.output<T>[]));
      next = list.data.metadata?.continue || undefined;
    } while (next !== undefined);
    return out;
  }
}

function appsPath(namespace: string, resource: string): string {
  return `/apis/apps/v1/namespaces/${encodeURIComponent(namespace)}/${resource}`;
}

function deploymentOf(d: z.output<typeof DeploymentItem>, namespace: string): LiveDeployment {
  const pod = d.spec?.template?.spec;
  const images = [...(pod?.initContainers ?? []), ...(pod?.containers ?? [])]
    .map((c) => c.image)
    .filter((i): i is string => i !== undefined);
  const s = d.status;
  return {
    namespace: d.metadata.namespace ?? namespace,
    name: d.metadata.name,
    uid: d.metadata.uid ?? '',
    generation: d.metadata.generation ?? 0,
    createdAt: d.metadata.creationTimestamp,
    labels: d.metadata.labels ?? {},
    annotations: d.metadata.annotations ?? {},
    selector: d.spec?.selector?.matchLabels ?? {},
    podLabels: d.spec?.template?.metadata?.labels ?? {},
    images,
    replicas: {
      desired: d.spec?.replicas ?? 1,
      ready: s?.readyReplicas ?? 0,
      updated: s?.updatedReplicas ?? 0,
      available: s?.availableReplicas ?? 0,
      total: s?.replicas ?? 0,
    },
    status: { observedGeneration: s?.observedGeneration ?? 0, conditions: s?.conditions ?? [] },
  };
}

function unexpected(what: string, cause: unknown): UpstreamError {
  return new UpstreamError('kubernetes', `the Kubernetes apiserver answered something unexpected for ${what}`, { cause });
}
