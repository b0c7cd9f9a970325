import type { Logger } from 'pino';
import { UpstreamError } from '../errors.js';
import type { ImageRef } from '../core/types.js';

const MiB = 1024 * 1024;

/**
 * How much of each kind of registry answer the deployer reads, counted while the body streams: a registry or
 * token server that answers more is cut off there, so that no answer can grow the process by its size.
 */
export const ANSWER_LIMITS = {
  /** distribution refuses manifests over 4 MiB; a larger answer is not a manifest. */
  manifest: 4 * MiB,
  /** All pages of one tags list together: ~100,000 tags of 80 characters. */
  tags: 8 * MiB,
  /** A token server's JSON: a JWT or two, in kilobytes. */
  token: 1 * MiB,
  /** An error body: only its first error code is read. */
  error: 64 * 1024,
} as const;

/** Redirects followed within one request (all to the same scheme, host and port). */
export const MAX_REDIRECTS = 5;
const REDIRECT = new Set([301, 302, 303, 307, 308]);

/** One registry operation: what it reads, for auth scopes and error messages. */
export interface Call {
  readonly image: ImageRef;
  /** `registry/repository`, as errors name the image. */
  readonly name: string;
  /** The token scope the operation needs. */
  readonly scope: string;
  readonly signal: AbortSignal;
}

export interface RequestInit {
  readonly method: 'GET' | 'HEAD';
  readonly accept?: string;
}

export function nameOf(image: ImageRef): string {
  return `${image.registry}/${image.repository}`;
}

/** How much of a body may be read: `limit` bytes for `what` (in messages), of which `before` were read already. */
export interface Bound {
  readonly limit: number;
  readonly what: string;
  readonly before?: number;
}

export interface TransportOptions {
  readonly timeoutMs: number;
  readonly logger: Logger;
  readonly fetch: typeof fetch;
}

/** `1 MiB`, `64 KiB`, `123 bytes`. */
export function formatBytes(n: number): string {
  if (n >= MiB && n % MiB === 0) return `${n / MiB} MiB`;
  if (n >= 1024 && n % 1024 === 0) return `${n / 1024} KiB`;
  return `${n} bytes`;
}

/**
 * HTTP to registries and their token servers: one request with its same-host redirects, its body read within a
 * limit, and network failures as `UpstreamError`.
 */
export class RegistryTransport {
  readonly timeoutMs: number;
  readonly #log: Logger;
  readonly #fetch: typeof fetch;

  constructor(options: TransportOptions) {
    this.timeoutMs = options.timeoutMs;
    this.#log = options.logger;
    this.#fetch = options.fetch;
  }

  /** A registry operation, with its own timeout covering every request it makes and every body it reads. */
  call(image: ImageRef): Call {
    return {
      image,
      name: nameOf(image),
      scope: `repository:${image.repository}:pull`,
      signal: AbortSignal.timeout(this.timeoutMs),
    };
  }

  /**
   * One request. Redirects are followed only to the same scheme, host and port: the credentials go with each
   * request, and a registry must not make the deployer read (and show) another host's answer. A redirect elsewhere
   * is an error that names the target's origin, never its body.
   */
  async request(call: Call, url: URL, init: RequestInit, authorization?: string): Promise<Response> {
    const headers: Record<string, string> = {};
    if (init.accept !== undefined) headers['accept'] = init.accept;
    if (authorization !== undefined) headers['authorization'] = authorization;
    let at = url;
    for (let hops = 0; ; hops += 1) {
      let res: Response;
      try {
        res = await this.#fetch(at, { method: init.method, headers, signal: call.signal, redirect: 'manual' });
      } catch (err) {
        throw this.failure(err, call, at);
      }
      this.#log.debug({ method: init.method, host: at.host, path: at.pathname, status: res.status }, 'registry request');
      const location = REDIRECT.has(res.status) ? res.headers.get('location') : null;
      if (location === null) return res;
      await discard(res);
      const next = resolve(location, at);
      const registry = call.image.registry;
      if (next === undefined || next.origin !== at.origin) {
        const where = next === undefined ? 'an unusable location' : `another host (${next.origin})`;
        throw new UpstreamError(
          'registry',
          `registry ${registry} redirected ${init.method} ${at.pathname} to ${where}; ` +
            `the deployer follows redirects only within ${at.origin}`,
          { detail: { registry, status: res.status } },
        );
      }
      if (hops + 1 > MAX_REDIRECTS) {
        throw new UpstreamError('registry', `registry ${registry} redirected ${init.method} ${url.pathname} more than ${MAX_REDIRECTS} times`, {
          detail: { registry, status: res.status },
        });
      }
      at = next;
    }
  }

  /** The body as text, within `bound` (see `bytes`). */
  async text(res: Response, call: Call, bound: Bound): Promise<string> {
    return (await this.bytes(res, call, bound)).toString('utf8');
  }

  /**
   * The body, read while it streams and cut off once `bound.before` plus its bytes pass `bound.limit` (a declared
   * Content-Length over it is refused before reading): an `UpstreamError` naming the registry, what and the limit.
   */
  async bytes(res: Response, call: Call, bound: Bound): Promise<Buffer> {
    const { limit, what, before = 0 } = bound;
    const tooLarge = (): UpstreamError =>
      new UpstreamError('registry', `registry ${call.image.registry} answered more than ${formatBytes(limit)} for ${what}`, {
        detail: { registry: call.image.registry, limitBytes: limit },
      });
    const declared = Number(res.headers.get('content-length') ?? '0');
    if (before + declared > limit) {
      await discard(res);
      throw tooLarge();
    }
    const chunks: Uint8Array[] = [];
    let size = 0;
    const reader = (res.body as ReadableStream<Uint8Array> | null)?.getReader();
    if (reader === undefined) return Buffer.alloc(0);
    try {
      for (;;) {
        const { done, value } = await reader.read();
        if (done) break;
        size += value.byteLength;
        if (before + size > limit) {
          await reader.cancel().catch(() => undefined);
          throw tooLarge();
        }
        chunks.push(value);
      }
    } catch (err) {
      throw this.failure(err, call, new URL(res.url || `https://${call.image.registry}/`));
    }
    return Buffer.concat(chunks, size);
  }

  /** The start of an error body (up to the error limit), for its error code; what does not fit is dropped. */
  async errorText(res: Response, call: Call): Promise<string> {
    return this.text(res, call, { limit: ANSWER_LIMITS.error, what: 'an error' }).catch(() => '');
  }

  failure(err: unknown, call: Call, url: URL): UpstreamError {
    if (err instanceof UpstreamError) return err;
    const registry = call.image.registry;
    const name = err instanceof Error ? err.name : '';
    if (name === 'TimeoutError' || name === 'AbortError') {
      return new UpstreamError('registry', `registry ${registry} did not answer within ${this.timeoutMs} ms (${url.host})`, {
        cause: err,
        status: 504,
      });
    }
    const cause = err instanceof Error ? (err.cause as { code?: unknown } | undefined) : undefined;
    const why = typeof cause?.code === 'string' ? cause.code : err instanceof Error ? err.message : String(err);
    return new UpstreamError('registry', `cannot reach registry ${registry} at ${url.host}: ${why}`, { cause: err });
  }
}

/** Drops a body unread; the connection closes rather than draining what may be endless. */
export async function discard(res: Response): Promise<void> {
  await res.body?.cancel().catch(() => undefined);
}

function resolve(location: string, base: URL): URL | undefined {
  try {
    return new URL(location, base);
  } catch {
    return undefined;
  }
}
