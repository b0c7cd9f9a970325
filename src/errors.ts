/**
 * The few error classes of the deployer (STYLE.md habit 5). Adapters translate vendor failures into these;
 * one handler in src/http maps them to HTTP status codes. `detail` is safe to show to the caller.
 */
export type ErrorDetail = Record<string, unknown>;

export class DeployerError extends Error {
  readonly status: number = 500;
  readonly detail: ErrorDetail | undefined;

  constructor(message: string, options?: { cause?: unknown; detail?: ErrorDetail }) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.name = new.target.name;
    this.detail = options?.detail;
  }
}

/** 400: the request is wrong; `field` names the input at fault. */
export class InputError extends DeployerError {
  override readonly status = 400;
  readonly field: string | undefined;

  constructor(message: string, options?: { field?: string; cause?: unknown; detail?: ErrorDetail }) {
    super(message, options);
    this.field = options?.field;
  }
}

/** 401 (no or wrong credentials) or 403 (a known token outside its scope). */
export class AuthError extends DeployerError {
  override readonly status: 401 | 403;

  constructor(status: 401 | 403, message: string, options?: { detail?: ErrorDetail }) {
    super(message, options);
    this.status = status;
  }
}

export class NotFoundError extends DeployerError {
  override readonly status = 404;
}

/** 409: the request conflicts with the current state (a deploy of the service is running, no canary to promote). */
export class ConflictError extends DeployerError {
  override readonly status = 409;
}

/**
 * 409: another request of the service holds its deploy lock (this process's queue or the Lease). A monitor hook
 * answers it 503 instead, so that Alertmanager sends the notification again.
 */
export class BusyError extends ConflictError {}

/** 503 with Retry-After: the deployer has no room for the request now (too many callers waiting for rollouts). */
export class UnavailableError extends DeployerError {
  override readonly status = 503;
  readonly retryAfterSeconds: number;

  constructor(message: string, options: { retryAfterSeconds: number; detail?: ErrorDetail }) {
    super(message, options);
    this.retryAfterSeconds = options.retryAfterSeconds;
  }
}

/**
 * 504: a deploy held the service's lock longer than its limit (`deploy.maxLockSeconds`); the steps after it did not
 * run.
 */
export class TimeLimitError extends DeployerError {
  override readonly status = 504;
}

/** 413: the request body is too large. */
export class PayloadTooLargeError extends DeployerError {
  override readonly status = 413;
}

/** 422: the manifests are invalid (parse errors, refused objects, apiserver dry-run failures). */
export class ManifestError extends DeployerError {
  override readonly status = 422;
}

/** 502: an outside system (git, registry, apiserver) failed or answered something unusable. */
export class UpstreamError extends DeployerError {
  override readonly status: number = 502;
  readonly system: 'git' | 'svn' | 'registry' | 'kubernetes' | 'notifier' | 'prometheus';

  constructor(
    system: UpstreamError['system'],
    message: string,
    options?: { cause?: unknown; detail?: ErrorDetail; status?: 502 | 503 | 504 },
  ) {
    super(message, options);
    this.system = system;
    if (options?.status !== undefined) this.status = options.status;
  }
}
