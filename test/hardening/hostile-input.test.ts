import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseConfig } from '../../src/config/load.js';
import { ground } from '../env/ground.js';
import { createNamespace } from '../env/kube-helpers.js';
import { configMapYaml, deploymentYaml, serviceYaml } from '../env/manifests.js';
import { pushImage } from '../env/registry-helpers.js';
import { basic, call, serviceRepo, startDeployer, type Answer, type RunningDeployer } from '../e2e/setup.js';
import { git, type FixtureFile } from '../env/git-fixtures.js';
import { Captured, nothingPwned, PWNED, snapshot } from './harness.js';

/**
 * Hostile input end to end through HTTP: every case is refused with a clear status and message, the namespace is
 * unchanged, no injected command ran, and no secret shows up anywhere.
 */

const CI_SECRET = 'ci-secret-hostile-0123456789';
const OPS_SECRET = 'ops-secret-hostile-9876543210';
const TAG = 'release-candidate';

/** A valid ConfigMap `name`, the harmless part of a hostile repository. */
const configMap = (name: string): string => configMapYaml(name, { a: '1' });

function aliasBomb(): string {
  const lines = ['apiVersion: v1', 'kind: ConfigMap', 'metadata: { name: bomb }', 'x0: &a0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]'];
  for (let i = 1; i < 10; i++) lines.push(`x${i}: &a${i} [${Array.from({ length: 9 }, () => `*a${i - 1}`).join(',')}]`);
  lines.push('data: { a: "1" }');
  return `${lines.join('\n')}\n`;
}

function deeplyNested(levels: number): string {
  let s = '"deep"';
  for (let i = 0; i < levels; i++) s = `{ k: ${s} }`;
  return `apiVersion: v1\nkind: ConfigMap\nmetadata: { name: deep }\nspec: ${s}\ndata: { a: "1" }\n`;
}

/** A manifest of `bytes` bytes: a valid ConfigMap padded with a comment. */
function hugeManifest(bytes: number): Buffer {
  const head = configMap('huge');
  return Buffer.concat([Buffer.from(head), Buffer.from(`# ${'x'.repeat(bytes - head.length - 3)}\n`)]);
}

/**
 * Repositories whose manifests are hostile, by case name: the files of the `kubernetes/` directory (the Deployment
 * of the image is added so the version resolves), and what the answer must say.
 */
type ManifestCase = readonly [name: string, files: (image: string) => Record<string, FixtureFile>, status: number, error: RegExp];

