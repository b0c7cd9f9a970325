import type { Logger } from 'pino';
import { UpstreamError } from '../errors.js';
import type { ImageRef } from './types.js';

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

export interface TransportOptions {
  readonly timeoutMs: number;
  readonly logger: Logger;
  readonly fetch: typeof fetch;
}

/** HTTP to registries and their token servers: one request, its body, and network failures as `UpstreamError`. */
export class RegistryTransport {
  readonly timeoutMs: number;
  readonly #log: Logger;
  readonly #fetch: typeof fetch;

  constructor(options: TransportOptions) {
    this.timeoutMs = options.timeoutMs;
    this.#log = options.logger;
    this.#fetch = options.fetch;
  }

  /** A registry operation, with its own timeout covering every request it makes. */
  call(image: ImageRef): Call {
    return {
      image,
      name: nameOf(image),
      scope: `repository:${image.repository}:pull`,
      signal: AbortSignal.timeout(this.timeoutMs),
    };
  }

  async request(call: Call, url: URL, init: RequestInit, authorization?: string): Promise<Response> {
    const headers: Record<string, string> = {};
    if (init.accept !== undefined) headers['accept'] = init.accept;
    if (authorization !== undefined) headers['authorization'] = authorization;
    try {
      const res = await this.#fetch(url, { method: init.method, headers, signal: call.signal, redirect: 'follow' });
      this.#log.debug({ method: init.method, host: url.host, path: url.pathname, status: res.status }, 'registry request');
      return res;
    } catch (err) {
      throw this.failure(err, call, url);
    }
  }

  async text(res: Response, call: Call): Promise<string> {
    return (await this.bytes(res, call, Number.POSITIVE_INFINITY)).toString('utf8');
  }

  async bytes(res: Response, call: Call, limit: number): Promise<Buffer> {
    const length = Number(res.headers.get('content-length') ?? '0');
    if (length > limit) {
      await res.body?.cancel();
      throw new UpstreamError('registry', `registry ${call.image.registry} answered ${length} bytes for a manifest of ${call.name}`);
    }
    let body: Buffer;
    try {
      body = Buffer.from(await res.arrayBuffer());
    } catch (err) {
      throw this.failure(err, call, new URL(res.url || `https://${call.image.registry}/`));
    }
    if (body.length > limit) {
      throw new UpstreamError('registry', `registry ${call.image.registry} answered ${body.length} bytes for a manifest of ${call.name}`);
    }
    return body;
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
