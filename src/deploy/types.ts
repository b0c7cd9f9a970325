import type { ServiceConfig } from '../config/load.js';
import type { Caller, CanaryAnalysisResult, DeployKind, ObjectResult } from '../core/types.js';
import type { DeploymentState } from './state.js';
import type { Verdict } from './verdict.js';

export interface DeployRequest {
  readonly service: ServiceConfig;
  readonly kind: DeployKind;
  readonly commit?: string | undefined;
  readonly tag?: string | undefined;
  /**
   * The exact digests to deploy, per untagged image as written in the manifests, with `commit` and `tag` both given:
   * a promotion or a rollback to the previous version deploys the build that ran, even if its tag moved since.
   */
  readonly digests?: Readonly<Record<string, string>> | undefined;
  readonly caller: Caller;
  readonly requestId: string;
}

export interface DeployedImage {
  /** As written in the manifest. */
  readonly original: string;
  /** As applied: `image:tag@sha256:...`, or unchanged for an image that carried its own tag. */
  readonly applied: string;
}

/** The newer request of a burst that ran in a request's place (deployer.ts), and the version it deployed. */
export interface SupersededBy {
  readonly requestId: string;
  readonly commit: string;
  readonly tag: string;
}

export interface DeployResult {
  /** The thesis' message: `SERVICE TAG is deployed` / `SERVICE TAG is deployed as canary`. */
  readonly message: string;
  /** Set when a newer deploy of the service ran in this request's place and its commit contains this request's. */
  readonly supersededBy?: SupersededBy | undefined;
  readonly service: string;
  readonly kind: DeployKind;
  readonly commit: string;
  readonly tag: string;
  readonly images: readonly DeployedImage[];
  readonly objects: readonly ObjectResult[];
  readonly durationMs: number;
}

/** A deploy as the pipeline answers it, with the request that ran it. */
export interface DeployRun extends DeployResult {
  readonly requestId: string;
}

export interface ImageTags {
  /** The image as written in the manifests (untagged). */
  readonly image: string;
  readonly tags: readonly string[];
}

export interface RollbackRequest {
  readonly service: ServiceConfig;
  /** With commit and/or tag: deploy that version as stable (the thesis' rollback message). */
  readonly commit?: string | undefined;
  readonly tag?: string | undefined;
  /** `previous`: deploy the recorded last-known-good stable version (after a bad promotion). */
  readonly to?: 'previous' | undefined;
  /**
   * Whether the caller may deploy (the `deploy` scope). Without it a rollback may only remove the canary, redeploy
   * the running stable version or the recorded previous one; any other version is refused (403).
   */
  readonly mayDeploy: boolean;
  readonly caller: Caller;
  readonly requestId: string;
}

export interface PromoteRequest {
  readonly service: ServiceConfig;
  /** Refuse (409) while the canary is younger. */
  readonly minAgeSeconds?: number | undefined;
  /**
   * Compare the canary with stable first (the service's `requireAnalysis`, or the request's `analysis=true`) and
   * refuse (409, the figures in the answer) when it served too few requests or regresses.
   */
  readonly analysis?: boolean | undefined;
  readonly caller: Caller;
  readonly requestId: string;
}

export type FlowOutcome = 'rolled-back' | 'promoted' | 'nothing-to-roll-back';

export interface FlowResult {
  readonly message: string;
  readonly service: string;
  readonly kind: 'rollback' | 'promote';
  readonly outcome: FlowOutcome;
  /** The stable version that runs afterwards (the one deployed, if one was); absent when no stable version runs. */
  readonly commit?: string | undefined;
  readonly tag?: string | undefined;
  /** The canary version that was removed, if one was. */
  readonly canary?: { readonly tag: string; readonly commit: string } | undefined;
  /** A gated promotion's evidence: the canary's and stable's figures, and the verdict. */
  readonly analysis?: CanaryAnalysisResult | undefined;
  readonly images: readonly DeployedImage[];
  readonly objects: readonly ObjectResult[];
  readonly durationMs: number;
}

/**
 * The deployer as the HTTP API uses it (src/deploy/deployer.ts implements it; HTTP tests give a small fake): the
 * thesis' deploy and canary, the used-by flows (rollback, promote), the live state, the rollout verdict and tags.
 */
export interface DeployService {
  /** A deploy or canary; an identical request in flight is joined. */
  deploy(request: DeployRequest): Promise<DeployResult>;
  rollback(request: RollbackRequest): Promise<FlowResult>;
  promote(request: PromoteRequest): Promise<FlowResult>;
  /** The service's Deployments as they run: stable and canary version, replicas, canary age, last-known-good. */
  state(service: ServiceConfig): Promise<DeploymentState[]>;
  /** The registry tags of the service's untagged images at `ref` (default: the repository's default branch). */
  tags(service: ServiceConfig, ref?: string): Promise<readonly ImageTags[]>;
  /** Waits for the rollout of the Deployments a deploy applied; see verdict.ts. Stops early once `signal` aborts (the caller left). */
  verdict(service: string, objects: readonly ObjectResult[], timeoutMs: number, signal?: AbortSignal): Promise<Verdict>;
}
