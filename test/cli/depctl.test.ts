import { createServer } from 'node:net';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir, userInfo } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { basic, serviceRepo, startDeployer, type RunningDeployer } from '../e2e/setup.js';
import { startCaptureServer, type CaptureServer } from '../env/capture-server.js';
import { ground } from '../env/ground.js';
import { git } from '../env/git-fixtures.js';
import { adminClient, createNamespace } from '../env/kube-helpers.js';
import { configMapYaml, deploymentYaml } from '../env/manifests.js';
import { deleteTag, pushImage } from '../env/registry-helpers.js';
import { bashComplete, buildCli, REPO_ROOT, runCli, type BuiltCli, type CliResult } from './helpers.js';

const DEV_SECRET = 'dev-secret-5f4e3d2c1b';
const READER_SECRET = 'reader-secret-a1b2c3d4';
const LEGACY_SECRET = 'legacy-secret-9z8y7x';
const VERSION = (JSON.parse(readFileSync(join(REPO_ROOT, 'package.json'), 'utf8')) as { version: string }).version;
const SPINNER = /[▁▃▅▆▇█]/;

const short = (sha: string): string => sha.slice(0, 7);

/** The services' Deployment: one replica, no ports. */
const deployment = (name: string, image: string): string => deploymentYaml({ name, image, port: false });
const configMap = (name: string, value: string): string => configMapYaml(`${name}-config`, { value });

/** A loopback port nothing listens on: bound once by us, then closed. */
async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  await new Promise<void>((resolve) => server.close(() => resolve()));
  if (address === null || typeof address === 'string') throw new Error('no port');
  return address.port;
}

/** What the deployer answers a request directly, to compare depctl's output with (never hard-coded). */
async function direct(url: string, secret: string, user = 'dev', init: RequestInit = {}): Promise<{ status: number; body: Record<string, unknown> }> {
  const res = await fetch(url, { ...init, headers: { authorization: basic(user, secret), ...init.headers } });
  return { status: res.status, body: (await res.json()) as Record<string, unknown> };
}

/** A 5xx answer carries the id of its request, which differs between two requests. */
function withoutRequestId(body: unknown): unknown {
  const { requestId: _requestId, ...rest } = body as Record<string, unknown>;
  return rest;
}

const describeResult = (r: CliResult): string => `exit ${r.code}\n--- stdout\n${r.stdout}\n--- stderr\n${r.stderr}`;

