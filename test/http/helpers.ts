import type { AddressInfo } from 'node:net';
import { pino } from 'pino';
import { buildApp } from '../../src/app.js';
import { parseConfig, type Config, type Env, type ServiceConfig } from '../../src/config/load.js';
import type { DeploymentState } from '../../src/deploy/state.js';
import type { DeployRequest, DeployResult, DeployService, FlowResult, ImageTags, PromoteRequest, RollbackRequest } from '../../src/deploy/types.js';
import type { Verdict } from '../../src/deploy/verdict.js';
import { Metrics } from '../../src/report/metrics.js';

/** Secrets the tests use; none of them may show up in a response body or a log line. */
export const SECRETS = {
  ops: 'ops-secret-1f2e3d',
  ci: 'ci-secret-4c5b6a',
  reader: 'reader-secret-789abc',
  legacy: 'legacy-secret-0a0b0c',
  repoPassword: 'repo-password-d00d1e',
  urlPassword: 'url-password-5ec2e7',
} as const;

/** ops: everything; ci: read and deploy of "api" only; reader: read everything; auth_token from the env. */
export function testConfig(overrides: Record<string, unknown> = {}, env: Env = { DEPLOYER_AUTH_TOKEN: SECRETS.legacy }): Config {
  return parseConfig(
    {
      tokens: {
        ops: { secret: { value: SECRETS.ops } },
        ci: { secret: { value: SECRETS.ci }, services: ['api'], actions: ['read', 'deploy'] },
        reader: { secret: { value: SECRETS.reader }, actions: ['read'] },
      },
      services: {
        api: {
          repository: {
            url: `https://deployer:${SECRETS.urlPassword}@git.example.com/acme/api.git`,
            credentials: { username: 'deployer', password: { value: SECRETS.repoPassword } },
          },
          namespace: 'api',
        },
        web: { repository: { url: 'svn://svn.example.com/web/trunk', type: 'svn', defaultBranch: 'trunk' } },
        worker: { repository: { url: 'git@git.example.com:acme/worker.git' } },
      },
      ...overrides,
    },
    env,
  );
}

/**
 * A small fake of the domain: records every deploy and tags call, answers a fixed result, or throws what it is told
 * to. Rollback, promote, state and verdicts answer plainly (their routes are tested end to end on the ground).
 */
export class FakeDeployer implements DeployService {
  readonly runs: DeployRequest[] = [];
  readonly tagCalls: Array<{ service: string; ref: string | undefined }> = [];
  failure: unknown;
  /** What `tags` answers. */
  tagResult: readonly ImageTags[] = [{ image: 'registry.example.com/api', tags: ['main-abc1234', 'main-def5678'] }];

  deploy(request: DeployRequest): Promise<DeployResult> {
    this.runs.push(request);
    const tag = request.tag ?? `main-${request.commit ?? ''}`;
    const suffix = request.kind === 'canary' ? ' as canary' : '';
    return this.settle({
      message: `${request.service.name} ${tag} is deployed${suffix}`,
      service: request.service.name,
      kind: request.kind,
      commit: request.commit ?? 'c0ffee',
      tag,
      images: [{ original: 'registry.example.com/api', applied: `registry.example.com/api:${tag}@sha256:${'a'.repeat(64)}` }],
      objects: [],
      durationMs: 5,
    });
  }

  tags(service: ServiceConfig, ref?: string): Promise<readonly ImageTags[]> {
    this.tagCalls.push({ service: service.name, ref });
    return this.settle(this.tagResult);
  }

  rollback(request: RollbackRequest): Promise<FlowResult> {
    return this.settle({ ...this.#flow(request.service.name, 'rollback'), outcome: 'nothing-to-roll-back', message: 'nothing to roll back' });
  }

  promote(request: PromoteRequest): Promise<FlowResult> {
    return this.settle({ ...this.#flow(request.service.name, 'promote'), outcome: 'promoted', message: 'promoted' });
  }

  state(): Promise<DeploymentState[]> {
    return this.settle([]);
  }

  verdict(): Promise<Verdict> {
    return this.settle({ result: 'success', message: 'rolled out', waitedMs: 0, deployments: [] });
  }

  #flow(service: string, kind: 'rollback' | 'promote') {
    return { service, kind, images: [], objects: [], durationMs: 1 };
  }

  /** Answers after a tick, as the real engine would, or throws the failure (any value, Error or not). */
  private async settle<T>(value: T): Promise<T> {
    await Promise.resolve();
    const failure: unknown = this.failure;
    if (failure === undefined) return value;
    throw failure as unknown;
  }
}

export interface TestServer {
  readonly url: string;
  readonly engine: FakeDeployer;
  /** Every log line the app wrote, as text. */
  readonly logs: string[];
  close(): Promise<void>;
}

/** Builds the app as main.ts does, on a random loopback port, with a fake domain and captured logs. */
export async function startServer(options: { config?: Config; engine?: FakeDeployer } = {}): Promise<TestServer> {
  const logs: string[] = [];
  const logger = pino({ level: 'debug' }, { write: (line: string) => void logs.push(line) });
  const engine = options.engine ?? new FakeDeployer();
  const app = buildApp({
    config: options.config ?? testConfig(),
    logger,
    deployer: engine,
    version: '1.2.3-test',
    metrics: new Metrics(),
    apiserver: { ping: () => Promise.resolve() },
  });
  await app.listen({ host: '127.0.0.1', port: 0 });
  const { port } = app.server.address() as AddressInfo;
  return { url: `http://127.0.0.1:${port}`, engine, logs, close: () => app.close() };
}

export function basic(user: string, password: string): string {
  return `Basic ${Buffer.from(`${user}:${password}`, 'utf8').toString('base64')}`;
}

export const AS = {
  ops: { authorization: basic('ops', SECRETS.ops) },
  ci: { authorization: basic('ci', SECRETS.ci) },
  reader: { authorization: basic('reader', SECRETS.reader) },
  legacy: { authorization: basic('auth_token', SECRETS.legacy) },
} as const;

export interface Answer {
  readonly status: number;
  readonly headers: Headers;
  readonly body: unknown;
  readonly text: string;
}

export async function call(url: string, init: RequestInit = {}): Promise<Answer> {
  const response = await fetch(url, init);
  const text = await response.text();
  let body: unknown = undefined;
  try {
    body = JSON.parse(text);
  } catch {
    body = undefined;
  }
  return { status: response.status, headers: response.headers, body, text };
}

export const form = (fields: Record<string, string>): string => new URLSearchParams(fields).toString();
export const FORM = { 'content-type': 'application/x-www-form-urlencoded' } as const;
export const JSON_TYPE = { 'content-type': 'application/json' } as const;