const MANIFEST_CASES: readonly ManifestCase[] = [
  ['symlink to an absolute path', () => ({ 'kubernetes/passwd.yaml': { symlink: '/etc/passwd' } }), 422, /kubernetes\/passwd\.yaml is a symbolic link/],
  ['symlink out of kubernetes/', () => ({ 'kubernetes/up.yaml': { symlink: '../../../secret.yaml' }, 'secret.yaml': configMap('outside') }), 422, /kubernetes\/up\.yaml is a symbolic link/],
  ['symlinked directory inside kubernetes/', () => ({ 'kubernetes/sub': { symlink: '..' } }), 422, /kubernetes\/sub is a symbolic link/],
  ['kubernetes/ itself a symlink', () => ({ kubernetes: { symlink: '/etc' } }), 404, /directory kubernetes\/ not found/],
  ['shell metacharacters in a file name', () => ({ 'kubernetes/$(touch /tmp/deployer-pwned);`id`.yaml': 'kind: [' }), 422, /kubernetes\/\$\(touch \/tmp\/deployer-pwned\);`id`\.yaml/],
  ['a file name starting with "-"', () => ({ 'kubernetes/--upload-pack=touch$IFS/tmp/deployer-pwned.yaml': 'kind: [' }), 422, /kubernetes\/--upload-pack=touch\$IFS\/tmp\/deployer-pwned\.yaml/],
  ['YAML alias bomb', () => ({ 'kubernetes/bomb.yaml': aliasBomb() }), 422, /expand to more than \d+ values/],
  ['deeply nested document', () => ({ 'kubernetes/deep.yaml': deeplyNested(150) }), 422, /nest|deep/i],
  ['10 MiB manifest file', () => ({ 'kubernetes/huge.yaml': hugeManifest(10 * 1024 * 1024) }), 422, /kubernetes\/huge\.yaml: the manifests exceed 8388608 bytes in total/],
  ['non-UTF-8 bytes', () => ({ 'kubernetes/latin1.yaml': Buffer.concat([Buffer.from(configMap('latin1')), Buffer.from([0x23, 0xe9, 0xff, 0xfe, 0x0a])]) }), 422, /not valid UTF-8/],
  ['duplicate keys', () => ({ 'kubernetes/dup.yaml': 'apiVersion: v1\nkind: ConfigMap\nkind: Secret\nmetadata: { name: dup }\n' }), 422, /duplicated mapping key/],
  ['the same object twice', () => ({ 'kubernetes/a.yaml': configMap('twice'), 'kubernetes/b.yaml': configMap('twice') }), 422, /ConfigMap \\"twice\\" is also defined in kubernetes\/a\.yaml/],
  ['object without kind', () => ({ 'kubernetes/nokind.yaml': 'apiVersion: v1\nmetadata: { name: nokind }\n' }), 422, /kind: /],
  ['object without metadata.name', () => ({ 'kubernetes/noname.yaml': 'apiVersion: v1\nkind: ConfigMap\nmetadata: { labels: { a: b } }\n' }), 422, /metadata\.name/],
  ['a document that is not a mapping', () => ({ 'kubernetes/list.yaml': '- a\n- b\n' }), 422, /must be a mapping/],
  ['an invalid object name', () => ({ 'kubernetes/upper.yaml': configMap('Upper_Case') }), 422, /must be a DNS subdomain name/],
  ['unknown kind', () => ({ 'kubernetes/crd.yaml': 'apiVersion: example.com/v1\nkind: Gadget\nmetadata: { name: g }\n' }), 422, /unknown kind example\.com\/v1\/Gadget/],
  ['cluster-scoped ClusterRoleBinding', () => ({
    'kubernetes/crb.yaml': 'apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRoleBinding\nmetadata: { name: takeover }\nroleRef: { apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: cluster-admin }\nsubjects: [{ kind: ServiceAccount, name: default, namespace: default }]\n',
  }), 422, /cluster-scoped ClusterRoleBinding is not allowed/],
  ['cluster-scoped Namespace', () => ({ 'kubernetes/ns.yaml': 'apiVersion: v1\nkind: Namespace\nmetadata: { name: hostile-ns }\n' }), 422, /cluster-scoped Namespace is not allowed/],
  ['foreign namespace', () => ({ 'kubernetes/cm.yaml': configMap('foreign').replace('metadata:\n', 'metadata:\n  namespace: kube-system\n') }), 422, /namespace kube-system is not allowed/],
  ['a Deployment named like another service\'s', (image) => ({ 'kubernetes/0-deployment.yaml': deploymentYaml({ name: 'web', image }) }), 409, /Deployment \\"web\\" belongs to service web-[0-9a-f]+; service h-[0-9a-f]+ may not change it/],
  ['a Service named like another service\'s', () => ({ 'kubernetes/service.yaml': serviceYaml('web') }), 409, /Service \\"web\\" belongs to service web-[0-9a-f]+; service h-[0-9a-f]+ may not change it/],
  ['a label value over 63 characters', () => ({ 'kubernetes/cm.yaml': configMap('longlabel').replace('metadata:\n', `metadata:\n  labels: { team: ${'x'.repeat(64)} }\n`) }), 422, /nothing was applied/],
];

