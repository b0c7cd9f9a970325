import { describe, expect, it } from 'vitest';
import { parseConfig } from '../../src/config/load.js';
import { DEFAULT_KEYS, keysFor, readKey } from '../../src/core/keys.js';
import type { KubeObject, LiveDeployment } from '../../src/core/types.js';
import { rewrite } from '../../src/deploy/rewrite.js';
import { isCanary, previousAnnotations, previousOf, serviceSelectors, stableNameOf, versionOf } from '../../src/deploy/state.js';

const IMAGE = 'registry.example.com/team/shop';
const D1 = `sha256:${'1'.repeat(64)}`;
const C1 = '1111111111111111111111111111111111111111';
const C2 = '2222222222222222222222222222222222222222';

/** A Deployment as the previous release (keys under deployer.io) left it in the cluster. */
function legacyDeployment(overrides: Partial<LiveDeployment> = {}): LiveDeployment {
  return {
    namespace: 'shop',
    name: 'shop',
    uid: 'uid-1',
    generation: 1,
    createdAt: '2024-05-06T07:00:00Z',
    labels: { app: 'shop', track: 'stable', 'deployer.io/service': 'shop' },
    annotations: {
      'deployer.io/service': 'shop',
      'deployer.io/tag': 'main-1111111',
      'deployer.io/commit': C1,
      'deployer.io/track': 'stable',
      'deployer.io/caller': 'ci',
      'deployer.io/deployed-at': '2024-05-06T07:08:09.000Z',
      'deployer.io/request-id': 'req-1',
      'deployer.io/previous-tag': 'main-0000000',
      'deployer.io/previous-commit': C2,
      'deployer.io/previous-digests': JSON.stringify({ [IMAGE]: D1 }),
      'deployer.io/previous-caller': 'ops',
    },
    selector: { app: 'shop' },
    images: [`${IMAGE}:main-1111111@${D1}`],
    replicas: { desired: 1, ready: 1, updated: 1, available: 1, total: 1 },
    status: { observedGeneration: 1, conditions: [] },
    ...overrides,
  };
}

describe('keys under a configurable domain', () => {
  it('defaults to deployer.internal and the thesis track label, reading deployer.io as the earlier keys', () => {
    expect(DEFAULT_KEYS.serviceLabel).toBe('deployer.internal/service');
    expect(DEFAULT_KEYS.annotations.tag).toBe('deployer.internal/tag');
    expect(DEFAULT_KEYS.previous.executor).toBe('deployer.internal/previous-executor');
    expect(DEFAULT_KEYS.trackLabel).toBe('track');
    expect(DEFAULT_KEYS.legacy?.serviceLabel).toBe('deployer.io/service');
  });

  it('builds every key under another domain and track label', () => {
    const keys = keysFor({ domain: 'deploy.acme.example', trackLabel: 'acme.example/track' });
    expect(keys.canaryOfLabel).toBe('deploy.acme.example/canary-of');
    expect(keys.annotations.deployedAt).toBe('deploy.acme.example/deployed-at');
    expect(keys.trackLabel).toBe('acme.example/track');
    expect(keys.legacy?.trackLabel).toBe('track');
  });

  it('has no earlier keys to read when configured as the earlier ones', () => {
    expect(keysFor({ domain: 'deployer.io' }).legacy).toBeUndefined();
  });

  it('reads the current key first, the earlier one where it is missing', () => {
    const pick = (k: typeof DEFAULT_KEYS): string => k.annotations.tag;
    expect(readKey(DEFAULT_KEYS, { 'deployer.internal/tag': 'new', 'deployer.io/tag': 'old' }, pick)).toBe('new');
    expect(readKey(DEFAULT_KEYS, { 'deployer.io/tag': 'old' }, pick)).toBe('old');
    expect(readKey(DEFAULT_KEYS, {}, pick)).toBeUndefined();
    expect(readKey(keysFor({ domain: 'deployer.io' }), { 'deployer.internal/tag': 'x' }, pick)).toBeUndefined();
  });

  it('lists a service by both selectors while the earlier keys are read', () => {
    expect(serviceSelectors(DEFAULT_KEYS, 'shop')).toEqual(['deployer.internal/service=shop', 'deployer.io/service=shop']);
    expect(serviceSelectors(keysFor({ domain: 'deployer.io' }), 'shop')).toEqual(['deployer.io/service=shop']);
  });
});

