import type { AddressInfo } from 'node:net';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { pino, type Logger } from 'pino';
import { parseConfig, type Config } from '../../src/config/load.js';
import { wire } from '../../src/wire.js';
import { ground } from '../env/ground.js';
import { createRepo, type FixtureCommit, type FixtureRepo } from '../env/git-fixtures.js';
import { uniqueName } from '../env/kube-helpers.js';

/** A deployer on a real port, wired as main.ts wires it, with the real adapters pointed at the test ground, and its log lines. */
export interface RunningDeployer {
  url: string;
  config: Config;
  logs: Array<Record<string, unknown>>;
  logText(): string;
  /** Resolves once the reports made after the answers (event lines with commit facts) are written. */
  settled(): Promise<void>;
  close(): Promise<void>;
}

/** Collects pino's JSON lines in memory, so tests can read the event log and scan for secrets. */
export function memoryLogger(): { logger: Logger; logs: Array<Record<string, unknown>>; text: () => string } {
  const logs: Array<Record<string, unknown>> = [];
  let text = '';
  const stream = new Writable({
    write(chunk: Buffer, _enc, done) {
      const s = chunk.toString('utf8');
      text += s;
      for (const line of s.split('\n')) if (line.trim() !== '') logs.push(JSON.parse(line) as Record<string, unknown>);
      done();
    },
  });
  return { logger: pino({ level: 'debug' }, stream), logs, text: () => text };
}

/** What a test may set besides the configuration. */
export interface DeployerOptions {
  /** The environment the configuration is read with (DEPLOYER_AUTH_TOKEN and the like). */
  env?: Record<string, string>;
  /** Who holds its deploy leases, as POD_NAME names a replica. */
  identity?: string;
  /**
   * Where it logs: by default a log of its own. Several deployers given one memoryLogger (or child loggers of it)
   * write one log, in the order things happened, since they all run in this process.
   */
  log?: ReturnType<typeof memoryLogger>;
}

/**
 * Starts a deployer wired as main.ts wires it (src/wire.ts), with `raw` config merged over defaults for the ground (kubeconfig, registries, a fresh cache
 * directory, which close() removes).
 */
export async function startDeployer(raw: Record<string, unknown>, options: DeployerOptions = {}): Promise<RunningDeployer> {
  const kube = ground('kube');
  const registry = ground('registry');
  const ownCache = raw['cache'] === undefined ? mkdtempSync(join(tmpdir(), 'deployer-cache-')) : undefined;
  const config = parseConfig(
    {
      kubernetes: { kubeconfig: kube.adminKubeconfig },
      registries: {
        [registry.anonymous]: { insecure: true },
        [registry.basic.host]: { insecure: true, username: registry.basic.username, password: { value: registry.basic.password } },
      },
      ...(ownCache === undefined ? {} : { cache: { dir: ownCache } }),
      ...raw,
    },
    options.env ?? {},
  );
  const { logger, logs, text } = options.log ?? memoryLogger();
  const { app, deployer } = wire({ config, logger, version: 'test', identity: options.identity });
  await app.listen({ host: '127.0.0.1', port: 0 });
  const { port } = app.server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    config,
    logs,
    logText: text,
    settled: () => deployer.settled(),
    close: async () => {
      await app.close();
      await deployer.settled();
      if (ownCache !== undefined) rmSync(ownCache, { recursive: true, force: true });
    },
  };
}

/** A service repository on the git ground; returns the config block for it. */
export async function serviceRepo(
  prefix: string,
  commits: FixtureCommit[],
): Promise<{ name: string; repo: FixtureRepo; repository: Record<string, unknown> }> {
  const git = ground('git');
  const name = uniqueName(prefix);
  const repo = await createRepo(git.root, name, commits);
  return {
    name,
    repo,
    repository: {
      url: `${git.baseUrl}${repo.urlPath}`,
      credentials: { username: git.username, password: { value: git.password } },
    },
  };
}

export function basic(user: string, secret: string): string {
  return `Basic ${Buffer.from(`${user}:${secret}`).toString('base64')}`;
}

export interface Answer {
  status: number;
  body: Record<string, unknown>;
}

/** A form-encoded request as `curl --data` sends it. */
export async function call(
  url: string,
  options: { method?: string; auth: string; form?: Record<string, string>; userAgent?: string },
): Promise<Answer> {
  const res = await fetch(url, {
    method: options.method ?? 'PUT',
    headers: {
      authorization: options.auth,
      'user-agent': options.userAgent ?? 'curl/8.5.0',
      ...(options.form === undefined ? {} : { 'content-type': 'application/x-www-form-urlencoded' }),
    },
    body: options.form === undefined ? undefined : new URLSearchParams(options.form).toString(),
  });
  return { status: res.status, body: (await res.json()) as Record<string, unknown> };
}
