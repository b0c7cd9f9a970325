/**
 * The data every layer shares: Kubernetes objects as manifests hold them, what a deploy did, and what the
 * deployer's ports (ports.ts) take and give. Plain data only: this folder imports only config types.
 */

/** A Kubernetes object as read from a manifest (validated for these fields, the rest passed through). */
export interface KubeObject {
  apiVersion: string;
  kind: string;
  metadata: {
    name: string;
    namespace?: string | undefined;
    labels?: Record<string, string> | undefined;
    annotations?: Record<string, string> | undefined;
    [key: string]: unknown;
  };
  [key: string]: unknown;
}

/** `pruned`: deleted because the manifests no longer hold it; `replaced`: a Job deleted and created again. */
export type ObjectAction = 'created' | 'configured' | 'unchanged' | 'deleted' | 'pruned' | 'replaced';

/** Which object: enough to find and delete it (`uid`: only the object seen, not one created again since). */
export interface ObjectRef {
  readonly apiVersion: string;
  readonly kind: string;
  readonly namespace?: string | undefined;
  readonly name: string;
  readonly uid?: string | undefined;
}

/** An object found by its labels, with what says who deployed it. */
export interface LabelledObject extends ObjectRef {
  readonly uid: string;
  readonly labels: Readonly<Record<string, string>>;
  readonly annotations: Readonly<Record<string, string>>;
  /** Whether a controller owns it (ownerReferences): made by a Deployment, a CronJob, never by a deploy. */
  readonly controlled: boolean;
}

export interface ObjectResult {
  readonly apiVersion: string;
  readonly kind: string;
  readonly namespace?: string | undefined;
  readonly name: string;
  readonly action: ObjectAction;
}

/** One object the apiserver (or the deployer's own checks) refused. */
export interface ObjectFailure {
  readonly kind: string;
  readonly namespace?: string | undefined;
  readonly name: string;
  readonly reason: string;
}

export type DeployKind = 'deploy' | 'canary' | 'rollback' | 'promote';
export type Track = 'stable' | 'canary';

/** Who asked: the token's name and the client, which decides where errors are reported (thesis 5.3.5). */
export interface Caller {
  readonly token: string;
  readonly userAgent?: string | undefined;
  /**
   * Who runs the client, as the client claims it (depctl's `Executor` header: the OS user or git's user.email),
   * cleaned and bounded. Recorded, never trusted: the token is the authority.
   */
  readonly executor?: string | undefined;
}

export type DeployOutcome = 'success' | 'failure';

/** What the deployer knows about one finished deploy, canary, rollback or promote; the facts of every report. */
export interface DeployEvent {
  readonly service: string;
  readonly kind: DeployKind;
  readonly commit?: string | undefined;
  readonly tag?: string | undefined;
  readonly result: DeployOutcome;
  readonly durationMs: number;
  /** The commit's author, as git (or svn) names them. */
  readonly author?: string | undefined;
  /** Lines added and removed since the version that ran before, when the source could tell. */
  readonly insertions?: number | undefined;
  readonly deletions?: number | undefined;
  readonly caller: Caller;
  readonly requestId: string;
  /** ISO 8601: when the deployed commit was made (its commit facts), for the lead time of a stable deploy. */
  readonly committedAt?: string | undefined;
  /**
   * ISO 8601, on a rollback: since when the version it removed or replaced ran (the bad canary's or stable's
   * deploy time), for the time to restore.
   */
  readonly failingSince?: string | undefined;
  /**
   * A rollback or promote: the canary it removed, if one ran, and whether it deployed a stable version (`commit` and
   * `tag` are then that version, else the removed canary's). For reports that track stable and canary apart (GitHub).
   */
  readonly flow?: { readonly removedCanary?: { readonly commit: string; readonly tag: string } | undefined; readonly deployedStable: boolean } | undefined;
  /** A gated promotion's evidence (promoted or refused): the canary's and stable's figures and the verdict. */
  readonly analysis?: CanaryAnalysisResult | undefined;
  /** On failure: what the caller was answered (the error's class, its safe message and the HTTP status). */
  readonly error?: { readonly name: string; readonly message: string; readonly status: number } | undefined;
}

