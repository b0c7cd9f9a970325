import type { Logger } from 'pino';
import type { Config, RegistryCredentials } from '../config/load.js';
import { UpstreamError } from '../errors.js';
import { parseWwwAuthenticate, type Challenge } from './headers.js';
import { DOCKER_HUB } from './image-ref.js';
import { parseJson, TokenResponse } from './schemas.js';
import { ANSWER_LIMITS, discard, type Call, type RegistryTransport, type RequestInit } from './transport.js';

/** The token spec's default lifetime when `expires_in` is missing. */
const DEFAULT_TOKEN_SECONDS = 60;

interface CachedToken {
  token: string;
  expiresAt: number;
}

export interface RegistryAuthOptions {
  readonly credentials: Config['registries'];
  readonly transport: RegistryTransport;
  readonly logger: Logger;
  readonly now: () => number;
}

/**
 * The three ways registries authenticate: none, basic (credentials from the config, sent once the registry asked
 * for them), and the bearer token flow (token from the challenge's realm, cached per registry and scope).
 */
export class RegistryAuth {
  readonly #credentials: Config['registries'];
  readonly #transport: RegistryTransport;
  readonly #log: Logger;
  readonly #now: () => number;
  /** Bearer tokens by `registry scope`. */
  readonly #tokens = new Map<string, CachedToken>();
  /** Token requests under way, so concurrent calls share one. */
  readonly #pending = new Map<string, Promise<CachedToken>>();
  /** Registries that asked for basic credentials: they get them up front from then on. */
  readonly #wantsBasic = new Set<string>();

  constructor(options: RegistryAuthOptions) {
    this.#credentials = options.credentials;
    this.#transport = options.transport;
    this.#log = options.logger;
    this.#now = options.now;
  }

  credentialsFor(registry: string): RegistryCredentials | undefined {
    const own = this.#credentials[registry];
    if (own !== undefined || registry !== DOCKER_HUB) return own;
    return this.#credentials['index.docker.io'] ?? this.#credentials['registry-1.docker.io'];
  }

  /**
   * Sends a request with what the registry wants: a cached bearer token, or basic credentials for a registry that
   * asked for them. On a 401 it answers the challenge once and retries; the caller maps the final status.
   */
  async send(call: Call, url: URL, init: RequestInit): Promise<Response> {
    const registry = call.image.registry;
    const credentials = this.credentialsFor(registry);
    const sent = this.#upFront(registry, call.scope, credentials);
    const first = await this.#transport.request(call, url, init, sent);
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
    await discard(first);
    return this.#transport.request(call, url, init, retry);
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
    const res = await this.#transport.request(call, realm, { method: 'GET', accept: 'application/json' }, authorization);
    if (res.status === 401 || res.status === 403) {
      await discard(res);
      throw denied(call, credentials, 'the token server refused the credentials');
    }
    if (!res.ok) {
      await discard(res);
      throw new UpstreamError('registry', `the token server of registry ${registry} answered ${res.status}`, {
        ...(res.status === 503 || res.status === 429 ? { status: 503 as const } : {}),
      });
    }
    const text = await this.#transport.text(res, call, { limit: ANSWER_LIMITS.token, what: `a token (token server ${realm.host})` });
    const body = parseJson(TokenResponse, text, `the token server's answer for ${registry}`);
    const seconds = body.expires_in ?? DEFAULT_TOKEN_SECONDS;
    // Renew a little early, so a token does not run out between the cache check and the registry's.
    const margin = Math.min(5_000, seconds * 250);
    this.#log.debug({ registry, scope, expiresIn: seconds }, 'registry token fetched');
    return { token: (body.token ?? body.access_token)!, expiresAt: this.#now() + seconds * 1000 - margin };
  }
}

function hasPassword(
  credentials: RegistryCredentials | undefined,
): credentials is RegistryCredentials & { username: string; password: NonNullable<RegistryCredentials['password']> } {
  return credentials?.username !== undefined && credentials.password !== undefined;
}

function basicAuthorization(credentials: RegistryCredentials & { username: string; password: { reveal(): string } }): string {
  return `Basic ${Buffer.from(`${credentials.username}:${credentials.password.reveal()}`).toString('base64')}`;
}

/** 401/403 after authenticating: says whether credentials were configured, never which. */
export function denied(call: Call, credentials: RegistryCredentials | undefined, reason?: string): UpstreamError {
  return new UpstreamError('registry', `registry denied access to ${call.name}`, {
    detail: {
      registry: call.image.registry,
      repository: call.image.repository,
      credentials: hasPassword(credentials) ? 'configured' : 'none',
      ...(reason === undefined ? {} : { reason }),
    },
  });
}
