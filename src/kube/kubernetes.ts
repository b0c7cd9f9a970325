import type { Logger } from 'pino';
import type { Cluster, LeaseStore, LiveReader, Pinger } from '../core/ports.js';
import type {
  KubeObject,
  LabelledObject,
  LiveDaemonSet,
  LiveDeployment,
  LiveJob,
  ObjectRef,
  LivePod,
  LiveReplicaSet,
  LiveStatefulSet,
  ObjectFailure,
  ObjectResult,
  PodLogTail,
} from '../core/types.js';
import { KubeClient, type Scope } from './client.js';
import { refusal } from './failures.js';
import { KubeJobs } from './jobs.js';
import { KubeLeases } from './leases.js';
import { KubeLive } from './live.js';
import { KubeObjects } from './objects.js';
import { ConfigError } from '../config/load.js';
import { loadKubeAccess, type KubeAccess } from './kubeconfig.js';
import { KubeTransport } from './transport.js';

export interface KubernetesOptions {
  /** A kubeconfig file; unset means in-cluster service-account credentials, else the default kubeconfig. */
  readonly kubeconfig?: string | undefined;
  /** Server-side apply's field manager: the owner of the fields the deployer sets. */
  readonly fieldManager: string;
  readonly logger: Logger;
  /** Timeout of each apiserver request. */
  readonly timeoutMs?: number | undefined;
  /** Timeout of the readiness probe's ping, shorter than a deploy's requests. */
  readonly pingTimeoutMs?: number | undefined;
}

/**
 * The deployer's one Kubernetes adapter (thesis 5.3.4): one kubeconfig load, one transport, and every port the domain
 * needs of the cluster: writes (Cluster), reads (LiveReader), the deploy lock's Leases (`leases`) and the
 * readiness ping (Pinger). The work is done by three files by job (client.ts, live.ts, leases.ts) over the shared transport.
 */
export class Kubernetes implements Cluster, LiveReader, Pinger {
  /** The deploy lock's Leases, over the same transport. */
  readonly leases: LeaseStore;
  readonly #transport: KubeTransport;
  readonly #client: KubeClient;
  readonly #live: KubeLive;
  readonly #objects: KubeObjects;
  readonly #jobs: KubeJobs;
  readonly #pingTimeoutMs: number | undefined;

  constructor(options: KubernetesOptions) {
    this.#transport = new KubeTransport(kubeConfigOrWhyNot(options.kubeconfig), options.timeoutMs ?? 30_000);
    this.#client = new KubeClient({ transport: this.#transport, fieldManager: options.fieldManager, logger: options.logger });
    this.#live = new KubeLive({ transport: this.#transport });
    this.#objects = new KubeObjects({ transport: this.#transport, scopeOf: (v, k) => this.#client.scopeOf(v, k) });
    this.leases = new KubeLeases({ transport: this.#transport });
    this.#jobs = new KubeJobs({ transport: this.#transport });
    this.#pingTimeoutMs = options.pingTimeoutMs;
  }

  /** The apiserver's URL, for logs. */
  get server(): string {
    return this.#transport.server;
  }

  /**
   * Resolves when the apiserver answers and is ready (`GET /readyz`, which every identity may read without RBAC
   * rules); throws `UpstreamError('kubernetes')` otherwise. For the deployer's own readiness probe.
   */
  async ping(): Promise<void> {
    const res = await this.#transport.send({ method: 'GET', path: '/readyz', timeoutMs: this.#pingTimeoutMs });
    if (res.status !== 200) throw refusal(res, { verb: 'get', resource: 'readiness (/readyz)' });
  }

  scopeOf(apiVersion: string, kind: string): Promise<Scope | undefined> {
    return this.#client.scopeOf(apiVersion, kind);
  }
  liveAnnotations(objects: KubeObject[], key: string): Promise<(string | undefined)[]> {
    return this.#client.liveAnnotations(objects, key);
  }
  dryRun(objects: KubeObject[]): Promise<ObjectFailure[]> {
    return this.#client.dryRun(objects);
  }
  apply(objects: KubeObject[], tierOf?: (object: KubeObject) => number): Promise<ObjectResult[]> {
    return this.#client.apply(objects, tierOf);
  }
  deleteDeployments(namespace: string, names: string[]): Promise<ObjectResult[]> {
    return this.#client.deleteDeployments(namespace, names);
  }
  listLabelled(apiVersion: string, kind: string, namespace: string | undefined, labelSelector: string): Promise<LabelledObject[]> {
    return this.#objects.listLabelled(apiVersion, kind, namespace, labelSelector);
  }
  deleteObjects(objects: readonly ObjectRef[], options: Parameters<Cluster['deleteObjects']>[1]): Promise<ObjectResult[]> {
    return this.#objects.deleteObjects(objects, options);
  }
  servedVersions(apiVersion: string, kind: string): Promise<string[]> {
    return this.#objects.servedVersions(apiVersion, kind);
  }
  waitGone(object: ObjectRef, timeoutMs: number): Promise<void> {
    return this.#objects.waitGone(object, timeoutMs);
  }

  getDeployment(namespace: string, name: string): Promise<LiveDeployment | undefined> {
    return this.#live.getDeployment(namespace, name);
  }
  listDeployments(namespace: string, labelSelector: string): Promise<LiveDeployment[]> {
    return this.#live.listDeployments(namespace, labelSelector);
  }
  listReplicaSets(namespace: string, labelSelector: string): Promise<LiveReplicaSet[]> {
    return this.#live.listReplicaSets(namespace, labelSelector);
  }
  listPods(namespace: string, labelSelector: string): Promise<LivePod[]> {
    return this.#live.listPods(namespace, labelSelector);
  }
  getStatefulSet(namespace: string, name: string): Promise<LiveStatefulSet | undefined> {
    return this.#live.getStatefulSet(namespace, name);
  }
  getDaemonSet(namespace: string, name: string): Promise<LiveDaemonSet | undefined> {
    return this.#live.getDaemonSet(namespace, name);
  }
  getJob(namespace: string, name: string): Promise<LiveJob | undefined> {
    return this.#jobs.getJob(namespace, name);
  }
  jobLogs(job: LiveJob, limits: Parameters<LiveReader['jobLogs']>[1]): Promise<PodLogTail[]> {
    return this.#jobs.jobLogs(job, limits);
  }
}

/**
 * The kubeconfig. One named in the configuration must be readable: the start fails naming it. Without one, and with
 * none found where kubectl looks, the deployer still starts (its probes, its metrics, its answers) and every call
 * to the apiserver fails saying where it looked, as does /readyz.
 */
function kubeConfigOrWhyNot(kubeconfig: string | undefined): KubeAccess | ConfigError {
  try {
    return loadKubeAccess(kubeconfig);
  } catch (err) {
    if (kubeconfig !== undefined || !(err instanceof ConfigError)) throw err;
    return err;
  }
}
