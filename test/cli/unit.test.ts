import { describe, expect, it } from 'vitest';
import { DeployerClient } from '../../src/cli/client.js';
import { isLoopback, parseEnvFile, resolveConfig, type EnvFile } from '../../src/cli/config.js';
import { UsageError } from '../../src/cli/errors.js';
import { commonTags, formatAge, formatApiError } from '../../src/cli/output.js';

const FILE = '/home/jane/.deployer/deployer_env';
const file = (text: string, mode = 0o600): EnvFile => ({ path: FILE, text, mode });

describe('parseEnvFile', () => {
  it('reads KEY=VALUE lines, quoted or not, with export, comments and blank lines', () => {
    const { values, problems } = parseEnvFile(
      [
        '# the deployer',
        'DEPLOYER_URL="deployer.example.com"',
        '',
        "export DEPLOYER_AUTH_TOKEN='s3cr$t\\x'",
        'DEPLOYER_TOKEN_NAME = jane  ',
        'OTHER=a=b',
      ].join('\r\n'),
    );
    expect({ ...values }).toEqual({
      DEPLOYER_URL: 'deployer.example.com',
      DEPLOYER_AUTH_TOKEN: 's3cr$t\\x',
      DEPLOYER_TOKEN_NAME: 'jane',
      OTHER: 'a=b',
    });
    expect(problems).toEqual([]);
  });

  it('names the lines it cannot read and keeps the rest', () => {
    const { values, problems } = parseEnvFile('DEPLOYER_URL=x\njust text\n1BAD=y\n');
    expect({ ...values }).toEqual({ DEPLOYER_URL: 'x' });
    expect(problems).toEqual(['line 2 is not KEY=VALUE; ignored', 'line 3 is not KEY=VALUE; ignored']);
  });

  it('keeps a key named __proto__ as a plain key', () => {
    const { values } = parseEnvFile('__proto__=x\n');
    expect(Object.getPrototypeOf(values)).toBeNull();
    expect(values['__proto__']).toBe('x');
  });
});

describe('resolveConfig', () => {
  it('takes each key from the environment before the file; the token name defaults to auth_token', () => {
    const config = resolveConfig(
      { DEPLOYER_AUTH_TOKEN: 'from-env', DEPLOYER_URL: '' },
      file('DEPLOYER_URL=https://deployer.example.com\nDEPLOYER_AUTH_TOKEN=from-file\n'),
      FILE,
    );
    expect(config.url.href).toBe('https://deployer.example.com/');
    expect(config.urlOrigin).toBe(FILE);
    expect(config.credentials).toEqual({ user: 'auth_token', password: 'from-env' });
    expect(config.tokenOrigin).toBe('the environment');
    expect(config.warnings).toEqual([]);
  });

  it('a URL without a scheme means https; a path prefix is kept and ends in /', () => {
    expect(resolveConfig({ DEPLOYER_URL: 'deployer.example.com' }, undefined, FILE).url.href).toBe('https://deployer.example.com/');
    expect(resolveConfig({ DEPLOYER_URL: 'https://example.com/deployer?x=1#y' }, undefined, FILE).url.href).toBe(
      'https://example.com/deployer/',
    );
  });

  it('turns URL userinfo into basic credentials (fetch refuses it), unless a token is configured', () => {
    const fromUrl = resolveConfig({ DEPLOYER_URL: 'https://auth_token:p%40ss@deployer.example.com' }, undefined, FILE);
    expect(fromUrl.url.href).toBe('https://deployer.example.com/');
    expect(fromUrl.credentials).toEqual({ user: 'auth_token', password: 'p@ss' });
    const withToken = resolveConfig(
      { DEPLOYER_URL: 'https://a:b@deployer.example.com', DEPLOYER_AUTH_TOKEN: 't', DEPLOYER_TOKEN_NAME: 'jane' },
      undefined,
      FILE,
    );
    expect(withToken.url.href).toBe('https://deployer.example.com/');
    expect(withToken.credentials).toEqual({ user: 'jane', password: 't' });
  });

  it('works without a token (a deployer with insecureNoAuth)', () => {
    expect(resolveConfig({ DEPLOYER_URL: 'http://127.0.0.1:8080' }, undefined, FILE).credentials).toBeUndefined();
  });

  it.each([
    ['http://deployer.example.com', true],
    ['http://10.0.0.5:8080', true],
    ['http://127.0.0.1:8080', false],
    ['http://localhost:8080', false],
    ['http://[::1]:8080', false],
    ['https://deployer.example.com', false],
  ])('warns about plain http to a host other than loopback: %s → %s', (url, warns) => {
    const { warnings } = resolveConfig({ DEPLOYER_URL: url, DEPLOYER_AUTH_TOKEN: 't' }, undefined, FILE);
    expect(warnings.some((w) => w.includes('plain http'))).toBe(warns);
  });

  it('warns when the env file it uses may be read by others, and about lines it ignored', () => {
    const { warnings } = resolveConfig({}, file('DEPLOYER_URL=https://d.example.com\nDEPLOYER_AUTH_TOKEN=t\nnonsense\n', 0o644), FILE);
    expect(warnings).toEqual([
      `${FILE}: line 3 is not KEY=VALUE; ignored`,
      `${FILE} may be read by other users (mode 644); chmod 600 it`,
    ]);
  });

  it('says how to configure depctl when no URL is configured', () => {
    expect(() => resolveConfig({ DEPLOYER_AUTH_TOKEN: 't' }, file('# empty\n'), FILE)).toThrow(UsageError);
    expect(() => resolveConfig({}, undefined, FILE)).toThrow(`write them to ${FILE}`);
  });

  it.each([
    ['ftp://deployer.example.com', 'must be an http or https URL, not ftp:'],
    ['https://exa mple.com', 'is not a URL'],
  ])('refuses DEPLOYER_URL %s', (url, message) => {
    expect(() => resolveConfig({ DEPLOYER_URL: url }, undefined, FILE)).toThrow(message);
  });
});

