import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { basic } from './helpers.js';

/** Every secret config.example.yaml refers to, as the environment would give them. */
const EXAMPLE_ENV = {
  DEPLOYER_TOKEN_CI: 'ci-secret-from-env',
  DEPLOYER_TOKEN_OPS: 'ops-secret-from-env',
  API_REPO_PASSWORD: 'repo-password',
  API_REPO_TOKEN: 'repo-token',
  LEGACY_WEB_SVN_PASSWORD: 'svn-password',
  REGISTRY_PASSWORD: 'registry-password',
  BUGSNAG_API_KEY: 'bugsnag-key',
  SLACK_WEBHOOK_URL: 'https://hooks.slack.invalid/x',
  API_SLACK_WEBHOOK_URL: 'https://hooks.slack.invalid/api',
  API_GITHUB_TOKEN: 'github-token-from-env',
};

interface Started {
  readonly child: ChildProcess;
  readonly stdout: string[];
  readonly stderr: string[];
  readonly exit: Promise<number | null>;
  /** Resolves with the first JSON log line that `match` accepts. */
  logLine(match: (line: Record<string, unknown>) => boolean): Promise<Record<string, unknown>>;
}

const children: ChildProcess[] = [];
afterEach(() => {
  for (const child of children.splice(0)) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
});

/**
 * Starts src/main.ts under tsx with only the given environment. `node --import tsx` rather than `npx tsx`: npx
 * neither forwards SIGTERM nor reports the child's exit code, and would leave the deployer running.
 */
