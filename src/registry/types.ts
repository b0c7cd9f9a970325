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
