import { request as httpRequest, type RequestOptions } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { KubeConfig } from '@kubernetes/client-node';
import { existsSync } from 'node:fs';
import { homedir } from 'node:os';
import { delimiter, join } from 'node:path';
import { ConfigError } from '../config/load.js';
import { UpstreamError } from '../errors.js';

/**
 * Plain REST calls to the apiserver. client-node is used for what it is good at: reading a kubeconfig (files,
 * in-cluster service account, exec and token-file credentials) and turning it into TLS options and an
 * Authorization header. The requests themselves are plain HTTP, because the typed models of client-node
 * re-serialize objects through their schema, which silently drops fields it does not know (a typo in a manifest
 * would vanish instead of being refused by the apiserver) and hides the status codes apply needs.
 */

export interface KubeResponse {
  status: number;
  /** Parsed JSON, or the raw text when the body is not JSON. */
  body: unknown;
}

export interface KubeRequest {
  method: 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE';
  path: string;
  query?: Record<string, string | undefined>;
  body?: unknown;
  contentType?: string;
  /** This request's timeout, where it differs from the transport's (a readiness ping, a lease renewal). */
  timeoutMs?: number;
}

let kubeConfigLoads = 0;
let transports = 0;

/** How many kubeconfigs and transports this process built: one each, by src/wire.ts (a test counts them). */
export function kubeCounts(): { kubeConfigLoads: number; transports: number } {
  return { kubeConfigLoads, transports };
}

/**
 * Where the client's credentials come from: a kubeconfig file, else in-cluster, else the default kubeconfig
 * ($KUBECONFIG, ~/.kube/config). With none of them, client-node would silently talk to http://localhost:8080; the
 * deployer says where it looked instead.
 */
export function loadKubeConfig(kubeconfig: string | undefined, env: NodeJS.ProcessEnv = process.env): KubeConfig {
  kubeConfigLoads++;
  const config = new KubeConfig();
  try {
    if (kubeconfig !== undefined) {
      config.loadFromFile(kubeconfig);
    } else if (env['KUBERNETES_SERVICE_HOST'] !== undefined) {
      config.loadFromCluster();
    } else {
      const candidates = defaultKubeconfigs(env);
      if (!candidates.some((c) => c.exists)) {
        throw new Error(
          `no kubeconfig found: kubernetes.kubeconfig is not set, ${candidates.map((c) => c.where).join(', ')}, and ` +
            'this is not a pod (KUBERNETES_SERVICE_HOST is unset); set kubernetes.kubeconfig in the configuration',
        );
      }
      config.loadFromDefault();
    }
  } catch (err) {
    throw new ConfigError(`cannot read the kubeconfig${kubeconfig === undefined ? '' : ` ${kubeconfig}`}: ${(err as Error).message}`, {
      cause: err,
    });
  }
  if (config.getCurrentCluster() === null) {
    throw new ConfigError(`the kubeconfig${kubeconfig === undefined ? '' : ` ${kubeconfig}`} has no current cluster`);
  }
  return config;
}

/** The files client-node's loadFromDefault reads, and whether they exist, in words for the error above. */
function defaultKubeconfigs(env: NodeJS.ProcessEnv): Array<{ where: string; exists: boolean }> {
  const fromEnv = env['KUBECONFIG'];
  const home = join(env['HOME'] ?? homedir(), '.kube', 'config');
  const listed =
    fromEnv === undefined || fromEnv === ''
      ? [{ where: 'KUBECONFIG is unset', exists: false }]
      : fromEnv.split(delimiter).map((file) => ({ where: `KUBECONFIG names ${file}${existsSync(file) ? '' : ' (missing)'}`, exists: existsSync(file) }));
  return [...listed, { where: `${home} ${existsSync(home) ? 'exists' : 'does not exist'}`, exists: existsSync(home) }];
}

/** Network failures that mean "the apiserver is not reachable now" (503), as opposed to a bad answer (502). */
const UNREACHABLE = new Set(['ECONNREFUSED', 'ECONNRESET', 'EHOSTUNREACH', 'ENETUNREACH', 'ENOTFOUND', 'EAI_AGAIN', 'ETIMEDOUT', 'EPIPE']);

export class KubeTransport {
  readonly server: string;
  readonly #config: KubeConfig | ConfigError;
  readonly #timeoutMs: number;

  /** With a ConfigError (no kubeconfig found), every request fails with it: the deployer starts and says why. */
  constructor(config: KubeConfig | ConfigError, timeoutMs: number) {
    transports++;
    this.#config = config;
    this.#timeoutMs = timeoutMs;
    // loadKubeConfig made sure there is a current cluster.
    this.server = config instanceof ConfigError ? '(no kubeconfig)' : (config.getCurrentCluster()?.server ?? '');
  }

  async send(req: KubeRequest): Promise<KubeResponse> {
    const config = this.#config;
    if (config instanceof ConfigError) {
      throw new UpstreamError('kubernetes', `the deployer has no Kubernetes credentials: ${config.message}`, { cause: config, status: 503 });
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
      await config.applyToHTTPSOptions(options);
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
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('error', (err) => reject(this.#networkError(what, err)));
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          let body: unknown = text;
          try {
            body = JSON.parse(text);
          } catch {
            // not JSON (a proxy's error page): keep the text
          }
          resolve({ status: res.statusCode ?? 0, body });
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