describe('a Deployment written by the previous release', () => {
  it('has its version, its last-known-good and its track read back', () => {
    const d = legacyDeployment();
    expect(versionOf(DEFAULT_KEYS, d)).toMatchObject({ tag: 'main-1111111', commit: C1, deployedBy: 'ci', digest: D1 });
    expect(previousOf(DEFAULT_KEYS, d.annotations)).toMatchObject({ tag: 'main-0000000', commit: C2, deployedBy: 'ops', digests: { [IMAGE]: D1 } });
    expect(isCanary(DEFAULT_KEYS, d)).toBe(false);
    const canary = legacyDeployment({
      name: 'shop-canary',
      labels: { track: 'canary', 'deployer.io/canary-of': 'shop' },
      annotations: { 'deployer.io/track': 'canary' },
    });
    expect(isCanary(DEFAULT_KEYS, canary)).toBe(true);
    expect(stableNameOf(DEFAULT_KEYS, canary)).toBe('shop');
  });

  it('has its record rewritten under the current keys on a redeploy of the same version', () => {
    const out = previousAnnotations(DEFAULT_KEYS, 'deploy', legacyDeployment(), { tag: 'main-1111111', commit: C1, digests: { [IMAGE]: D1 } });
    expect(out).toEqual({
      'deployer.internal/previous-tag': 'main-0000000',
      'deployer.internal/previous-commit': C2,
      'deployer.internal/previous-digests': JSON.stringify({ [IMAGE]: D1 }),
      'deployer.internal/previous-caller': 'ops',
    });
  });

  it('becomes the previous version, under the current keys, when another one is deployed', () => {
    const out = previousAnnotations(DEFAULT_KEYS, 'deploy', legacyDeployment(), { tag: 'main-2222222', commit: C2, digests: {} });
    expect(out).toMatchObject({ 'deployer.internal/previous-tag': 'main-1111111', 'deployer.internal/previous-caller': 'ci' });
    expect(Object.keys(out).some((k) => k.startsWith('deployer.io/'))).toBe(false);
  });
});

describe('rewrite: the recommended labels and the executor', () => {
  const deployment: KubeObject = {
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    metadata: { name: 'web' },
    spec: { selector: { matchLabels: { app: 'web' } }, template: { metadata: { labels: { app: 'web' } }, spec: { containers: [{ name: 'a', image: IMAGE }] } } },
  };
  const configMap: KubeObject = { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'c' } };
  const options = { track: 'stable' as const, tag: 'main-1111111', commit: C1, digests: {}, caller: 'ci', requestId: 'r', service: 'web' };
  const templateOf = (o: KubeObject | undefined): { metadata: { labels: Record<string, string>; annotations: Record<string, string> } } =>
    (o?.['spec'] as { template: { metadata: { labels: Record<string, string>; annotations: Record<string, string> } } }).template;

  it('marks every object managed by the deployer, and the pods with their version', () => {
    const [d, c] = rewrite([deployment, configMap], { ...options, keys: DEFAULT_KEYS });
    expect(d?.metadata.labels).toMatchObject({ 'app.kubernetes.io/managed-by': 'deployer', 'app.kubernetes.io/version': 'main-1111111' });
    expect(c?.metadata.labels).toEqual({ 'deployer.internal/service': 'web', 'app.kubernetes.io/managed-by': 'deployer' });
    expect(templateOf(d).metadata.labels['app.kubernetes.io/version']).toBe('main-1111111');
    expect(templateOf(d).metadata.labels['app.kubernetes.io/managed-by']).toBeUndefined();
  });

  it('writes under the configured domain and track label', () => {
    const keys = keysFor({ domain: 'deploy.acme.example', trackLabel: 'acme.example/track' });
    const [canary] = rewrite([deployment], { ...options, track: 'canary', keys });
    expect(canary?.metadata.labels).toMatchObject({ 'acme.example/track': 'canary', 'deploy.acme.example/canary-of': 'web', 'deploy.acme.example/service': 'web' });
    expect(canary?.metadata.annotations).toMatchObject({ 'deploy.acme.example/tag': 'main-1111111', 'deploy.acme.example/track': 'canary' });
    expect((canary?.['spec'] as { selector: { matchLabels: Record<string, string> } }).selector.matchLabels).toEqual({ app: 'web', 'acme.example/track': 'canary' });
    expect(JSON.stringify(canary)).not.toContain('deployer.i');
  });

  it('records the executor on the object, never on the pod template', () => {
    const [d] = rewrite([deployment], { ...options, keys: DEFAULT_KEYS, executor: 'jane@example.com' });
    expect(d?.metadata.annotations?.['deployer.internal/executor']).toBe('jane@example.com');
    expect(templateOf(d).metadata.annotations['deployer.internal/executor']).toBeUndefined();
    const [without] = rewrite([{ ...deployment, metadata: { name: 'web', annotations: { 'deployer.internal/executor': 'stale' } } }], { ...options, keys: DEFAULT_KEYS });
    expect(without?.metadata.annotations?.['deployer.internal/executor']).toBeUndefined();
  });
});

describe('config: labels', () => {
  const tokens = { t: { secret: { value: 's' } } };

  it('defaults to deployer.internal and track', () => {
    expect(parseConfig({ tokens }, {}).labels).toEqual({ domain: 'deployer.internal', track: 'track' });
  });

  it.each([
    ['labels.domain', { domain: 'Deployer.IO' }],
    ['labels.domain', { domain: 'with/slash' }],
    ['labels.track', { track: 'bad key!' }],
  ])('refuses a bad %s', (key, labels) => {
    expect(() => parseConfig({ tokens, labels }, {})).toThrow(key);
  });
});