function startMain(env: Record<string, string>): Started {
  const child = spawn(process.execPath, ['--import', 'tsx', 'src/main.ts'], {
    cwd: process.cwd(),
    env: { PATH: process.env['PATH'] ?? '', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  children.push(child);
  const stdout: string[] = [];
  const stderr: string[] = [];
  const waiters: Array<{ match: (line: Record<string, unknown>) => boolean; resolve: (l: Record<string, unknown>) => void }> = [];
  let partial = '';
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => {
    partial += chunk;
    const lines = partial.split('\n');
    partial = lines.pop() ?? '';
    for (const text of lines) {
      stdout.push(text);
      let line: Record<string, unknown>;
      try {
        line = JSON.parse(text) as Record<string, unknown>;
      } catch {
        continue;
      }
      for (const w of waiters.filter((w) => w.match(line))) {
        waiters.splice(waiters.indexOf(w), 1);
        w.resolve(line);
      }
    }
  });
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => stderr.push(chunk));
  const exit = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  const logLine = (match: (line: Record<string, unknown>) => boolean): Promise<Record<string, unknown>> =>
    new Promise((resolve, reject) => {
      const seen = stdout.map((t) => {
        try {
          return JSON.parse(t) as Record<string, unknown>;
        } catch {
          return undefined;
        }
      });
      const already = seen.find((l) => l !== undefined && match(l));
      if (already !== undefined) return resolve(already);
      waiters.push({ match, resolve });
      void exit.then((code) =>
        reject(new Error(`deployer exited (${String(code)}) before the log line; stderr: ${stderr.join('')}`)),
      );
    });
  return { child, stdout, stderr, exit, logLine };
}

const portOf = (line: Record<string, unknown>): number => Number(new URL(String(line['address'])).port);

describe('main', () => {
  it('starts from config.example.yaml and env vars, answers, and exits 0 on SIGTERM', async () => {
    const main = startMain({ DEPLOYER_CONFIG: 'config.example.yaml', DEPLOYER_PORT: '0', ...EXAMPLE_ENV });
    const port = portOf(await main.logLine((l) => l['msg'] === 'listening'));

    const res = await fetch(`http://127.0.0.1:${port}/`, { headers: { authorization: basic('ops', EXAMPLE_ENV.DEPLOYER_TOKEN_OPS) } });
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ services: ['api', 'legacy-web'], repositories: ['api', 'legacy-web'] });
    const version = await fetch(`http://127.0.0.1:${port}/version`, { headers: { authorization: basic('ci', EXAMPLE_ENV.DEPLOYER_TOKEN_CI) } });
    expect(await version.json()).toEqual({ name: 'deployer', version: '0.1.0' });

    main.child.kill('SIGTERM');
    expect(await main.exit).toBe(0);
    expect(main.stdout.join('\n')).not.toContain(EXAMPLE_ENV.DEPLOYER_TOKEN_OPS);
  });

  it('lets a request in flight finish after SIGTERM', async () => {
    const main = startMain({ DEPLOYER_CONFIG: 'config.example.yaml', DEPLOYER_PORT: '0', ...EXAMPLE_ENV });
    const port = portOf(await main.logLine((l) => l['msg'] === 'listening'));

    // Send the headers and half the body, so the request is in flight when the signal comes.
    const body = 'commit=abc1234';
    const answer = new Promise<{ status: number; text: string }>((resolve, reject) => {
      const req = request(
        {
          host: '127.0.0.1',
          port,
          // A connection of its own: no kept-alive socket of an earlier test's (dead) server is reused.
          agent: false,
          method: 'PUT',
          path: '/api/deploy',
          headers: {
            authorization: basic('ops', EXAMPLE_ENV.DEPLOYER_TOKEN_OPS),
            'content-type': 'application/x-www-form-urlencoded',
            'content-length': String(body.length),
            'x-request-id': 'in-flight-1',
          },
        },
        (res) => {
          let text = '';
          res.setEncoding('utf8').on('data', (c: string) => (text += c));
          res.on('end', () => resolve({ status: res.statusCode ?? 0, text }));
        },
      );
      req.on('error', reject);
      req.write(body.slice(0, 5));
      void main
        .logLine((l) => l['reqId'] === 'in-flight-1')
        .then(() => {
          main.child.kill('SIGTERM');
          return main.logLine((l) => l['msg'] === 'closing: no new requests, waiting for requests in flight');
        })
        .then(() => req.end(body.slice(5)), reject);
    });

    const { status, text } = await answer;
    // The example's repository host does not exist here: the real engine answers in full with git's upstream error.
    expect(status).toBe(503);
    expect(JSON.parse(text)).toMatchObject({ system: 'git', requestId: 'in-flight-1', error: expect.stringContaining('cannot reach https://git.example.com/acme/api.git') as unknown });
    expect(await main.exit).toBe(0);
  });

  it.each([
    ['a missing secret variable', {}, 'tokens.ci.secret: environment variable DEPLOYER_TOKEN_CI is not set', 'DEPLOYER_TOKEN_CI'],
    ['a bad port', { DEPLOYER_PORT: 'eighty' }, 'PORT: "eighty" is not a port number', ''],
  ])('a bad config (%s) exits 1 with a message naming the key', async (_case, env, message, drop) => {
    const given: Record<string, string> = { DEPLOYER_CONFIG: 'config.example.yaml', ...EXAMPLE_ENV, ...env };
    delete given[drop];
    const main = startMain(given);
    expect(await main.exit).toBe(1);
    expect(main.stderr.join('')).toBe(`deployer: ${message}\n`);
    expect(main.stdout).toEqual([]);
  });

  it('a config file with a bad value exits 1 naming the key', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'deployer-main-'));
    try {
      const file = join(dir, 'config.yaml');
      writeFileSync(file, 'listen:\n  port: 99999\ntokens:\n  ci:\n    secret: { env: CI_SECRET }\n');
      const main = startMain({ DEPLOYER_CONFIG: file, CI_SECRET: 'x' });
      expect(await main.exit).toBe(1);
      expect(main.stderr.join('')).toMatch(/^deployer: invalid config: listen\.port: /);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('no token and no insecureNoAuth exits 1', async () => {
    const main = startMain({});
    expect(await main.exit).toBe(1);
    expect(main.stderr.join('')).toMatch(/^deployer: tokens: no token is configured/);
  });
});
