import type { ServiceConfig } from '../config/load.js';
import type {
  CommitFacts,
  DeployEvent,
  ImageRef,
  LabelledObject,
  KubeObject,
  LeaseRecord,
  LeaseSpec,
  LiveDaemonSet,
  LiveDeployment,
  LiveJob,
  LivePod,
  PodLogTail,
  LiveReplicaSet,
  LiveStatefulSet,
  ManifestFile,
  ObjectAction,
  ObjectFailure,
  ObjectRef,
  ObjectResult,
  CanaryAnalysisResult,
} from './types.js';

/**
 * The ports: what the deploy domain (src/deploy) needs of the outside world, named for the domain's needs, not for
 * the vendors' APIs (STYLE.md habit 2). The adapters (src/source, src/registry, src/kube, src/report) implement them;
 * src/wire.ts builds each adapter once and hands them in. Tests give small fakes of them.
 */

/** Who asks: a deploy (the default) or a read (`GET /:service/tags`, completion), whose fetches wait behind deploys'. */
export interface ReadOptions {
  /**
   * 'read': fetches this call needs go after every waiting deploy's, join identical ones, and wait a bounded time
   * (a 503 `UpstreamError` beyond it). Default 'deploy'.
   */
  readonly purpose?: 'deploy' | 'read' | undefined;
}

/**
 * A service's version control system, read through a per-pod cache (thesis 5.3.3).
 * Errors: `NotFoundError` for an unknown commit/branch/revision, `InputError` for a malformed reference,
 * `UpstreamError` ('git' | 'svn') when the remote fails or times out and the answer is not cached.
 */
export interface Source {
  /**
   * The full version id (40-hex SHA, or svn revision number as a string) of `ref`: a full or short SHA, a branch
   * name, or an svn revision. Fetches only when the commit is not cached; a branch name always fetches the branch.
   */
  resolve(service: ServiceConfig, ref: string, options?: ReadOptions): Promise<string>;
  /** Every file below the service's `manifestsDir` at `commit` (a full id from `resolve`), read without a checkout. */
  filesAt(service: ServiceConfig, commit: string, options?: ReadOptions): Promise<ManifestFile[]>;
  commitFacts(service: ServiceConfig, commit: string): Promise<CommitFacts>;
  /**
   * Whether `commit` (a full id) contains the change `ref` names — `ref` is `commit` or one of its ancestors —
   * judged from the cache alone, without fetching: a ref the cache does not know is not contained.
   */
  contains(service: ServiceConfig, ref: string, commit: string): Promise<boolean>;
}

/**
 * A Docker Registry HTTP API v2 client.
 * Errors: `UpstreamError('registry')` for 401/403 ("registry denied access to IMAGE"), 5xx and timeouts;
 * `NotFoundError` for an unknown repository.
 */
export interface Registry {
  /** Every tag of the image's repository, following `Link` pagination. */
  tags(image: ImageRef): Promise<string[]>;
  /** The manifest digest of `image:tag`, or undefined when the tag does not exist. */
  digestOf(image: ImageRef, tag: string): Promise<string | undefined>;
}

