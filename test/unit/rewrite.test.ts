import { describe, expect, it } from 'vitest';
import { InputError, ManifestError } from '../../src/errors.js';
import { canaryName, rewrite, type RewriteOptions } from '../../src/deploy/rewrite.js';
import type { KubeObject } from '../../src/core/types.js';
import { DEFAULT_KEYS } from '../../src/core/keys.js';

// ---- fixtures ---------------------------------------------------------------------------------------------------

const TAG = 'v1.2.3-main';
const COMMIT = '0123456789abcdef0123456789abcdef01234567';
const DIGEST = `sha256:${'a'.repeat(64)}`;
const NOW = '2024-05-06T07:08:09.000Z';
const APP = 'registry.example.com/team/web';
const INIT = 'registry.example.com/team/migrate';

function options(overrides: Partial<RewriteOptions> = {}): RewriteOptions {
  return {
    track: 'stable',
    tag: TAG,
    commit: COMMIT,
    digests: { [APP]: DIGEST },
    caller: 'ci',
    requestId: 'req-1',
    now: NOW,
    keys: DEFAULT_KEYS,
    ...overrides,
  };
}

interface Container {
  name: string;
  image?: unknown;
  env?: unknown;
}

function podTemplate(containers: Container[], initContainers: Container[] = []) {
  return {
    metadata: { labels: { app: 'web' }, annotations: { 'prometheus.io/scrape': 'true' } },
    spec: { containers, ...(initContainers.length > 0 ? { initContainers } : {}) },
  };
}

const DEFAULT_CONTAINERS: Container[] = [
  { name: 'app', image: APP, env: [{ name: 'PORT', value: '8080' }] },
  { name: 'statsd', image: 'statsd:1.2' },
];
const DEFAULT_INIT: Container[] = [{ name: 'migrate', image: INIT }];

/** Each workload kind, how to build it around a pod template, and where its template is. */
const KINDS = [
  {
    kind: 'Deployment',
    apiVersion: 'apps/v1',
    spec: (t: unknown) => ({ replicas: 3, selector: { matchLabels: { app: 'web' } }, template: t }),
    path: ['spec', 'template'],
  },
  {
    kind: 'StatefulSet',
    apiVersion: 'apps/v1',
    spec: (t: unknown) => ({ serviceName: 'web', selector: { matchLabels: { app: 'web' } }, template: t }),
    path: ['spec', 'template'],
  },
  { kind: 'DaemonSet', apiVersion: 'apps/v1', spec: (t: unknown) => ({ selector: { matchLabels: { app: 'web' } }, template: t }), path: ['spec', 'template'] },
  { kind: 'ReplicaSet', apiVersion: 'apps/v1', spec: (t: unknown) => ({ selector: { matchLabels: { app: 'web' } }, template: t }), path: ['spec', 'template'] },
  { kind: 'Job', apiVersion: 'batch/v1', spec: (t: unknown) => ({ backoffLimit: 2, template: t }), path: ['spec', 'template'] },
  {
    kind: 'CronJob',
    apiVersion: 'batch/v1',
    spec: (t: unknown) => ({ schedule: '@hourly', jobTemplate: { spec: { template: t } } }),
    path: ['spec', 'jobTemplate', 'spec', 'template'],
  },
] as const;

type KindName = (typeof KINDS)[number]['kind'];

function kindOf(kind: KindName) {
  const k = KINDS.find((x) => x.kind === kind);
  if (k === undefined) throw new Error(kind);
  return k;
}

function workload(kind: KindName, name = 'web', containers = DEFAULT_CONTAINERS, initContainers = DEFAULT_INIT): KubeObject {
  const k = kindOf(kind);
  return {
    apiVersion: k.apiVersion,
    kind,
    metadata: { name, labels: { app: 'web' } },
    spec: k.spec(podTemplate(structuredClone(containers), structuredClone(initContainers))),
  };
}

const deployment = (name = 'web', containers = DEFAULT_CONTAINERS) => workload('Deployment', name, containers, []);