/** Cases against a good service, with the answer they must get; the body is a form unless `raw` says otherwise. */
interface RequestCase {
  name: string;
  path?: string;
  method?: string;
  auth?: string;
  form?: Record<string, string>;
  raw?: { contentType?: string; body: string | Buffer };
  status: number;
  error: RegExp;
}

const COMMIT_ERROR = /^commit must be a commit SHA \(4 to 40 hex digits\), a revision number or a branch name$/;
const TAG_ERROR = /^tag must match \[A-Za-z0-9_\]\[A-Za-z0-9_\.-\]\{0,127\}$/;
const B64 = (s: string | Buffer): string => Buffer.from(s).toString('base64');

const INJECTIONS = [
  '$(touch /tmp/deployer-pwned)',
  '`touch /tmp/deployer-pwned`',
  'main;touch /tmp/deployer-pwned',
  'main|touch /tmp/deployer-pwned',
  'main&&touch /tmp/deployer-pwned',
  'main\ntouch /tmp/deployer-pwned',
  '--upload-pack=touch /tmp/deployer-pwned',
  '--upload-pack=touch$IFS/tmp/deployer-pwned-2',
  '-c',
  '--output=/tmp/deployer-pwned',
  '-main',
  'main/-x',
  '../../etc/passwd',
  'main@{1}',
  "main'",
] as const;

