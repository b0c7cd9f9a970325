import { z } from 'zod';
import type { FlowResult as ServerFlowResult } from '../deploy/types.js';
import type { DeployResult as ServerDeployResult } from '../deploy/types.js';
import type { ErrorBody as ServerErrorBody } from '../http/errors.js';
import type { DEFAULT_WAIT_SECONDS, WithVerdict } from '../http/flow-routes.js';
import type { ServiceStateView as ServerServiceStateView, TagsView as ServerTagsView } from '../http/routes.js';
import type { ServiceList as ServerServiceList, ServiceView as ServerServiceView, VersionView as ServerVersionView } from '../http/views.js';

/**
 * What depctl reads of the deployer's answers: only the fields it prints, so that a newer server with more fields
 * still works with an older depctl. Enumerations the server may grow (kinds, actions, credential kinds) are plain
 * strings here for the same reason. The type-only imports above are erased at build time: depctl never loads server
 * code, but `tsc` fails below when a server view stops fitting its schema.
 */

export const ServiceList = z.object({ services: z.array(z.string()) });
export type ServiceList = z.infer<typeof ServiceList>;

export const VersionView = z.object({ name: z.string(), version: z.string() });
export type VersionView = z.infer<typeof VersionView>;

const LiveVersion = z.object({
  tag: z.string(),
  commit: z.string(),
  deployedBy: z.string().optional(),
  deployedAt: z.string().optional(),
});
const TrackState = z.object({
  version: LiveVersion.optional(),
  replicas: z.object({ desired: z.number(), ready: z.number() }),
});
const DeploymentState = z.object({
  namespace: z.string(),
  name: z.string(),
  stable: TrackState.optional(),
  canary: TrackState.extend({ ageSeconds: z.number().optional() }).optional(),
  previous: LiveVersion.optional(),
});

export const ServiceView = z.object({
  name: z.string(),
  repository: z.object({
    url: z.string(),
    type: z.string(),
    defaultBranch: z.string(),
    username: z.string().optional(),
    credentials: z.array(z.string()),
  }),
  manifestsDir: z.string(),
  namespace: z.string(),
  allowNamespaces: z.array(z.string()),
  allowClusterScoped: z.boolean(),
  /** What runs, per Deployment; only from a deployer that reads the cluster. */
  deployments: z.array(DeploymentState).optional(),
});
export type ServiceView = z.infer<typeof ServiceView>;

export const TagsView = z.object({
  service: z.string(),
  ref: z.string(),
  images: z.array(z.object({ image: z.string(), tags: z.array(z.string()) })),
});
export type TagsView = z.infer<typeof TagsView>;

/** The rollout's verdict, with `wait=`: `result` success, failure or timeout. */
export const Verdict = z.object({
  result: z.string(),
  message: z.string(),
  /** Every workload waited for (Deployments, StatefulSets, DaemonSets); `kind` is missing from older deployers' answers. */
  deployments: z.array(z.object({ kind: z.string().optional(), namespace: z.string(), name: z.string(), state: z.string(), reason: z.string() })),
});
export type Verdict = z.infer<typeof Verdict>;

export const DeployResult = z.object({
  message: z.string(),
  service: z.string(),
  kind: z.string(),
  commit: z.string(),
  tag: z.string(),
  images: z.array(z.object({ original: z.string(), applied: z.string() })),
  objects: z.array(
    z.object({
      apiVersion: z.string(),
      kind: z.string(),
      namespace: z.string().optional(),
      name: z.string(),
      action: z.string(),
    }),
  ),
  durationMs: z.number(),
  verdict: Verdict.optional(),
  /** A newer deploy of a burst ran in this request's place, and its commit contains this one's. */
  supersededBy: z.object({ requestId: z.string(), commit: z.string(), tag: z.string() }).optional(),
});
export type DeployResult = z.infer<typeof DeployResult>;

/** `PUT /SERVICE/promote` and `/SERVICE/rollback`: like a deploy, but there may be no version (nothing ran). */
const TrackFigures = z.object({
  requests: z.number().nullable(),
  latencySeconds: z.number().nullable(),
  errorRatio: z.number().nullable(),
  cpuCores: z.number().nullable(),
  memoryBytes: z.number().nullable(),
});
/** A gated promotion's figures (in the answer, and in the 409 that refused it). */
export const Analysis = z.object({
  verdict: z.string(),
  message: z.string(),
  window: z.string(),
  quantile: z.number(),
  minRequests: z.number(),
  canary: TrackFigures,
  stable: TrackFigures,
  regressions: z.array(z.object({ figure: z.string(), message: z.string() })),
});
export type Analysis = z.infer<typeof Analysis>;

export const FlowResult = DeployResult.extend({
  outcome: z.string(),
  analysis: Analysis.optional(),
  commit: z.string().optional(),
  tag: z.string().optional(),
  /** The canary version that was removed. */
  canary: z.object({ tag: z.string(), commit: z.string() }).optional(),
});
export type FlowResult = z.infer<typeof FlowResult>;

/** One object the apiserver (or the deployer's own checks) refused; `failures` of a 422. */
const ObjectFailure = z.object({ kind: z.string(), namespace: z.string().optional(), name: z.string(), reason: z.string() });

/** Every error answer of the deployer: `{ error, ...detail }`; detail fields depctl does not know are kept. */
export const ErrorBody = z.looseObject({
  error: z.string(),
  field: z.string().optional(),
  requestId: z.string().optional(),
  system: z.string().optional(),
  failures: z.array(ObjectFailure).optional(),
  /** A failed rollout (422 of `wait=`) carries the change's result too. */
  verdict: Verdict.optional(),
  commit: z.string().optional(),
  tag: z.string().optional(),
  /** A 409 of a deploy a newer one took the place of: that request, and what it deployed (when it did). */
  supersededBy: z.object({ requestId: z.string(), commit: z.string().optional(), tag: z.string().optional() }).optional(),
  /** A refused gated promotion: the figures it was refused on. */
  analysis: Analysis.optional(),
});
export type ErrorBody = z.infer<typeof ErrorBody>;

/** The deployer's `wait=true`: 5 minutes (schemas.ts checks at compile time that the server agrees). */
export const DEFAULT_WAIT_S = 300;

/** Compile-time only: each server view must be assignable to what depctl parses. */
type Fits<Server, Client> = [DeepMutable<Server>] extends [Client] ? true : false;
type AllTrue<T extends readonly true[]> = T;
type Same<A, B> = [A] extends [B] ? ([B] extends [A] ? true : false) : false;
type DeepMutable<T> = T extends readonly (infer U)[] ? DeepMutable<U>[] : T extends object ? { -readonly [K in keyof T]: DeepMutable<T[K]> } : T;
export type _ServerViewsFit = AllTrue<[
  Fits<ServerServiceList, ServiceList>,
  Fits<ServerVersionView, VersionView>,
  Fits<ServerServiceView, ServiceView>,
  Fits<ServerServiceStateView, ServiceView>,
  Fits<ServerTagsView, TagsView>,
  Fits<ServerDeployResult, DeployResult>,
  Fits<ServerFlowResult, FlowResult>,
  Fits<WithVerdict<ServerDeployResult>, DeployResult>,
  Fits<WithVerdict<ServerFlowResult>, FlowResult>,
  // depctl's bare `--wait` times its own request by the deployer's default wait.
  Same<typeof DEFAULT_WAIT_SECONDS, typeof DEFAULT_WAIT_S>,
  Fits<Pick<ServerErrorBody, 'error' | 'field' | 'requestId'>, Pick<ErrorBody, 'error' | 'field' | 'requestId'>>,
]>;