const service: KubeObject = {
  apiVersion: 'v1',
  kind: 'Service',
  metadata: { name: 'web' },
  spec: { selector: { app: 'web' }, ports: [{ port: 80 }] },
};
const configMap: KubeObject = { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'web', labels: { app: 'web' } }, data: { image: 'web' } };
const customDeployment: KubeObject = {
  apiVersion: 'example.com/v1',
  kind: 'Deployment',
  metadata: { name: 'web' },
  spec: { template: podTemplate([{ name: 'app', image: 'web' }]) },
};

function dig(value: unknown, ...path: readonly (string | number)[]): unknown {
  let v = value;
  for (const key of path) v = (v as Record<string | number, unknown> | undefined)?.[key];
  return v;
}

function templateOf(object: KubeObject | undefined): Record<string, unknown> {
  const k = KINDS.find((x) => x.kind === object?.kind);
  if (k === undefined) throw new Error(`no template path for ${object?.kind}`);
  return dig(object, ...k.path) as Record<string, unknown>;
}

function containers(object: KubeObject | undefined, field: 'containers' | 'initContainers' = 'containers'): Container[] {
  return dig(templateOf(object), 'spec', field) as Container[];
}

function only<T>(items: readonly T[]): T {
  expect(items).toHaveLength(1);
  return items[0] as T;
}

function deepFreeze<T>(value: T): T {
  if (typeof value === 'object' && value !== null) {
    for (const v of Object.values(value)) deepFreeze(v);
    Object.freeze(value);
  }
  return value;
}

function thrown(act: () => unknown): unknown {
  try {
    act();
  } catch (err) {
    return err;
  }
  throw new Error('expected an error');
}

const VERSION_ENV = [
  { name: 'TRACK', value: 'stable' },
  { name: 'VERSION', value: TAG },
  { name: 'COMMIT', value: COMMIT },
];

// ---- deploy (stable) --------------------------------------------------------------------------------------------

