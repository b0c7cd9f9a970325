import { createHash } from 'node:crypto';
import type { Logger } from 'pino';
import type { Config } from '../config/load.js';
import { InputError, NotFoundError, UpstreamError } from '../errors.js';
import { denied, RegistryAuth } from './auth.js';
import { nextLink } from './headers.js';
import { DOCKER_HUB, isValidTag } from './image-ref.js';
import { DIGEST, errorCode, MANIFEST_ACCEPT, parseJson, TagsList } from './schemas.js';
import { ANSWER_LIMITS, discard, nameOf, RegistryTransport, type Call } from './transport.js';
import type { Registry } from '../core/ports.js';
import type { ImageRef } from '../core/types.js';

const MAX_PAGES = 1000;

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

/**
 * Docker Registry HTTP API v2 client (see `Registry`): tags with `Link` pagination and manifest digests by HEAD;
 * authentication is `RegistryAuth`'s, HTTP and its failures `RegistryTransport`'s.
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
  readonly #transport: RegistryTransport;
  readonly #auth: RegistryAuth;
  readonly #pageSize: number;

  constructor(options: RegistryClientOptions) {
    const logger = options.logger.child({ module: 'registry' });
    this.#transport = new RegistryTransport({ timeoutMs: options.timeoutMs, logger, fetch: options.fetch ?? fetch });
    this.#auth = new RegistryAuth({
      credentials: options.credentials,
      transport: this.#transport,
      logger,
      now: options.now ?? Date.now,
    });
    this.#pageSize = options.pageSize ?? 100;
  }

  async tags(image: ImageRef): Promise<string[]> {
    const tags = new Set<string>();
    const seen = new Set<string>();
    /** Bytes of the pages read so far: the limit holds for the whole list, however it is paged. */
    let read = 0;
    let url: URL | undefined = new URL(`/v2/${image.repository}/tags/list?n=${this.#pageSize}`, this.#baseUrl(image.registry));
    while (url !== undefined) {
      if (seen.has(url.href) || seen.size >= MAX_PAGES) {
        throw new UpstreamError('registry', `registry ${image.registry} paginates the tags of ${nameOf(image)} without end`);
      }
      seen.add(url.href);
      const call = this.#transport.call(image);
      const res = await this.#auth.send(call, url, { method: 'GET' });
      if (res.status === 404) {
        const code = errorCode(await this.#transport.errorText(res, call));
        throw new NotFoundError(`image repository ${nameOf(image)} not found in the registry`, {
          detail: { registry: image.registry, repository: image.repository, ...(code === undefined ? {} : { code }) },
        });
      }
      await this.#expectOk(res, call);
      const what = `the tags list of ${call.name}`;
      const page = await this.#transport.bytes(res, call, { limit: ANSWER_LIMITS.tags, what, before: read });
      read += page.length;
      const list = parseJson(TagsList, page.toString('utf8'), what);
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
    const call = this.#transport.call(image);
    const head = await this.#auth.send(call, url, { method: 'HEAD', accept: MANIFEST_ACCEPT });
    if (head.status === 404) return undefined;
    // Some registries refuse HEAD (405) or leave out the digest header: read the manifest and hash it.
    if (head.status !== 405) {
      await this.#expectOk(head, call);
      const digest = head.headers.get('docker-content-digest');
      if (digest !== null && DIGEST.test(digest)) return digest;
    }
    const res = await this.#auth.send(call, url, { method: 'GET', accept: MANIFEST_ACCEPT });
    if (res.status === 404) {
      await discard(res);
      return undefined;
    }
    await this.#expectOk(res, call);
    const body = await this.#transport.bytes(res, call, { limit: ANSWER_LIMITS.manifest, what: `a manifest of ${call.name}` });
    const answered = res.headers.get('docker-content-digest');
    if (answered !== null && DIGEST.test(answered)) return answered;
    return `sha256:${createHash('sha256').update(body).digest('hex')}`;
  }

  #baseUrl(registry: string): string {
    const host = registry === DOCKER_HUB ? 'registry-1.docker.io' : registry;
    return `${this.#auth.credentialsFor(registry)?.insecure === true ? 'http' : 'https'}://${host}`;
  }

  /** Maps a failed answer to the error the `Registry` interface promises; returns for 2xx. */
  async #expectOk(res: Response, call: Call): Promise<void> {
    if (res.ok) return;
    const registry = call.image.registry;
    if (res.status === 401 || res.status === 403) {
      await discard(res);
      throw denied(call, this.#auth.credentialsFor(registry));
    }
    const code = res.status === 405 ? undefined : errorCode(await this.#transport.errorText(res, call));
    const said = code === undefined ? '' : ` (${code})`;
    if (res.status === 429) {
      throw new UpstreamError('registry', `registry ${registry} is rate-limiting requests for ${call.name}`, { status: 503 });
    }
    throw new UpstreamError('registry', `registry ${registry} answered ${res.status}${said} for ${call.name}`, {
      ...(res.status === 503 ? { status: 503 as const } : {}),
      detail: { registry, status: res.status, ...(code === undefined ? {} : { code }) },
    });
  }
}