describe('depctl against a deployer on the test ground', () => {
  let cli: BuiltCli;
  let deployer: RunningDeployer;
  let namespace: string;
  let image: string;
  let shop: Awaited<ReturnType<typeof serviceRepo>>;
  let cart: Awaited<ReturnType<typeof serviceRepo>>;
  let gone: Awaited<ReturnType<typeof serviceRepo>>;
  let cartImage: string;
  const work = mkdtempSync(join(tmpdir(), 'depctl-test-'));
  /** A home without ~/.deployer: only the environment configures depctl. */
  const home = join(work, 'home');
  mkdirSync(home);
  let env: Record<string, string>;
  let c1: string;
  let c2: string;
  let c3: string;

  const depctl = (args: readonly string[], options: { env?: Record<string, string>; cwd?: string } = {}): Promise<CliResult> =>
    runCli(cli, args, { env: options.env ?? env, cwd: options.cwd });

  beforeAll(async () => {
    [cli] = await Promise.all([buildCli(), setUp()]);
  });

  async function setUp(): Promise<void> {
    const registry = ground('registry').anonymous;
    namespace = await createNamespace('depctl');
    const repoName = `team/shop-${Date.now().toString(36)}`;
    image = `${registry}/${repoName}`;
    shop = await serviceRepo('shop', [
      { files: { 'kubernetes/deployment.yaml': deployment('shop', image), 'kubernetes/config.yaml': configMap('shop', 'one') } },
      { files: { 'kubernetes/config.yaml': configMap('shop', 'two') } },
      // CI has not pushed an image for this one.
      { files: { 'kubernetes/config.yaml': configMap('shop', 'three') } },
    ]);
    [c1, c2, c3] = shop.repo.shas as [string, string, string];
    for (const sha of [c1, c2]) await pushImage({ host: registry, repository: repoName, tag: `main-${short(sha)}` });
    // An image whose only tag was deleted: the registry knows it, with no tags.
    const cartRepository = `team/cart-${Date.now().toString(36)}`;
    cartImage = `${registry}/${cartRepository}`;
    await pushImage({ host: registry, repository: cartRepository, tag: 'gone' });
    await deleteTag({ host: registry, repository: cartRepository }, 'gone');
    cart = await serviceRepo('cart', [{ files: { 'kubernetes/deployment.yaml': deployment('cart', cartImage) } }]);
    // An image the registry has never seen.
    gone = await serviceRepo('gone', [{ files: { 'kubernetes/deployment.yaml': deployment('gone', `${registry}/team/never-pushed`) } }]);
    deployer = await startDeployer(
      {
        tokens: {
          dev: { secret: { value: DEV_SECRET } },
          reader: { secret: { value: READER_SECRET }, actions: ['read'] },
        },
        services: Object.fromEntries([shop, cart, gone].map((s) => [s.name, { repository: s.repository, namespace }])),
        versions: { registryWaitSeconds: 0 },
      },
      { env: { DEPLOYER_AUTH_TOKEN: LEGACY_SECRET } },
    );
    env = { HOME: home, DEPLOYER_URL: deployer.url, DEPLOYER_AUTH_TOKEN: DEV_SECRET, DEPLOYER_TOKEN_NAME: 'dev' };
  }

  afterAll(async () => {
    await deployer?.close();
    cli?.remove();
    rmSync(work, { recursive: true, force: true });
  });

  describe('reading', () => {
    it('ls lists the services, one per line, without a spinner or warning (stdout is no TTY, loopback http)', async () => {
      const r = await depctl(['ls']);
      expect(r.code, describeResult(r)).toBe(0);
      expect(r.stdout.split('\n').filter(Boolean).sort()).toEqual([cart.name, gone.name, shop.name].sort());
      expect(r.stderr).toBe('');
      expect(r.stdout).not.toMatch(SPINNER);
    });

    it('ls --json prints the server JSON', async () => {
      const r = await depctl(['ls', '--json']);
      expect(r.code, describeResult(r)).toBe(0);
      expect(JSON.parse(r.stdout)).toEqual((await direct(`${deployer.url}/`, DEV_SECRET)).body);
    });

    it('show SERVICE prints the configuration without the repository password', async () => {
      const r = await depctl(['show', shop.name]);
      expect(r.code, describeResult(r)).toBe(0);
      const url = String(shop.repository['url']);
      expect(r.stdout).toContain(`service:`);
      expect(r.stdout).toMatch(new RegExp(`service:\\s+${shop.name}`));
      expect(r.stdout).toContain(`${url} (git, default branch main)`);
      expect(r.stdout).toMatch(new RegExp(`namespace:\\s+${namespace}`));
      expect(r.stdout).toMatch(/credentials:\s+password/);
      expect(r.stdout + r.stderr).not.toContain(ground('git').password);

      const json = await depctl(['show', shop.name, '--json']);
      expect(JSON.parse(json.stdout)).toEqual((await direct(`${deployer.url}/${shop.name}`, DEV_SECRET)).body);
    });

    it('tags SERVICE lists the image with its tags; --commit and --json pass through', async () => {
      const r = await depctl(['tags', shop.name]);
      expect(r.code, describeResult(r)).toBe(0);
      expect(r.stdout.split('\n')).toEqual([
        `${shop.name} at main`,
        '',
        image,
        ...[`  main-${short(c1)}`, `  main-${short(c2)}`].sort(),
        '',
      ]);

      const json = await depctl(['tags', shop.name, '--commit', c1, '--json']);
      expect(json.code, describeResult(json)).toBe(0);
      const expected = await direct(`${deployer.url}/${shop.name}/tags?commit=${c1}`, DEV_SECRET);
      expect(JSON.parse(json.stdout)).toEqual(expected.body);
      expect(expected.body['ref']).toBe(c1);
    });

    it('tags of a service whose image has no tags says so per image', async () => {
      const r = await depctl(['tags', cart.name]);
      expect(r.code, describeResult(r)).toBe(0);
      expect(r.stdout).toContain(`${cartImage}\n  (no tags)`);
    });

    it("tags of a service whose image is not in the registry: exit 1 with the server's text", async () => {
      const expected = await direct(`${deployer.url}/${gone.name}/tags`, DEV_SECRET);
      expect(expected.status).toBeGreaterThanOrEqual(400);
      const r = await depctl(['tags', gone.name]);
      expect(r.code).toBe(1);
      expect(r.stderr).toContain(`depctl: ${String(expected.body['error'])} (${expected.status})`);
    });

    it("version prints depctl's version and the deployer's; --json both", async () => {
      const r = await depctl(['version']);
      expect(r.code, describeResult(r)).toBe(0);
      const server = (await direct(`${deployer.url}/version`, DEV_SECRET)).body;
      expect(r.stdout).toBe(`depctl ${VERSION} (node ${process.versions.node})\n${String(server['name'])} ${String(server['version'])}\n`);

      const json = await depctl(['version', '--json']);
      expect(JSON.parse(json.stdout)).toEqual({ depctl: { name: 'depctl', version: VERSION }, deployer: server });

      const own = await depctl(['--version'], { env: { HOME: home } });
      expect(own).toEqual({ code: 0, stdout: `${VERSION}\n`, stderr: '' });
    });
  });

  describe('deploying', () => {
    it('deploy SERVICE --commit deploys the commit; the deployer sees depctl as User-Agent', async () => {
      const r = await depctl(['deploy', shop.name, '--commit', c1]);
      expect(r.code, describeResult(r)).toBe(0);
      const tag = `main-${short(c1)}`;
      expect(r.stdout.split('\n')[0]).toBe(`${shop.name} ${tag} is deployed`);
      expect(r.stdout).toMatch(new RegExp(`commit:\\s+${c1}`));
      expect(r.stdout).toMatch(new RegExp(`tag:\\s+${tag}`));
      expect(r.stdout).toContain(`${image}:${tag}@sha256:`);
      expect(r.stdout).toMatch(new RegExp(`Deployment ${namespace}/shop\\s+created`));
      expect(r.stdout).toMatch(new RegExp(`ConfigMap ${namespace}/shop-config\\s+created`));
      expect(r.stderr).toBe('');

      const live = await adminClient().apps.readNamespacedDeployment({ name: 'shop', namespace });
      expect(live.spec?.template.spec?.containers[0]?.image).toMatch(new RegExp(`^${image}:${tag}@sha256:`));
      // The event line comes a moment after the answer (its commit facts are read after it).
      await deployer.settled();
      const event = deployer.logs.find((l) => l['event'] === 'deploy' && l['commit'] === c1 && l['kind'] === 'deploy');
      expect(event).toMatchObject({ result: 'success', caller: 'dev', userAgent: `depctl/${VERSION}` });
    });

    it('canary SERVICE --tag deploys a canary next to the stable version; --json prints the result', async () => {
      const tag = `main-${short(c2)}`;
      const r = await depctl(['canary', shop.name, '--tag', tag, '--json']);
      expect(r.code, describeResult(r)).toBe(0);
      const body = JSON.parse(r.stdout) as Record<string, unknown>;
      expect(body).toMatchObject({ message: `${shop.name} ${tag} is deployed as canary`, kind: 'canary', commit: c2, tag });
      const canary = await adminClient().apps.readNamespacedDeployment({ name: 'shop-canary', namespace });
      expect(canary.spec?.template.spec?.containers[0]?.image).toMatch(new RegExp(`^${image}:${tag}@`));
    });

    it('without SERVICE and version it deploys the HEAD of the working copy named like the service, and says so', async () => {
      const wc = join(work, shop.name);
      await git(['clone', '--quiet', shop.repo.path, wc]);
      await git(['reset', '--quiet', '--hard', c2], { cwd: wc });

      const r = await depctl(['deploy'], { cwd: wc });
      expect(r.code, describeResult(r)).toBe(0);
      expect(r.stderr).toContain(`no SERVICE given: using the current directory's name, "${shop.name}"`);
      expect(r.stderr).toContain(`no --commit or --tag given: using the current directory's HEAD, commit ${c2}`);
      expect(r.stdout.split('\n')[0]).toBe(`${shop.name} main-${short(c2)} is deployed`);
      // The stable deploy removed the canary.
      await expect(adminClient().apps.readNamespacedDeployment({ name: 'shop-canary', namespace })).rejects.toThrow();

      const show = await depctl(['show'], { cwd: wc });
      expect(show.code, describeResult(show)).toBe(0);
      expect(show.stderr).toContain(`using the current directory's name, "${shop.name}"`);
      expect(show.stdout).toMatch(new RegExp(`service:\\s+${shop.name}`));
    });

    it('without a version outside a git working copy it refuses before calling the deployer (exit 2)', async () => {
      const dir = join(work, 'not-a-repo', shop.name);
      mkdirSync(dir, { recursive: true });
      const before = deployer.logs.length;
      const r = await depctl(['deploy'], { cwd: dir });
      expect(r.code).toBe(2);
      expect(r.stderr).toContain(`no --commit or --tag given, and the current directory's HEAD is unknown`);
      expect(r.stdout).toBe('');
      await deployer.settled();
      expect(deployer.logs.slice(before).some((l) => l['event'] === 'deploy')).toBe(false);
    });

    it("a failing deploy exits 1 with the server's error text, and is not reported (depctl caller)", async () => {
      const before = deployer.logs.length;
      const r = await depctl(['deploy', shop.name, '--commit', c3]);
      await deployer.settled();
      expect(deployer.logs.slice(before)).toContainEqual(expect.objectContaining({ msg: 'error not reported: depctl caller' }));

      const expected = await direct(`${deployer.url}/${shop.name}/deploy`, DEV_SECRET, 'dev', {
        method: 'PUT',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ commit: c3 }),
      });
      expect(expected.status).toBeGreaterThanOrEqual(400);
      expect(r.code, describeResult(r)).toBe(1);
      expect(r.stderr).toContain(`depctl: ${String(expected.body['error'])} (${expected.status})`);
      expect(r.stdout).toBe('');

      const json = await depctl(['deploy', shop.name, '--commit', c3, '--json']);
      expect(json.code).toBe(1);
      expect(withoutRequestId(JSON.parse(json.stdout))).toEqual(withoutRequestId(expected.body));
    });
  });

  describe('promote and rollback', () => {
    const liveImage = async (name: string): Promise<string | undefined> =>
      (await adminClient().apps.readNamespacedDeployment({ name, namespace })).spec?.template.spec?.containers[0]?.image;
    const exists = (name: string): Promise<boolean> =>
      adminClient().apps.readNamespacedDeployment({ name, namespace }).then(
        () => true,
        () => false,
      );

    it('promote refuses a canary younger than --min-age (exit 1, 409), then promotes it', async () => {
      const canary = await depctl(['canary', shop.name, '--commit', c1]);
      expect(canary.code, describeResult(canary)).toBe(0);

      const young = await depctl(['promote', shop.name, '--min-age', '1h']);
      expect(young.code, describeResult(young)).toBe(1);
      expect(young.stderr).toMatch(
        new RegExp(`^depctl: the canary of ${shop.name} \\(main-${short(c1)}\\) is [0-9a-z]+ old, younger than 1h: not promoted \\(409\\)\n`),
      );
      expect(await exists('shop-canary')).toBe(true);

      const r = await depctl(['promote', shop.name]);
      expect(r.code, describeResult(r)).toBe(0);
      expect(r.stdout.split('\n')[0]).toBe(`${shop.name} main-${short(c1)} is promoted`);
      expect(r.stdout).toMatch(new RegExp(`canary removed:\\s+main-${short(c1)} \\(commit ${c1}\\)`));
      expect(await liveImage('shop')).toMatch(new RegExp(`^${image}:main-${short(c1)}@sha256:`));
      expect(await exists('shop-canary')).toBe(false);
    });

    it('promote without a canary: exit 1 with the server\'s 409 text', async () => {
      const expected = await direct(`${deployer.url}/${shop.name}/promote`, DEV_SECRET, 'dev', { method: 'PUT' });
      expect(expected.status).toBe(409);
      const r = await depctl(['promote', shop.name]);
      expect(r.code).toBe(1);
      expect(r.stderr).toBe(`depctl: ${String(expected.body['error'])} (409)\n`);
    });

    it('rollback without options removes the canary; with none left there is nothing to roll back (exit 0)', async () => {
      expect((await depctl(['canary', shop.name, '--tag', `main-${short(c2)}`])).code).toBe(0);
      const r = await depctl(['rollback', shop.name]);
      expect(r.code, describeResult(r)).toBe(0);
      expect(r.stdout.split('\n')[0]).toBe(`${shop.name} canary main-${short(c2)} is rolled back`);
      expect(r.stdout).toMatch(new RegExp(`Deployment ${namespace}/shop-canary\\s+deleted`));
      expect(await exists('shop-canary')).toBe(false);
      expect(await liveImage('shop')).toMatch(new RegExp(`^${image}:main-${short(c1)}@`));

      const again = await depctl(['rollback', shop.name, '--json']);
      expect(again.code, describeResult(again)).toBe(0);
      expect(JSON.parse(again.stdout)).toMatchObject({ outcome: 'nothing-to-roll-back', tag: `main-${short(c1)}` });
    });

    it('rollback --to previous deploys the stable version that ran before; show lists what runs', async () => {
      const r = await depctl(['rollback', shop.name, '--to', 'previous']);
      expect(r.code, describeResult(r)).toBe(0);
      expect(r.stdout.split('\n')[0]).toBe(`${shop.name} is rolled back to main-${short(c2)}`);
      expect(await liveImage('shop')).toMatch(new RegExp(`^${image}:main-${short(c2)}@`));

      const show = await depctl(['show', shop.name]);
      expect(show.code, describeResult(show)).toBe(0);
      expect(show.stdout).toContain(`running:\n  Deployment ${namespace}/shop\n`);
      expect(show.stdout).toMatch(new RegExp(`    stable    main-${short(c2)} \\(commit ${short(c2)}\\) by dev at \\S+, \\d+/1 ready`));
    });

    it('rollback --tag deploys that version as stable; a wrong --to is the server\'s 400', async () => {
      const r = await depctl(['rollback', shop.name, '--tag', `main-${short(c1)}`, '--json']);
      expect(r.code, describeResult(r)).toBe(0);
      expect(JSON.parse(r.stdout)).toMatchObject({ kind: 'rollback', outcome: 'rolled-back', commit: c1, tag: `main-${short(c1)}` });

      const expected = await direct(`${deployer.url}/${shop.name}/rollback`, DEV_SECRET, 'dev', {
        method: 'PUT',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ to: 'yesterday' }),
      });
      expect(expected.status).toBe(400);
      const wrong = await depctl(['rollback', shop.name, '--to', 'yesterday']);
      expect(wrong.code).toBe(1);
      expect(wrong.stderr).toContain(`depctl: ${String(expected.body['error'])} (400)`);
    });
  });

  describe('failures', () => {
    it('an unknown service: exit 1 and the 404 text', async () => {
      const expected = await direct(`${deployer.url}/no-such-service`, DEV_SECRET);
      const r = await depctl(['show', 'no-such-service']);
      expect(r.code).toBe(1);
      expect(r.stderr).toBe(`depctl: ${String(expected.body['error'])} (404)\n`);
      expect(r.stdout).toBe('');

      const json = await depctl(['tags', 'no-such-service', '--json']);
      expect(json.code).toBe(1);
      expect(JSON.parse(json.stdout)).toEqual(expected.body);
    });

    it('a service name cannot reach another endpoint', async () => {
      const dots = await depctl(['show', '..']);
      expect(dots).toEqual({ code: 2, stdout: '', stderr: 'depctl: ".." is not a service name\n' });
      const expected = await direct(`${deployer.url}/${encodeURIComponent('version/tags')}`, DEV_SECRET);
      const slash = await depctl(['show', 'version/tags']);
      expect(slash.code).toBe(1);
      expect(slash.stderr).toBe(`depctl: ${String(expected.body['error'])} (404)\n`);
    });

    it('a wrong token: exit 1, the 401 text and a hint, never the secret', async () => {
      const wrong = 'wrong-secret-000111';
      const expected = await direct(`${deployer.url}/`, wrong);
      const r = await depctl(['ls'], { env: { ...env, DEPLOYER_AUTH_TOKEN: wrong } });
      expect(r.code).toBe(1);
      expect(r.stderr).toContain(`depctl: ${String(expected.body['error'])}; check the token (from the environment) and its name "dev"`);
      expect(r.stdout + r.stderr).not.toContain(wrong);
    });

    it('a token outside its scope: exit 1 and the 403 text', async () => {
      const readerEnv = { ...env, DEPLOYER_AUTH_TOKEN: READER_SECRET, DEPLOYER_TOKEN_NAME: 'reader' };
      expect((await depctl(['ls'], { env: readerEnv })).code).toBe(0);
      const r = await depctl(['deploy', shop.name, '--commit', c1], { env: readerEnv });
      expect(r.code).toBe(1);
      expect(r.stderr).toContain(`token "reader" may not deploy service "${shop.name}" (403)`);
    });

    it('the token name defaults to auth_token (the original single token)', async () => {
      const r = await depctl(['ls'], { env: { HOME: home, DEPLOYER_URL: deployer.url, DEPLOYER_AUTH_TOKEN: LEGACY_SECRET } });
      expect(r.code, describeResult(r)).toBe(0);
      expect(r.stdout).toContain(shop.name);
    });

    it('an unreachable deployer (closed port): exit 1, connection refused', async () => {
      const url = `http://127.0.0.1:${await closedPort()}`;
      const r = await depctl(['ls'], { env: { ...env, DEPLOYER_URL: url } });
      expect(r.code).toBe(1);
      expect(r.stderr).toBe(`depctl: GET /: cannot reach the deployer at ${url}: connection refused\n`);
      const json = await depctl(['ls', '--json'], { env: { ...env, DEPLOYER_URL: url } });
      expect(JSON.parse(json.stdout)).toEqual({ error: `GET /: cannot reach the deployer at ${url}: connection refused` });
    });

    it('an unknown option: exit 2 in depctl\'s words, with the nearest option, before anything is sent', async () => {
      const before = deployer.logs.length;
      const r = await depctl(['deploy', shop.name, '--comit', c1]);
      expect(r).toEqual({ code: 2, stdout: '', stderr: 'depctl: unknown option --comit; did you mean --commit?\nsee "depctl help deploy"\n' });
      await deployer.settled();
      expect(deployer.logs.slice(before).some((l) => l['event'] === 'deploy')).toBe(false);
    });

    it('DEPLOYER_URL without a scheme: exit 2, saying so in depctl\'s words', async () => {
      const bare = deployer.url.replace(/^http:\/\//, '');
      const r = await depctl(['ls'], { env: { ...env, DEPLOYER_URL: bare } });
      expect(r).toEqual({ code: 2, stdout: '', stderr: `depctl: DEPLOYER_URL must start with http:// or https://: got "${bare}"\n` });
    });

    it('https to a deployer that serves plain http: exit 1, naming the http URL to use instead of an OpenSSL error', async () => {
      const https = deployer.url.replace(/^http:/, 'https:');
      const r = await depctl(['ls'], { env: { ...env, DEPLOYER_URL: https } });
      expect(r.code).toBe(1);
      expect(r.stderr).toBe(
        `depctl: GET /: the deployer at ${https} does not answer https; if it serves plain http, set DEPLOYER_URL to ${deployer.url}/\n`,
      );
    });

    it('nothing configured: exit 2 and how to configure', async () => {
      const r = await depctl(['ls'], { env: { HOME: home } });
      expect(r.code).toBe(2);
      expect(r.stderr).toContain('depctl: no deployer configured.');
      expect(r.stderr).toContain(`write them to ${join(home, '.deployer', 'deployer_env')}`);
      expect(r.stderr).toContain('DEPLOYER_URL=');
      expect(r.stdout).toBe('');
    });

    it('reads ~/.deployer/deployer_env; the environment wins key by key', async () => {
      const fileHome = join(work, 'file-home');
      mkdirSync(join(fileHome, '.deployer'), { recursive: true });
      writeFileSync(
        join(fileHome, '.deployer', 'deployer_env'),
        `# written by hand\nDEPLOYER_URL="${deployer.url}"\nexport DEPLOYER_AUTH_TOKEN='${DEV_SECRET}'\nDEPLOYER_TOKEN_NAME=dev\n`,
        { mode: 0o600 },
      );
      const fromFile = await depctl(['ls'], { env: { HOME: fileHome } });
      expect(fromFile.code, describeResult(fromFile)).toBe(0);
      expect(fromFile.stdout).toContain(shop.name);

      const overridden = await depctl(['ls'], { env: { HOME: fileHome, DEPLOYER_AUTH_TOKEN: 'not-the-secret' } });
      expect(overridden.code).toBe(1);
      expect(overridden.stderr).toContain('check the token (from the environment)');
    });

    it('usage mistakes exit 2 with a pointer to help', async () => {
      const cases: Array<[string[], string]> = [
        [['frobnicate'], 'unknown command "frobnicate"'],
        [['deploy', '--tag'], '--tag needs a value, e.g. --tag TAG'],
        [['deploy', '--comit', 'x'], 'unknown option --comit; did you mean --commit?'],
        [['deploy', '--wait=soon'], '--wait takes a duration like 90s, 5m or 1h30m'],
        [['ls', '--commit', 'abc'], '"depctl ls" takes no --commit'],
        [['show', 'a', 'b'], 'too many arguments for "depctl show": b'],
        [['rollback', 'x', '--to', 'previous', '--tag', 't'], 'rollback takes either --to or --commit/--tag'],
        [['ls', '--timeout', 'soon'], '--timeout must be a number of seconds'],
        [['completion', 'fish'], 'completion needs a shell: bash or zsh'],
        [['help', 'nope'], 'unknown command "nope"'],
      ];
      for (const [args, message] of cases) {
        const r = await depctl(args);
        expect(r.code, `${args.join(' ')}: ${describeResult(r)}`).toBe(2);
        expect(r.stderr).toContain(message);
      }
    });

    it('help prints the commands; help COMMAND and --help its usage (exit 0, no configuration needed)', async () => {
      const general = await depctl(['help'], { env: { HOME: home } });
      expect(general.code).toBe(0);
      for (const command of ['ls', 'show', 'tags', 'deploy', 'canary', 'promote', 'rollback', 'version', 'help', 'completion']) {
        expect(general.stdout).toMatch(new RegExp(`^  ${command} `, 'm'));
      }
      expect(general.stdout).not.toContain('__complete');
      const deploy = await depctl(['help', 'deploy'], { env: { HOME: home } });
      expect(deploy.stdout.split('\n')[0]).toBe('Usage: depctl deploy [SERVICE] [--commit COMMIT | --tag TAG] [--wait[=DURATION]] [--json]');
      expect(await depctl(['deploy', '--help'], { env: { HOME: home } })).toEqual(deploy);
      expect((await depctl([], { env: { HOME: home } })).stdout).toBe(general.stdout);
    });
  });

  describe('shell completion', () => {
    it('bash completes commands, options, service names from the deployer and tags after --tag', async () => {
      expect((await bashComplete(cli, ['depctl', 'de'], { env })).words).toEqual(['deploy']);
      const services = await bashComplete(cli, ['depctl', 'deploy', ''], { env });
      expect(services.words.sort(), describeResult(services)).toEqual([cart.name, gone.name, shop.name].sort());
      expect((await bashComplete(cli, ['depctl', 'show', shop.name.slice(0, 3)], { env })).words).toEqual([shop.name]);
      const tags = await bashComplete(cli, ['depctl', 'deploy', shop.name, '--tag', ''], { env });
      expect(tags.words, describeResult(tags)).toEqual([`main-${short(c1)}`, `main-${short(c2)}`].sort());
      expect((await bashComplete(cli, ['depctl', 'canary', shop.name, '--tag', `main-${short(c2).slice(0, 3)}`], { env })).words).toEqual([
        `main-${short(c2)}`,
      ]);
      expect((await bashComplete(cli, ['depctl', 'deploy', shop.name, '--'], { env })).words.sort()).toEqual(
        ['--commit', '--help', '--json', '--tag', '--timeout', '--wait'],
      );
      expect((await bashComplete(cli, ['depctl', 'rollback', shop.name, '--to', ''], { env })).words).toEqual(['previous']);
      expect((await bashComplete(cli, ['depctl', 'completion', ''], { env })).words).toEqual(['bash', 'zsh']);
    });

    it('bash completes tags of the current directory\'s service when SERVICE is left out', async () => {
      const wc = join(work, 'completion', shop.name);
      mkdirSync(wc, { recursive: true });
      const tags = await bashComplete(cli, ['depctl', 'deploy', '--tag', ''], { env, cwd: wc });
      expect(tags.words, describeResult(tags)).toEqual([`main-${short(c1)}`, `main-${short(c2)}`].sort());
    });

    it('completes nothing, silently, when the deployer cannot be asked', async () => {
      const unconfigured = await bashComplete(cli, ['depctl', 'deploy', ''], { env: { HOME: home } });
      expect(unconfigured).toMatchObject({ code: 0, stdout: '', stderr: '' });
      const hidden = await depctl(['__complete', 'tags', 'no-such-service']);
      expect(hidden).toEqual({ code: 1, stdout: '', stderr: '' });
      const services = await depctl(['__complete', 'services']);
      expect(services.code).toBe(0);
      expect(services.stdout.split('\n').filter(Boolean).sort()).toEqual([cart.name, gone.name, shop.name].sort());
    });

    it('zsh: the script defines and registers the completion function', async () => {
      const r = await depctl(['completion', 'zsh'], { env: { HOME: home } });
      expect(r.code).toBe(0);
      expect(r.stdout.split('\n')[0]).toBe('#compdef depctl');
      expect(r.stdout).toContain('compdef _depctl depctl');
      expect(r.stdout).toContain('depctl __complete tags');
      expect(r.stdout).toContain('depctl __complete services');
    });
  });

  describe('the originator: the Executor header', () => {
    let capture: CaptureServer;
    beforeAll(async () => {
      capture = await startCaptureServer();
    });
    afterAll(async () => {
      await capture?.close();
    });

    it("sends git's user.email of the current directory's checkout", async () => {
      const wc = join(work, 'executor-repo');
      mkdirSync(wc, { recursive: true });
      await git(['init', '--quiet'], { cwd: wc });
      await git(['config', 'user.email', 'jane@example.com'], { cwd: wc });
      const before = capture.requests.length;
      await depctl(['ls'], { env: { ...env, DEPLOYER_URL: capture.url }, cwd: wc });
      expect(capture.requests.slice(before).map((r) => r.headers['executor'])).toEqual(['jane@example.com']);
    });

    it('sends the OS user outside a checkout (and without a user.email of the user)', async () => {
      const dir = join(work, 'executor-plain');
      mkdirSync(dir, { recursive: true });
      const before = capture.requests.length;
      await depctl(['ls'], { env: { ...env, DEPLOYER_URL: capture.url }, cwd: dir });
      expect(capture.requests.slice(before).map((r) => r.headers['executor'])).toEqual([userInfo().username]);
    });
  });
});