describe('rewrite: workloads on deploy', () => {
  it.each(KINDS.map((k) => [k.kind] as const))('versions the images of a %s and stamps it', (kind) => {
    // Arrange
    const input = workload(kind);

    // Act
    const out = only(rewrite([input], options()));

    // Assert
    expect(containers(out)).toEqual([
      { name: 'app', image: `${APP}:${TAG}@${DIGEST}`, env: [{ name: 'PORT', value: '8080' }, ...VERSION_ENV] },
      { name: 'statsd', image: 'statsd:1.2', env: VERSION_ENV },
    ]);
    expect(containers(out, 'initContainers')).toEqual([{ name: 'migrate', image: `${INIT}:${TAG}`, env: VERSION_ENV }]);
    expect(out.metadata.labels).toEqual({ app: 'web', track: 'stable', tag: TAG, 'app.kubernetes.io/version': TAG });
    expect(out.metadata.annotations).toEqual({
      'deployer.internal/tag': TAG,
      'deployer.internal/commit': COMMIT,
      'deployer.internal/track': 'stable',
      'deployer.internal/caller': 'ci',
      'deployer.internal/request-id': 'req-1',
      'deployer.internal/deployed-at': NOW,
    });
    expect(dig(templateOf(out), 'metadata')).toEqual({
      labels: { app: 'web', track: 'stable', tag: TAG, 'app.kubernetes.io/version': TAG },
      annotations: {
        'prometheus.io/scrape': 'true',
        'deployer.internal/tag': TAG,
        'deployer.internal/commit': COMMIT,
        'deployer.internal/track': 'stable',
      },
    });
  });

  it.each(KINDS.map((k) => [k.kind] as const))('keeps the name and every other field of a %s', (kind) => {
    const input = workload(kind);

    const out = only(rewrite([input], options()));

    const { metadata: inMeta, spec: inSpec, ...inRest } = input;
    const { metadata: outMeta, spec: outSpec, ...outRest } = out;
    expect(outRest).toEqual(inRest);
    expect(outMeta.name).toBe(inMeta.name);
    // Only the template changed below spec.
    const strip = (o: KubeObject) => JSON.stringify(o.spec, (key, v: unknown) => (key === 'template' ? undefined : v));
    expect(strip({ ...out, spec: outSpec })).toBe(strip({ ...input, spec: inSpec }));
  });

  it.each([
    ['an untagged image', 'web', {}, `web:${TAG}`],
    ['an untagged image with a known digest', 'web', { web: DIGEST }, `web:${TAG}@${DIGEST}`],
    ['an image on a registry with a port', '127.0.0.1:5000/team/web', {}, `127.0.0.1:5000/team/web:${TAG}`],
    ['an image on localhost with a port and digest', 'localhost:5000/web', { 'localhost:5000/web': DIGEST }, `localhost:5000/web:${TAG}@${DIGEST}`],
    ['a tagged image', 'debian:wheezy', { 'debian:wheezy': DIGEST }, 'debian:wheezy'],
    ['a tagged image on a registry with a port', '127.0.0.1:5000/team/web:1.0', {}, '127.0.0.1:5000/team/web:1.0'],
    ['an image with a digest only', `web@${DIGEST}`, {}, `web@${DIGEST}`],
    ['an image with tag and digest', `web:1@${DIGEST}`, {}, `web:1@${DIGEST}`],
    ['an image named like an Object member', 'constructor', {}, `constructor:${TAG}`],
    ['an image whose digest is listed under another spelling', 'docker.io/library/web', { web: DIGEST }, `docker.io/library/web:${TAG}`],
  ])('writes %s as the version to run', (_what, image, digests, expected) => {
    // An untagged `app` container makes the Deployment versioned; the second container is the case.
    const input = deployment('web', [
      { name: 'app', image: 'app' },
      { name: 'case', image },
    ]);

    const out = only(rewrite([input], options({ digests })));

    expect(containers(out)[1]?.image).toBe(expected);
  });

  it('replaces the variables it sets where they stand, without duplicates, and keeps the others in order', () => {
    const env = [
      { name: 'A', value: '1' },
      { name: 'VERSION', value: 'old' },
      { name: 'B', valueFrom: { fieldRef: { fieldPath: 'metadata.name' } } },
      { name: 'TRACK', valueFrom: { configMapKeyRef: { name: 'x', key: 'y' } } },
      { name: 'VERSION', value: 'again' },
      { name: 'URL', value: 'http://x/$(VERSION)' },
    ];
    const input = workload('Deployment', 'web', [{ name: 'app', image: 'web', env }], [{ name: 'init', image: 'web', env }]);

    const out = only(rewrite([input], options()));

    const expected = [
      { name: 'A', value: '1' },
      { name: 'VERSION', value: TAG },
      { name: 'B', valueFrom: { fieldRef: { fieldPath: 'metadata.name' } } },
      { name: 'TRACK', value: 'stable' },
      { name: 'URL', value: 'http://x/$(VERSION)' },
      { name: 'COMMIT', value: COMMIT },
    ];
    expect(containers(out)[0]?.env).toEqual(expected);
    expect(containers(out, 'initContainers')[0]?.env).toEqual(expected);
  });

  it.each([
    ['a short tag', 'v1', 'v1'],
    ['a 63-character tag', 'a'.repeat(63), 'a'.repeat(63)],
    ['a 64-character tag', 'a'.repeat(64), undefined],
    ['a 128-character tag', `v${'1'.repeat(127)}`, undefined],
    ['a tag starting with "_"', '_build', undefined],
    ['a tag ending with "."', 'v1.', undefined],
    ['a tag ending with "-"', 'main-', undefined],
    ['a tag with "_" and "."', 'v1.2_rc.3', 'v1.2_rc.3'],
  ])('labels %s only where it is a valid label value, and always annotates it', (_what, tag, label) => {
    const input = deployment();
    input.metadata.labels = { app: 'web', tag: 'stale' };

    const out = only(rewrite([input], options({ tag })));

    expect(out.metadata.labels?.['tag']).toBe(label);
    expect(dig(templateOf(out), 'metadata', 'labels', 'tag')).toBe(label);
    expect(out.metadata.annotations?.['deployer.internal/tag']).toBe(tag);
    expect(dig(templateOf(out), 'metadata', 'annotations', 'deployer.internal/tag')).toBe(tag);
    expect(containers(out)[0]?.image).toBe(`${APP}:${tag}@${DIGEST}`);
  });

  it('puts per-request annotations on the workload only, so a redeploy of the same version changes no pod template', () => {
    const input = [deployment()];

    const first = only(rewrite(input, options({ requestId: 'req-1', caller: 'ci', now: NOW })));
    const second = only(rewrite(input, options({ requestId: 'req-2', caller: 'alice', now: '2030-01-01T00:00:00.000Z' })));

    expect(templateOf(second)).toEqual(templateOf(first));
    expect(second.metadata.annotations?.['deployer.internal/request-id']).toBe('req-2');
  });

  it('creates the pod template metadata when the manifest has none', () => {
    const input = deployment();
    delete templateOf(input)['metadata'];

    const out = only(rewrite([input], options()));

    expect(dig(templateOf(out), 'metadata', 'labels')).toEqual({ track: 'stable', tag: TAG, 'app.kubernetes.io/version': TAG });
  });

  it('adds track to the template but never to the selector of a stable Deployment', () => {
    const input = deployment();

    const out = only(rewrite([input], options()));

    expect(dig(out, 'spec', 'selector')).toEqual({ matchLabels: { app: 'web' } });
    expect(dig(out, 'spec', 'replicas')).toBe(3);
    expect(dig(templateOf(out), 'metadata', 'labels', 'track')).toBe('stable');
  });

  it('versions a bare Pod: images, labels and annotations, but no environment (a pod cannot change it)', () => {
    const input: KubeObject = {
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: { name: 'once' },
      spec: { containers: [{ name: 'app', image: 'web', env: [{ name: 'A', value: '1' }] }], initContainers: [{ name: 'i', image: 'web' }] },
    };

    const out = only(rewrite([input], options()));

    expect(out.spec).toEqual({
      containers: [{ name: 'app', image: `web:${TAG}`, env: [{ name: 'A', value: '1' }] }],
      initContainers: [{ name: 'i', image: `web:${TAG}` }],
    });
    expect(out.metadata.labels).toEqual({ track: 'stable', tag: TAG, 'app.kubernetes.io/version': TAG });
    expect(out.metadata.annotations?.['deployer.internal/request-id']).toBe('req-1');
  });

  it.each([
    ['a Service', service],
    ['a ConfigMap', configMap],
    ['a custom resource named Deployment', customDeployment],
    ['a Deployment whose images all carry a tag', deployment('redis', [{ name: 'redis', image: 'redis:7' }])],
    ['a CronJob with a digest-pinned image', workload('CronJob', 'curl', [{ name: 'c', image: `curl@${DIGEST}` }], [])],
    ['a Deployment without images', deployment('bare', [{ name: 'app' }])],
  ])('leaves %s unchanged', (_what, input) => {
    const out = only(rewrite([input], options()));

    expect(out).toEqual(input);
    expect(out).not.toBe(input);
  });

  it('keeps the order of the objects', () => {
    const input = [service, workload('StatefulSet', 'db'), configMap, deployment('web')];

    const out = rewrite(input, options());

    expect(out.map((o) => `${o.kind}/${o.metadata.name}`)).toEqual(['Service/web', 'StatefulSet/db', 'ConfigMap/web', 'Deployment/web']);
  });

  it('sets deployed-at to the current time when none is given', () => {
    const out = only(rewrite([deployment()], options({ now: undefined })));

    const at = out.metadata.annotations?.['deployer.internal/deployed-at'] ?? '';
    expect(new Date(at).toISOString()).toBe(at);
  });
});

