import { execFile } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startCaptureServer, type CaptureServer } from '../env/capture-server.js';
import { addCommit, createRepo } from '../env/git-fixtures.js';
import { startGitServer } from '../env/git-server.js';
import { ground } from '../env/ground.js';
import { adminClient, createNamespace, uniqueName } from '../env/kube-helpers.js';
import { tokenKubeconfig } from '../env/kube-plane.js';
import { serviceManifests } from '../env/manifests.js';
import { freePort } from '../env/processes.js';
import { deleteTag, pushImage, startFrontServer, type FrontServer } from '../env/registry-helpers.js';
import { basic, call, serviceRepo, startDeployer, type Answer, type RunningDeployer } from '../e2e/setup.js';
import { startApiserverFront, type ApiserverFront } from './fault-servers.js';
import { Captured, snapshot } from './harness.js';

/**
 * Faults of the outside systems, end to end: each answer is a clear status naming the system, and the cluster's
 * final state is asserted (unchanged, partly applied, or complete once the system is back).
 */

const execFileAsync = promisify(execFile);
const CI_SECRET = 'ci-secret-faults-0123456789';
const BUGSNAG_KEY = 'bugsnag-key-faults-0123456789abcdef';
const SLACK_PATH = '/services/T000/B000/FAULTSSLACKSECRET';
const auth = basic('ci', CI_SECRET);
const short = (sha: string): string => sha.slice(0, 7);
const captured = new Captured();
/** Temporary directories of this file, removed at its end. */
const scratch: string[] = [];
const scratchDir = (prefix: string): string => {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  scratch.push(dir);
  return dir;
};

const tokens = { ci: { secret: { value: CI_SECRET }, services: ['*'], actions: ['read', 'deploy', 'canary'] } };

async function deploy(d: RunningDeployer, service: string, form: Record<string, string>, where: string): Promise<Answer> {
  return captured.answer(where, await call(`${d.url}/${service}/deploy`, { auth, form }));
}

async function configValue(namespace: string, name: string): Promise<string | undefined> {
  try {
    return (await adminClient().core.readNamespacedConfigMap({ name: `${name}-config`, namespace })).data?.['value'];
  } catch {
    return undefined;
  }
}

async function deployedImage(namespace: string, name: string): Promise<string | undefined> {
  try {
    const d = await adminClient().apps.readNamespacedDeployment({ name, namespace });
    return d.spec?.template.spec?.containers[0]?.image;
  } catch {
    return undefined;
  }
}

/** A service repository with `count` commits (ConfigMap value "v1", "v2", ...), and each commit's image tag pushed. */
async function versionedService(prefix: string, count: number, registry = ground('registry').anonymous) {
  const imageRepo = `hardening/${uniqueName(prefix)}`;
  const image = `${registry}/${imageRepo}`;
  const repo = await serviceRepo(prefix, Array.from({ length: count }, (_, i) => ({ files: serviceManifests({ name: prefix, image, value: `v${i + 1}` }) })));
  const digests: string[] = [];
  for (const sha of repo.repo.shas) {
    digests.push((await pushImage({ host: registry, repository: imageRepo, tag: `main-${short(sha)}` })).digest);
  }
  return { ...repo, image, imageRepo, digests, versionOf: (i: number) => ({ commit: repo.repo.shas[i] ?? '', tag: `main-${short(repo.repo.shas[i] ?? '')}` }) };
}

