import { describe, expect, it } from 'vitest';
import { ManifestError } from '../../src/errors.js';
import { parseManifests, type ManifestLimits, type ManifestProblem } from '../../src/deploy/manifests.js';
import { imagesOf, untaggedImages } from '../../src/deploy/pod-template.js';
import type { KubeObject, ManifestFile } from '../../src/core/types.js';

// ---- helpers ----------------------------------------------------------------------------------------------------

function file(path: string, content: string | Buffer): ManifestFile {
  return { path, content: typeof content === 'string' ? Buffer.from(content, 'utf8') : content };
}

function deployment(name: string, image = 'registry.example.com/team/web'): string {
  return [
    'apiVersion: apps/v1',
    'kind: Deployment',
    'metadata:',
    `  name: ${name}`,
    'spec:',
    '  selector:',
    `    matchLabels: {app: ${name}}`,
    '  template:',
    '    metadata:',
    `      labels: {app: ${name}}`,
    '    spec:',
    '      containers:',
    '        - name: app',
    `          image: ${image}`,
    '',
  ].join('\n');
}

function configMap(name: string, data = 'a: "1"'): string {
  return `apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: ${name}\ndata:\n  ${data}\n`;
}

/** Runs `act`, which must throw a ManifestError, and returns it. */
function refusal(act: () => unknown): ManifestError {
  try {
    act();
  } catch (err) {
    if (err instanceof ManifestError) return err;
    throw err;
  }
  throw new Error('expected a ManifestError');
}

function problemsOf(err: ManifestError): ManifestProblem[] {
  return (err.detail?.['problems'] ?? []) as ManifestProblem[];
}

/** Parses one file `kubernetes/app.yaml` holding `yaml`. */
function parseOne(yaml: string | Buffer, limits?: Partial<ManifestLimits>) {
  return parseManifests([file('kubernetes/app.yaml', yaml)], 'kubernetes', limits);
}

function summary(objects: ReturnType<typeof parseManifests>) {
  return objects.map(({ object, file: f, document, item }) => ({ kind: object.kind, name: object.metadata.name, file: f, document, item }));
}

function dig(value: unknown, ...path: (string | number)[]): unknown {
  let v = value;
  for (const key of path) v = (v as Record<string | number, unknown> | undefined)?.[key];
  return v;
}

// ---- which files, in which order --------------------------------------------------------------------------------

describe('parseManifests: files', () => {
  it('reads every document of a multi-document file, skipping empty ones', () => {
    // Arrange
    const yaml = [
      '# the web service',
      '---',
      deployment('web'),
      '---',
      '---',
      '# only a comment',
      '---',
      '~',
      '---',
      configMap('settings'),
      '...',
    ].join('\n');

    // Act
    const objects = parseOne(yaml);

    // Assert
    expect(summary(objects)).toEqual([
      { kind: 'Deployment', name: 'web', file: 'kubernetes/app.yaml', document: 1, item: undefined },
      { kind: 'ConfigMap', name: 'settings', file: 'kubernetes/app.yaml', document: 5, item: undefined },
    ]);
  });

  it('returns the objects of all files in path order, directory by directory, as a recursive walk', () => {
    const files = [
      file('kubernetes/b.yaml', configMap('b')),
      file('kubernetes/a.yml', configMap('a-yml')),
      file('kubernetes/a-c.yaml', configMap('a-c')),
      file('kubernetes/a/z.yaml', configMap('a-z')),
    ];

    const objects = parseManifests(files, 'kubernetes');

    expect(objects.map((o) => o.file)).toEqual([
      'kubernetes/a/z.yaml',
      'kubernetes/a-c.yaml',
      'kubernetes/a.yml',
      'kubernetes/b.yaml',
    ]);
  });

  it.each([
    ['kubernetes', ['kubernetes/sub/worker.yml', 'kubernetes/web.yaml']],
    ['./kubernetes/', ['kubernetes/sub/worker.yml', 'kubernetes/web.yaml']],
    ['kubernetes/sub', ['kubernetes/sub/worker.yml']],
    ['.', ['deploy/k8s/other.yaml', 'kubernetes/sub/worker.yml', 'kubernetes/web.yaml']],
    ['deploy/k8s', ['deploy/k8s/other.yaml']],
  ])('with manifestsDir %j reads only the files below it', (dir, expected) => {
    const files = [
      file('kubernetes/web.yaml', configMap('web')),
      file('kubernetes/sub/worker.yml', configMap('worker')),
      file('deploy/k8s/other.yaml', configMap('other')),
    ];

    const objects = parseManifests(files, dir);

    expect(objects.map((o) => o.file)).toEqual(expected);
  });

  it.each([
    'kubernetes/README.md',
    'kubernetes/app.json',
    'kubernetes/app.yaml.orig',
    'kubernetes/APP.YAML',
    'kubernetes/yaml',
    'other/app.yaml',
    'kubernetes-old/app.yaml',
    'kubernetes/../app.yaml',
    'app.yaml',
  ])('ignores %s (not a manifest of the directory)', (path) => {
    // Unparseable content: reading the file would throw.
    const files = [file(path, 'key: [unclosed\n\t: {'), file('kubernetes/web.yaml', configMap('web'))];

    const objects = parseManifests(files, 'kubernetes');

    expect(summary(objects)).toEqual([{ kind: 'ConfigMap', name: 'web', file: 'kubernetes/web.yaml', document: 1, item: undefined }]);
  });

  it('refuses a directory without any object', () => {
    const err = refusal(() => parseManifests([file('kubernetes/empty.yaml', '# nothing yet\n'), file('README.md', '# hi')], 'kubernetes'));

    expect(err.message).toBe('no Kubernetes objects in "kubernetes"');
  });
});

