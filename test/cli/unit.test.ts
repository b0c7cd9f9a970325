import { describe, expect, it } from 'vitest';
import { DeployerClient } from '../../src/cli/client.js';
import { isLoopback, parseEnvFile, resolveConfig, type EnvFile } from '../../src/cli/config.js';
import { UsageError } from '../../src/cli/errors.js';
import { headerValue } from '../../src/cli/local.js';
import { editDistance, nearest, parseCommandLine, type OptionName } from '../../src/cli/options.js';
import { commonTags, formatAge, formatApiError, formatDeploy } from '../../src/cli/output.js';
import type { ServiceView } from '../../src/cli/schemas.js';
import { podsOf, waitSecondsOf } from '../../src/cli/wait.js';
import { DEFAULT_WAIT_SECONDS, parseDuration } from '../../src/http/flow-routes.js';

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

  it('a path prefix is kept and ends in /; query and fragment go', () => {
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
    ['deployer.example.com', 'DEPLOYER_URL must start with http:// or https://: got "deployer.example.com"'],
    ['localhost:8080', 'DEPLOYER_URL must start with http:// or https://: got "localhost:8080"'],
    ['ftp://deployer.example.com', 'DEPLOYER_URL must start with http:// or https://: got "ftp://deployer.example.com"'],
    // A token written into the URL never reaches the message.
    ['auth_token:s3cret@deployer.example.com', 'DEPLOYER_URL must start with http:// or https://: got "***@deployer.example.com"'],
    ['ftp://jane:s3cret@deployer.example.com/x', 'DEPLOYER_URL must start with http:// or https://: got "ftp://***@deployer.example.com/x"'],
    ['https://exa mple.com', 'DEPLOYER_URL (from the environment) is not a URL: "https://exa mple.com"'],
  ])('refuses DEPLOYER_URL %s in its own words (exit 2)', (url, message) => {
    let caught: unknown;
    try {
      resolveConfig({ DEPLOYER_URL: url }, undefined, FILE);
    } catch (err) {
      caught = err;
    }
    expect(caught).toBeInstanceOf(UsageError);
    expect((caught as UsageError).message).toBe(message);
    expect((caught as UsageError).exitCode).toBe(2);
  });

  it('names the env file a URL without a scheme comes from', () => {
    expect(() => resolveConfig({}, file('DEPLOYER_URL=deployer.example.com\n'), FILE)).toThrow(
      `DEPLOYER_URL must start with http:// or https://: got "deployer.example.com" (in ${FILE})`,
    );
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

  it('formatApiError: a failed rollout lists each Deployment and what was applied', () => {
    expect(
      formatApiError('the rollout failed: api: pod api-1: container app: CrashLoopBackOff', 422, {
        error: 'the rollout failed: api: pod api-1: container app: CrashLoopBackOff',
        tag: 'main-abc1234',
        commit: 'abc1234',
        verdict: {
          result: 'failure',
          message: 'the rollout failed: api: pod api-1: container app: CrashLoopBackOff',
          deployments: [{ namespace: 'ns', name: 'api', state: 'failed', reason: 'pod api-1: container app: CrashLoopBackOff' }],
        },
      }),
    ).toBe(
      [
        'the rollout failed: api: pod api-1: container app: CrashLoopBackOff (422)',
        '  Deployment ns/api: failed: pod api-1: container app: CrashLoopBackOff',
        '  applied: main-abc1234 (commit abc1234)',
      ].join('\n'),
    );
  });

  it('formatDeploy and formatApiError name the newer request that took the place of a deploy (supersededBy)', () => {
    const supersededBy = { requestId: 'req-9', commit: 'c'.repeat(40), tag: 'main-ccccccc' };
    const result = { message: 'web main-ccccccc is deployed', service: 'web', kind: 'deploy', commit: 'c'.repeat(40), tag: 'main-ccccccc', images: [], objects: [], durationMs: 1200, supersededBy };
    expect(formatDeploy(result)).toContain(`superseded by: request req-9 (main-ccccccc, commit ${'c'.repeat(40)})`);
    expect(formatApiError('web abc was not deployed', 409, { error: 'x', supersededBy, requestId: 'req-2' })).toBe(
      ['web abc was not deployed (409)', `  superseded by: request req-9 (main-ccccccc, commit ${'c'.repeat(40)})`, '  request id: req-2'].join('\n'),
    );
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

describe('parseCommandLine: mistakes in depctl\'s words', () => {
  const deployOptions = (name: string): readonly OptionName[] | undefined => (name === 'deploy' ? ['commit', 'tag', 'wait', 'json', 'timeout', 'help'] : undefined);
  const message = (argv: string[]): string => {
    try {
      parseCommandLine(argv, deployOptions);
    } catch (err) {
      expect(err).toBeInstanceOf(UsageError);
      return (err as UsageError).message;
    }
    throw new Error(`no error for ${argv.join(' ')}`);
  };

  it.each([
    [['deploy', '--comit', 'x'], 'unknown option --comit; did you mean --commit?\nsee "depctl help deploy"'],
    [['deploy', '--comit=x'], 'unknown option --comit; did you mean --commit?\nsee "depctl help deploy"'],
    [['deploy', '--tga', 'v1'], 'unknown option --tga; did you mean --tag?\nsee "depctl help deploy"'],
    [['deploy', '--wiat'], 'unknown option --wiat; did you mean --wait?\nsee "depctl help deploy"'],
    [['deploy', '--com'], 'unknown option --com; did you mean --commit?\nsee "depctl help deploy"'],
    [['deploy', '-commit', 'x'], 'unknown option -commit; did you mean --commit?\nsee "depctl help deploy"'],
    [['deploy', '--frobnicate'], 'unknown option --frobnicate\nsee "depctl help deploy"'],
    [['--verison'], 'unknown option --verison; did you mean --version?\nsee "depctl help"'],
    [['deploy', '--tag'], '--tag needs a value, e.g. --tag TAG\nsee "depctl help deploy"'],
    [['deploy', '--commit', '--json'], '--commit needs a value, not the option --json (write --commit=--json if it is the value)\nsee "depctl help deploy"'],
    [['deploy', '--json=yes'], '--json takes no value (got --json=yes)\nsee "depctl help deploy"'],
  ])('%j', (argv, expected) => {
    expect(message(argv)).toBe(expected);
  });

  it('--wait alone does not take the next word as its value; --wait=5m does', () => {
    expect(parseCommandLine(['deploy', '--wait', 'shop'], deployOptions)).toEqual({ values: { wait: 'true' }, positionals: ['deploy', 'shop'] });
    expect(parseCommandLine(['deploy', 'shop', '--wait=5m'], deployOptions)).toEqual({ values: { wait: '5m' }, positionals: ['deploy', 'shop'] });
    expect(parseCommandLine(['deploy', '--', '--wait'], deployOptions)).toEqual({ values: {}, positionals: ['deploy', '--wait'] });
  });
});

describe('nearest and editDistance', () => {
  it.each([
    ['comit', 'commit'],
    ['commmit', 'commit'],
    ['ocmmit', 'commit'],
    ['tga', 'tag'],
    ['jsno', 'json'],
    ['ta', 'tag'],
    // A prefix of two options names neither.
    ['t', undefined],
    ['x', undefined],
    ['deploy', undefined],
  ])('%s → %s', (typed, near) => {
    expect(nearest(typed, ['commit', 'tag', 'json', 'timeout', 'help'])).toBe(near);
  });

  it('counts a swap of neighbours as one edit', () => {
    expect(editDistance('ocmmit', 'commit')).toBe(1);
    expect(editDistance('', 'abc')).toBe(3);
    expect(editDistance('kitten', 'sitting')).toBe(3);
  });
});

describe('--wait durations', () => {
  it.each(['90', '90s', '5m', '1h30m', '2h', '1m30s', 'true'])('%s reads as the deployer reads it', (text) => {
    expect(waitSecondsOf(text)).toBe(text === 'true' ? DEFAULT_WAIT_SECONDS : parseDuration(text));
  });

  it.each(['', 'soon', '5 m', '1d', '0', '0s', '-5m', '5m1h'])('%j is a usage error', (text) => {
    expect(() => waitSecondsOf(text)).toThrow(UsageError);
  });

  it('no --wait: no waiting', () => {
    expect(waitSecondsOf(undefined)).toBeUndefined();
  });
});

describe('podsOf', () => {
  const view = (deployments: ServiceView['deployments']): ServiceView => ({
    name: 's',
    repository: { url: 'u', type: 'git', defaultBranch: 'main', credentials: [] },
    manifestsDir: 'kubernetes',
    namespace: 'ns',
    allowNamespaces: [],
    allowClusterScoped: false,
    deployments,
  });

  it('sums the ready and desired pods of the track, across Deployments', () => {
    const v = view([
      { namespace: 'ns', name: 'a', stable: { replicas: { desired: 3, ready: 1 } }, canary: { replicas: { desired: 1, ready: 0 } } },
      { namespace: 'ns', name: 'b', stable: { replicas: { desired: 2, ready: 2 } } },
    ]);
    expect(podsOf(v, 'stable')).toEqual({ ready: 3, desired: 5 });
    expect(podsOf(v, 'canary')).toEqual({ ready: 0, desired: 1 });
  });

  it('is undefined when nothing of the track runs, or the deployer does not say', () => {
    expect(podsOf(view([{ namespace: 'ns', name: 'a', stable: { replicas: { desired: 1, ready: 1 } } }]), 'canary')).toBeUndefined();
    expect(podsOf(view(undefined), 'stable')).toBeUndefined();
  });
});

describe('headerValue (the Executor header)', () => {
  it.each([
    ['  jane@example.com\n', 'jane@example.com'],
    ['jürgen', 'j%C3%BCrgen'],
    ['a\r\nInjected: yes', 'aInjected: yes'],
    ['', undefined],
    ['x'.repeat(300), 'x'.repeat(256)],
  ])('%j → %j', (text, value) => {
    expect(headerValue(text)).toBe(value);
  });
});

describe('depctl promote: the figures of a gated promotion', () => {
  const analysis = {
    verdict: 'pass',
    message: 'the canary of shop served 1210 requests in the last 5m (stable 4830): ...',
    window: '5m',
    quantile: 0.95,
    minRequests: 100,
    canary: { requests: 1210, latencySeconds: 0.0213, errorRatio: 0.0041, cpuCores: 0.182, memoryBytes: 96.2 * 1024 * 1024 },
    stable: { requests: 4830.4, latencySeconds: 0.0209, errorRatio: 0.0038, cpuCores: 0.179, memoryBytes: 95.8 * 1024 * 1024 },
    regressions: [],
  };

  it('prints canary beside stable under the answer of a promotion (as the README shows it)', () => {
    const text = formatDeploy({ message: 'shop main-abc1234 is promoted', service: 'shop', kind: 'promote', outcome: 'promoted', tag: 'main-abc1234', images: [], objects: [], durationMs: 1200, analysis });
    expect(text).toBe(
      [
        'shop main-abc1234 is promoted',
        'tag:  main-abc1234',
        'took: 1.2 s',
        'analysis: pass over 5m (at least 100 requests each)',
        '                  canary    stable',
        '  requests        1210      4830',
        '  p95 latency     21.3 ms   20.9 ms',
        '  error ratio     0.41%     0.38%',
        '  cpu per pod     182m      179m',
        '  memory per pod  96.2 MiB  95.8 MiB',
      ].join('\n'),
    );
  });

  it('prints the figures and the regression of a refused promotion (409), "-" where Prometheus had none', () => {
    const refused = {
      ...analysis,
      verdict: 'regression',
      canary: { ...analysis.canary, latencySeconds: 0.0951, cpuCores: null, memoryBytes: null },
      stable: { ...analysis.stable, cpuCores: null, memoryBytes: null },
      regressions: [{ figure: 'latency', message: "p95 latency 95.1 ms is 74.2 ms above stable's 20.9 ms (at most 50 ms)" }],
    };
    const text = formatApiError('the canary of shop (main-abc1234) is not promoted: ...', 409, { error: 'x', analysis: refused });
    expect(text.split('\n').slice(1)).toEqual([
      '  analysis: regression over 5m (at least 100 requests each)',
      '                    canary   stable',
      '    requests        1210     4830',
      '    p95 latency     95.1 ms  20.9 ms',
      '    error ratio     0.41%    0.38%',
      '    cpu per pod     -        -',
      '    memory per pod  -        -',
      "    regression: p95 latency 95.1 ms is 74.2 ms above stable's 20.9 ms (at most 50 ms)",
    ]);
  });
});