describe('apiserver faults', () => {
  let namespace: string;
  let front: ApiserverFront;
  let deployer: RunningDeployer;
  let closed: RunningDeployer;
  let svc: Awaited<ReturnType<typeof versionedService>>;

  beforeAll(async () => {
    const kube = ground('kube');
    namespace = await createNamespace('faults-kube');
    svc = await versionedService('api', 4);
    front = await startApiserverFront({ upstream: kube.server, certFile: kube.caFile, keyFile: join(kube.dir, 'certs', 'apiserver.key') });
    const dir = scratchDir('hardening-kube-');
    const viaFront = join(dir, 'front.kubeconfig');
    writeFileSync(viaFront, tokenKubeconfig({ server: front.url, caFile: kube.caFile, user: 'admin', token: kube.adminToken }));
    const toClosed = join(dir, 'closed.kubeconfig');
    writeFileSync(toClosed, tokenKubeconfig({ server: `https://127.0.0.1:${await freePort()}`, caFile: kube.caFile, user: 'admin', token: kube.adminToken }));
    const services = { [svc.name]: { repository: svc.repository, namespace } };
    deployer = await startDeployer({ tokens, services, versions: { registryWaitSeconds: 0 }, kubernetes: { kubeconfig: viaFront } });
    closed = await startDeployer({ tokens, services, versions: { registryWaitSeconds: 0 }, kubernetes: { kubeconfig: toClosed } });
    captured.source('apiserver deployer log', () => deployer.logText());
    captured.source('closed-port deployer log', () => closed.logText());
  });

  afterAll(async () => {
    await Promise.all([deployer?.close(), closed?.close(), front?.close()]);
  });

  it('kubeconfig pointing at a closed port: 503 naming the apiserver, nothing applied', async () => {
    const before = await snapshot(namespace);
    const answer = await deploy(closed, svc.name, svc.versionOf(0), 'closed port');
    expect(answer.status, JSON.stringify(answer.body)).toBe(503);
    expect(answer.body['system']).toBe('kubernetes');
    expect(String(answer.body['error'])).toMatch(/^the Kubernetes apiserver at https:\/\/127\.0\.0\.1:\d+ is unreachable \(ECONNREFUSED\)/);
    expect(await snapshot(namespace)).toEqual(before);
  });

  it('apiserver stopped before a deploy: 503, nothing applied; once it is back the same deploy succeeds', async () => {
    await front.stop();
    const before = await snapshot(namespace);
    const down = await deploy(deployer, svc.name, svc.versionOf(0), 'apiserver stopped before');
    expect(down.status, JSON.stringify(down.body)).toBe(503);
    expect(down.body['system']).toBe('kubernetes');
    expect(String(down.body['error'])).toMatch(/is unreachable \(ECONNREFUSED\)/);
    expect(await snapshot(namespace)).toEqual(before);

    await front.start();
    const back = await deploy(deployer, svc.name, svc.versionOf(0), 'apiserver back');
    expect(back.status, JSON.stringify(back.body)).toBe(200);
    expect(await configValue(namespace, 'api')).toBe('v1');
    expect(await deployedImage(namespace, 'api')).toBe(`${svc.image}:${svc.versionOf(0).tag}@${svc.digests[0]}`);
  });

  it('apiserver stopped in the middle of a deploy (after the first object was written): 503; the state is partial; the next deploy completes it', async () => {
    // Apply order puts the ConfigMap before the Deployment: stop right after the first real (not dry-run) apply.
    front.stopAfter((method, url) => method === 'PATCH' && !url.includes('dryRun='));
    const answer = await deploy(deployer, svc.name, svc.versionOf(1), 'apiserver stopped mid-deploy');
    expect(answer.status, JSON.stringify(answer.body)).toBe(503);
    expect(answer.body['system']).toBe('kubernetes');
    expect(String(answer.body['error'])).toMatch(/is unreachable \((ECONNREFUSED|ECONNRESET)\)/);
    expect(front.up).toBe(false);
    // What the fault left: the ConfigMap of v2 was written, the Deployment still runs v1.
    expect(await configValue(namespace, 'api')).toBe('v2');
    expect(await deployedImage(namespace, 'api')).toBe(`${svc.image}:${svc.versionOf(0).tag}@${svc.digests[0]}`);

    await front.start();
    const again = await deploy(deployer, svc.name, svc.versionOf(1), 'apiserver back after mid-deploy');
    expect(again.status, JSON.stringify(again.body)).toBe(200);
    expect(await configValue(namespace, 'api')).toBe('v2');
    expect(await deployedImage(namespace, 'api')).toBe(`${svc.image}:${svc.versionOf(1).tag}@${svc.digests[1]}`);
  });
});