// ---- YAML -------------------------------------------------------------------------------------------------------

describe('parseManifests: YAML', () => {
  it('names every file that fails, with its line, and returns nothing', () => {
    const files = [
      file('kubernetes/good.yaml', configMap('good')),
      file('kubernetes/bad.yaml', 'apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: [bad\ndata: {}\n'),
      file('kubernetes/worse.yml', `${configMap('x')}---\nkind: Service\n  indented: wrongly\n`),
    ];

    const err = refusal(() => parseManifests(files, 'kubernetes'));

    expect(err.status).toBe(422);
    expect(problemsOf(err)).toEqual([
      { file: 'kubernetes/bad.yaml', line: expect.any(Number) as number, reason: expect.any(String) as string },
      { file: 'kubernetes/worse.yml', line: 9, reason: expect.any(String) as string },
    ]);
    expect(problemsOf(err)[0]?.line).toBeGreaterThanOrEqual(4);
    expect(err.message).toMatch(/^invalid manifests: kubernetes\/bad\.yaml:\d+: .+; kubernetes\/worse\.yml:9: /);
  });

  it.each([
    ['a duplicate key', 'apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: a\n  name: b\n', 5, /duplicated mapping key/],
    ['a JavaScript function', 'apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\ndata: !!js/function "() => 1"\n', 4, /unknown .*tag/],
    ['a local tag', 'apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\ndata: {a: !secret x}\n', 4, /unknown .*tag/],
    ['a binary value', 'apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\nbinaryData: {a: !!binary aGk=}\n', 4, /unknown .*tag/],
    ['an explicit timestamp', 'apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\ndata: {a: !!timestamp 2001-12-14}\n', 4, /unknown .*tag/],
    ['a set', 'apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\ndata: !!set {a, b}\n', 4, /unknown .*tag/],
    ['a tab as indentation', 'apiVersion: v1\nkind: ConfigMap\nmetadata:\n\tname: a\n', 4, /tab/],
  ])('refuses %s', (_what, yaml, line, reason) => {
    const err = refusal(() => parseOne(yaml));

    expect(problemsOf(err)).toEqual([{ file: 'kubernetes/app.yaml', line, reason: expect.stringMatching(reason) as string }]);
  });

  it('reads scalars as kubectl does: octal file modes, merge keys, and no YAML 1.1 booleans or timestamps', () => {
    const yaml = [
      'apiVersion: v1',
      'kind: ConfigMap',
      'metadata: {name: modes}',
      'defaults: &defaults {mode: 0644, retries: 3}',
      'spec:',
      '  <<: *defaults',
      '  retries: 5',
      '  readOnly: 0400',
      '  o: 0o755',
      '  eight: 08',
      '  zero: 0',
      '  hex: 0x1F',
      'data:',
      '  answer: yes',
      '  switch: on',
      '  date: 2001-12-14',
      '  time: 12:30',
      '  yes: "key"',
    ].join('\n');

    const [parsed] = parseOne(yaml);

    expect(dig(parsed?.object, 'spec')).toEqual({ mode: 420, retries: 5, readOnly: 256, o: 493, eight: 8, zero: 0, hex: 31 });
    expect(dig(parsed?.object, 'data')).toEqual({ answer: 'yes', switch: 'on', date: '2001-12-14', time: '12:30', yes: 'key' });
  });

  it('expands aliases into independent copies', () => {
    const yaml = 'apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: a\n  labels: &l {app: web}\nspec:\n  labels: *l\n';

    const [parsed] = parseOne(yaml);
    const labels = parsed?.object.metadata.labels;
    if (labels) labels['app'] = 'changed';

    expect(dig(parsed?.object, 'spec', 'labels')).toEqual({ app: 'web' });
  });

  it('refuses an alias bomb with the default limits instead of expanding it', () => {
    const levels = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]'];
    for (let i = 1; i < 9; i++) {
      const name = String.fromCharCode(97 + i);
      const prev = String.fromCharCode(96 + i);
      levels.push(`${name}: &${name} [${Array.from({ length: 9 }, () => `*${prev}`).join(', ')}]`);
    }
    const yaml = `apiVersion: v1\nkind: ConfigMap\nmetadata: {name: lol}\ndata:\n${levels.map((l) => `  ${l}`).join('\n')}\n`;

    const err = refusal(() => parseOne(yaml));

    expect(problemsOf(err)).toEqual([
      {
        file: 'kubernetes/app.yaml',
        line: 1,
        document: 1,
        reason: 'the manifests expand to more than 1000000 values (aliases expanded)',
      },
    ]);
  });

  it('counts the expanded values of all files against one budget', () => {
    const files = [file('kubernetes/a.yaml', configMap('a')), file('kubernetes/b.yaml', configMap('b'))];

    // Each ConfigMap is 7 values (the mappings and every value in them; keys do not count): 14 > 10.
    const err = refusal(() => parseManifests(files, 'kubernetes', { maxNodes: 10 }));

    expect(problemsOf(err)).toEqual([
      { file: 'kubernetes/b.yaml', line: 1, document: 1, reason: 'the manifests expand to more than 10 values (aliases expanded)' },
    ]);
  });

  it('refuses more aliases per document than allowed', () => {
    const yaml = 'apiVersion: v1\nkind: ConfigMap\nmetadata: {name: &n a}\ndata: {x: *n, y: *n, z: *n}\n';

    const err = refusal(() => parseOne(yaml, { maxAliases: 2 }));

    expect(problemsOf(err)).toEqual([{ file: 'kubernetes/app.yaml', line: 4, reason: 'aliases exceeded maxAliases (2)' }]);
  });

  it('refuses an alias inside its own anchor', () => {
    const yaml = 'apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\ndata: &loop [*loop]\n';

    const err = refusal(() => parseOne(yaml));

    expect(problemsOf(err)).toEqual([
      { file: 'kubernetes/app.yaml', line: 1, document: 1, reason: 'data[0]: an alias refers to a value that contains it' },
    ]);
  });

  /** A ConfigMap whose `data` sequence nests so that the document is `depth` levels deep (the root is level 1). */
  function nested(depth: number): string {
    const n = depth - 1;
    return `apiVersion: v1\nkind: ConfigMap\nmetadata: {name: deep}\ndata: ${'['.repeat(n)}${']'.repeat(n)}\n`;
  }

  it('accepts 100 levels of nesting', () => {
    const objects = parseOne(nested(100));

    expect(objects).toHaveLength(1);
  });

  it('refuses 101 levels of nesting', () => {
    const err = refusal(() => parseOne(nested(101)));

    expect(problemsOf(err)).toEqual([
      { file: 'kubernetes/app.yaml', line: 1, document: 1, reason: 'data[0][0][0][0][0][0][0]…[0][0][0]: nested deeper than 100 levels' },
    ]);
  });

  it('refuses deep block nesting while parsing, naming the line', () => {
    const yaml = `apiVersion: v1\nkind: ConfigMap\nmetadata: {name: deep}\ndata:\n${'- '.repeat(150)}x\n`;

    const err = refusal(() => parseOne(yaml));

    expect(problemsOf(err)).toEqual([{ file: 'kubernetes/app.yaml', line: 5, reason: 'nesting exceeded maxDepth (101)' }]);
  });

  it('refuses nesting that only aliases make too deep', () => {
    const deep = (n: number) => `${'['.repeat(n)}${']'.repeat(n)}`;
    const yaml = `apiVersion: v1\nkind: ConfigMap\nmetadata: {name: deep}\nanchor: &deep ${deep(60)}\ndata: ${'['.repeat(50)}*deep${']'.repeat(50)}\n`;

    const err = refusal(() => parseOne(yaml));

    expect(problemsOf(err)).toEqual([
      { file: 'kubernetes/app.yaml', line: 1, document: 1, reason: expect.stringMatching(/^data(\[0\])+…(\[0\])+: nested deeper than 100 levels$/) as string },
    ]);
  });

  it('refuses a file that is not UTF-8, naming it', () => {
    const latin1 = Buffer.concat([Buffer.from(configMap('a', 'city: "')), Buffer.from([0x4d, 0xfc, 0x6e]), Buffer.from('"\n')]);
    const files = [file('kubernetes/ok.yaml', configMap('ok')), file('kubernetes/latin1.yaml', latin1)];

    const err = refusal(() => parseManifests(files, 'kubernetes'));

    expect(problemsOf(err)).toEqual([{ file: 'kubernetes/latin1.yaml', reason: 'the file is not valid UTF-8' }]);
  });

  it('accepts UTF-8 with a byte order mark and non-ASCII text', () => {
    const bom = Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), Buffer.from(configMap('a', 'city: "München"'))]);

    const [parsed] = parseOne(bom);

    expect(dig(parsed?.object, 'data', 'city')).toBe('München');
  });

  it('refuses a file above the default size cap of 1 MiB', () => {
    const big = `${configMap('big')}# ${'x'.repeat(1024 * 1024)}\n`;

    const err = refusal(() => parseOne(big));

    expect(problemsOf(err)).toEqual([
      { file: 'kubernetes/app.yaml', reason: `the file has ${Buffer.byteLength(big)} bytes, more than 1048576` },
    ]);
  });

  it('applies a configured per-file cap to each file', () => {
    const files = [file('kubernetes/small.yaml', configMap('s')), file('kubernetes/large.yaml', configMap('l', `a: "${'x'.repeat(200)}"`))];

    const err = refusal(() => parseManifests(files, 'kubernetes', { maxFileBytes: 100 }));

    expect(problemsOf(err).map((p) => p.file)).toEqual(['kubernetes/large.yaml']);
  });

  it('refuses manifests above the total size cap', () => {
    const files = ['a', 'b', 'c'].map((n) => file(`kubernetes/${n}.yaml`, configMap(n)));
    const size = files[0]?.content.byteLength ?? 0;

    const err = refusal(() => parseManifests(files, 'kubernetes', { maxTotalBytes: size * 2 + 1 }));

    expect(problemsOf(err)).toEqual([{ file: 'kubernetes/c.yaml', reason: `the manifests exceed ${size * 2 + 1} bytes in total` }]);
  });

  it('keeps a __proto__ key as data without touching any prototype', () => {
    const yaml = 'apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\ndata:\n  __proto__: {polluted: "yes"}\n';

    const [parsed] = parseOne(yaml);
    const data = dig(parsed?.object, 'data') as Record<string, unknown>;

    expect(Object.keys(data)).toEqual(['__proto__']);
    expect(Object.getPrototypeOf(data)).toBe(Object.prototype);
    expect(({} as Record<string, unknown>)['polluted']).toBeUndefined();
    expect(JSON.parse(JSON.stringify(data))).toEqual(JSON.parse('{"__proto__": {"polluted": "yes"}}'));
  });

  it.each(['.inf', '-.Inf', '.nan'])('refuses %s, which JSON cannot carry', (value) => {
    const err = refusal(() => parseOne(`apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\nspec: {limit: ${value}}\n`));

    expect(problemsOf(err)).toEqual([
      { file: 'kubernetes/app.yaml', line: 1, document: 1, reason: expect.stringMatching(/^spec\.limit: .* cannot be sent as JSON$/) as string },
    ]);
  });
});

