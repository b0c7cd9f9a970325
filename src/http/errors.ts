import { AuthError, DeployerError, InputError, UnavailableError, UpstreamError } from '../errors.js';
import { REALM } from './auth.js';

/** Every error response has this shape: a human message, and safe detail fields (never a stack or a secret). */
export interface ErrorBody {
  readonly error: string;
  readonly field?: string;
  readonly requestId?: string;
  readonly [detail: string]: unknown;
}

export interface ErrorReply {
  readonly status: number;
  readonly body: ErrorBody;
  readonly headers: Readonly<Record<string, string>>;
  /** How loud to log it: a caller's mistake is routine, a 5xx needs someone to look. */
  readonly level: 'info' | 'warn' | 'error';
}

export interface ErrorContext {
  readonly requestId: string;
  readonly contentType?: string | undefined;
  readonly bodyLimit: number;
}

/** The errors Fastify raises itself while reading a request, which the caller caused and may be told about. */
function fastifyError(err: unknown): { code: string; statusCode: number; message: string } | undefined {
  if (!(err instanceof Error)) return undefined;
  const { code, statusCode } = err as Error & { code?: unknown; statusCode?: unknown };
  if (typeof code !== 'string' || !code.startsWith('FST_') || typeof statusCode !== 'number') return undefined;
  if (statusCode < 400 || statusCode >= 500) return undefined;
  return { code, statusCode, message: err.message };
}

/** The one mapping from an error to an HTTP answer (STYLE.md habit 5). */
export function toErrorReply(err: unknown, context: ErrorContext): ErrorReply {
  if (err instanceof DeployerError) {
    const status = err.status;
    // `error` comes first and cannot be overwritten by a detail field of the same name.
    const body: Record<string, unknown> = { error: err.message, ...err.detail };
    body['error'] = err.message;
    if (err instanceof InputError && err.field !== undefined) body['field'] = err.field;
    if (err instanceof UpstreamError) body['system'] = err.system;
    if (status >= 500) body['requestId'] = context.requestId;
    const headers: Record<string, string> =
      err instanceof AuthError && err.status === 401 ? { 'www-authenticate': `Basic realm="${REALM}", charset="UTF-8"` } : {};
    if (err instanceof UnavailableError) headers['retry-after'] = String(err.retryAfterSeconds);
    // Out of room is the deployer protecting itself, not a fault: a warning.
    const level = err instanceof UnavailableError ? 'warn' : status >= 500 ? 'error' : 'info';
    return { status, body: body as unknown as ErrorBody, headers, level };
  }
  const known = fastifyError(err);
  if (known !== undefined) {
    return { status: known.statusCode, body: describeFastifyError(known, context), headers: {}, level: 'info' };
  }
  return { status: 500, body: { error: 'internal error', requestId: context.requestId }, headers: {}, level: 'error' };
}

function describeFastifyError(err: { code: string; message: string }, context: ErrorContext): ErrorBody {
  switch (err.code) {
    case 'FST_ERR_CTP_INVALID_JSON_BODY':
      return { error: 'the request body is not valid JSON', field: 'body' };
    case 'FST_ERR_CTP_EMPTY_JSON_BODY':
      return { error: 'the request body is empty but its content type is application/json', field: 'body' };
    case 'FST_ERR_CTP_BODY_TOO_LARGE':
      return { error: `the request body is larger than ${context.bodyLimit} bytes` };
    case 'FST_ERR_CTP_INVALID_MEDIA_TYPE':
      return {
        error:
          `content type ${JSON.stringify((context.contentType ?? '').slice(0, 100))} is not supported; ` +
          'send application/x-www-form-urlencoded or application/json',
      };
    default:
      return { error: err.message };
  }
}
