import type { RequestOptions } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { ConfigError } from '../config/load.js';
import { UpstreamError } from '../errors.js';
import { kubeConfigLoads, type KubeAccess } from './kubeconfig.js';

// Not `import ... from 'node:http'`: building that module's ESM namespace reads its every export, and the lazy
// getters of WebSocket, CloseEvent and MessageEvent then load Node's bundled undici (~1.6 MiB of heap, ~6 MiB
// resident), which nothing here uses. The CommonJS object is the same module, without the namespace.
const { request: httpRequest } = process.getBuiltinModule('node:http');

/**
 * Plain REST calls to the apiserver, with the access kubeconfig.ts reads (TLS options and an Authorization header
 * per request). The requests are plain HTTP rather than client-node's typed clients, because the typed models of client-node
 * re-serialize objects through their schema, which silently drops fields it does not know (a typo in a manifest
 * would vanish instead of being refused by the apiserver) and hides the status codes apply needs.
 */

export interface KubeResponse {
  status: number;
  /** Parsed JSON, or the raw text when the body is not JSON. */
  body: unknown;
  /** The body's size in bytes (a list adds its pages up). */
  bytes: number;
}

/**
 * The most the deployer reads of the apiserver, while it streams: one answer (an object is at most ~1.5 MiB in
 * etcd; a page of a list at most 250 of them), and a list over all its pages (a service's Deployments, ReplicaSets
 * or Pods, shaped by its repository). Beyond either the call fails (502) instead of the pod's memory.
 */
export const KUBE_ANSWER_LIMITS = { answer: 16 * 1024 * 1024, list: 32 * 1024 * 1024 } as const;

export interface KubeRequest {
  method: 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE';
  path: string;
  query?: Record<string, string | undefined>;
  body?: unknown;
  contentType?: string;
  /** This request's timeout, where it differs from the transport's (a readiness ping, a lease renewal). */
  timeoutMs?: number;
}

let transports = 0;

/** How many kubeconfigs and transports this process built: one each, by src/wire.ts (a test counts them). */
export function kubeCounts(): { kubeConfigLoads: number; transports: number } {
  return { kubeConfigLoads: kubeConfigLoads(), transports };
}

/** Network failures that mean "the apiserver is not reachable now" (503), as opposed to a bad answer (502). */
const UNREACHABLE = new Set(['ECONNREFUSED', 'ECONNRESET', 'EHOSTUNREACH', 'ENETUNREACH', 'ENOTFOUND', 'EAI_AGAIN', 'ETIMEDOUT', 'EPIPE']);

export class KubeTransport {
  readonly server: string;
  readonly #access: KubeAccess | ConfigError;
  readonly #timeoutMs: number;
  /** GETs in flight by request, each with the count of writes finished when it was sent. */
  readonly #reads = new Map<string, { writes: number; answer: Promise<KubeResponse> }>();
  #writes = 0;

  /** With a ConfigError (no kubeconfig found), every request fails with it: the deployer starts and says why. */
  constructor(access: KubeAccess | ConfigError, timeoutMs: number) {
    transports++;
    this.#access = access;
    this.#timeoutMs = timeoutMs;
    // loadKubeConfig made sure there is a current cluster.
    this.server = access instanceof ConfigError ? '(no kubeconfig)' : access.server;
  }

