import type { Logger } from 'pino';
import { z } from 'zod';
import type { PrometheusConnection } from '../config/load.js';
import { UpstreamError } from '../errors.js';

/**
 * A client of Prometheus' HTTP API (prometheus.io/docs/prometheus/latest/querying/api), instant queries only: every
 * call is bounded in time (`timeoutSeconds`) and in size (an answer over ANSWER_LIMIT_BYTES is refused), and every
 * answer is parsed with zod before it is used. Failures are `UpstreamError('prometheus')`: 503 when Prometheus cannot
 * be reached or says it is unavailable, 504 when it did not answer in time, 502 when its answer is unusable.
 */

/** A vector answer of a few series per service is a few kilobytes; this bounds a wrong query or a wrong server. */
export const ANSWER_LIMIT_BYTES = 4 * 1024 * 1024;

/** A sample value: Prometheus writes floats as strings, `NaN` and `+Inf` included. */
const SampleValue = z.string().transform((v, ctx) => {
  const n = v === '+Inf' ? Infinity : v === '-Inf' ? -Infinity : Number(v);
  if (v.trim() === '' || (Number.isNaN(n) && v !== 'NaN')) {
    ctx.addIssue({ code: 'custom', message: `"${v.slice(0, 40)}" is no sample value` });
    return z.NEVER;
  }
  return n;
});

const QueryAnswer = z.discriminatedUnion('status', [
  z.object({
    status: z.literal('success'),
    data: z.object({
      resultType: z.literal('vector', { error: 'an instant query answers a vector' }),
      result: z.array(z.object({ metric: z.record(z.string(), z.string()), value: z.tuple([z.number(), SampleValue]) })).max(10_000),
    }),
  }),
  z.object({ status: z.literal('error'), errorType: z.string(), error: z.string() }),
]);

export interface Sample {
  readonly labels: Readonly<Record<string, string>>;
  readonly value: number;
}

export interface PrometheusClientOptions {
  readonly connection: PrometheusConnection;
  readonly logger: Logger;
  /** For tests: the fetch to use. */
  readonly fetch?: typeof fetch | undefined;
}

function describe(error: z.ZodError): string {
  const issue = error.issues[0];
  if (issue === undefined) return 'unreadable';
  const path = issue.path.join('.');
  return path === '' ? issue.message : `${path}: ${issue.message}`;
}

export class PrometheusClient {
  readonly #connection: PrometheusConnection;
  readonly #log: Logger;
  readonly #fetch: typeof fetch;
  readonly #endpoint: string;

  constructor(options: PrometheusClientOptions) {
    this.#connection = options.connection;
    this.#log = options.logger.child({ module: 'prometheus' });
    this.#fetch = options.fetch ?? fetch;
    const base = options.connection.url.endsWith('/') ? options.connection.url : `${options.connection.url}/`;
    this.#endpoint = new URL('api/v1/query', base).toString();
  }

  /** Where the queries go, without credentials: for messages. */
  get address(): string {
    const url = new URL(this.#connection.url);
    return `${url.protocol}//${url.host}${url.pathname === '/' ? '' : url.pathname}`;
  }

  #headers(): Record<string, string> {
    const headers: Record<string, string> = { accept: 'application/json', 'content-type': 'application/x-www-form-urlencoded' };
    const { username, password, bearerToken } = this.#connection;
    if (bearerToken !== undefined) headers['authorization'] = `Bearer ${bearerToken.reveal()}`;
    else if (username !== undefined) headers['authorization'] = `Basic ${Buffer.from(`${username}:${password?.reveal() ?? ''}`).toString('base64')}`;
    return headers;
  }

  /** The instant vector `expr` evaluates to now. */
  async query(expr: string): Promise<Sample[]> {
    const timeoutMs = this.#connection.timeoutSeconds * 1000;
    const where = this.address;
    let response: Response;
    let text: string;
    try {
      // POST: a comparison's expression is long, and a URL may be cut by a proxy.
      response = await this.#fetch(this.#endpoint, {
        method: 'POST',
        headers: this.#headers(),
        body: new URLSearchParams({ query: expr, timeout: `${this.#connection.timeoutSeconds}s` }).toString(),
        signal: AbortSignal.timeout(timeoutMs),
        redirect: 'error',
      });
      text = await bounded(response, where);
    } catch (err) {
      if (err instanceof UpstreamError) throw err;
      const timedOut = err instanceof Error && (err.name === 'TimeoutError' || err.name === 'AbortError');
      this.#log.warn({ err, prometheus: where }, 'prometheus query failed');
      if (timedOut) {
        throw new UpstreamError('prometheus', `Prometheus at ${where} did not answer within ${this.#connection.timeoutSeconds}s`, { cause: err, status: 504 });
      }
      throw new UpstreamError('prometheus', `Prometheus at ${where} cannot be reached`, { cause: err, status: 503, detail: { prometheus: where } });
    }
    if (response.status === 401 || response.status === 403) {
      throw new UpstreamError('prometheus', `Prometheus at ${where} refused the deployer's credentials (${response.status})`, { detail: { prometheus: where } });
    }
    if (response.status === 503) {
      throw new UpstreamError('prometheus', `Prometheus at ${where} is unavailable (503)`, { status: 503, detail: { prometheus: where } });
    }
    let json: unknown;
    try {
      json = JSON.parse(text);
    } catch {
      throw new UpstreamError('prometheus', `Prometheus at ${where} answered ${response.status} with no JSON: not a Prometheus query API`, {
        detail: { prometheus: where, status: response.status },
      });
    }
    const parsed = QueryAnswer.safeParse(json);
    if (!parsed.success) {
      throw new UpstreamError('prometheus', `Prometheus at ${where} answered something that is no query result (${describe(parsed.error)})`, {
        detail: { prometheus: where, status: response.status },
      });
    }
    const answer = parsed.data;
    if (answer.status === 'error') {
      throw new UpstreamError('prometheus', `Prometheus at ${where} could not run the analysis' query: ${answer.errorType}: ${answer.error.slice(0, 300)}`, {
        detail: { prometheus: where, status: response.status },
      });
    }
    return answer.data.result.map((r) => ({ labels: r.metric, value: r.value[1] }));
  }
}

/** The body as text, refused once it passes ANSWER_LIMIT_BYTES (a declared length over it before reading). */
async function bounded(response: Response, where: string): Promise<string> {
  const tooLarge = (): UpstreamError =>
    new UpstreamError('prometheus', `Prometheus at ${where} answered more than ${ANSWER_LIMIT_BYTES / 1024 / 1024} MiB`, {
      detail: { prometheus: where, limitBytes: ANSWER_LIMIT_BYTES },
    });
  const declared = Number(response.headers.get('content-length') ?? NaN);
  if (Number.isFinite(declared) && declared > ANSWER_LIMIT_BYTES) {
    await response.body?.cancel().catch(() => undefined);
    throw tooLarge();
  }
  if (response.body === null) return '';
  const chunks: Uint8Array[] = [];
  let size = 0;
  const reader = (response.body as ReadableStream<Uint8Array>).getReader();
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    size += value.byteLength;
    if (size > ANSWER_LIMIT_BYTES) {
      await reader.cancel().catch(() => undefined);
      throw tooLarge();
    }
    chunks.push(value);
  }
  return Buffer.concat(chunks).toString('utf8');
}
