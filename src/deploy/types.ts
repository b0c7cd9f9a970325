import type { ServiceConfig } from '../config/load.js';
import type { ObjectResult } from '../kube/types.js';

export type DeployKind = 'deploy' | 'canary' | 'rollback' | 'promote';
export type Track = 'stable' | 'canary';

/** Who asked: the token's name and the client, which decides where errors are reported (thesis 5.3.5). */
export interface Caller {
  readonly token: string;
  readonly userAgent?: string | undefined;
}

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

export interface DeployResult {
  /** The thesis' message: `SERVICE TAG is deployed` / `SERVICE TAG is deployed as canary`. */
  readonly message: string;
  readonly service: string;
  readonly kind: DeployKind;
  readonly commit: string;
  readonly tag: string;
  readonly images: readonly DeployedImage[];
  readonly objects: readonly ObjectResult[];
  readonly durationMs: number;
}

export interface ImageTags {
  /** The image as written in the manifests (untagged). */
  readonly image: string;
  readonly tags: readonly string[];
}

/** The deploy flow behind the deploy and canary routes: resolve version → fetch → rewrite → apply → report. */
export interface DeployEngine {
  run(request: DeployRequest): Promise<DeployResult>;
  /** The registry tags of the service's untagged images at `ref` (default: the repository's default branch). */
  tags(service: ServiceConfig, ref?: string): Promise<readonly ImageTags[]>;
}