// ---- objects ----------------------------------------------------------------------------------------------------

describe('parseManifests: objects', () => {
  it.each([
    ['a list', '- a\n- b\n', /^a document must be a mapping/],
    ['a scalar', 'just text\n', /^a document must be a mapping/],
    ['no kind', 'apiVersion: v1\nmetadata: {name: a}\n', /^kind: /],
    ['no apiVersion', 'kind: ConfigMap\nmetadata: {name: a}\n', /^apiVersion: /],
    ['a bad apiVersion', 'apiVersion: apps/v1/x\nkind: ConfigMap\nmetadata: {name: a}\n', /^apiVersion: must be/],
    ['a bad kind', 'apiVersion: v1\nkind: "Config Map"\nmetadata: {name: a}\n', /^kind: must be a kind/],
    ['no metadata', 'apiVersion: v1\nkind: ConfigMap\n', /^metadata: /],
    [
      'a kustomization',
      'apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources: [deployment.yaml]\n',
      /^a Kustomization is kustomize's input, not a Kubernetes object \(kubectl apply -f refuses it too\): keep it out of the manifests directory, or list it in the service's exclude globs \(exclude: \[GLOB\]\)$/,
    ],
    [
      'a Helm values file',
      'replicaCount: 2\nimage: {repository: web}\n',
      /^not a Kubernetes object \(no apiVersion and no kind\): keep it out of the manifests directory, or list it in the service's exclude globs/,
    ],
    ['no name', 'apiVersion: v1\nkind: ConfigMap\nmetadata: {generateName: a-}\n', /^metadata\.name: /],
    ['a numeric name', 'apiVersion: v1\nkind: ConfigMap\nmetadata: {name: 123}\n', /^metadata\.name: .*string/],
    ['an upper-case name', 'apiVersion: v1\nkind: ConfigMap\nmetadata: {name: Web}\n', /^metadata\.name: must be a DNS subdomain name$/],
    ['a name with a slash', 'apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a/b}\n', /^metadata\.name: must be a DNS subdomain name$/],
    ['a name with a colon', 'apiVersion: v1\nkind: ConfigMap\nmetadata: {name: "a:b"}\n', /^metadata\.name: must be a DNS subdomain name$/],
    ['a 254-character name', `apiVersion: v1\nkind: ConfigMap\nmetadata: {name: ${'a'.repeat(254)}}\n`, /^metadata\.name: /],
    ['a bad namespace', 'apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a, namespace: Team_A}\n', /^metadata\.namespace: must be a DNS label$/],
    ['a numeric label value', 'apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a, labels: {version: 1}}\n', /^metadata\.labels\.version: /],
    ['an RBAC name with a slash', 'apiVersion: rbac.authorization.k8s.io/v1\nkind: Role\nmetadata: {name: "a/b"}\n', /^metadata\.name: /],
    ['a bad image', deployment('web', 'Registry.Example.com/Web'), /^spec\.template\.spec\.containers\[0\]\.image: invalid image reference/],
    ['a numeric image', deployment('web', '42'), /^spec\.template\.spec\.containers\[0\]\.image: must be a string$/],
    [
      'an init container that is no mapping',
      'apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec: {initContainers: [x], containers: []}\n',
      /^spec\.initContainers\[0\]: must be a mapping$/,
    ],
    ['containers that are no list', 'apiVersion: batch/v1\nkind: Job\nmetadata: {name: j}\nspec: {template: {spec: {containers: {image: x}}}}\n', /^spec\.template\.spec\.containers: must be a list$/],
  ])('refuses a document with %s, naming file, document and line', (_what, yaml, reason) => {
    // The refused document is the second; it starts on line 9.
    const text = `${configMap('first')}---\n\n${yaml}`;

    const err = refusal(() => parseOne(text));

    expect(problemsOf(err)).toEqual([{ file: 'kubernetes/app.yaml', line: 9, document: 2, reason: expect.stringMatching(reason) as string }]);
    expect(err.message).toMatch(/^invalid manifests: kubernetes\/app\.yaml:9 \(document 2\): /);
  });

  it.each([
    ['a 253-character name', `apiVersion: v1\nkind: ConfigMap\nmetadata: {name: ${'a'.repeat(253)}}\n`],
    ['a dotted name', 'apiVersion: v1\nkind: ConfigMap\nmetadata: {name: web.example.com}\n'],
    ['an RBAC name with a colon', 'apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRole\nmetadata: {name: "system:reader"}\n'],
    ['a custom resource', 'apiVersion: monitoring.coreos.com/v1\nkind: ServiceMonitor\nmetadata: {name: web}\nspec: {any: [thing]}\n'],
    ['a Deployment without image (set by a controller)', 'apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: a}\nspec: {template: {spec: {containers: [{name: a}]}}}\n'],
  ])('accepts %s', (_what, yaml) => {
    const objects = parseOne(yaml);

    expect(objects).toHaveLength(1);
  });

  it('drops metadata fields written without a value and keeps every other field', () => {
    const yaml = 'apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: a\n  namespace:\n  labels:\n  annotations: {note: x}\n  finalizers: [f]\ndata: {k: v}\n';

    const [parsed] = parseOne(yaml);

    expect(parsed?.object).toEqual({
      apiVersion: 'v1',
      kind: 'ConfigMap',
      metadata: { name: 'a', annotations: { note: 'x' }, finalizers: ['f'] },
      data: { k: 'v' },
    });
  });

  it('reads the items of a List as objects', () => {
    const yaml = `apiVersion: v1\nkind: List\nitems:\n  - ${configMap('one').trimEnd().replace(/\n/g, '\n    ')}\n  - ${configMap('two').trimEnd().replace(/\n/g, '\n    ')}\n`;

    const objects = parseOne(yaml);

    expect(summary(objects)).toEqual([
      { kind: 'ConfigMap', name: 'one', file: 'kubernetes/app.yaml', document: 1, item: 0 },
      { kind: 'ConfigMap', name: 'two', file: 'kubernetes/app.yaml', document: 1, item: 1 },
    ]);
  });

  it('refuses a List item without a name, naming the item', () => {
    const yaml = 'apiVersion: v1\nkind: List\nitems:\n  - {apiVersion: v1, kind: ConfigMap, metadata: {name: ok}}\n  - {apiVersion: v1, kind: ConfigMap, metadata: {}}\n';

    const err = refusal(() => parseOne(yaml));

    expect(problemsOf(err)).toEqual([
      { file: 'kubernetes/app.yaml', line: 1, document: 1, item: 1, reason: expect.stringMatching(/^metadata\.name: /) as string },
    ]);
  });

  it('refuses an object defined twice, naming both places', () => {
    const files = [file('kubernetes/a.yaml', deployment('web')), file('kubernetes/b.yaml', `${configMap('web')}---\n${deployment('web')}`)];

    const err = refusal(() => parseManifests(files, 'kubernetes'));

    expect(problemsOf(err)).toEqual([
      { file: 'kubernetes/b.yaml', document: 2, item: undefined, reason: 'Deployment "web" is also defined in kubernetes/a.yaml (document 1)' },
    ]);
  });

  it('does not take objects of different namespaces or groups for duplicates', () => {
    const yaml = [
      'apiVersion: v1\nkind: ConfigMap\nmetadata: {name: web, namespace: a}',
      'apiVersion: v1\nkind: ConfigMap\nmetadata: {name: web, namespace: b}',
      'apiVersion: example.com/v1\nkind: ConfigMap\nmetadata: {name: web, namespace: a}',
    ].join('\n---\n');

    expect(parseOne(yaml)).toHaveLength(3);
  });
});