function requestCases(ci: string, ops: string): RequestCase[] {
  const cases: RequestCase[] = [];
  for (const value of INJECTIONS) {
    cases.push({ name: `commit ${JSON.stringify(value)}`, form: { commit: value }, status: 400, error: COMMIT_ERROR });
  }
  for (const value of INJECTIONS.slice(0, 11)) {
    cases.push({ name: `tag ${JSON.stringify(value)}`, form: { commit: 'main', tag: value }, status: 400, error: TAG_ERROR });
  }
  cases.push(
    { name: 'tag of 129 characters', form: { tag: `v${'1'.repeat(128)}` }, status: 400, error: TAG_ERROR },
    { name: 'commit of 201 characters', form: { commit: `b${'r'.repeat(200)}` }, status: 400, error: COMMIT_ERROR },
    { name: 'injection in the query string', path: '/deploy?commit=%24(touch%20%2Ftmp%2Fdeployer-pwned)', status: 400, error: COMMIT_ERROR },
    { name: 'commit given twice', raw: { contentType: 'application/x-www-form-urlencoded', body: 'commit=main&commit=abcd' }, status: 400, error: /commit must be given once, as a string/ },
    { name: 'commit as a JSON array', raw: { contentType: 'application/json', body: '{"commit":["main","--upload-pack=x"]}' }, status: 400, error: /commit must be given once, as a string/ },
    { name: 'commit as a JSON object', raw: { contentType: 'application/json', body: '{"commit":{"$ne":null}}' }, status: 400, error: /commit must be given once, as a string/ },
    { name: 'a JSON body that is an array', raw: { contentType: 'application/json', body: '["main"]' }, status: 400, error: /the request body must be an object or a form/ },
    { name: 'malformed JSON', raw: { contentType: 'application/json', body: '{"commit": "main"' }, status: 400, error: /^the request body is not valid JSON$/ },
    { name: 'empty JSON body', raw: { contentType: 'application/json', body: '' }, status: 400, error: /^the request body is empty but its content type is application\/json$/ },
    { name: 'a JSON body with __proto__', raw: { contentType: 'application/json', body: '{"__proto__":{"commit":"main"}}' }, status: 400, error: /^the request body is not valid JSON$/ },
    { name: 'a field named constructor', raw: { contentType: 'application/json', body: '{"constructor":{"commit":"main"}}' }, status: 400, error: /^unknown field constructor; the fields are commit, tag, wait$/ },
    { name: 'a 1 MiB form body', raw: { contentType: 'application/x-www-form-urlencoded', body: `commit=main&pad=${'x'.repeat(1024 * 1024)}` }, status: 413, error: /^the request body is larger than 65536 bytes$/ },
    { name: 'a 1 MiB JSON body', raw: { contentType: 'application/json', body: JSON.stringify({ commit: 'main', pad: 'x'.repeat(1024 * 1024) }) }, status: 413, error: /^the request body is larger than 65536 bytes$/ },
    { name: 'content type text/plain', raw: { contentType: 'text/plain', body: 'commit=main' }, status: 415, error: /content type "text\/plain" is not supported/ },
    { name: 'content type application/xml', raw: { contentType: 'application/xml', body: '<commit>main</commit>' }, status: 415, error: /content type "application\/xml" is not supported/ },
    { name: 'content type multipart/form-data', raw: { contentType: 'multipart/form-data; boundary=x', body: '--x\r\nContent-Disposition: form-data; name="commit"\r\n\r\nmain\r\n--x--\r\n' }, status: 415, error: /content type "multipart\/form-data; boundary=x" is not supported/ },
    { name: 'no Authorization header', auth: '', form: { commit: 'main' }, status: 401, error: /^authentication required$/ },
    { name: 'bad base64 in Authorization', auth: 'Basic !!!not-base64!!!', form: { commit: 'main' }, status: 401, error: /^the Authorization header is not valid basic authentication$/ },
    { name: 'base64 with a bad length', auth: `Basic ${B64(`ci:${CI_SECRET}`).slice(0, -1)}`, form: { commit: 'main' }, status: 401, error: /^the Authorization header is not valid basic authentication$/ },
    { name: 'base64 without a colon', auth: `Basic ${B64(`ci${CI_SECRET}`)}`, form: { commit: 'main' }, status: 401, error: /^the Authorization header is not valid basic authentication$/ },
    { name: 'base64 of non-UTF-8 bytes', auth: `Basic ${B64(Buffer.from([0x63, 0x69, 0x3a, 0xff, 0xfe]))}`, form: { commit: 'main' }, status: 401, error: /^the Authorization header is not valid basic authentication$/ },
    { name: 'a Bearer token', auth: `Bearer ${CI_SECRET}`, form: { commit: 'main' }, status: 401, error: /^the Authorization header is not valid basic authentication$/ },
    { name: 'a secret differing in the last character', auth: basic('ci', `${CI_SECRET.slice(0, -1)}X`), form: { commit: 'main' }, status: 401, error: /^unknown token or wrong secret$/ },
    { name: 'a secret one character short', auth: basic('ci', CI_SECRET.slice(0, -1)), form: { commit: 'main' }, status: 401, error: /^unknown token or wrong secret$/ },
    { name: 'token name ci with the secret of token ops', auth: basic('ci', OPS_SECRET), form: { commit: 'main' }, status: 401, error: /^unknown token or wrong secret$/ },
    { name: 'token name __proto__', auth: basic('__proto__', CI_SECRET), form: { commit: 'main' }, status: 401, error: /^unknown token or wrong secret$/ },
    { name: 'a read-only token deploying', auth: ops, form: { commit: 'main' }, status: 403, error: /^token "ops" may not deploy service "[a-z0-9-]+"$/ },
    { name: 'an unknown service with traversal', path: '/../../etc/passwd', form: { commit: 'main' }, auth: ci, status: 404, error: /./ },
  );
  return cases;
}

/**
 * Commits git itself would not write, made with `git mktree` (which does not check names): a `..` tree inside
 * kubernetes/, and a `.` one. `mkdir` of the path never happens (files are read from the object store), so the
 * question is only whether the deployer treats the path as inside the manifests directory.
 */
const CRAFTED_CASES = [
  ['a ".." tree entry inside kubernetes/', '..'],
  ['a "." tree entry inside kubernetes/', '.'],
] as const;

