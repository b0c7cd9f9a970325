import { describe, expect, it } from 'vitest';
import { parseConfig } from '../../src/config/load.js';
import { rewrite } from '../../src/deploy/rewrite.js';
import { previousAnnotations, previousOf, recordPrevious, serviceState, versionOf } from '../../src/deploy/state.js';
import { doomOf, judge, rolloutTargets } from '../../src/deploy/verdict.js';
import { parseDuration, Wait } from '../../src/http/flow-routes.js';
import { DEFAULT_KEYS as K } from '../../src/core/keys.js';

const PREVIOUS = K.previous;
const SERVICE_LABEL = K.serviceLabel;
import type { KubeObject, LiveDeployment, LivePod } from '../../src/core/types.js';

const IMAGE = 'registry.example.com/team/shop';
const D1 = `sha256:${'1'.repeat(64)}`;
const D2 = `sha256:${'2'.repeat(64)}`;
const C1 = '1111111111111111111111111111111111111111';
const C2 = '2222222222222222222222222222222222222222';

function live(overrides: Partial<LiveDeployment> & { tag?: string; commit?: string; digest?: string } = {}): LiveDeployment {
  const { tag = 'main-1111111', commit = C1, digest = D1, ...rest } = overrides;
  return {
    namespace: 'shop',
    name: 'shop',
    uid: 'uid-1',
    generation: 2,
    createdAt: '2024-05-06T07:00:00Z',
    labels: { app: 'shop', track: 'stable', [SERVICE_LABEL]: 'shop' },
    annotations: {
      'deployer.internal/tag': tag,
      'deployer.internal/commit': commit,
      'deployer.internal/track': 'stable',
      'deployer.internal/caller': 'ci',
      'deployer.internal/deployed-at': '2024-05-06T07:08:09.000Z',
      'deployer.internal/request-id': 'req-1',
    },
    selector: { app: 'shop' },
    images: [`${IMAGE}:${tag}@${digest}`, 'statsd/statsd:v0.10.2'],
    replicas: { desired: 2, ready: 2, updated: 2, available: 2, total: 2 },
    status: { observedGeneration: 2, conditions: [] },
    ...rest,
  };
}

describe('versionOf / previousOf', () => {
  it('reads the version back from the annotations, the digest from the versioned image', () => {
    expect(versionOf(K, live())).toEqual({
      tag: 'main-1111111',
      commit: C1,
      digests: { [IMAGE]: D1 },
      digest: D1,
      deployedBy: 'ci',
      deployedAt: '2024-05-06T07:08:09.000Z',
      requestId: 'req-1',
    });
  });

  it('has no version for a Deployment the deployer did not version', () => {
    expect(versionOf(K, live({ annotations: {} }))).toBeUndefined();
  });

  it('has no single digest when the images were deployed without digest pinning', () => {
    const v = versionOf(K, live({ images: [`${IMAGE}:main-1111111`] }));
    expect(v?.digests).toEqual({});
    expect(v?.digest).toBeUndefined();
  });

  it.each([
    ['not JSON', '{'],
    ['not digests', '{"x": "latest"}'],
  ])('ignores previous digests that are %s (deploy by tag instead)', (_what, digests) => {
    expect(previousOf(K, { [PREVIOUS.tag]: 't', [PREVIOUS.commit]: C1, [PREVIOUS.digests]: digests })).toEqual({
      tag: 't',
      commit: C1,
      digests: {},
      deployedBy: undefined,
      deployedAt: undefined,
    });
  });
});

describe('previousAnnotations: the last-known-good version a stable deploy records', () => {
  const next = { tag: 'main-2222222', commit: C2, digests: { [IMAGE]: D2 } };

  it('records the live version when another one is deployed', () => {
    expect(previousAnnotations(K, 'deploy', live(), next)).toEqual({
      [PREVIOUS.tag]: 'main-1111111',
      [PREVIOUS.commit]: C1,
      [PREVIOUS.digests]: JSON.stringify({ [IMAGE]: D1 }),
      [PREVIOUS.caller]: 'ci',
      [PREVIOUS.deployedAt]: '2024-05-06T07:08:09.000Z',
    });
    expect(previousAnnotations(K, 'promote', live(), next)[PREVIOUS.tag]).toBe('main-1111111');
  });

  it('keeps the live record on a redeploy of the same version', () => {
    const current = live({ tag: 'main-2222222', commit: C2, digest: D2 });
    const withPrevious = { ...current, annotations: { ...current.annotations, [PREVIOUS.tag]: 'v0', [PREVIOUS.commit]: C1 } };
    expect(previousAnnotations(K, 'deploy', withPrevious, next)).toEqual({ [PREVIOUS.tag]: 'v0', [PREVIOUS.commit]: C1, [PREVIOUS.digests]: '{}' });
  });

  it('treats the same tag with another digest (a moved tag) as another version', () => {
    expect(previousAnnotations(K, 'deploy', live({ tag: 'main-2222222', commit: C2, digest: D1 }), next)[PREVIOUS.tag]).toBe('main-2222222');
  });

  it('records nothing when a rollback replaces a version (it was bad), nor without a live version', () => {
    expect(previousAnnotations(K, 'rollback', live(), next)).toEqual({});
    expect(previousAnnotations(K, 'deploy', undefined, next)).toEqual({});
    expect(previousAnnotations(K, 'deploy', live({ annotations: {} }), next)).toEqual({});
  });

  it('recordPrevious annotates only versioned stable Deployments, on copies', async () => {
    const deployment: KubeObject = {
      apiVersion: 'apps/v1',
      kind: 'Deployment',
      metadata: { name: 'shop', namespace: 'shop', annotations: { 'deployer.internal/track': 'stable', [PREVIOUS.tag]: 'stale' } },
    };
    const configMap: KubeObject = { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'c', namespace: 'shop' } };
    const reads: string[] = [];
    const out = await recordPrevious(
      K,
      { getDeployment: (ns, name) => (reads.push(`${ns}/${name}`), Promise.resolve(live())) },
      [deployment, configMap],
      'deploy',
      next,
    );
    expect(reads).toEqual(['shop/shop']);
    expect(out[0]?.metadata.annotations).toMatchObject({ 'deployer.internal/track': 'stable', [PREVIOUS.tag]: 'main-1111111', [PREVIOUS.commit]: C1 });
    expect(out[1]).toBe(configMap);
    expect(deployment.metadata.annotations?.[PREVIOUS.tag]).toBe('stale');
  });
});

