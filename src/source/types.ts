import type { ServiceConfig } from '../config/load.js';

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
}