async function craftedCommit(repoPath: string, image: string, entry: string, name: string): Promise<void> {
  const blob = (content: string): Promise<string> => git(['hash-object', '-w', '--stdin'], { cwd: repoPath, input: content }).then((s) => s.trim());
  const tree = (lines: string[]): Promise<string> => git(['mktree'], { cwd: repoPath, input: `${lines.join('\n')}\n` }).then((s) => s.trim());
  const evil = await blob(configMap('traversal'));
  const good = await blob(deploymentYaml({ name: name, image }));
  const inner = await tree([`100644 blob ${evil}\tevil.yaml`]);
  const manifestsTree = await tree([`100644 blob ${good}\t0-deployment.yaml`, `040000 tree ${inner}\t${entry}`]);
  const root = await tree([`040000 tree ${manifestsTree}\tkubernetes`, `100644 blob ${evil}\tevil.yaml`]);
  const parent = (await git(['rev-parse', 'refs/heads/main'], { cwd: repoPath })).trim();
  const commit = (await git(['commit-tree', root, '-p', parent, '-m', 'crafted'], {
    cwd: repoPath,
    env: { ...process.env, GIT_AUTHOR_NAME: 'x', GIT_AUTHOR_EMAIL: 'x@example.test', GIT_COMMITTER_NAME: 'x', GIT_COMMITTER_EMAIL: 'x@example.test' },
  })).trim();
  await git(['update-ref', 'refs/heads/main', commit], { cwd: repoPath });
}