describe('serviceState', () => {
  it('pairs each stable Deployment with its canary and shows the canary age', () => {
    const canary = live({
      name: 'shop-canary',
      tag: 'main-2222222',
      commit: C2,
      digest: D2,
      replicas: { desired: 1, ready: 1, updated: 1, available: 1, total: 1 },
      labels: { track: 'canary', 'deployer.internal/canary-of': 'shop' },
    });
    const withCanaryTrack = { ...canary, annotations: { ...canary.annotations, 'deployer.internal/track': 'canary', 'deployer.internal/deployed-at': '2024-05-06T08:00:00Z' } };
    const stable = { ...live(), annotations: { ...live().annotations, [PREVIOUS.tag]: 'main-0000000', [PREVIOUS.commit]: C2 } };
    const state = serviceState(K, [withCanaryTrack, stable, live({ name: 'worker', namespace: 'jobs' })], Date.parse('2024-05-06T08:30:00Z'));
    expect(state.map((s) => `${s.namespace}/${s.name}`)).toEqual(['jobs/worker', 'shop/shop']);
    const shop = state[1];
    expect(shop?.stable?.version?.tag).toBe('main-1111111');
    expect(shop?.canary).toMatchObject({ name: 'shop-canary', version: { tag: 'main-2222222', digest: D2 }, ageSeconds: 1800, replicas: { desired: 1 } });
    expect(shop?.previous).toMatchObject({ tag: 'main-0000000', commit: C2 });
    expect(state[0]?.canary).toBeUndefined();
  });

  it('shows a canary whose stable Deployment is gone on its own', () => {
    const orphan = live({ name: 'gone-canary', labels: { track: 'canary' } });
    const [entry] = serviceState(K, [{ ...orphan, annotations: { ...orphan.annotations, 'deployer.internal/track': 'canary' } }], Date.now());
    expect(entry).toMatchObject({ name: 'gone', stable: undefined, canary: { name: 'gone-canary' } });
  });
});

describe('judge: one Deployment of a rollout', () => {
  const pod = (name: string, waiting?: string): LivePod => ({
    name,
    ownerUids: ['rs'],
    terminating: false,
    containers: [{ name: 'app', ready: waiting === undefined, restarts: 0, waiting }],
  });
  const rolling = live({ replicas: { desired: 2, ready: 2, updated: 1, available: 2, total: 3 } });

  it.each([
    ['done: all updated and available, no old pod', live(), undefined, 'done', '2/2 available'],
    ['progressing: an old pod is left', rolling, undefined, 'progressing', '1/2 updated, 2 available, 2 old'],
    ['failed: every new pod is doomed', rolling, [pod('a', 'CrashLoopBackOff'), pod('b', 'ErrImagePull')], 'failed', 'pod a: container app: CrashLoopBackOff; pod b: container app: ErrImagePull'],
    ['progressing: one new pod may still start', rolling, [pod('a', 'CrashLoopBackOff'), pod('b', 'ContainerCreating')], 'progressing', '1/2 updated, 2 available, 2 old'],
    ['progressing: no new pod yet', rolling, [], 'progressing', '1/2 updated, 2 available, 2 old'],
    [
      'progressing: the controller has not seen the spec (its status is of the old one)',
      live({ generation: 3 }),
      undefined,
      'progressing',
      'the controller has not seen the new spec yet',
    ],
    [
      'failed: ProgressDeadlineExceeded',
      live({
        status: {
          ...rolling.status,
          conditions: [{ type: 'Progressing', status: 'False', reason: 'ProgressDeadlineExceeded', message: 'ReplicaSet "shop-1" has timed out progressing.' }],
        },
      }),
      undefined,
      'failed',
      'ProgressDeadlineExceeded: ReplicaSet "shop-1" has timed out progressing.',
    ],
  ] as const)('%s', (_what, deployment, pods, state, reason) => {
    expect(judge(deployment, pods)).toMatchObject({ state, reason });
  });

  it.each(['CrashLoopBackOff', 'ErrImagePull', 'ImagePullBackOff', 'CreateContainerConfigError'])('%s dooms a pod', (reason) => {
    expect(doomOf(pod('p', reason))).toBe(`pod p: container app: ${reason}`);
  });

  it('waits for the Deployments applied, not for those deleted or of other kinds', () => {
    expect(
      rolloutTargets([
        { apiVersion: 'apps/v1', kind: 'Deployment', namespace: 'a', name: 'web-canary', action: 'deleted' },
        { apiVersion: 'apps/v1', kind: 'Deployment', namespace: 'a', name: 'web', action: 'unchanged' },
        { apiVersion: 'v1', kind: 'Service', namespace: 'a', name: 'web', action: 'created' },
      ]),
    ).toEqual([{ kind: 'Deployment', namespace: 'a', name: 'web' }]);
  });
});

