import { createHash } from 'node:crypto';
import type { Logger } from 'pino';
import { z } from 'zod';
import type { Config, RegistryCredentials } from '../config/load.js';
import { InputError, NotFoundError, UpstreamError } from '../errors.js';
import { nextLink, parseWwwAuthenticate, type Challenge } from './headers.js';
import { DOCKER_HUB, isValidTag } from './image-ref.js';
import type { ImageRef, Registry } from './types.js';

/** Every manifest kind a tag may name; without the list types a registry would answer for one platform only. */
export const MANIFEST_ACCEPT = [
  'application/vnd.oci.image.index.v1+json',
  'application/vnd.oci.image.manifest.v1+json',
  'application/vnd.docker.distribution.manifest.list.v2+json',
  'application/vnd.docker.distribution.manifest.v2+json',
].join(', ');

/** `GET /v2/NAME/tags/list`; distribution answers `tags: null` for a repository whose tags were all deleted. */
export const TagsList = z.object({
  name: z.string().optional(),
  tags: z.array(z.string()).nullable().optional(),
});

/** The token endpoint's answer; Docker's spec names the field `token`, OAuth2 servers `access_token`. */
export const TokenResponse = z
  .object({
    token: z.string().min(1).optional(),
    access_token: z.string().min(1).optional(),
    expires_in: z.number().positive().optional(),
  })
  .refine((t) => t.token !== undefined || t.access_token !== undefined, 'no token or access_token');
export type TokenResponse = z.infer<typeof TokenResponse>;

/** The registry's error body (`{ errors: [{ code, message }] }`). */
export const ErrorsBody = z.object({
  errors: z.array(z.object({ code: z.string(), message: z.string().optional() })).min(1),
});

const DIGEST = /^[a-z0-9]+(?:[.+_-][a-z0-9]+)*:[0-9a-fA-F]{32,}$/;
/** distribution refuses larger manifests; a larger answer is not a manifest. */
const MAX_MANIFEST_BYTES = 4 * 1024 * 1024;
const MAX_PAGES = 1000;
/** The token spec's default lifetime when `expires_in` is missing. */
const DEFAULT_TOKEN_SECONDS = 60;

export interface RegistryClientOptions {
  /** Keyed by registry host with port (`127.0.0.1:5000`, `docker.io`), as `ImageRef.registry` names it. */
  credentials: Config['registries'];
  /** Timeout of each registry call (one page, one manifest lookup, with its token request and retry). */
  timeoutMs: number;
  logger: Logger;
  fetch?: typeof fetch;
  /** Clock for the token cache (ms since the epoch); tests move it forward to expire tokens. */
  now?: () => number;
  /** `n` of the tags list; 100 is accepted by every registry we know (some refuse larger pages). */
  pageSize?: number;
}

interface CachedToken {
  token: string;
  expiresAt: number;
}

/** One registry operation: what it reads, for auth scopes and error messages. */
interface Call {
  image: ImageRef;
  /** `registry/repository`, as errors name the image. */
  name: string;
  /** The token scope the operation needs. */
  scope: string;
  signal: AbortSignal;
}

/**
 * Docker Registry HTTP API v2 client (see `Registry`): tags with `Link` pagination, manifest digests by HEAD, and the
 * three ways registries authenticate: none, basic (credentials from the config, sent once the registry asked for
 * them), and the bearer token flow (token from the challenge's realm, cached per registry and scope).
 *
 * Scheme: https, unless the registry's config entry says `insecure: true`. Loopback registries are not special:
 * from a pod, "localhost" is not where the kubelet pulls from, and a silent http fallback would send credentials
 * in the clear. Docker Hub (`docker.io`) is reached at `registry-1.docker.io`.
 *
 * Errors: `UpstreamError('registry')` for 401/403 after authenticating ("registry denied access to IMAGE"), 5xx,
 * 429 (503), timeouts (504), network failures and unusable answers; `NotFoundError` for an unknown repository
 * (tags). `digestOf` answers undefined for a 404, which covers an unknown repository too: HEAD has no error body.
 */
export class RegistryClient implements Registry {
  readonly #credentials: Config['registries'];
  readonly #timeoutMs: number;
  readonly #log: Logger;
  readonly #fetch: typeof fetch;
  readonly #now: () => number;
  readonly #pageSize: number;
  /** Bearer tokens by `registry scope`. */
  readonly #tokens = new Map<string, CachedToken>();
  /** Token requests under way, so concurrent calls share one. */
  readonly #pending = new Map<string, Promise<CachedToken>>();
  /** Registries that asked for basic credentials: they get them up front from then on. */
  readonly #wantsBasic = new Set<string>();