describe('git server faults', () => {
  let namespace: string;
  let deployer: RunningDeployer;
  let stopGit: (() => Promise<void>) | undefined;
  let name: string;
  let image: string;
  let root: string;
  let shas: string[];
  let cacheDir: string;

  beforeAll(async () => {
    namespace = await createNamespace('faults-git');
    const dir = scratchDir('hardening-git-');
    const git = await startGitServer(dir, join(dir, 'logs'), { password: 'private-git-password-1234' });
    stopGit = () => git.stop();
    root = git.info.root;
    name = uniqueName('gitsvc');
    const registry = ground('registry').anonymous;
    image = `${registry}/hardening/${name}`;
    const repo = await createRepo(root, name, [{ files: serviceManifests({ name: 'gitsvc', image, value: 'v1' }) }]);
    shas = [...repo.shas];
    cacheDir = scratchDir('hardening-cache-');
    deployer = await startDeployer({
      tokens,
      services: {
        [name]: {
          repository: { url: `${git.info.baseUrl}${repo.urlPath}`, credentials: { username: git.info.username, password: { value: git.info.password } } },
          namespace,
        },
      },
      versions: { registryWaitSeconds: 0, remoteTimeoutSeconds: 5 },
      cache: { dir: cacheDir },
    });
    captured.source('git deployer log', () => deployer.logText());
    await pushImage({ host: registry, repository: `hardening/${name}`, tag: `main-${short(shas[0] ?? '')}` });
  });

  afterAll(async () => {
    await deployer?.close();
    await stopGit?.();
  });

  it('with the git server stopped, a cached commit still deploys and an uncached one is a clear 503 from git', async () => {
    const [c1] = shas as [string];
    const first = await deploy(deployer, name, { commit: c1, tag: `main-${short(c1)}` }, 'git up');
    expect(first.status, JSON.stringify(first.body)).toBe(200);

    // A commit the cache has never seen, pushed while the server is going down.
    const c2 = await addCommit(root, name, serviceManifests({ name: 'gitsvc', image, value: 'v2' }));
    await pushImage({ host: ground('registry').anonymous, repository: `hardening/${name}`, tag: `main-${short(c2)}` });
    await stopGit?.();
    stopGit = undefined;

    const cached = await deploy(deployer, name, { commit: c1, tag: `main-${short(c1)}` }, 'git down, cached');
    expect(cached.status, JSON.stringify(cached.body)).toBe(200);
    expect(await configValue(namespace, 'gitsvc')).toBe('v1');

    const before = await snapshot(namespace);
    const uncached = await deploy(deployer, name, { commit: c2, tag: `main-${short(c2)}` }, 'git down, uncached');
    expect(uncached.status, JSON.stringify(uncached.body)).toBe(503);
    expect(uncached.body['system']).toBe('git');
    expect(String(uncached.body['error'])).toMatch(/^cannot reach http:\/\/127\.0\.0\.1:\d+\/gitsvc-[0-9a-f]+\.git: .*Couldn't connect to server/);
    expect(await snapshot(namespace)).toEqual(before);
    expect(await configValue(namespace, 'gitsvc')).toBe('v1');
  });
});

describe('git cache faults', () => {
  let namespace: string;
  let deployer: RunningDeployer;
  let svc: Awaited<ReturnType<typeof versionedService>>;
  let cacheDir: string;

  beforeAll(async () => {
    namespace = await createNamespace('faults-cache');
    svc = await versionedService('cache', 3);
    cacheDir = scratchDir('hardening-cache-');
    deployer = await startDeployer({ tokens, services: { [svc.name]: { repository: svc.repository, namespace } }, versions: { registryWaitSeconds: 0 }, cache: { dir: cacheDir } });
    captured.source('cache deployer log', () => deployer.logText());
    const first = await deploy(deployer, svc.name, svc.versionOf(0), 'cache first');
    expect(first.status, JSON.stringify(first.body)).toBe(200);
  });

  afterAll(async () => {
    await deployer?.close();
  });

  it('the cache directory deleted between deploys: the next deploy recovers', async () => {
    rmSync(cacheDir, { recursive: true, force: true });
    const answer = await deploy(deployer, svc.name, svc.versionOf(1), 'cache deleted');
    expect(answer.status, JSON.stringify(answer.body)).toBe(200);
    expect(await configValue(namespace, 'cache')).toBe('v2');
  });

  it('the cache corrupted between deploys (every file overwritten): the next deploy recovers', async () => {
    const files: string[] = [];
    const walk = (dir: string): void => {
      for (const entry of readdirSync(dir)) {
        const path = join(dir, entry);
        if (statSync(path).isDirectory()) walk(path);
        else files.push(path);
      }
    };
    walk(cacheDir);
    expect(files.length).toBeGreaterThan(0);
    for (const file of files) {
      rmSync(file, { force: true });
      writeFileSync(file, 'corrupted by the hardening test\n');
    }
    const answer = await deploy(deployer, svc.name, svc.versionOf(2), 'cache corrupted');
    expect(answer.status, JSON.stringify(answer.body)).toBe(200);
    expect(await configValue(namespace, 'cache')).toBe('v3');
  });
});

describe('disk full on the cache volume', () => {
  let namespace: string;
  let deployer: RunningDeployer;
  let svc: Awaited<ReturnType<typeof versionedService>>;
  let mountPoint: string;
  let mounted = false;

  beforeAll(async () => {
    namespace = await createNamespace('faults-disk');
    svc = await versionedService('disk', 1);
    mountPoint = mkdtempSync(join(tmpdir(), 'hardening-full-'));
    // As root (the test machine is): a 1 MiB tmpfs, filled up before the deployer uses it.
    await execFileAsync('mount', ['-t', 'tmpfs', '-o', 'size=1m', 'tmpfs', mountPoint]);
    mounted = true;
    mkdirSync(join(mountPoint, 'cache'));
    try {
      for (let i = 0; ; i++) writeFileSync(join(mountPoint, `filler-${i}`), Buffer.alloc(64 * 1024, 1));
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOSPC') throw err;
    }
    deployer = await startDeployer({ tokens, services: { [svc.name]: { repository: svc.repository, namespace } }, versions: { registryWaitSeconds: 0 }, cache: { dir: join(mountPoint, 'cache') } });
    captured.source('disk deployer log', () => deployer.logText());
  });

  afterAll(async () => {
    await deployer?.close();
    if (mounted) await execFileAsync('umount', [mountPoint]);
    rmSync(mountPoint, { recursive: true, force: true });
  });

  it('a full cache volume is a clear error, nothing applied', async () => {
    const before = await snapshot(namespace);
    const answer = await deploy(deployer, svc.name, svc.versionOf(0), 'disk full');
    expect(answer.status, JSON.stringify(answer.body)).toBe(503);
    expect(answer.body).toMatchObject({ system: 'git', error: "the deployer's git cache volume is full (no space left on device)" });
    expect(await snapshot(namespace)).toEqual(before);
  });
});

describe('registry faults', () => {
  let namespace: string;
  let fronts: { failing: FrontServer; hanging: FrontServer };
  let deployer: RunningDeployer;
  let real: Awaited<ReturnType<typeof versionedService>>;
  const held: Array<() => void> = [];

  beforeAll(async () => {
    namespace = await createNamespace('faults-registry');
    fronts = {
      failing: await startFrontServer((_req, res) => {
        res.writeHead(500, { 'content-type': 'application/json' }).end('{"errors":[{"code":"UNKNOWN","message":"boom"}]}');
      }),
      // Never answers; the deployer's timeout must end the wait.
      hanging: await startFrontServer((req) => {
        held.push(() => req.destroy());
      }),
    };
    real = await versionedService('reg', 1);
    const failing = await serviceRepo('regfail', [{ files: serviceManifests({ name: 'regfail', image: `${fronts.failing.host}/hardening/fail`, value: 'v1' }) }]);
    const hanging = await serviceRepo('reghang', [{ files: serviceManifests({ name: 'reghang', image: `${fronts.hanging.host}/hardening/hang`, value: 'v1' }) }]);
    Object.assign(services, { failing: failing.name, hanging: hanging.name });
    deployer = await startDeployer({
      tokens,
      services: Object.fromEntries([real, failing, hanging].map((s) => [s.name, { repository: s.repository, namespace }])),
      registries: {
        [ground('registry').anonymous]: { insecure: true },
        [fronts.failing.host]: { insecure: true },
        [fronts.hanging.host]: { insecure: true },
      },
      versions: { registryWaitSeconds: 0, remoteTimeoutSeconds: 2 },
    });
    captured.source('registry deployer log', () => deployer.logText());
  });
  const services = { failing: '', hanging: '' };

  afterAll(async () => {
    for (const h of held) h();
    await deployer?.close();
    await Promise.all([fronts?.failing.stop(), fronts?.hanging.stop()]);
  });

  it('a registry answering 500: 502 naming the registry, nothing applied', async () => {
    const before = await snapshot(namespace);
    const answer = await deploy(deployer, services.failing, { commit: 'main', tag: 'v1' }, 'registry 500');
    expect(answer.status, JSON.stringify(answer.body)).toBe(502);
    expect(answer.body).toMatchObject({ system: 'registry', status: 500, error: `registry ${fronts.failing.host} answered 500 for ${fronts.failing.host}/hardening/fail` });
    expect(await snapshot(namespace)).toEqual(before);
  });

  it('a hanging registry: the timeout ends the deploy with 504 naming the registry, nothing applied', async () => {
    const before = await snapshot(namespace);
    const answer = await deploy(deployer, services.hanging, { commit: 'main', tag: 'v1' }, 'registry hanging');
    expect(answer.status, JSON.stringify(answer.body)).toBe(504);
    expect(answer.body).toMatchObject({ system: 'registry', error: `registry ${fronts.hanging.host} did not answer within 2000 ms (${fronts.hanging.host})` });
    expect(fronts.hanging.requests.length).toBeGreaterThan(0);
    expect(await snapshot(namespace)).toEqual(before);
  });

  it('a tag lost from the registry after a deploy: the next deploy of it is a 404 naming the tag, the running version stays', async () => {
    const v = real.versionOf(0);
    const first = await deploy(deployer, real.name, v, 'registry before losing the tag');
    expect(first.status, JSON.stringify(first.body)).toBe(200);
    await deleteTag({ host: ground('registry').anonymous, repository: real.imageRepo }, v.tag);
    const before = await snapshot(namespace);
    const answer = await deploy(deployer, real.name, v, 'registry lost the tag');
    expect(answer.status, JSON.stringify(answer.body)).toBe(404);
    expect(answer.body['error']).toBe(`tag "${v.tag}" not found for image ${real.image}`);
    expect(await snapshot(namespace)).toEqual(before);
    expect(await deployedImage(namespace, 'reg')).toBe(`${real.image}:${v.tag}@${real.digests[0]}`);
  });
});

describe('Bugsnag and Slack faults', () => {
  let namespace: string;
  let bugsnag: CaptureServer;
  let slack: CaptureServer;
  let svc: Awaited<ReturnType<typeof versionedService>>;
  const deployers: RunningDeployer[] = [];

  const withReports = async (bugsnagUrl: string, slackUrl: string): Promise<RunningDeployer> => {
    const d = await startDeployer({
      tokens,
      services: { [svc.name]: { repository: svc.repository, namespace } },
      versions: { registryWaitSeconds: 0 },
      reports: {
        bugsnag: { apiKey: { value: BUGSNAG_KEY }, notifyEndpoint: `${bugsnagUrl}/notify`, sessionsEndpoint: `${bugsnagUrl}/sessions` },
        slack: { webhookUrl: { value: `${slackUrl}${SLACK_PATH}` }, notifyOnSuccess: true },
      },
    });
    deployers.push(d);
    captured.source(`reports deployer log ${deployers.length}`, () => d.logText());
    return d;
  };

  beforeAll(async () => {
    namespace = await createNamespace('faults-reports');
    svc = await versionedService('rep', 2);
    [bugsnag, slack] = await Promise.all([startCaptureServer(), startCaptureServer()]);
    // Each report goes to its own service with its own credential (Bugsnag's API key, Slack's webhook path): that one
    // is allowed there, every other secret is not.
    captured.source('bugsnag payloads', () => bugsnag.requests.map((r) => `${r.path} ${JSON.stringify(r.headers)} ${r.raw}`).join('\n'), ['BUGSNAG_KEY']);
    captured.source('slack payloads', () => slack.requests.map((r) => `${r.path} ${JSON.stringify(r.headers)} ${r.raw}`).join('\n'), ['SLACK_PATH']);
  });

  afterAll(async () => {
    await Promise.all(deployers.map((d) => d.close()));
    await Promise.all([bugsnag?.close(), slack?.close()]);
  });

  it.each([
    ['answering 500', 'error'],
    ['hanging', 'hang'],
  ] as const)('Bugsnag and Slack %s: deploys still succeed, failures still answer', async (_what, mode) => {
    bugsnag.setMode(mode);
    slack.setMode(mode);
    const d = await withReports(bugsnag.url, slack.url);
    const seen = slack.requests.length;
    const ok = await deploy(d, svc.name, svc.versionOf(mode === 'error' ? 0 : 1), `reports ${mode}`);
    expect(ok.status, JSON.stringify(ok.body)).toBe(200);
    expect(await configValue(namespace, 'rep')).toBe(mode === 'error' ? 'v1' : 'v2');
    // The reports were attempted (Slack on success too) and their failure changed nothing.
    await slack.waitForRequests(seen + 1);
    const before = await snapshot(namespace);
    const failed = await deploy(d, svc.name, { commit: 'deadbeef' }, `reports ${mode}, failing deploy`);
    expect(failed.status, JSON.stringify(failed.body)).toBe(404);
    expect(await snapshot(namespace)).toEqual(before);
  });

  it('Bugsnag and Slack on a closed port: deploys still succeed', async () => {
    const closed = `http://127.0.0.1:${await freePort()}`;
    const d = await withReports(closed, closed);
    const ok = await deploy(d, svc.name, svc.versionOf(0), 'reports closed');
    expect(ok.status, JSON.stringify(ok.body)).toBe(200);
    expect(await configValue(namespace, 'rep')).toBe('v1');
    const failed = await deploy(d, svc.name, { commit: 'deadbeef' }, 'reports closed, failing deploy');
    expect(failed.status, JSON.stringify(failed.body)).toBe(404);
  });
});

describe('secrets after the faults', () => {
  afterAll(() => {
    for (const dir of scratch) rmSync(dir, { recursive: true, force: true });
  });

  it('no token secret, registry or git password, Bugsnag key or Slack URL in any log, answer or report', () => {
    expect(captured.size).toBeGreaterThan(10);
    expect(
      captured.leaks({
        CI_SECRET,
        BUGSNAG_KEY,
        SLACK_PATH,
        privateGit: 'private-git-password-1234',
        git: ground('git').password,
        registry: ground('registry').basic.password,
        kubeToken: ground('kube').adminToken,
      }),
    ).toEqual([]);
  });
});