describe('isLoopback', () => {
  it.each([
    ['localhost', true],
    ['app.localhost', true],
    ['127.0.0.1', true],
    ['127.1.2.3', true],
    ['[::1]', true],
    ['[::ffff:7f00:1]', true],
    ['0.0.0.0', false],
    ['10.0.0.1', false],
    ['localhost.example.com', false],
    ['127.0.0.1.nip.io', false],
  ])('%s → %s', (host, loopback) => {
    expect(isLoopback(host)).toBe(loopback);
  });
});

describe('DeployerClient.urlOf', () => {
  const client = new DeployerClient({
    config: { url: new URL('https://example.com/deployer/'), credentials: undefined, tokenName: 'auth_token', tokenOrigin: undefined },
    userAgent: 'depctl/test',
    timeoutMs: 1000,
  });

  it('escapes each segment below the base path', () => {
    expect(client.urlOf(['shop', 'tags'], { commit: 'a b', tag: undefined }).href).toBe(
      'https://example.com/deployer/shop/tags?commit=a+b',
    );
    expect(client.urlOf(['a/b?c#d']).href).toBe('https://example.com/deployer/a%2Fb%3Fc%23d');
  });

  it.each(['.', '..', ''])('refuses %j, which a URL parser would read as a path step', (name) => {
    expect(() => client.urlOf([name])).toThrow(UsageError);
  });
});

describe('output', () => {
  it('commonTags: only tags every image has, sorted, once', () => {
    expect(
      commonTags({
        service: 's',
        ref: 'main',
        images: [
          { image: 'a', tags: ['main-2', 'main-1', 'main-1', 'only-a'] },
          { image: 'b', tags: ['main-1', 'main-2', 'only-b'] },
        ],
      }),
    ).toEqual(['main-1', 'main-2']);
    expect(commonTags({ service: 's', ref: 'main', images: [] })).toEqual([]);
  });

  it('formatApiError: the text, then field, refused objects and request id', () => {
    expect(
      formatApiError('the apiserver refused 1 object(s)', 422, {
        error: 'ignored: the message is given',
        field: 'commit',
        failures: [{ kind: 'Service', namespace: 'ns', name: 'web', reason: 'port out of range' }],
        requestId: 'req-1',
      }),
    ).toBe(
      ['the apiserver refused 1 object(s) (422)', '  field: commit', '  Service ns/web: port out of range', '  request id: req-1'].join('\n'),
    );
  });
});

describe('formatAge', () => {
  it.each([
    [0, '0s'],
    [59.9, '59s'],
    [60, '1m'],
    [3599, '59m'],
    [3600, '1h'],
    [3 * 3600 + 5 * 60, '3h5m'],
    [86400, '1d'],
    [2 * 86400 + 4 * 3600 + 59, '2d4h'],
  ])('%s s → %s', (seconds, text) => {
    expect(formatAge(seconds)).toBe(text);
  });
});