// ---- images -----------------------------------------------------------------------------------------------------

/** A pod template with an app container, an init container and an ephemeral one, for `kind`. */
function workload(apiVersion: string, kind: string): KubeObject {
  const pod = {
    metadata: { labels: { app: 'web' } },
    spec: {
      initContainers: [{ name: 'migrate', image: `registry.example.com/${kind.toLowerCase()}-init` }],
      containers: [
        { name: 'app', image: `registry.example.com/${kind.toLowerCase()}` },
        { name: 'statsd', image: 'statsd:1.2' },
      ],
      ephemeralContainers: [{ name: 'debug', image: 'busybox' }],
    },
  };
  const spec =
    kind === 'Pod' ? pod.spec : kind === 'CronJob' ? { schedule: '@daily', jobTemplate: { spec: { template: pod } } } : { template: pod };
  return { apiVersion, kind, metadata: { name: 'web', ...(kind === 'Pod' ? pod.metadata : {}) }, spec };
}

describe('imagesOf', () => {
  it.each([
    ['apps/v1', 'Deployment'],
    ['extensions/v1beta1', 'Deployment'],
    ['apps/v1', 'StatefulSet'],
    ['apps/v1', 'DaemonSet'],
    ['apps/v1', 'ReplicaSet'],
    ['batch/v1', 'Job'],
    ['batch/v1', 'CronJob'],
    ['batch/v1beta1', 'CronJob'],
    ['v1', 'Pod'],
  ])('finds the container and init container images of a %s %s', (apiVersion, kind) => {
    const images = imagesOf([workload(apiVersion, kind)]);

    const name = kind.toLowerCase();
    expect(images.sort()).toEqual([`registry.example.com/${name}`, `registry.example.com/${name}-init`, 'statsd:1.2']);
  });

  it.each([
    ['example.com/v1', 'Deployment'],
    ['v1', 'Deployment'],
    ['apps/v1', 'Pod'],
    ['v1', 'Service'],
    ['v1', 'PodTemplate'],
  ])('finds none in a %s %s', (apiVersion, kind) => {
    expect(imagesOf([workload(apiVersion, kind)])).toEqual([]);
  });

  it('lists each image once, object by object, containers before init containers', () => {
    const objects = [workload('apps/v1', 'Deployment'), workload('apps/v1', 'Deployment'), workload('batch/v1', 'Job')];

    expect(imagesOf(objects)).toEqual([
      'registry.example.com/deployment',
      'statsd:1.2',
      'registry.example.com/deployment-init',
      'registry.example.com/job',
      'registry.example.com/job-init',
    ]);
  });
});

