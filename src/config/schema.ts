import { z } from 'zod';

/**
 * The configuration file's schema. Secrets are given by reference (an environment variable or a mounted file,
 * as a Kubernetes Secret would be), or inline with `value` for demos; the loader resolves them into `Secret`s.
 */
export const SecretRef = z.union(
  [
    z.strictObject({ env: z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*$/, 'an environment variable name') }),
    z.strictObject({ file: z.string().min(1) }),
    z.strictObject({ value: z.string().min(1) }),
  ],
  { error: 'a secret reference: { env: VARIABLE }, { file: PATH } or { value: "..." }' },
);
export type SecretRef = z.infer<typeof SecretRef>;

export const Action = z.enum(['read', 'deploy', 'canary', 'rollback', 'promote']);
export type Action = z.infer<typeof Action>;
export const ALL_ACTIONS: readonly Action[] = Action.options;

const name = z
  .string()
  .regex(/^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/, 'lower-case letters, digits and "-" (a DNS label)')
  .max(63);

export const TokenConfig = z.strictObject({
  secret: SecretRef,
  services: z.array(z.string().min(1)).min(1).default(['*']),
  actions: z.array(Action).min(1).default([...ALL_ACTIONS]),
});

export const RepositoryCredentials = z.strictObject({
  username: z.string().min(1).optional(),
  password: SecretRef.optional(),
  token: SecretRef.optional(),
  sshKey: SecretRef.optional(),
  knownHosts: SecretRef.optional(),
});