// ---- canary -----------------------------------------------------------------------------------------------------

describe('rewrite: canary', () => {
  const canary = options({ track: 'canary' });

  it('turns a Deployment into NAME-canary with one replica and the canary track in selector and pods', () => {
    const input = deployment();

    const out = only(rewrite([input], canary));

    expect(out.metadata).toEqual({
      name: 'web-canary',
      labels: { app: 'web', track: 'canary', tag: TAG, 'app.kubernetes.io/version': TAG, 'deployer.internal/canary-of': 'web' },
      annotations: {
        'deployer.internal/tag': TAG,
        'deployer.internal/commit': COMMIT,
        'deployer.internal/track': 'canary',
        'deployer.internal/caller': 'ci',
        'deployer.internal/request-id': 'req-1',
        'deployer.internal/deployed-at': NOW,
      },
    });
    expect(dig(out, 'spec', 'replicas')).toBe(1);
    expect(dig(out, 'spec', 'selector')).toEqual({ matchLabels: { app: 'web', track: 'canary' } });
    expect(dig(templateOf(out), 'metadata', 'labels')).toEqual({ app: 'web', track: 'canary', tag: TAG, 'app.kubernetes.io/version': TAG });
    expect(containers(out)[0]).toEqual({
      name: 'app',
      image: `${APP}:${TAG}@${DIGEST}`,
      env: [
        { name: 'PORT', value: '8080' },
        { name: 'TRACK', value: 'canary' },
        { name: 'VERSION', value: TAG },
        { name: 'COMMIT', value: COMMIT },
      ],
    });
  });

  it('keeps the Service selecting both tracks: the canary pods keep every stable pod label', () => {
    const stable = only(rewrite([deployment()], options()));
    const canaryOut = only(rewrite([deployment()], canary));

    const selector = dig(service, 'spec', 'selector') as Record<string, string>;
    for (const pods of [stable, canaryOut].map((o) => dig(templateOf(o), 'metadata', 'labels') as Record<string, string>)) {
      expect(pods).toMatchObject(selector);
    }
    // ... while the canary's own selector never matches a stable pod.
    const canarySelector = dig(canaryOut, 'spec', 'selector', 'matchLabels') as Record<string, string>;
    expect(dig(templateOf(stable), 'metadata', 'labels')).not.toMatchObject(canarySelector);
  });

  it('emits only Deployments, dropping every other object', () => {
    const input = [
      service,
      configMap,
      customDeployment,
      ...KINDS.filter((k) => k.kind !== 'Deployment').map((k) => workload(k.kind, k.kind.toLowerCase())),
      deployment('web'),
      deployment('worker'),
      deployment('redis', [{ name: 'redis', image: 'redis:7' }]),
    ];

    const out = rewrite(input, canary);

    expect(out.map((o) => `${o.kind}/${o.metadata.name}`)).toEqual(['Deployment/web-canary', 'Deployment/worker-canary']);
  });

  it('creates matchLabels and drops an expression on track from the selector', () => {
    const input = deployment();
    (input['spec'] as Record<string, unknown>)['selector'] = {
      matchExpressions: [
        { key: 'app', operator: 'In', values: ['web'] },
        { key: 'track', operator: 'In', values: ['stable'] },
      ],
    };

    const out = only(rewrite([input], canary));

    expect(dig(out, 'spec', 'selector')).toEqual({
      matchLabels: { track: 'canary' },
      matchExpressions: [{ key: 'app', operator: 'In', values: ['web'] }],
    });
  });

  it('replaces track: stable in a selector that already has it', () => {
    const input = deployment();
    (input['spec'] as Record<string, unknown>)['selector'] = { matchLabels: { app: 'web', track: 'stable' } };

    const out = only(rewrite([input], canary));

    expect(dig(out, 'spec', 'selector')).toEqual({ matchLabels: { app: 'web', track: 'canary' } });
  });

  it('omits the canary-of label when the name is too long for a label value', () => {
    const name = `w${'e'.repeat(63)}`;

    const out = only(rewrite([deployment(name)], canary));

    expect(out.metadata.name).toBe(`${name}-canary`);
    expect(out.metadata.labels?.['deployer.internal/canary-of']).toBeUndefined();
  });

  it('refuses a Deployment whose canary name would be too long', () => {
    const err = thrown(() => rewrite([deployment('w'.repeat(250))], canary));

    expect(err).toBeInstanceOf(ManifestError);
    expect((err as ManifestError).message).toMatch(/the canary's name ".*-canary" is longer than 253 characters/);
  });

  it('refuses a Deployment without selector', () => {
    const input = deployment();
    delete (input['spec'] as Record<string, unknown>)['selector'];

    const err = thrown(() => rewrite([input], canary));

    expect(err).toBeInstanceOf(ManifestError);
    expect((err as ManifestError).message).toBe('Deployment "web" has no spec.selector, so its canary cannot be told apart from it');
  });

  it('names the canary of a Deployment', () => {
    expect(canaryName('web')).toBe('web-canary');
  });
});

// ---- purity and refusals ----------------------------------------------------------------------------------------

describe('rewrite: input and errors', () => {
  it.each(['stable', 'canary'] as const)('does not change its input (%s)', (track) => {
    const input = deepFreeze([service, configMap, ...KINDS.map((k) => workload(k.kind, k.kind.toLowerCase()))]);
    const before = structuredClone(input);

    const out = rewrite(input, options({ track }));

    expect(input).toEqual(before);
    for (const o of out) expect(Object.isFrozen(o)).toBe(false);
  });

  it('shares nothing between two results', () => {
    const input = [deployment()];

    const [a] = rewrite(input, options());
    const [b] = rewrite(input, options());
    containers(a).push({ name: 'extra', image: 'x' });

    expect(containers(b)).toHaveLength(2);
  });

  it.each(['', 'has space', ':colon', 'a'.repeat(129), '-dash'])('refuses the tag %j', (tag) => {
    const err = thrown(() => rewrite([deployment()], options({ tag })));

    expect(err).toBeInstanceOf(InputError);
    expect((err as InputError).field).toBe('tag');
  });

  it.each([
    ['an env that is no list', [{ name: 'app', image: 'web', env: { A: '1' } }], /a container's env must be a list/],
    ['an invalid image', [{ name: 'app', image: 'Web' }], /invalid image reference "Web"/],
  ])('refuses a workload with %s as a manifest problem', (_what, list, message) => {
    const err = thrown(() => rewrite([deployment('web', list)], options()));

    expect(err).toBeInstanceOf(ManifestError);
    expect((err as ManifestError).message).toMatch(message);
  });

  it('refuses template labels that are no mapping', () => {
    const input = deployment();
    (templateOf(input)['metadata'] as Record<string, unknown>)['labels'] = 'app=web';

    const err = thrown(() => rewrite([input], options()));

    expect(err).toBeInstanceOf(ManifestError);
    expect((err as ManifestError).message).toBe('Deployment "web": "labels" must be a mapping');
  });
});

// ---- per-service options: canary size and the service's own images ----------------------------------------------

describe('rewrite: canary replicas and image globs of the service', () => {
  it('gives each canary the configured replicas', () => {
    const out = only(rewrite([deployment()], options({ track: 'canary', canaryReplicas: 3 })));
    expect(out.metadata.name).toBe('web-canary');
    expect(dig(out, 'spec', 'replicas')).toBe(3);
  });

  it('versions only the untagged images the globs name; an untagged third-party image stays as written', () => {
    const input = deployment('web', [
      { name: 'app', image: APP },
      { name: 'redis', image: 'redis' },
    ]);
    const out = only(rewrite([input], options({ ownImages: ['registry.example.com/team/*'] })));
    expect(containers(out).map((c) => c.image)).toEqual([`${APP}:${TAG}@${DIGEST}`, 'redis']);
  });

  it('leaves a workload whose only untagged image is not the service\'s own unversioned, and makes no canary of it', () => {
    const input = deployment('web', [{ name: 'redis', image: 'redis' }]);
    const own = { ownImages: ['registry.example.com/**'] };
    const stable = only(rewrite([input], options(own)));
    expect(containers(stable)).toEqual([{ name: 'redis', image: 'redis' }]);
    expect(stable.metadata.labels?.['track']).toBeUndefined();
    expect(rewrite([input], options({ ...own, track: 'canary' }))).toEqual([]);
  });
});