describe('hostile input end to end', () => {
  let deployer: RunningDeployer;
  let namespace: string;
  let web: Awaited<ReturnType<typeof serviceRepo>>;
  const hostile = new Map<string, string>();
  const captured = new Captured();
  const ci = basic('ci', CI_SECRET);

  beforeAll(async () => {
    const registry = ground('registry').anonymous;
    namespace = await createNamespace('hostile');
    const image = `${registry}/hardening/hostile-${Date.now().toString(36)}`;
    await pushImage({ host: registry, repository: image.slice(registry.length + 1), tag: TAG });
    web = await serviceRepo('web', [{ files: { 'kubernetes/deployment.yaml': deploymentYaml({ name: 'web', image }), 'kubernetes/service.yaml': serviceYaml('web'), 'kubernetes/config.yaml': configMap('web-config') } }]);
    const repos = await Promise.all(
      MANIFEST_CASES.map(async ([name, files], i) => {
        // Every hostile repository also holds a good Deployment, so the version resolves and only the hostile part is at fault.
        const own = files(image);
        // Each its own Deployment name: two services may not write the same object.
        const good: Record<string, FixtureFile> = 'kubernetes' in own ? {} : { 'kubernetes/0-deployment.yaml': deploymentYaml({ name: `h${i}`, image }) };
        const repo = await serviceRepo('h', [{ files: { ...good, ...own } }]);
        hostile.set(name, repo.name);
        return repo;
      }),
    );
    const crafted = await Promise.all(
      CRAFTED_CASES.map(async ([name, entry], i) => {
        const repo = await serviceRepo('c', [{ files: { 'README.md': 'crafted below' } }]);
        await craftedCommit(repo.repo.path, image, entry, `c${i}`);
        hostile.set(name, repo.name);
        return repo;
      }),
    );
    const all = [web, ...repos, ...crafted];
    deployer = await startDeployer({
      tokens: {
        ci: { secret: { value: CI_SECRET }, services: ['*'], actions: ['read', 'deploy', 'canary'] },
        ops: { secret: { value: OPS_SECRET }, services: ['*'], actions: ['read'] },
      },
      services: Object.fromEntries(all.map((s) => [s.name, { repository: s.repository, namespace }])),
      versions: { registryWaitSeconds: 0 },
    });
    captured.source('deployer log', () => deployer.logText());
    for (const p of PWNED) expect(nothingPwned(), p).toBe(true);
    // A first good deploy, so that "nothing applied" compares a namespace with something in it.
    const first = await call(`${deployer.url}/${web.name}/deploy`, { auth: ci, form: { commit: 'main', tag: TAG } });
    expect(first.status, JSON.stringify(first.body)).toBe(200);
  });

  afterAll(async () => {
    await deployer?.close();
  });

  async function send(c: RequestCase, url: string): Promise<Answer> {
    const headers: Record<string, string> = { 'user-agent': 'curl/8.5.0' };
    if (c.auth !== '') headers['authorization'] = c.auth ?? ci;
    let body: string | Buffer | undefined;
    if (c.raw !== undefined) {
      if (c.raw.contentType !== undefined) headers['content-type'] = c.raw.contentType;
      body = c.raw.body;
    } else if (c.form !== undefined) {
      headers['content-type'] = 'application/x-www-form-urlencoded';
      body = new URLSearchParams(c.form).toString();
    }
    const res = await fetch(url, { method: c.method ?? 'PUT', headers, body });
    const text = await res.text();
    captured.add(`answer to ${c.name}`, `${JSON.stringify([...res.headers])}${text}`);
    return { status: res.status, body: JSON.parse(text) as Record<string, unknown> };
  }

  it.each(requestCases(basic('ci', CI_SECRET), basic('ops', OPS_SECRET)).map((c) => [c.name, c] as const))(
    'request: %s',
    async (_name, c) => {
      const before = await snapshot(namespace);
      const url = c.path?.startsWith('/deploy') === true ? `${deployer.url}/${web.name}${c.path}` : `${deployer.url}${c.path ?? `/${web.name}/deploy`}`;
      const answer = await send(c, url);
      expect(answer.status, JSON.stringify(answer.body)).toBe(c.status);
      expect(String(answer.body['error'])).toMatch(c.error);
      expect(await snapshot(namespace)).toEqual(before);
      expect(nothingPwned()).toBe(true);
    },
  );

  it.each(MANIFEST_CASES.map(([name, , status, error]) => [name, status, error] as const))(
    'manifests: %s',
    async (name, status, error) => {
      const before = await snapshot(namespace);
      const answer = captured.answer(
        name,
        await call(`${deployer.url}/${hostile.get(name) ?? ''}/deploy`, { auth: ci, form: { commit: 'main', tag: TAG } }),
      );
      expect(answer.status, JSON.stringify(answer.body)).toBe(status);
      expect(JSON.stringify(answer.body).slice(0, 2000), JSON.stringify(answer.body).slice(0, 2000)).toMatch(error);
      expect(await snapshot(namespace)).toEqual(before);
      expect(nothingPwned()).toBe(true);
    },
  );

  it.each(CRAFTED_CASES.map(([name, entry]) => [name, entry] as const))('crafted tree: %s', async (name, entry) => {
    const before = await snapshot(namespace);
    const answer = captured.answer(name, await call(`${deployer.url}/${hostile.get(name) ?? ''}/deploy`, { auth: ci, form: { commit: 'main', tag: TAG } }));
    expect(answer.status, JSON.stringify(answer.body)).toBe(422);
    expect(String(answer.body['error'])).toBe(`kubernetes/${entry}/evil.yaml has a "." or ".." path component; manifests must be plain paths`);
    expect(await snapshot(namespace)).toEqual(before);
  });

  it.each([
    ['../other', /a relative path inside the repository/],
    ['/etc', /a relative path inside the repository/],
    ['kubernetes/../../etc', /a relative path inside the repository/],
  ] as const)('config: manifestsDir %s is refused at start-up', (manifestsDir, error) => {
    expect(() =>
      parseConfig({ services: { web: { repository: { url: 'https://git.example/web.git' }, manifestsDir } } }, {}),
    ).toThrow(error);
  });

  it('no secret in anything captured during this file', () => {
    expect(captured.size).toBeGreaterThan(40);
    expect(captured.leaks({ CI_SECRET, OPS_SECRET, git: ground('git').password, registry: ground('registry').basic.password })).toEqual([]);
  });
});