  constructor(options: RegistryClientOptions) {
    this.#credentials = options.credentials;
    this.#timeoutMs = options.timeoutMs;
    this.#log = options.logger.child({ module: 'registry' });
    this.#fetch = options.fetch ?? fetch;
    this.#now = options.now ?? Date.now;
    this.#pageSize = options.pageSize ?? 100;
  }

  async tags(image: ImageRef): Promise<string[]> {
    const tags = new Set<string>();
    const seen = new Set<string>();
    let url: URL | undefined = new URL(`/v2/${image.repository}/tags/list?n=${this.#pageSize}`, this.#baseUrl(image.registry));
    while (url !== undefined) {
      if (seen.has(url.href) || seen.size >= MAX_PAGES) {
        throw new UpstreamError('registry', `registry ${image.registry} paginates the tags of ${nameOf(image)} without end`);
      }
      seen.add(url.href);
      const call = this.#call(image);
      const res = await this.#send(call, url, { method: 'GET' });
      if (res.status === 404) {
        const code = errorCode(await this.#text(res, call));
        throw new NotFoundError(`image repository ${nameOf(image)} not found in the registry`, {
          detail: { registry: image.registry, repository: image.repository, ...(code === undefined ? {} : { code }) },
        });
      }
      await this.#expectOk(res, call);
      const list = parseJson(TagsList, await this.#text(res, call), `the tags list of ${call.name}`);
      for (const tag of list.tags ?? []) tags.add(tag);
      const next = nextLink(res.headers.get('link'), url);
      if (next !== undefined && next.origin !== url.origin) {
        // Our credentials go with every page: do not follow a registry's link to another host.
        throw new UpstreamError('registry', `registry ${image.registry} links the tags of ${call.name} to another host`);
      }
      url = next;
    }
    return [...tags];
  }

  async digestOf(image: ImageRef, tag: string): Promise<string | undefined> {
    if (!isValidTag(tag)) throw new InputError(`invalid tag "${tag}"`, { field: 'tag' });
    const url = new URL(`/v2/${image.repository}/manifests/${tag}`, this.#baseUrl(image.registry));
    const call = this.#call(image);
    const head = await this.#send(call, url, { method: 'HEAD', accept: MANIFEST_ACCEPT });
    if (head.status === 404) return undefined;
    // Some registries refuse HEAD (405) or leave out the digest header: read the manifest and hash it.
    if (head.status !== 405) {
      await this.#expectOk(head, call);
      const digest = head.headers.get('docker-content-digest');
      if (digest !== null && DIGEST.test(digest)) return digest;
    }
    const res = await this.#send(call, url, { method: 'GET', accept: MANIFEST_ACCEPT });
    if (res.status === 404) {
      await res.body?.cancel();
      return undefined;
    }
    await this.#expectOk(res, call);
    const body = await this.#bytes(res, call, MAX_MANIFEST_BYTES);
    const answered = res.headers.get('docker-content-digest');
    if (answered !== null && DIGEST.test(answered)) return answered;
    return `sha256:${createHash('sha256').update(body).digest('hex')}`;
  }

  #call(image: ImageRef): Call {
    return {
      image,
      name: nameOf(image),
      scope: `repository:${image.repository}:pull`,
      signal: AbortSignal.timeout(this.#timeoutMs),
    };
  }

  #credentialsFor(registry: string): RegistryCredentials | undefined {
    const own = this.#credentials[registry];
    if (own !== undefined || registry !== DOCKER_HUB) return own;
    return this.#credentials['index.docker.io'] ?? this.#credentials['registry-1.docker.io'];
  }

  #baseUrl(registry: string): string {
    const host = registry === DOCKER_HUB ? 'registry-1.docker.io' : registry;
    return `${this.#credentialsFor(registry)?.insecure === true ? 'http' : 'https'}://${host}`;
  }

  /**
   * Sends a request with what the registry wants: a cached bearer token, or basic credentials for a registry that
   * asked for them. On a 401 it answers the challenge once and retries; the caller maps the final status.
   */
  async #send(call: Call, url: URL, init: { method: 'GET' | 'HEAD'; accept?: string }): Promise<Response> {
    const registry = call.image.registry;
    const credentials = this.#credentialsFor(registry);
    const sent = this.#upFront(registry, call.scope, credentials);
    const first = await this.#http(call, url, init, sent);
    if (first.status !== 401) return first;

    const challenges = parseWwwAuthenticate(first.headers.get('www-authenticate') ?? '');
    const bearer = challenges.find((c) => c.scheme === 'bearer');
    const basic = challenges.find((c) => c.scheme === 'basic');
    let retry: string | undefined;
    if (bearer !== undefined) {
      // A token we sent and the registry refused (expired early, revoked) is not asked for again from the cache.
      const token = await this.#token(call, bearer, credentials, sent?.startsWith('Bearer ') === true);
      retry = `Bearer ${token}`;
    } else if (basic !== undefined && hasPassword(credentials) && sent === undefined) {
      this.#wantsBasic.add(registry);
      retry = basicAuthorization(credentials);
    }
    if (retry === undefined) return first;
    await first.body?.cancel();
    return this.#http(call, url, init, retry);
  }

  #upFront(registry: string, scope: string, credentials: RegistryCredentials | undefined): string | undefined {
    const cached = this.#tokens.get(`${registry} ${scope}`);
    if (cached !== undefined && cached.expiresAt > this.#now()) return `Bearer ${cached.token}`;
    if (this.#wantsBasic.has(registry) && hasPassword(credentials)) return basicAuthorization(credentials);
    return undefined;
  }

  /** A bearer token for the challenge's scope: from the cache unless `fresh`, else from the realm. */
  async #token(call: Call, challenge: Challenge, credentials: RegistryCredentials | undefined, fresh: boolean): Promise<string> {
    const registry = call.image.registry;
    const scope = challenge.params['scope'] ?? call.scope;
    const key = `${registry} ${scope}`;
    const cached = this.#tokens.get(key);
    if (!fresh && cached !== undefined && cached.expiresAt > this.#now()) return cached.token;
    let pending = this.#pending.get(key);
    if (pending === undefined) {
      pending = this.#fetchToken(call, challenge, scope, credentials).finally(() => this.#pending.delete(key));
      this.#pending.set(key, pending);
    }
    const entry = await pending;
    this.#tokens.set(key, entry);
    return entry.token;
  }

  async #fetchToken(
    call: Call,
    challenge: Challenge,
    scope: string,
    credentials: RegistryCredentials | undefined,
  ): Promise<CachedToken> {
    const registry = call.image.registry;
    let realm: URL;
    try {
      realm = new URL(challenge.params['realm'] ?? '');
    } catch {
      throw new UpstreamError('registry', `registry ${registry} sent a bearer challenge without a usable realm`);
    }
    if (realm.protocol !== 'https:' && realm.protocol !== 'http:') {
      throw new UpstreamError('registry', `registry ${registry} sent a bearer challenge without a usable realm`);
    }
    const service = challenge.params['service'];
    if (service !== undefined) realm.searchParams.set('service', service);
    for (const s of scope.split(' ').filter((s) => s !== '')) realm.searchParams.append('scope', s);

    let authorization: string | undefined;
    if (hasPassword(credentials)) {
      if (realm.protocol === 'http:' && !credentials.insecure) {
        throw new UpstreamError(
          'registry',
          `registry ${registry} wants credentials sent in the clear to its token server ${realm.host}; ` +
            `set insecure: true for it to allow that`,
        );
      }
      authorization = basicAuthorization(credentials);
    }
    const res = await this.#http(call, realm, { method: 'GET', accept: 'application/json' }, authorization);
    if (res.status === 401 || res.status === 403) {
      await res.body?.cancel();
      throw denied(call, credentials, 'the token server refused the credentials');
    }
    if (!res.ok) {
      await res.body?.cancel();
      throw new UpstreamError('registry', `the token server of registry ${registry} answered ${res.status}`, {
        ...(res.status === 503 || res.status === 429 ? { status: 503 as const } : {}),
      });
    }
    const body = parseJson(TokenResponse, await this.#text(res, call), `the token server's answer for ${registry}`);
    const seconds = body.expires_in ?? DEFAULT_TOKEN_SECONDS;
    // Renew a little early, so a token does not run out between the cache check and the registry's.
    const margin = Math.min(5_000, seconds * 250);
    this.#log.debug({ registry, scope, expiresIn: seconds }, 'registry token fetched');
    return { token: (body.token ?? body.access_token)!, expiresAt: this.#now() + seconds * 1000 - margin };
  }

  async #http(call: Call, url: URL, init: { method: 'GET' | 'HEAD'; accept?: string }, authorization?: string): Promise<Response> {
    const headers: Record<string, string> = {};
    if (init.accept !== undefined) headers['accept'] = init.accept;
    if (authorization !== undefined) headers['authorization'] = authorization;
    try {
      const res = await this.#fetch(url, { method: init.method, headers, signal: call.signal, redirect: 'follow' });
      this.#log.debug({ method: init.method, host: url.host, path: url.pathname, status: res.status }, 'registry request');
      return res;
    } catch (err) {
      throw this.#failure(err, call, url);
    }
  }

  async #text(res: Response, call: Call): Promise<string> {
    return (await this.#bytes(res, call, Number.POSITIVE_INFINITY)).toString('utf8');
  }

  async #bytes(res: Response, call: Call, limit: number): Promise<Buffer> {
    const length = Number(res.headers.get('content-length') ?? '0');
    if (length > limit) {
      await res.body?.cancel();
      throw new UpstreamError('registry', `registry ${call.image.registry} answered ${length} bytes for a manifest of ${call.name}`);
    }
    let body: Buffer;
    try {
      body = Buffer.from(await res.arrayBuffer());
    } catch (err) {
      throw this.#failure(err, call, new URL(res.url || `https://${call.image.registry}/`));
    }
    if (body.length > limit) {
      throw new UpstreamError('registry', `registry ${call.image.registry} answered ${body.length} bytes for a manifest of ${call.name}`);
    }
    return body;
  }

  /** Maps a failed answer to the error the `Registry` interface promises; returns for 2xx. */
  async #expectOk(res: Response, call: Call): Promise<void> {
    if (res.ok) return;
    const registry = call.image.registry;
    if (res.status === 401 || res.status === 403) {
      await res.body?.cancel();
      throw denied(call, this.#credentialsFor(registry));
    }
    const code = res.status === 405 ? undefined : errorCode(await this.#text(res, call).catch(() => ''));
    const said = code === undefined ? '' : ` (${code})`;
    if (res.status === 429) {
      throw new UpstreamError('registry', `registry ${registry} is rate-limiting requests for ${call.name}`, { status: 503 });
    }
    throw new UpstreamError('registry', `registry ${registry} answered ${res.status}${said} for ${call.name}`, {
      ...(res.status === 503 ? { status: 503 as const } : {}),
      detail: { registry, status: res.status, ...(code === undefined ? {} : { code }) },
    });
  }

  #failure(err: unknown, call: Call, url: URL): UpstreamError {
    if (err instanceof UpstreamError) return err;
    const registry = call.image.registry;
    const name = err instanceof Error ? err.name : '';
    if (name === 'TimeoutError' || name === 'AbortError') {
      return new UpstreamError('registry', `registry ${registry} did not answer within ${this.#timeoutMs} ms (${url.host})`, {
        cause: err,
        status: 504,
      });
    }
    const cause = err instanceof Error ? (err.cause as { code?: unknown } | undefined) : undefined;
    const why = typeof cause?.code === 'string' ? cause.code : err instanceof Error ? err.message : String(err);
    return new UpstreamError('registry', `cannot reach registry ${registry} at ${url.host}: ${why}`, { cause: err });
  }
}

function nameOf(image: ImageRef): string {
  return `${image.registry}/${image.repository}`;
}

function hasPassword(
  credentials: RegistryCredentials | undefined,
): credentials is RegistryCredentials & { username: string; password: NonNullable<RegistryCredentials['password']> } {
  return credentials?.username !== undefined && credentials.password !== undefined;
}

function basicAuthorization(credentials: RegistryCredentials & { username: string; password: { reveal(): string } }): string {
  return `Basic ${Buffer.from(`${credentials.username}:${credentials.password.reveal()}`).toString('base64')}`;
}

function denied(call: Call, credentials: RegistryCredentials | undefined, reason?: string): UpstreamError {
  return new UpstreamError('registry', `registry denied access to ${call.name}`, {
    detail: {
      registry: call.image.registry,
      repository: call.image.repository,
      credentials: hasPassword(credentials) ? 'configured' : 'none',
      ...(reason === undefined ? {} : { reason }),
    },
  });
}

/** The first error code of a registry error body, if it is one. */
function errorCode(text: string): string | undefined {
  try {
    const parsed = ErrorsBody.safeParse(JSON.parse(text));
    return parsed.success ? parsed.data.errors[0]?.code : undefined;
  } catch {
    return undefined;
  }
}

function parseJson<T>(schema: z.ZodType<T>, text: string, what: string): T {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (err) {
    throw new UpstreamError('registry', `${what} is not JSON`, { cause: err });
  }
  const parsed = schema.safeParse(raw);
  if (!parsed.success) {
    throw new UpstreamError('registry', `${what} is unusable: ${parsed.error.issues[0]?.message ?? 'invalid'}`);
  }
  return parsed.data;
}