/** A file of a service's manifests directory at one version; `path` is relative to the repository root. */
export interface ManifestFile {
  readonly path: string;
  readonly content: Buffer;
}

/** Facts about one commit (or svn revision) for the event log. */
export interface CommitFacts {
  /** Full SHA (git) or revision number (svn). */
  readonly commit: string;
  readonly author: string;
  /** ISO 8601. */
  readonly date: string;
  /** Lines added and removed against the first parent (svn: the previous revision). */
  readonly insertions: number;
  readonly deletions: number;
}

/** A parsed image reference: `registry/repository[:tag][@digest]`, Docker Hub defaults made explicit. */
export interface ImageRef {
  /** Host with port where given; `docker.io` for Docker Hub (its API is at registry-1.docker.io). */
  readonly registry: string;
  /** Path in the registry; `library/` prefixed for official Docker Hub images. */
  readonly repository: string;
  readonly tag?: string | undefined;
  /** `sha256:...` */
  readonly digest?: string | undefined;
  /** The reference as written in the manifest. */
  readonly original: string;
}

export interface DeploymentCondition {
  readonly type: string;
  readonly status: string;
  readonly reason?: string | undefined;
  readonly message?: string | undefined;
}

/** What the deployer reads of every workload: where it is, which pods are its, and which spec generation is live. */
export interface LiveWorkload {
  readonly namespace: string;
  readonly name: string;
  readonly uid: string;
  readonly generation: number;
  readonly selector: Readonly<Record<string, string>>;
}

/** A Deployment as the deployer reads it. */
export interface LiveDeployment extends LiveWorkload {
  readonly createdAt?: string | undefined;
  readonly labels: Readonly<Record<string, string>>;
  readonly annotations: Readonly<Record<string, string>>;
  /** The pod template's labels (read where a decision needs them: the original deployer's canaries). */
  readonly podLabels?: Readonly<Record<string, string>> | undefined;
  /** The images of the pod template's containers and init containers, as applied. */
  readonly images: readonly string[];
  readonly replicas: Replicas;
  readonly status: {
    readonly observedGeneration: number;
    readonly conditions: readonly DeploymentCondition[];
  };
}

/** A Deployment's replica counts, as `GET /:service` and the rollout verdict show them. */
export interface Replicas {
  /** `spec.replicas` (1 when unset, as the apiserver defaults it). */
  readonly desired: number;
  readonly ready: number;
  readonly updated: number;
  readonly available: number;
  /** Pods of every revision (`status.replicas`): more than desired while a rollout replaces old pods. */
  readonly total: number;
}

/** How a StatefulSet or DaemonSet replaces its pods: `OnDelete` only when someone deletes them. */
export interface UpdateStrategy {
  readonly type: 'RollingUpdate' | 'OnDelete';
  /** StatefulSet RollingUpdate: pods with an ordinal below it keep the old revision (0 when unset). */
  readonly partition?: number | undefined;
}

/** A StatefulSet as the rollout verdict reads it (the fields `kubectl rollout status` reads). */
export interface LiveStatefulSet extends LiveWorkload {
  /** `spec.replicas` (1 when unset). */
  readonly desired: number;
  readonly updateStrategy: UpdateStrategy;
  readonly status: {
    readonly observedGeneration: number;
    readonly ready: number;
    readonly current: number;
    readonly updated: number;
    readonly currentRevision?: string | undefined;
    /** The ControllerRevision of the current template; its pods carry it as `controller-revision-hash`. */
    readonly updateRevision?: string | undefined;
  };
}

/** A DaemonSet as the rollout verdict reads it. */
export interface LiveDaemonSet extends LiveWorkload {
  /** Its template's generation (annotation `deprecated.daemonset.template.generation`): the label of its new pods. */
  readonly templateGeneration?: string | undefined;
  readonly updateStrategy: UpdateStrategy;
  readonly status: {
    readonly observedGeneration: number;
    /** Nodes that should run a pod of it. */
    readonly desired: number;
    readonly updated: number;
    readonly available: number;
    readonly ready: number;
  };
}