describe('durations and wait=', () => {
  it.each([
    ['90', 90],
    ['90s', 90],
    ['5m', 300],
    ['1h30m', 5400],
    ['1h2m3s', 3723],
    ['', undefined],
    ['5 m', undefined],
    ['m', undefined],
    ['-5m', undefined],
  ])('parseDuration(%j) = %j', (text, seconds) => {
    expect(parseDuration(text)).toBe(seconds);
  });

  it.each([
    ['true', 300_000],
    [true, 300_000],
    ['5m', 300_000],
    ['30', 30_000],
    [45, 45_000],
    ['false', undefined],
    [false, undefined],
    ['0', undefined],
    ['', undefined],
    [undefined, undefined],
  ])('wait=%j waits %j ms', (value, ms) => {
    expect(Wait.parse(value)).toBe(ms);
  });

  it.each([['31m'], ['soon'], [['1m', '2m']]])('wait=%j is refused', (value) => {
    expect(Wait.safeParse(value).success).toBe(false);
  });
});

describe('rewrite: the service label', () => {
  const objects: KubeObject[] = [
    {
      apiVersion: 'apps/v1',
      kind: 'Deployment',
      metadata: { name: 'web' },
      spec: { selector: { matchLabels: { app: 'web' } }, template: { metadata: { labels: { app: 'web' } }, spec: { containers: [{ name: 'a', image: IMAGE }] } } },
    },
    { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'c', labels: { [SERVICE_LABEL]: 'someone-else' } } },
  ];
  const options = { tag: 'v1', commit: C1, digests: {}, caller: 'ci', requestId: 'r', keys: K };

  it("labels every object it returns, and the pod template of a versioned workload only, when the service is given", () => {
    type WithTemplate = { spec: { template: { metadata: { labels: Record<string, string> } } } };
    const stable = rewrite(objects, { ...options, track: 'stable', service: 'web' });
    expect(stable.map((o) => o.metadata.labels?.[SERVICE_LABEL])).toEqual(['web', 'web']);
    // Versioned pods roll with every version anyway; monitoring reads whose pod it is from this label.
    expect((stable[0] as unknown as WithTemplate).spec.template.metadata.labels[SERVICE_LABEL]).toBe('web');
    // An unversioned workload's pods would restart for a label: its template is left alone.
    const pinned = structuredClone(objects[0]) as unknown as WithTemplate & KubeObject;
    (pinned.spec.template as unknown as { spec: { containers: Array<{ image: string }> } }).spec.containers[0]!.image = `${IMAGE}:pinned`;
    const [unversioned] = rewrite([pinned], { ...options, track: 'stable', service: 'web' });
    expect((unversioned as unknown as WithTemplate).spec.template.metadata.labels[SERVICE_LABEL]).toBeUndefined();
    const canary = rewrite(objects, { ...options, track: 'canary', service: 'web' });
    expect(canary.map((o) => [o.metadata.name, o.metadata.labels?.[SERVICE_LABEL]])).toEqual([['web-canary', 'web']]);
  });

  it('adds nothing without a service', () => {
    expect(rewrite(objects, { ...options, track: 'stable' })[0]?.metadata.labels?.[SERVICE_LABEL]).toBeUndefined();
  });
});

describe('config: hooks', () => {
  const token = { t: { secret: { value: 's' } } };
  const service = { repository: { url: 'https://git.example.com/x.git' } };

  it('reserves the service name "hooks" for the monitor webhooks', () => {
    expect(() => parseConfig({ tokens: token, services: { hooks: service } }, {})).toThrow(
      "services.hooks: the name is reserved for the deployer's own endpoint /hooks",
    );
  });

  it('names the alert label "service" unless configured, and the lease namespace per service', () => {
    expect(parseConfig({ tokens: token }, {}).hooks.serviceLabel).toBe('service');
    const config = parseConfig({ tokens: token, hooks: { serviceLabel: 'app' }, kubernetes: { leaseNamespace: 'deployer' } }, {});
    expect(config.hooks.serviceLabel).toBe('app');
    expect(config.kubernetes.leaseNamespace).toBe('deployer');
  });
});
