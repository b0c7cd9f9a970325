import { describe, expect, it } from 'vitest';
import type { KubeObject, LiveDeployment } from '../../src/core/types.js';
import { isOriginalCanary } from '../../src/deploy/original-canary.js';

const stable: KubeObject = {
  apiVersion: 'apps/v1',
  kind: 'Deployment',
  metadata: { name: 'web', namespace: 'shop' },
  spec: { selector: { matchLabels: { app: 'web' } } },
};

function canary(overrides: Partial<LiveDeployment>): LiveDeployment {
  return {
    namespace: 'shop',
    name: 'web-canary',
    uid: 'u',
    generation: 1,
    labels: {},
    annotations: {},
    selector: { app: 'web', track: 'canary' },
    podLabels: { app: 'web', track: 'canary' },
    images: [],
    replicas: { desired: 1, ready: 1, updated: 1, available: 1, total: 1 },
    status: { observedGeneration: 1, conditions: [] },
    ...overrides,
  };
}

describe('isOriginalCanary', () => {
  it('recognises NAME-canary in the same namespace whose pods carry the selector plus track=canary', () => {
    expect(isOriginalCanary(canary({}), stable)).toBe(true);
  });

  it.each([
    ['another name', { name: 'web-canary2' }],
    ['another namespace', { namespace: 'other' }],
    ['no track label', { podLabels: { app: 'web' } }],
    ['another track', { podLabels: { app: 'web', track: 'stable' } }],
    ['another selector value', { podLabels: { app: 'api', track: 'canary' } }],
    ['an extra pod label', { podLabels: { app: 'web', track: 'canary', team: 'x' } }],
    ['unknown pod labels', { podLabels: undefined }],
  ])('rejects %s', (_what, overrides: Partial<LiveDeployment>) => {
    expect(isOriginalCanary(canary(overrides), stable)).toBe(false);
  });
});