// --- Per-service notifications (issue #18 item 6) -------------------------------------------------------------------
/** Where one service's deploys are reported, over the deployer-wide `reports`. */
export const ServiceNotifications = z.strictObject({
  /** Slack for this service: its own webhook and channel, over `reports.slack`. */
  slack: z
    .strictObject({
      /** This service's incoming webhook; default: `reports.slack.webhookUrl`. */
      webhookUrl: SecretRef.optional(),
      /** `#channel` or `@user` (a legacy webhook posts there; an app's webhook posts to its own channel). */
      channel: z.string().min(1).max(80).optional(),
      /** Default: `reports.slack.notifyOnSuccess`. */
      notifyOnSuccess: z.boolean().optional(),
      /** false: no Slack message for this service at all. */
      enabled: z.boolean().default(true),
    })
    .optional(),
  /** GitHub deployments and commit statuses for a repository on GitHub or GitHub Enterprise. */
  github: z
    .strictObject({
      /** A token that may write deployments and statuses (a fine-grained token or a GitHub App's, "Deployments" and "Commit statuses": write). */
      token: SecretRef,
      /** `OWNER/NAME`; default: read from the service's repository URL. */
      repository: z
        .string()
        .regex(/^[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?\/[A-Za-z0-9._-]+$/, 'OWNER/NAME')
        .optional(),
      /** The REST API's root; default from the repository's host: api.github.com, api.SUB.ghe.com, else https://HOST/api/v3. */
      apiUrl: z.url({ protocol: /^https?$/ }).optional(),
      /** The GitHub environment of stable deploys; a canary's is `ENVIRONMENT-canary`. */
      environment: z
        .string()
        .min(1)
        .max(240)
        .regex(/^[^,;'"`<>]+$/, 'a GitHub environment name')
        .default('production'),
    })
    .optional(),
});
// --- end of per-service notifications ---------------------------------------------------------------------------------
/** A glob over paths: no absolute path, no `..`, no empty segment. */
const manifestGlob = z
  .string()
  .min(1)
  .max(256)
  .refine((g) => !g.startsWith('/') && !g.split('/').some((part) => part === '..' || part === ''), 'a glob relative to manifestsDir, as "kustomization.yaml" or "**/values-*.yaml"');
const imageGlob = z
  .string()
  .min(1)
  .max(512)
  .regex(/^[A-Za-z0-9._\-/:*?]+$/, 'an image glob, as "registry.example.com/team/**"');

export const ServiceConfig = z.strictObject({
  repository: z.strictObject({
    url: z.string().min(1),
    type: z.enum(['git', 'svn']).default('git'),
    credentials: RepositoryCredentials.optional(),
    /** The branch `GET /:service/tags` looks at when no commit is given. */
    defaultBranch: z.string().min(1).default('main'),
  }),
  manifestsDir: z
    .string()
    .min(1)
    .default('kubernetes')
    .refine((d) => !d.startsWith('/') && !d.split('/').includes('..'), 'a relative path inside the repository'),
  namespace: name.default('default'),
  /** Namespaces other than `namespace` that objects of this service may name. */
  allowNamespaces: z.array(name).default([]),
  /** Whether the service's manifests may hold cluster-scoped objects (a repository must not grant itself rights). */
  allowClusterScoped: z.boolean().default(false),
  /** Slack and GitHub for this service (issue #18 item 6). */
  notifications: ServiceNotifications.optional(),
  // ---- What the manifests directory holds and how it is deployed (optional; unset keeps the thesis' behaviour) ----
  /**
   * Globs, relative to `manifestsDir`, of YAML files below it that are no objects to apply (`kustomization.yaml`,
   * `overlays/**`): `*` and `?` stay within a path segment, `**` spans segments.
   */
  exclude: z.array(manifestGlob).max(100).optional(),
  /**
   * Globs of the images that are the service's own, as written in the manifests (`registry.example.com/team/**`):
   * only untagged images that match are versioned. Unset: every untagged image (thesis 5.3.4).
   */
  images: z.array(imageGlob).min(1).max(100).optional(),
  /** The canary's size: replicas of each `NAME-canary` Deployment (default 1, thesis 5.4). */
  canary: z.strictObject({ replicas: z.number().int().min(1).max(1000).optional() }).optional(),
  /**
   * After a successful stable deploy, delete the objects this service deployed before (by its ownership annotation)
   * that the manifests at the deployed commit no longer hold. Default false.
   */
  prune: z.boolean().optional(),
  /**
   * A Job whose pod template changed (it is immutable) is deleted with its pods and created again; without it such a
   * deploy is refused, naming the Job. Default false.
   */
  replaceJobs: z.boolean().optional(),
  /**
   * Whether a promotion needs the canary analysis (`analysis`): the canary is compared with stable in Prometheus and
   * promoted only when it served enough requests and does not regress. A request may ask for it (`analysis=true`)
   * where the service does not require it, never skip it where it does. Default false.
   */
  requireAnalysis: z.boolean().optional(),
  /** This service's own limits, over `deploy.maxObjects` and `deploy.maxLockSeconds`. */
  limits: z
    .strictObject({
      maxObjects: z.number().int().min(1).max(100_000).optional(),
      maxLockSeconds: z.number().positive().max(86_400).optional(),
    })
    .optional(),
});

export const RegistryConfig = z.strictObject({
  username: z.string().min(1).optional(),
  password: SecretRef.optional(),
  /** Use http instead of https (a registry on loopback or in the cluster). */
  insecure: z.boolean().default(false),
});

export const LogLevel = z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']);
export type LogLevel = z.infer<typeof LogLevel>;

export const FileConfig = z.strictObject({
  logLevel: LogLevel.default('info'),
  listen: z
    .strictObject({
      host: z.string().default('0.0.0.0'),
      port: z.number().int().min(0).max(65535).default(8080),
    })
    .prefault({}),
  /** Allow starting without any token: every request is then allowed. Only for demos. */
  insecureNoAuth: z.boolean().default(false),
  tokens: z.record(name, TokenConfig).default({}),
  services: z.record(name, ServiceConfig).default({}),
  /** Keyed by registry host, with port where it has one (`registry.example.com`, `127.0.0.1:5000`). */
  registries: z.record(z.string().min(1), RegistryConfig).default({}),
  cache: z.strictObject({ dir: z.string().min(1).default('/var/cache/deployer') }).prefault({}),
  versions: z
    .strictObject({
      /** How long to wait in total for CI's image tag to appear in the registry; 0 turns waiting off. */
      registryWaitSeconds: z.number().min(0).max(600).default(55),
      /** Write `image:tag@sha256:...` so a moved tag cannot change what runs. */
      pinDigests: z.boolean().default(true),
      /** Timeout of each call to git, svn or a registry. */
      remoteTimeoutSeconds: z.number().positive().max(600).default(30),
    })
    .prefault({}),
  reports: z
    .strictObject({
      bugsnag: z
        .strictObject({
          apiKey: SecretRef,
          notifyEndpoint: z.url().optional(),
          sessionsEndpoint: z.url().optional(),
          releaseStage: z.string().default('production'),
        })
        .optional(),
      slack: z
        .strictObject({
          webhookUrl: SecretRef,
          /** `#channel` or `@user` for every message (a service's `notifications.slack.channel` wins). */
          channel: z.string().min(1).max(80).optional(),
          notifyOnSuccess: z.boolean().default(false),
        })
        .optional(),
    })
    .prefault({}),
  kubernetes: z
    .strictObject({
      /** A kubeconfig file; unset means in-cluster service-account credentials, else the default kubeconfig. */
      kubeconfig: z.string().min(1).optional(),
      fieldManager: z.string().min(1).default('deployer'),
      /**
       * Where the per-service deploy locks live (coordination.k8s.io Leases `deployer-SERVICE`, held by the replica
       * that deploys); unset: the deployer's own namespace (POD_NAMESPACE, else the service account's namespace,
       * else `default`). No service's manifests may name these Leases.
       */
      leaseNamespace: name.optional(),
    })
    .prefault({}),
  deploy: z
    .strictObject({
      /** How long a request waits for a running deploy of the same service before it answers 409. */
      lockWaitSeconds: z.number().min(0).max(3600).default(120),
      /** The most objects one deploy may apply (a repository could otherwise hold the lock for an hour). */
      maxObjects: z.number().int().min(1).max(100_000).default(500),
      /**
       * The longest a deploy, rollback or promotion may hold the service's lock; no further step starts after it.
       * The default leaves room for a slow apiserver and a pre-deploy Job's wait.
       */
      maxLockSeconds: z.number().positive().max(86_400).default(900),
    })
    .prefault({}),
  /** The HTTP server's bounds against slow or too many clients (Node's http.Server options). */
  http: z
    .strictObject({
      /** The most time to receive a whole request, headers and body; then 408 and the connection is closed. */
      requestTimeoutSeconds: z.number().positive().max(3600).default(30),
      /** The most time to receive the request headers. */
      headersTimeoutSeconds: z.number().positive().max(3600).default(10),
      /** How long an idle keep-alive connection stays open (above a load balancer's idle timeout, if one is in front). */
      keepAliveTimeoutSeconds: z.number().positive().max(3600).default(5),
      /**
       * A socket silent this long is closed; 0: never. Off by default: a request waiting for a rollout (`wait=30m`)
       * is silent while it waits, and the request and header timeouts already bound slow clients.
       */
      connectionTimeoutSeconds: z.number().min(0).max(86_400).default(0),
      /** Requests one keep-alive connection may carry before it is closed; 0: no limit. */
      maxRequestsPerSocket: z.number().int().min(0).max(1_000_000).default(1000),
      /** Open connections at most; more are closed at once. */
      maxConnections: z.number().int().min(1).max(1_000_000).default(512),
      /** Requests waiting for a rollout verdict (`wait=`) at once; beyond it a request is answered 503 before it deploys. */
      maxWaits: z.number().int().min(1).max(100_000).default(64),
    })
    .prefault({}),
  /**
   * How long, after SIGTERM, the deployer waits for requests in flight (a deploy) before it exits anyway. Keep it
   * below the pod's terminationGracePeriodSeconds, so the exit is the deployer's own, logged, and not a SIGKILL.
   */
  shutdownGraceSeconds: z.number().min(0).max(3600).default(25),
  /** Monitor webhooks (`POST /hooks/alertmanager`, `POST /hooks/generic`). */
  hooks: z
    .strictObject({
      /** The alert label that names the service whose canary an alert rolls back. */
      serviceLabel: z.string().min(1).default('service'),
    })
    .prefault({}),
  /** The keys of the labels and annotations the deployer writes on what it applies (src/core/keys.ts). */
  labels: z
    .strictObject({
      /**
       * The DNS domain of the deployer's own keys (`DOMAIN/service`, `DOMAIN/tag`, ...). Objects written under the
       * keys of an earlier release (`deployer.io/...`) are still read.
       */
      domain: z
        .string()
        .max(253)
        .regex(/^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/, 'a DNS subdomain (lower-case, dots)')
        .default('deployer.internal'),
      /** The thesis' `track=stable|canary` label, which monitoring queries select on. */
      track: z
        .string()
        .regex(/^([a-z0-9]([-a-z0-9.]*[a-z0-9])?\/)?[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$/, 'a label key ([PREFIX/]NAME)')
        .default('track'),
    })
    .prefault({}),
  /**
   * The canary analysis of an evidence-gated promotion: the canary against stable over the same window, as the rules
   * of kubernetes/monitoring compare them (render both from the same thresholds).
   */
  analysis: z
    .strictObject({
      prometheus: z
        .strictObject({
          /** Prometheus' base URL (its HTTP API is below /api/v1). */
          url: z.url({ protocol: /^https?$/, error: 'an http(s) URL' }),
          timeoutSeconds: z.number().positive().max(120).default(10),
          username: z.string().min(1).optional(),
          password: SecretRef.optional(),
          bearerToken: SecretRef.optional(),
        })
        .optional(),
      /** The window of every figure, a Prometheus duration. */
      window: z.string().regex(/^[1-9][0-9]*(ms|s|m|h|d)$/, 'a Prometheus duration such as 30s, 5m or 1h').default('5m'),
      quantile: z.number().min(0.5).max(0.999).default(0.95),
      /** The canary regresses when its latency quantile is above stable's by more than this (thesis: 50 ms). */
      latencyThresholdMs: z.number().positive().max(60_000).default(50),
      /** ... or its error ratio above stable's by more than this (0.05: five percentage points). */
      errorRatioThreshold: z.number().positive().max(1).default(0.05),
      /** Fewer requests than this in the window, canary or stable, is not enough data: the promotion is refused. */
      minRequests: z.number().int().min(1).default(100),
      /** ... or its CPU per pod above stable's mean times `cpuRatio`, by more than `cpuMarginCores`. */
      cpuRatio: z.number().min(1).max(100).default(1.5),
      cpuMarginCores: z.number().min(0).default(0.05),
      memoryRatio: z.number().min(1).max(100).default(1.5),
      memoryMarginBytes: z.number().min(0).default(32 * 1024 * 1024),
      /** The applications' metrics: a request counter with a `code` label, a latency histogram in seconds. */
      metrics: z
        .strictObject({
          requests: z.string().regex(/^[a-zA-Z_:][a-zA-Z0-9_:]*$/, 'a metric name').default('http_requests_total'),
          errorCodes: z.string().min(1).default('5..'),
          latency: z.string().regex(/^[a-zA-Z_:][a-zA-Z0-9_:]*$/, 'a metric name').default('http_request_duration_seconds'),
        })
        .prefault({}),
      /** The scrape job of the pods, and the target labels that name their service and track. */
      job: z.string().min(1).default('deployer-pods'),
      serviceLabel: z.string().regex(/^[a-zA-Z_][a-zA-Z0-9_]*$/, 'a Prometheus label name').default('service'),
      trackLabel: z.string().regex(/^[a-zA-Z_][a-zA-Z0-9_]*$/, 'a Prometheus label name').default('track'),
    })
    .prefault({}),
  metrics: z
    .strictObject({
      /** Whether `GET /metrics` needs a token (any configured token); Prometheus scrapes without one by default. */
      requireToken: z.boolean().default(false),
    })
    .prefault({}),
});
export type FileConfig = z.infer<typeof FileConfig>;