  /**
   * Sends a request. A GET of a URL that is already being read joins that read instead of making another round trip
   * (a deploy reads its Deployment for the ownership check and for the version it replaces, at the same moment; the
   * callers waiting for one deploy's verdict poll in step, and N of them read as one), unless this transport finished
   * a write since that read was sent: a joined answer is then as fresh as one of its own, as far as this process can
   * tell. Each caller gets its own copy of the body.
   */
  async send(req: KubeRequest): Promise<KubeResponse> {
    if (req.method !== 'GET') {
      try {
        return await this.#send(req);
      } finally {
        this.#writes++;
      }
    }
    const key = `${req.path}?${new URLSearchParams(Object.entries(req.query ?? {}).filter((e): e is [string, string] => e[1] !== undefined)).toString()}#${req.timeoutMs ?? ''}`;
    const running = this.#reads.get(key);
    if (running !== undefined && running.writes === this.#writes) {
      const res = await running.answer;
      return { ...res, body: structuredClone(res.body) };
    }
    const read = { writes: this.#writes, answer: this.#send(req) };
    this.#reads.set(key, read);
    try {
      return await read.answer;
    } finally {
      if (this.#reads.get(key) === read) this.#reads.delete(key);
    }
  }

  async #send(req: KubeRequest): Promise<KubeResponse> {
    const access = this.#access;
    if (access instanceof ConfigError) {
      throw new UpstreamError('kubernetes', `the deployer has no Kubernetes credentials: ${access.message}`, { cause: access, status: 503 });
    }
    // The server may carry a path prefix (a proxy): request paths go below it.
    const url = new URL(`${this.server.replace(/\/+$/, '')}${req.path}`);
    for (const [key, value] of Object.entries(req.query ?? {})) {
      if (value !== undefined) url.searchParams.set(key, value);
    }
    const options: RequestOptions & { headers: Record<string, string> } = {
      method: req.method,
      headers: { accept: 'application/json' },
    };
    // Credentials are applied per request: in-cluster and exec tokens rotate.
    try {
      await access.apply(options);
    } catch (err) {
      // An unusable kubeconfig (an exec plugin that fails, plain http without skipTLSVerify) is the apiserver
      // being out of reach for this deployer, not a bug in the request.
      throw new UpstreamError('kubernetes', `cannot use the kubeconfig's credentials for ${this.server}: ${(err as Error).message}`, {
        cause: err,
        status: 503,
      });
    }
    const payload = req.body === undefined ? undefined : JSON.stringify(req.body);
    if (payload !== undefined) {
      options.headers['content-type'] = req.contentType ?? 'application/json';
      options.headers['content-length'] = String(Buffer.byteLength(payload));
    }
    const what = `${req.method} ${url.pathname}`;
    return new Promise<KubeResponse>((resolve, reject) => {
      const send = url.protocol === 'http:' ? httpRequest : httpsRequest;
      const request = send(url, options, (res) => {
        const chunks: Buffer[] = [];
        let bytes = 0;
        res.on('data', (c: Buffer) => {
          bytes += c.length;
          if (bytes > KUBE_ANSWER_LIMITS.answer) {
            const limit = `${KUBE_ANSWER_LIMITS.answer / 1024 / 1024} MiB`;
            reject(new UpstreamError('kubernetes', `the Kubernetes apiserver at ${this.server} answered more than ${limit} for ${what}`, { detail: { limitBytes: KUBE_ANSWER_LIMITS.answer } }));
            request.destroy();
            return;
          }
          chunks.push(c);
        });
        res.on('error', (err) => reject(this.#networkError(what, err)));
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          let body: unknown = text;
          try {
            body = JSON.parse(text);
          } catch {
            // not JSON (a proxy's error page): keep the text
          }
          resolve({ status: res.statusCode ?? 0, body, bytes });
        });
      });
      const timeoutMs = req.timeoutMs ?? this.#timeoutMs;
      request.setTimeout(timeoutMs, () => {
        const err = new Error(`no answer within ${timeoutMs} ms`) as NodeJS.ErrnoException;
        err.code = 'ETIMEDOUT';
        request.destroy(err);
      });
      request.on('error', (err) => reject(this.#networkError(what, err)));
      request.end(payload);
    });
  }

  #networkError(what: string, err: Error): UpstreamError {
    const code = (err as NodeJS.ErrnoException).code ?? '';
    const unreachable = UNREACHABLE.has(code);
    const message = unreachable
      ? `the Kubernetes apiserver at ${this.server} is unreachable (${code}) during ${what}`
      : `the Kubernetes apiserver at ${this.server} failed during ${what}: ${err.message}`;
    return new UpstreamError('kubernetes', message, { cause: err, status: unreachable ? 503 : 502 });
  }
}