/** What a deploy writes to the cluster. */
export interface Cluster {
  /** Whether a kind is namespaced; undefined for a kind the cluster does not serve. */
  scopeOf(apiVersion: string, kind: string): Promise<{ readonly namespaced: boolean } | undefined>;
  /** The value of annotation `key` on each object's live counterpart (undefined: none, or not annotated). */
  liveAnnotations(objects: KubeObject[], key: string): Promise<(string | undefined)[]>;
  /** Every object the apiserver would refuse, with its reason; empty when all would apply. */
  dryRun(objects: KubeObject[]): Promise<ObjectFailure[]>;
  /** Applies in the order given; consecutive objects of one `tierOf` value may go at once (none needs another). */
  apply(objects: KubeObject[], tierOf?: (object: KubeObject) => number): Promise<ObjectResult[]>;
  deleteDeployments(namespace: string, names: string[]): Promise<ObjectResult[]>;
  /** Objects of a kind with the labels (`labelSelector`), in `namespace` for a namespaced kind; [] for a kind not served. */
  listLabelled(apiVersion: string, kind: string, namespace: string | undefined, labelSelector: string): Promise<LabelledObject[]>;
  /** Deletes the objects (dry-run: checks only); those already gone are left out of the result. */
  deleteObjects(
    objects: readonly ObjectRef[],
    options: { readonly dryRun: boolean; readonly propagation: 'Background' | 'Foreground'; readonly action: ObjectAction },
  ): Promise<ObjectResult[]>;
  /** The apiVersions of `apiVersion`'s group in which the cluster serves `kind` (empty: none, or no such group). */
  servedVersions(apiVersion: string, kind: string): Promise<string[]>;
  /** Resolves once the object no longer exists; `UpstreamError` (504) after `timeoutMs`. */
  waitGone(object: ObjectRef, timeoutMs: number): Promise<void>;
}

/** What the flows read of the cluster. */
export interface LiveReader {
  getDeployment(namespace: string, name: string): Promise<LiveDeployment | undefined>;
  listDeployments(namespace: string, labelSelector: string): Promise<LiveDeployment[]>;
  listReplicaSets(namespace: string, labelSelector: string): Promise<LiveReplicaSet[]>;
  listPods(namespace: string, labelSelector: string): Promise<LivePod[]>;
  getStatefulSet(namespace: string, name: string): Promise<LiveStatefulSet | undefined>;
  getDaemonSet(namespace: string, name: string): Promise<LiveDaemonSet | undefined>;
  getJob(namespace: string, name: string): Promise<LiveJob | undefined>;
  /**
   * The last `tailLines` lines (at most `limitBytes` each) of every container of the Job's newest `maxPods` pods, the
   * previous run's where a container restarted; a pod or log that cannot be read says why instead of failing.
   */
  jobLogs(job: LiveJob, limits: { readonly maxPods: number; readonly tailLines: number; readonly limitBytes: number }): Promise<PodLogTail[]>;
}

/** The Lease operations of the deploy lock; `'conflict'` when someone else created or changed the Lease first. */
export interface LeaseStore {
  get(namespace: string, name: string): Promise<LeaseRecord | undefined>;
  create(namespace: string, name: string, spec: LeaseSpec): Promise<LeaseRecord | 'conflict'>;
  update(record: LeaseRecord, spec: LeaseSpec): Promise<LeaseRecord | 'conflict'>;
}

/** The readiness probe's check of the apiserver: resolves when it answers and is ready. */
export interface Pinger {
  ping(): Promise<void>;
}

/**
 * Tells people about deploys (thesis 5.3.5): errors of non-depctl callers go to the error report system and chat.
 * Neither method ever rejects: a notifier that fails is logged, never the reason a deploy fails.
 */
export interface Notifier {
  deployFailed(event: DeployEvent, error: Error): Promise<void>;
  deploySucceeded(event: DeployEvent): Promise<void>;
}

/**
 * Every report of a finished deploy, canary, rollback or promote, in one place: the event log line, the metrics and
 * the notifiers. `started` counts a deploy in flight until the function it returns is called.
 */
export interface Reporter {
  started(): () => void;
  succeeded(event: DeployEvent): void;
  /** `notify: false` for an outcome that is the state of things (a young canary), not a failure worth an alarm. */
  failed(event: DeployEvent, error: Error, options?: { readonly notify?: boolean }): void;
}

/**
 * The metrics system a gated promotion asks (Prometheus, src/prometheus). Errors: `UpstreamError('prometheus')`,
 * 503 when it cannot be reached or timed out, 502 when its answer is unusable.
 */
export interface CanaryAnalysis {
  analyse(service: ServiceConfig): Promise<CanaryAnalysisResult>;
}