export interface LiveReplicaSet {
  readonly name: string;
  readonly uid: string;
  readonly ownerUids: readonly string[];
  readonly annotations: Readonly<Record<string, string>>;
  readonly labels: Readonly<Record<string, string>>;
  readonly desired: number;
}

export interface LiveContainer {
  readonly name: string;
  readonly ready: boolean;
  readonly restarts: number;
  /** Why the container waits (`CrashLoopBackOff`, `ImagePullBackOff`, `ContainerCreating`, ...), if it does. */
  readonly waiting?: string | undefined;
  readonly message?: string | undefined;
}

export interface LivePod {
  readonly name: string;
  readonly ownerUids: readonly string[];
  /** Being deleted: no longer counted. */
  readonly terminating: boolean;
  readonly containers: readonly LiveContainer[];
}

/** A coordination.k8s.io/v1 Lease as the deploy lock uses it. */
export interface LeaseRecord {
  readonly namespace: string;
  readonly name: string;
  /** Optimistic concurrency: an update names the version it read and fails (conflict) if the Lease changed since. */
  readonly resourceVersion: string;
  readonly holder?: string | undefined;
  readonly durationSeconds?: number | undefined;
  readonly acquireTime?: Date | undefined;
  readonly renewTime?: Date | undefined;
  readonly transitions: number;
}

/** What a holder writes. */
export interface LeaseSpec {
  readonly holder: string | undefined;
  readonly durationSeconds: number;
  readonly acquireTime: Date | undefined;
  readonly renewTime: Date | undefined;
  readonly transitions: number;
}

/** One figure of a track over the analysis window; null where Prometheus has none (no series, or no traffic). */
export interface TrackFigures {
  readonly requests: number | null;
  readonly latencySeconds: number | null;
  readonly errorRatio: number | null;
  readonly cpuCores: number | null;
  readonly memoryBytes: number | null;
}

/** A comparison the canary failed: its figure, stable's, and the most the canary may exceed stable by. */
export interface Regression {
  readonly figure: 'latency' | 'errorRatio' | 'cpu' | 'memory';
  readonly canary: number;
  readonly stable: number;
  readonly threshold: number;
  readonly message: string;
}

/**
 * The canary compared with stable over the same window (thesis 4.2.4, 5.5). `insufficient-data` is no verdict: it
 * never passes as healthy.
 */
export interface CanaryAnalysisResult {
  readonly verdict: 'pass' | 'regression' | 'insufficient-data';
  readonly message: string;
  readonly window: string;
  readonly quantile: number;
  readonly minRequests: number;
  readonly canary: TrackFigures;
  readonly stable: TrackFigures;
  readonly regressions: readonly Regression[];
}

/** A batch/v1 Job as its verdict reads it (src/deploy/job-status.ts). */
export interface LiveJob {
  readonly namespace: string;
  readonly name: string;
  readonly uid: string;
  readonly annotations: Readonly<Record<string, string>>;
  /** `spec.completions`; undefined for a work-queue Job (done when one pod succeeded and none is active). */
  readonly completions?: number | undefined;
  /** `spec.backoffLimit` (the apiserver defaults it to 6). */
  readonly backoffLimit: number;
  readonly active: number;
  readonly succeeded: number;
  readonly failed: number;
  /** `status.conditions`: `Complete` or `Failed` (with its reason, e.g. BackoffLimitExceeded) once it ended. */
  readonly conditions: readonly DeploymentCondition[];
  /** Being deleted. */
  readonly terminating: boolean;
}

/** The last lines one container of a Job's pod wrote (read through pods/log, bounded). */
export interface PodLogTail {
  readonly pod: string;
  readonly container: string;
  /** The lines, or why they could not be read (the pod is gone, pods/log is not granted). */
  readonly lines?: readonly string[] | undefined;
  readonly unavailable?: string | undefined;
}
