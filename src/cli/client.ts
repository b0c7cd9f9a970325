import type { z } from 'zod';
import type { CliConfig } from './config.js';
import { CliError, UsageError } from './errors.js';
import { DeployResult, ErrorBody, FlowResult, ServiceList, ServiceView, TagsView, VersionView } from './schemas.js';

/** A parsed answer and the JSON as the server sent it, which `--json` prints unchanged. */
export interface Answer<T> {
  readonly body: T;
  readonly json: unknown;
  /** 2xx: 200, or 202 when a rollout `wait` ran out. */
  readonly status: number;
}

export interface VersionRef {
  readonly commit?: string | undefined;
  readonly tag?: string | undefined;
}

export interface RollbackTarget extends VersionRef {
  /** `previous`: the version that ran before the current one. */
  readonly to?: string | undefined;
}

export interface ClientOptions {
  readonly config: Pick<CliConfig, 'url' | 'credentials' | 'tokenName' | 'tokenOrigin'>;
  /** `depctl/VERSION`: the deployer answers depctl's errors in the body only (thesis 5.3.5). */
  readonly userAgent: string;
  readonly timeoutMs: number;
  /**
   * Who runs depctl, sent as the `Executor` header as the original depctl did: claimed by the caller, recorded by
   * the deployer beside the token, which stays the authority.
   */
  readonly executor?: string | undefined;
}

/** `wait`: seconds for the deployer to wait for the rollout's verdict. */
export interface Wait {
  readonly wait?: number | undefined;
}

/** The deployer answered with an error status; the message is the server's `error` text. */
export class ApiError extends CliError {
  readonly status: number;
  readonly body: ErrorBody | undefined;

  constructor(status: number, message: string, body: ErrorBody | undefined, json: unknown) {
    super(message, { json: json ?? { error: message, status } });
    this.status = status;
    this.body = body;
  }
}

type Method = 'GET' | 'PUT';

/** A typed client of the deployer's HTTP API (thesis 5.2); one method per endpoint. */
export class DeployerClient {
  readonly #options: ClientOptions;

  constructor(options: ClientOptions) {
    this.#options = options;
  }

  /** `GET /` (ls). */
  services(): Promise<Answer<ServiceList>> {
    return this.#call('GET', [], ServiceList);
  }

  /** `GET /version`. */
  version(): Promise<Answer<VersionView>> {
    return this.#call('GET', ['version'], VersionView);
  }

  /** `GET /SERVICE` (show). */
  service(name: string, options: { signal?: AbortSignal } = {}): Promise<Answer<ServiceView>> {
    return this.#call('GET', [name], ServiceView, options);
  }

  /** `GET /SERVICE/tags[?commit=]`. */
  tags(name: string, commit?: string): Promise<Answer<TagsView>> {
    return this.#call('GET', [name, 'tags'], TagsView, { query: { commit } });
  }

  /** `PUT /SERVICE/deploy` or `/SERVICE/canary`. */
  deploy(name: string, kind: 'deploy' | 'canary', version: VersionRef & Wait): Promise<Answer<DeployResult>> {
    return this.#call('PUT', [name, kind], DeployResult, { body: { commit: version.commit, tag: version.tag, wait: version.wait } });
  }

  /** `PUT /SERVICE/promote`: the canary's version becomes the stable one; `minAge` like `30m`. */
  promote(name: string, options: { minAge?: string | undefined; analysis?: boolean | undefined } & Wait): Promise<Answer<FlowResult>> {
    return this.#call('PUT', [name, 'promote'], FlowResult, { body: { minAge: options.minAge, analysis: options.analysis === undefined ? undefined : String(options.analysis), wait: options.wait } });
  }