describe('untaggedImages', () => {
  function podWith(images: string[]): KubeObject {
    return { apiVersion: 'v1', kind: 'Pod', metadata: { name: 'p' }, spec: { containers: images.map((image, i) => ({ name: `c${i}`, image })) } };
  }

  it('returns the images without tag and digest, each once by the name as written', () => {
    const digest = `sha256:${'a'.repeat(64)}`;
    const objects = [
      podWith(['web', 'statsd:1.2', '127.0.0.1:5000/team/web', `web@${digest}`, 'web']),
      podWith(['docker.io/library/web', '127.0.0.1:5000/team/web:7', 'localhost/api']),
    ];

    const images = untaggedImages(objects);

    expect(images).toEqual(['web', '127.0.0.1:5000/team/web', 'docker.io/library/web', 'localhost/api']);
  });

  it('refuses an invalid image reference as a manifest problem', () => {
    const err = refusal(() => untaggedImages([podWith(['UPPER/case'])]));

    expect(err.detail).toEqual({ image: 'UPPER/case' });
  });
});

describe('untaggedImages with the service\'s image globs', () => {
  it('lists only the untagged images a glob matches', () => {
    const objects = parseManifests(
      [file('kubernetes/a.yaml', `${deployment('web')}---\n${deployment('cache', 'redis')}---\n${deployment('db', 'postgres:13')}`)],
      'kubernetes',
    ).map((m) => m.object);
    expect(untaggedImages(objects)).toEqual(['registry.example.com/team/web', 'redis']);
    expect(untaggedImages(objects, ['registry.example.com/team/*'])).toEqual(['registry.example.com/team/web']);
    expect(untaggedImages(objects, ['quay.io/**'])).toEqual([]);
  });
});
