import { describe, expect, it } from 'vitest';
import { ConfigError } from '../../src/config/load.js';
import { githubSteps } from '../../src/report/github-plan.js';
import { githubTarget } from '../../src/report/github-target.js';
import type { DeployEvent } from '../../src/core/types.js';

const SHA = '0123456789abcdef0123456789abcdef01234567';

describe('githubTarget: the repository and API of a service', () => {
  it.each([
    ['https://github.com/acme/web.git', { apiUrl: 'https://api.github.com', owner: 'acme', repo: 'web' }],
    ['https://github.com/acme/web', { apiUrl: 'https://api.github.com', owner: 'acme', repo: 'web' }],
    ['git@github.com:acme/web.git', { apiUrl: 'https://api.github.com', owner: 'acme', repo: 'web' }],
    ['ssh://git@github.com/acme/web.git', { apiUrl: 'https://api.github.com', owner: 'acme', repo: 'web' }],
    ['https://deployer@github.com/acme/web.js.git', { apiUrl: 'https://api.github.com', owner: 'acme', repo: 'web.js' }],
    ['https://octo.ghe.com/acme/web.git', { apiUrl: 'https://api.octo.ghe.com', owner: 'acme', repo: 'web' }],
    ['https://git.corp.example:8443/acme/web.git', { apiUrl: 'https://git.corp.example:8443/api/v3', owner: 'acme', repo: 'web' }],
    ['git@git.corp.example:platform/api.git', { apiUrl: 'https://git.corp.example/api/v3', owner: 'platform', repo: 'api' }],
  ])('%s', (url, target) => {
    expect(githubTarget(url, {}, 'k')).toEqual(target);
  });

  it('takes OWNER/NAME and the API root as configured, over the URL', () => {
    expect(githubTarget('https://git.example.com/x.git', { repository: 'acme/web', apiUrl: 'https://ghe.example.com/api/v3/' }, 'k')).toEqual({
      apiUrl: 'https://ghe.example.com/api/v3',
      owner: 'acme',
      repo: 'web',
    });
  });

  it.each([
    ['https://git.example.com/web.git', {}, 'k.repository: the repository URL names no GitHub OWNER/NAME; set it'],
    ['/srv/git/acme/web.git', {}, 'k.repository: the repository URL names no GitHub OWNER/NAME; set it'],
    ['/srv/git/acme/web.git', { repository: 'acme/web' }, 'k.apiUrl: the repository URL names no GitHub host; set it'],
  ])('refuses %s with %j, naming the key', (url, options, message) => {
    expect(() => githubTarget(url, options, 'k')).toThrow(new ConfigError(message));
  });
});

describe('githubSteps: what GitHub is told', () => {
  const event = (fields: Partial<DeployEvent> = {}): DeployEvent => ({
    service: 'web',
    kind: 'deploy',
    commit: SHA,
    tag: 'v1',
    result: 'failure',
    durationMs: 10,
    caller: { token: 'ci' },
    requestId: 'r',
    ...fields,
  });
  const failedWith = (status: number): DeployEvent => event({ error: { name: 'E', message: 'm', status } });

  it.each([
    [400, 'failure'],
    [404, 'failure'],
    [422, 'failure'],
    [401, 'error'],
    [403, 'error'],
    [409, 'error'],
    [500, 'error'],
    [502, 'error'],
    [503, 'error'],
    [504, 'error'],
  ])('a deploy that failed with %i is a %s', (status, state) => {
    const steps = githubSteps(failedWith(status), 'production');
    expect(steps.map((s) => `${s.kind} ${'state' in s ? s.state : ''}`)).toEqual([`deployment ${state}`, `status ${state}`]);
  });

  it('says nothing without a commit: GitHub knows versions by commit', () => {
    expect(githubSteps(event({ commit: undefined }), 'production')).toEqual([]);
    expect(githubSteps(event({ commit: undefined, result: 'success' }), 'production')).toEqual([]);
  });

  it('cuts descriptions to GitHub’s 140 characters, on one line', () => {
    const [deployment] = githubSteps(event({ error: { name: 'E', message: `line one\nline two ${'x'.repeat(300)}`, status: 422 } }), 'production');
    const description = deployment?.description ?? '';
    expect(description).toHaveLength(140);
    expect(description).toMatch(/^deploy failed \(422\): line one line two x+…$/);
  });

  it('a failed canary is reported in the canary environment', () => {
    const steps = githubSteps(event({ kind: 'canary', error: { name: 'E', message: 'm', status: 422 } }), 'live');
    expect(steps).toMatchObject([
      { kind: 'deployment', environment: 'live-canary', transient: true },
      { kind: 'status', context: 'deployer/live-canary' },
    ]);
  });
});
