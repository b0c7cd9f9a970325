import { describe, expect, it } from 'vitest';
import { changedByApply } from '../../src/kube/applied-change.js';
import type { LiveObject } from '../../src/kube/schemas.js';

const MANAGER = 'deployer';

/** What a server-side apply by MANAGER of a Deployment records: its labels, one annotation, replicas and template. */
const OURS = {
  manager: MANAGER,
  operation: 'Apply',
  fieldsType: 'FieldsV1',
  fieldsV1: {
    'f:metadata': { 'f:labels': { 'f:app': {}, 'f:track': {} }, 'f:annotations': { 'f:example.com/owner': {} } },
    'f:spec': { 'f:replicas': {}, 'f:template': { 'f:spec': { 'f:containers': { 'k:{"name":"web"}': { '.': {}, 'f:image': {} } } } } },
  },
};
const CONTROLLER = { manager: 'kube-controller-manager', operation: 'Update', fieldsType: 'FieldsV1', fieldsV1: { 'f:status': {} } };

function live(version: string, change: { image?: string; annotations?: Record<string, string>; labels?: Record<string, string>; status?: unknown; managed?: unknown[] } = {}): LiveObject {
  return {
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    metadata: {
      name: 'web',
      namespace: 'shop',
      resourceVersion: version,
      labels: change.labels ?? { app: 'web', track: 'stable' },
      annotations: change.annotations ?? { 'example.com/owner': 'shop' },
      managedFields: change.managed ?? [OURS, CONTROLLER],
    },
    spec: { replicas: 2, template: { spec: { containers: [{ name: 'web', image: change.image ?? 'web:1' }] } } },
    status: change.status ?? { replicas: 2 },
  };
}

describe('changedByApply', () => {
  it('is false when the apply left the resourceVersion', () => {
    expect(changedByApply(live('5'), live('5'), MANAGER)).toBe(false);
  });

  it.each([
    ['a status written by a controller', live('6', { status: { replicas: 2, unavailableReplicas: 1 } })],
    [
      "a controller's annotation",
      live('6', { annotations: { 'example.com/owner': 'shop', 'deployment.kubernetes.io/revision': '3' } }),
    ],
    ["another manager's label", live('6', { labels: { app: 'web', track: 'stable', team: 'blue' } })],
  ])('is false when only %s changed meanwhile', (_what, after) => {
    expect(changedByApply(live('5'), after, MANAGER)).toBe(false);
  });

  it.each([
    ['a field it sets', live('6', { image: 'web:2' })],
    ['an annotation it owns', live('6', { annotations: { 'example.com/owner': 'cart' } })],
    [
      'the set of fields it owns (a label it no longer sets)',
      live('6', {
        labels: { app: 'web' },
        managed: [{ ...OURS, fieldsV1: { ...OURS.fieldsV1, 'f:metadata': { 'f:labels': { 'f:app': {} }, 'f:annotations': { 'f:example.com/owner': {} } } } }, CONTROLLER],
      }),
    ],
  ])('is true when the apply changed %s', (_what, after) => {
    expect(changedByApply(live('5'), after, MANAGER)).toBe(true);
  });

  it('is true for the first apply of an object another tool created, when a value changed', () => {
    const before = live('5', { image: 'web:0', managed: [{ ...OURS, manager: 'kubectl', operation: 'Update' }] });
    expect(changedByApply(before, live('6'), MANAGER)).toBe(true);
    const same = live('5', { managed: [{ ...OURS, manager: 'kubectl', operation: 'Update' }] });
    // Taking the fields over is a change of the object's record, though no value changed.
    expect(changedByApply(same, live('6'), MANAGER)).toBe(true);
  });

  it('falls back on the resourceVersion without a record of the manager (managedFields stripped)', () => {
    expect(changedByApply(live('5', { managed: [] }), live('6', { managed: [] }), MANAGER)).toBe(true);
  });
});
