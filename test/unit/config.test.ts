import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ConfigError, LEGACY_TOKEN_NAME, loadConfig, parseConfig, type Env } from '../../src/config/load.js';
import { ALL_ACTIONS } from '../../src/config/schema.js';

const dir = mkdtempSync(join(tmpdir(), 'deployer-config-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
function file(name: string, content: string): string {
  const path = join(dir, name);
  writeFileSync(path, content);
  return path;
}

const token = { ci: { secret: { value: 'ci-secret' } } };
const service = { repository: { url: 'https://git.example.com/acme/api.git' } };

/** The error message of parsing `raw`; fails the test if it parses. */
function errorOf(raw: unknown, env: Env = {}): string {
  try {
    parseConfig(raw, env);
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    return (err as ConfigError).message;
  }
  throw new Error('expected a ConfigError');
}

describe('parseConfig: every error names its key', () => {
  it.each([
    ['an unknown top-level key', { tokens: token, tokenz: {} }, 'invalid config: tokenz: unknown key'],
    ['an unknown nested key', { tokens: token, listen: { hots: 'x' } }, 'invalid config: listen.hots: unknown key'],
    ['a port out of range', { tokens: token, listen: { port: 70000 } }, 'invalid config: listen.port: Too big: expected number to be <=65535'],
    ['a port of the wrong type', { tokens: token, listen: { port: '80' } }, 'invalid config: listen.port: Invalid input: expected number, received string'],
    ['a bad log level', { tokens: token, logLevel: 'loud' }, 'invalid config: logLevel: Invalid option: expected one of "fatal"|"error"|"warn"|"info"|"debug"|"trace"|"silent"'],
    ['a bad token name', { tokens: { CI_Token: { secret: { value: 'x' } } } }, 'invalid config: tokens.CI_Token: invalid name: lower-case letters, digits and "-" (a DNS label)'],
    ['a secret given as a plain string', { tokens: { ci: { secret: 'x' } } }, 'invalid config: tokens.ci.secret: a secret reference: { env: VARIABLE }, { file: PATH } or { value: "..." }'],
    ['a secret reference with two kinds', { tokens: { ci: { secret: { env: 'A', file: '/b' } } } }, 'invalid config: tokens.ci.secret: a secret reference: { env: VARIABLE }, { file: PATH } or { value: "..." }'],
    ['an unknown action', { tokens: { ci: { secret: { value: 'x' }, actions: ['fly'] } } }, 'invalid config: tokens.ci.actions.0: Invalid option: expected one of "read"|"deploy"|"canary"|"rollback"|"promote"'],
    ['an empty service list', { tokens: { ci: { secret: { value: 'x' }, services: [] } } }, 'invalid config: tokens.ci.services: Too small: expected array to have >=1 items'],
    ['a service without repository', { tokens: token, services: { api: {} } }, 'invalid config: services.api.repository: Invalid input: expected object, received undefined'],
    ['a bad repository type', { tokens: token, services: { api: { repository: { url: 'x', type: 'cvs' } } } }, 'invalid config: services.api.repository.type: Invalid option: expected one of "git"|"svn"'],
    ['a manifests dir outside the repository', { tokens: token, services: { api: { ...service, manifestsDir: '../etc' } } }, 'invalid config: services.api.manifestsDir: a relative path inside the repository'],
    ['a bad namespace', { tokens: token, services: { api: { ...service, namespace: 'Prod' } } }, 'invalid config: services.api.namespace: lower-case letters, digits and "-" (a DNS label)'],
    ['a negative wait', { tokens: token, versions: { registryWaitSeconds: -1 } }, 'invalid config: versions.registryWaitSeconds: Too small: expected number to be >=0'],
    ['a bad bugsnag endpoint', { tokens: token, reports: { bugsnag: { apiKey: { value: 'k' }, notifyEndpoint: 'not a url' } } }, 'invalid config: reports.bugsnag.notifyEndpoint: Invalid URL'],
    ['a list at the top', [], 'invalid config: (top level): Invalid input: expected object, received array'],
    ['a reserved service name', { tokens: token, services: { version: service } }, "services.version: the name is reserved for the deployer's own endpoint /version"],
    ['no token', {}, 'tokens: no token is configured; add one under "tokens", set DEPLOYER_AUTH_TOKEN, or set "insecureNoAuth: true" to run without authentication (demos only)'],
  ])('%s', (_case, raw, message) => {
    expect(errorOf(raw)).toBe(message);
  });

  it('names every bad key at once', () => {
    expect(errorOf({ tokens: token, listen: { port: -1 }, cache: { dir: '' } })).toBe(
      'invalid config: listen.port: Too small: expected number to be >=0; cache.dir: Too small: expected string to have >=1 characters',
    );
  });

  it.each([
    ['a token secret', { tokens: { ci: { secret: { env: 'CI_SECRET' } } } }, 'tokens.ci.secret'],
    [
      'a repository password',
      { tokens: token, services: { api: { repository: { url: 'x', credentials: { password: { env: 'CI_SECRET' } } } } } },
      'services.api.repository.credentials.password',
    ],
    [
      'an ssh key',
      { tokens: token, services: { api: { repository: { url: 'x', credentials: { sshKey: { env: 'CI_SECRET' } } } } } },
      'services.api.repository.credentials.sshKey',
    ],
    ['a registry password', { tokens: token, registries: { 'r.example.com': { password: { env: 'CI_SECRET' } } } }, 'registries.r.example.com.password'],
    ['the bugsnag key', { tokens: token, reports: { bugsnag: { apiKey: { env: 'CI_SECRET' } } } }, 'reports.bugsnag.apiKey'],
    ['the slack webhook', { tokens: token, reports: { slack: { webhookUrl: { env: 'CI_SECRET' } } } }, 'reports.slack.webhookUrl'],
  ])('an unset environment variable for %s names the key and the variable', (_case, raw, key) => {
    expect(errorOf(raw)).toBe(`${key}: environment variable CI_SECRET is not set`);
    expect(errorOf(raw, { CI_SECRET: '' })).toBe(`${key}: environment variable CI_SECRET is not set`);
  });

  it('a missing secret file names the key and the file, not its content', () => {
    const path = join(dir, 'absent');
    expect(errorOf({ tokens: { ci: { secret: { file: path } } } })).toBe(`tokens.ci.secret: cannot read ${path}: ENOENT`);
  });

  it('an empty secret file names the key', () => {
    const path = file('empty', '\n');
    expect(errorOf({ tokens: { ci: { secret: { file: path } } } })).toBe(`tokens.ci.secret: ${path} is empty`);
  });

  it.each(['eighty', '-1', '65536', '80.5'])('a bad PORT (%s) names PORT', (port) => {
    expect(errorOf({ tokens: token }, { PORT: port })).toBe(`PORT: "${port}" is not a port number`);
  });
});

describe('parseConfig: values', () => {
  it('fills the defaults', () => {
    const config = parseConfig({ tokens: token, services: { api: service } }, {});
    expect(config.logLevel).toBe('info');
    expect(config.listen).toEqual({ host: '0.0.0.0', port: 8080 });
    expect(config.insecureNoAuth).toBe(false);
    expect(config.tokens['ci']?.services).toEqual(['*']);
    expect(config.tokens['ci']?.actions).toEqual(ALL_ACTIONS);
    expect(config.services['api']).toMatchObject({
      name: 'api',
      repository: { type: 'git', defaultBranch: 'main' },
      manifestsDir: 'kubernetes',
      namespace: 'default',
      allowNamespaces: [],
      allowClusterScoped: false,
    });
    expect(config.deploy.lockWaitSeconds).toBe(120);
    expect(config.versions).toEqual({ registryWaitSeconds: 55, pinDigests: true, remoteTimeoutSeconds: 30 });
  });

  it('resolves secrets from env, file (without its trailing newline) and value', () => {
    const path = file('ops-token', 'ops-secret\n');
    const config = parseConfig(
      {
        tokens: {
          ci: { secret: { env: 'CI_SECRET' } },
          ops: { secret: { file: path } },
          demo: { secret: { value: 'demo-secret' } },
        },
      },
      { CI_SECRET: 'ci-secret' },
    );
    expect(config.tokens['ci']?.secret.reveal()).toBe('ci-secret');
    expect(config.tokens['ops']?.secret.reveal()).toBe('ops-secret');
    expect(config.tokens['demo']?.secret.reveal()).toBe('demo-secret');
  });

  it('never serializes a secret', () => {
    const config = parseConfig({ tokens: { ci: { secret: { value: 'ci-secret-xyz' } } } }, {});
    expect(JSON.stringify(config)).not.toContain('ci-secret-xyz');
    expect(String(config.tokens['ci']?.secret)).toBe('[redacted]');
  });

  it('DEPLOYER_AUTH_TOKEN adds the token auth_token with every scope', () => {
    const config = parseConfig({}, { DEPLOYER_AUTH_TOKEN: 'legacy-secret' });
    const legacy = config.tokens[LEGACY_TOKEN_NAME];
    expect(LEGACY_TOKEN_NAME).toBe('auth_token');
    expect(legacy?.secret.reveal()).toBe('legacy-secret');
    expect(legacy?.services).toEqual(['*']);
    expect(legacy?.actions).toEqual(ALL_ACTIONS);
  });

  it('an empty DEPLOYER_AUTH_TOKEN is no token', () => {
    expect(errorOf({}, { DEPLOYER_AUTH_TOKEN: '' })).toMatch(/^tokens: no token is configured/);
  });

  it('insecureNoAuth allows starting without tokens', () => {
    expect(parseConfig({ insecureNoAuth: true }, {}).tokens).toEqual({});
  });

  it('DEPLOYER_PORT wins over PORT, and both over the file', () => {
    expect(parseConfig({ tokens: token, listen: { port: 1 } }, { PORT: '2' }).listen.port).toBe(2);
    expect(parseConfig({ tokens: token, listen: { port: 1 } }, { PORT: '2', DEPLOYER_PORT: '3' }).listen.port).toBe(3);
  });

  it("a Service link (Kubernetes sets DEPLOYER_PORT=tcp://IP:PORT for a Service named deployer) is not a port", () => {
    const link = { DEPLOYER_PORT: 'tcp://10.96.0.10:80', DEPLOYER_PORT_80_TCP: 'tcp://10.96.0.10:80' };
    expect(parseConfig({ tokens: token, listen: { port: 8080 } }, link).listen.port).toBe(8080);
    expect(parseConfig({ tokens: token, listen: { port: 8080 } }, { ...link, PORT: '2' }).listen.port).toBe(2);
    expect(errorOf({ tokens: token }, { DEPLOYER_PORT: 'http://x:80' })).toMatch(/PORT: "http:\/\/x:80" is not a port number/);
  });
});

describe('loadConfig', () => {
  it('reads the file DEPLOYER_CONFIG names', () => {
    const path = file('ok.yaml', 'logLevel: debug\ntokens:\n  ci:\n    secret: { env: CI_SECRET }\n');
    const config = loadConfig({ DEPLOYER_CONFIG: path, CI_SECRET: 's' });
    expect(config.logLevel).toBe('debug');
    expect(config.tokens['ci']?.secret.reveal()).toBe('s');
  });

  it('without DEPLOYER_CONFIG uses the defaults and the environment', () => {
    expect(Object.keys(loadConfig({ DEPLOYER_AUTH_TOKEN: 'x' }).tokens)).toEqual(['auth_token']);
  });

  it('an unreadable file names the file', () => {
    const path = join(dir, 'missing.yaml');
    expect(() => loadConfig({ DEPLOYER_CONFIG: path })).toThrow(new ConfigError(`cannot read config file ${path}: ENOENT: no such file or directory, open '${path}'`));
  });

  it('invalid YAML names the file and the line', () => {
    const path = file('bad.yaml', 'tokens:\n  ci: [\n');
    expect(() => loadConfig({ DEPLOYER_CONFIG: path })).toThrow(ConfigError);
    expect(() => loadConfig({ DEPLOYER_CONFIG: path })).toThrow(new RegExp(`^config file ${path} is not valid YAML: .*\\(3:1\\)`, 's'));
  });

  it('parses config.example.yaml given its environment variables', () => {
    const env = {
      DEPLOYER_CONFIG: 'config.example.yaml',
      DEPLOYER_TOKEN_CI: 'a',
      DEPLOYER_TOKEN_OPS: 'b',
      API_REPO_PASSWORD: 'c',
      API_REPO_TOKEN: 'd',
      LEGACY_WEB_SVN_PASSWORD: 'e',
      REGISTRY_PASSWORD: 'f',
      BUGSNAG_API_KEY: 'g',
      SLACK_WEBHOOK_URL: 'h',
      API_SLACK_WEBHOOK_URL: 'i',
      API_GITHUB_TOKEN: 'j',
    };
    const config = loadConfig(env);
    expect(Object.keys(config.tokens)).toEqual(['ci', 'ops']);
    expect(config.tokens['ci']).toMatchObject({ services: ['api'], actions: ['read', 'deploy', 'canary'] });
    expect(Object.keys(config.services)).toEqual(['api', 'legacy-web']);
    expect(config.services['legacy-web']?.repository.type).toBe('svn');
    expect(config.registries['127.0.0.1:5000']?.insecure).toBe(true);
    expect(config.reports.slack?.webhookUrl.reveal()).toBe('h');
    const notifications = config.services['api']?.notifications;
    expect(notifications?.slack).toMatchObject({ channel: '#api-deploys', notifyOnSuccess: true, enabled: true });
    expect(notifications?.slack?.webhookUrl?.reveal()).toBe('i');
    expect(notifications?.github).toMatchObject({ repository: 'acme/api', environment: 'production' });
    expect(notifications?.github?.token.reveal()).toBe('j');
    expect(JSON.stringify(notifications)).not.toMatch(/"(i|j)"/);
  });
});

describe('a start names every problem at once', () => {
  it('config.example.yaml without its environment names every unset variable, with its key', () => {
    expect(() => loadConfig({ DEPLOYER_CONFIG: 'config.example.yaml' })).toThrow(
      new ConfigError(
        [
          '10 problems in the configuration:',
          '  tokens.ci.secret: environment variable DEPLOYER_TOKEN_CI is not set',
          '  tokens.ops.secret: environment variable DEPLOYER_TOKEN_OPS is not set',
          '  services.api.repository.credentials.password: environment variable API_REPO_PASSWORD is not set',
          '  services.api.repository.credentials.token: environment variable API_REPO_TOKEN is not set',
          '  services.api.notifications.slack.webhookUrl: environment variable API_SLACK_WEBHOOK_URL is not set',
          '  services.api.notifications.github.token: environment variable API_GITHUB_TOKEN is not set',
          '  services.legacy-web.repository.credentials.password: environment variable LEGACY_WEB_SVN_PASSWORD is not set',
          '  registries.registry.example.com.password: environment variable REGISTRY_PASSWORD is not set',
          '  reports.bugsnag.apiKey: environment variable BUGSNAG_API_KEY is not set',
          '  reports.slack.webhookUrl: environment variable SLACK_WEBHOOK_URL is not set',
          'unset environment variables: DEPLOYER_TOKEN_CI DEPLOYER_TOKEN_OPS API_REPO_PASSWORD API_REPO_TOKEN API_SLACK_WEBHOOK_URL API_GITHUB_TOKEN LEGACY_WEB_SVN_PASSWORD REGISTRY_PASSWORD BUGSNAG_API_KEY SLACK_WEBHOOK_URL',
        ].join('\n'),
      ),
    );
  });

  it('a missing file and a bad PORT come with the unset variables', () => {
    const absent = join(dir, 'absent-too');
    const raw = { tokens: { ci: { secret: { env: 'CI_SECRET' } }, ops: { secret: { file: absent } } } };
    expect(errorOf(raw, { PORT: 'eighty' })).toBe(
      [
        '3 problems in the configuration:',
        '  tokens.ci.secret: environment variable CI_SECRET is not set',
        `  tokens.ops.secret: cannot read ${absent}: ENOENT`,
        '  PORT: "eighty" is not a port number',
      ].join('\n'),
    );
  });
});

describe('config.local.yaml', () => {
  it('starts with one token from the environment, one service, on loopback, contacting nothing else', () => {
    const config = loadConfig({ DEPLOYER_CONFIG: 'config.local.yaml', DEPLOYER_LOCAL_TOKEN: 'local-secret' });
    expect(Object.keys(config.tokens)).toEqual(['local']);
    expect(Object.keys(config.services)).toEqual(['hello']);
    expect(config.listen.host).toBe('127.0.0.1');
    expect(config.reports).toEqual({ bugsnag: undefined, slack: undefined });
  });

  it('without its token variable, says which variable to set', () => {
    expect(() => loadConfig({ DEPLOYER_CONFIG: 'config.local.yaml' })).toThrow(
      new ConfigError('tokens.local.secret: environment variable DEPLOYER_LOCAL_TOKEN is not set'),
    );
  });
});