  /** `PUT /SERVICE/rollback`: without a target, removes the canary. */
  rollback(name: string, target: RollbackTarget & Wait): Promise<Answer<FlowResult>> {
    return this.#call('PUT', [name, 'rollback'], FlowResult, {
      body: { commit: target.commit, tag: target.tag, to: target.to, wait: target.wait },
    });
  }

  /**
   * `/a/b` below the base URL, each segment escaped (`/` included), so a service name cannot reach another endpoint;
   * `.` and `..` cannot be escaped (URL parsers read `%2E%2E` as `..` too), so they are refused. Any other name is
   * the server's to judge (thesis 5.3.2: the client does not validate).
   */
  urlOf(segments: readonly string[], query: Readonly<Record<string, string | undefined>> = {}): URL {
    const bad = segments.find((s) => s === '' || s === '.' || s === '..');
    if (bad !== undefined) throw new UsageError(`${JSON.stringify(bad)} is not a service name`);
    const path = segments.map((s) => encodeURIComponent(s)).join('/');
    const url = new URL(path, this.#options.config.url);
    for (const [key, value] of Object.entries(query)) if (value !== undefined) url.searchParams.set(key, value);
    return url;
  }

  async #call<S extends z.ZodType>(
    method: Method,
    segments: readonly string[],
    schema: S,
    options: { query?: Record<string, string | undefined>; body?: Record<string, string | number | undefined>; signal?: AbortSignal } = {},
  ): Promise<Answer<z.infer<S>>> {
    const url = this.urlOf(segments, options.query);
    const { credentials } = this.#options.config;
    const headers: Record<string, string> = { accept: 'application/json', 'user-agent': this.#options.userAgent };
    if (this.#options.executor !== undefined) headers['executor'] = this.#options.executor;
    if (credentials !== undefined) {
      headers['authorization'] = `Basic ${Buffer.from(`${credentials.user}:${credentials.password}`, 'utf8').toString('base64')}`;
    }
    let body: string | undefined;
    if (options.body !== undefined) {
      headers['content-type'] = 'application/json';
      // JSON.stringify leaves out undefined fields.
      body = JSON.stringify(options.body);
    }
    const where = `${method} ${url.pathname}${url.search}`;
    let response: Response;
    let text: string;
    try {
      response = await fetch(url, {
        method,
        headers,
        body,
        // Not followed: a PUT turned into a GET, or credentials sent to another host, would be worse than a message.
        redirect: 'manual',
        signal: options.signal === undefined ? AbortSignal.timeout(this.#options.timeoutMs) : AbortSignal.any([AbortSignal.timeout(this.#options.timeoutMs), options.signal]),
      });
      text = await response.text();
    } catch (err) {
      throw new CliError(`${where}: ${describeFetchFailure(err, this.#options.config.url, this.#options.timeoutMs)}`, {
        cause: err,
      });
    }
    if (response.status >= 300 && response.status < 400) {
      const location = response.headers.get('location') ?? '(no Location)';
      throw new CliError(
        `${where}: the deployer answered ${response.status}, a redirect to ${location}; set DEPLOYER_URL to the address it redirects to`,
      );
    }
    const json = parseJson(text);
    if (!response.ok) throw this.#apiError(response, json, text);
    if (json === undefined) {
      throw new CliError(`${where}: the deployer answered ${response.status} with a body that is not JSON: ${excerpt(text)}`);
    }
    const parsed = schema.safeParse(json);
    if (!parsed.success) {
      const issue = parsed.error.issues[0];
      const at = issue === undefined ? '' : ` (${issue.path.map(String).join('.') || 'body'}: ${issue.message})`;
      throw new CliError(
        `${where}: the deployer's answer is not what depctl expects${at}; is ${this.#options.config.url.origin} a deployer, of a compatible version?`,
        { json },
      );
    }
    return { body: parsed.data, json, status: response.status };
  }

  #apiError(response: Response, json: unknown, text: string): ApiError {
    const parsed = ErrorBody.safeParse(json);
    const status = `${response.status}${response.statusText === '' ? '' : ` ${response.statusText}`}`;
    if (!parsed.success) {
      // Not the deployer's error shape: a proxy or load balancer answered.
      return new ApiError(response.status, `the deployer answered ${status}: ${excerpt(text)}`, undefined, json);
    }
    let message = parsed.data.error;
    if (response.status === 401) message += `; ${this.#authHint()}`;
    return new ApiError(response.status, message, parsed.data, json);
  }

  #authHint(): string {
    const { tokenName, tokenOrigin, credentials } = this.#options.config;
    if (credentials === undefined) return `no token is configured: set DEPLOYER_AUTH_TOKEN`;
    return `check the token (from ${tokenOrigin ?? 'the configuration'}) and its name "${tokenName}" (DEPLOYER_TOKEN_NAME)`;
  }
}

function parseJson(text: string): unknown {
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return undefined;
  }
}

/** A short, single-line piece of a body that is not JSON (an HTML error page, say). */
function excerpt(text: string): string {
  const line = text.replace(/<[^>]*>/g, ' ').replace(/\s+/g, ' ').trim();
  if (line === '') return '(empty body)';
  return line.length > 200 ? `${line.slice(0, 200)}…` : line;
}

/** fetch says "fetch failed" and hides the reason in `cause` (undici); tell the user which one. */
export function describeFetchFailure(err: unknown, base: URL, timeoutMs: number): string {
  const at = base.origin;
  if (err instanceof Error && (err.name === 'TimeoutError' || err.name === 'AbortError')) {
    return `no answer from the deployer at ${at} within ${Math.round(timeoutMs / 1000)} s`;
  }
  const cause = err instanceof Error ? err.cause : undefined;
  const code = (cause as { code?: unknown } | undefined)?.code;
  switch (code) {
    case 'ECONNREFUSED':
      return `cannot reach the deployer at ${at}: connection refused`;
    case 'ENOTFOUND':
    case 'EAI_AGAIN':
      return `cannot reach the deployer at ${at}: host ${base.hostname} not found`;
    case 'ECONNRESET':
    case 'UND_ERR_SOCKET':
      return `the connection to the deployer at ${at} was closed before it answered`;
    case 'ETIMEDOUT':
    case 'UND_ERR_CONNECT_TIMEOUT':
      return `cannot reach the deployer at ${at}: connection timed out`;
    case 'ERR_SSL_WRONG_VERSION_NUMBER':
    case 'ERR_SSL_PACKET_LENGTH_TOO_LONG':
      // OpenSSL's words for "the other side does not speak TLS".
      return `the deployer at ${at} does not answer https; if it serves plain http, set DEPLOYER_URL to http://${base.host}${base.pathname}`;
    case 'DEPTH_ZERO_SELF_SIGNED_CERT':
    case 'SELF_SIGNED_CERT_IN_CHAIN':
    case 'UNABLE_TO_VERIFY_LEAF_SIGNATURE':
    case 'UNABLE_TO_GET_ISSUER_CERT_LOCALLY':
    case 'CERT_HAS_EXPIRED':
    case 'ERR_TLS_CERT_ALTNAME_INVALID':
      return `the deployer at ${at} has a TLS certificate depctl does not trust (${code}); if it is signed by your own CA, set NODE_EXTRA_CA_CERTS to the CA's file`;
    default:
      break;
  }
  const reason = cause instanceof Error ? cause.message : err instanceof Error ? err.message : String(err);
  return `cannot reach the deployer at ${at}: ${reason}`;
}
