import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startCaptureServer, type CaptureServer } from '../env/capture-server.js';
import { ground } from '../env/ground.js';
import { createNamespace } from '../env/kube-helpers.js';
import { deploymentYaml } from '../env/manifests.js';
import { pushImage } from '../env/registry-helpers.js';
import { basic, call, serviceRepo, startDeployer, type RunningDeployer } from '../e2e/setup.js';
import { Captured } from './harness.js';

/**
 * Secrets never leave: token secrets, registry passwords and git credentials (right or wrong ones) do not appear in
 * logs (debug level), error bodies, Bugsnag or Slack payloads, or `GET /` and `GET /:service`. Everything captured
 * in this file is scanned at the end.
 */

const CI_SECRET = 'ci-secret-secrets-0123456789';
const READ_SECRET = 'read-secret-secrets-abcdefgh';
const BUGSNAG_KEY = 'bugsnag-key-secrets-0123456789abcdef';
const SLACK_PATH = '/services/T000/B000/SECRETSSLACKPATH';
const WRONG_GIT = 'wrong-git-password-5555aaaa';
const WRONG_REGISTRY = 'wrong-registry-password-7777bbbb';
const TAG = 'v1';

describe('secrets never appear', () => {
  const captured = new Captured();
  const deployers: RunningDeployer[] = [];
  let bugsnag: CaptureServer;
  let slack: CaptureServer;
  let main: RunningDeployer;
  let wrongRegistry: RunningDeployer;
  const names = { basicRegistry: '', embedded: '', wrongGit: '' };
  const ci = basic('ci', CI_SECRET);
  const reader = basic('reader', READ_SECRET);

  beforeAll(async () => {
    const git = ground('git');
    const registry = ground('registry').basic;
    const namespace = await createNamespace('secrets');
    [bugsnag, slack] = await Promise.all([startCaptureServer(), startCaptureServer()]);
    const imageRepo = `hardening/secrets-${Date.now().toString(36)}`;
    const image = `${registry.host}/${imageRepo}`;
    await pushImage({ host: registry.host, repository: imageRepo, tag: TAG, auth: { username: registry.username, password: registry.password } });

    const onBasic = await serviceRepo('basicreg', [{ files: { 'kubernetes/deployment.yaml': deploymentYaml({ name: 'basicreg', image }) } }]);
    const embedded = await serviceRepo('embedded', [{ files: { 'kubernetes/deployment.yaml': deploymentYaml({ name: 'embedded', image }) } }]);
    const wrongGit = await serviceRepo('wronggit', [{ files: { 'kubernetes/deployment.yaml': deploymentYaml({ name: 'wronggit', image }) } }]);
    Object.assign(names, { basicRegistry: onBasic.name, embedded: embedded.name, wrongGit: wrongGit.name });
    const embeddedUrl = new URL(`${git.baseUrl}${embedded.repo.urlPath}`);
    embeddedUrl.username = git.username;
    embeddedUrl.password = git.password;

    const reports = {
      bugsnag: { apiKey: { value: BUGSNAG_KEY }, notifyEndpoint: `${bugsnag.url}/notify`, sessionsEndpoint: `${bugsnag.url}/sessions` },
      slack: { webhookUrl: { value: `${slack.url}${SLACK_PATH}` }, notifyOnSuccess: true },
    };
    const services = {
      [onBasic.name]: { repository: onBasic.repository, namespace },
      [embedded.name]: { repository: { url: embeddedUrl.toString() }, namespace },
      [wrongGit.name]: { repository: { url: `${git.baseUrl}${wrongGit.repo.urlPath}`, credentials: { username: git.username, password: { value: WRONG_GIT } } }, namespace },
    };
    const tokens = {
      ci: { secret: { value: CI_SECRET }, services: ['*'], actions: ['read', 'deploy', 'canary'] },
      reader: { secret: { value: READ_SECRET }, services: ['*'], actions: ['read'] },
    };
    main = await startDeployer({ tokens, services, reports, versions: { registryWaitSeconds: 0 } });
    wrongRegistry = await startDeployer({
      tokens,
      services,
      reports,
      versions: { registryWaitSeconds: 0 },
      registries: { [registry.host]: { insecure: true, username: registry.username, password: { value: WRONG_REGISTRY } } },
    });
    deployers.push(main, wrongRegistry);
    captured.source('main deployer log', () => main.logText());
    captured.source('wrong-registry deployer log', () => wrongRegistry.logText());
    captured.source('bugsnag payloads', () => bugsnag.requests.map((r) => `${r.path} ${JSON.stringify(r.headers)} ${r.raw}`).join('\n'), ['BUGSNAG_KEY']);
    captured.source('slack payloads', () => slack.requests.map((r) => `${r.path} ${JSON.stringify(r.headers)} ${r.raw}`).join('\n'), ['SLACK_PATH']);
  });

  afterAll(async () => {
    await Promise.all(deployers.map((d) => d.close()));
    await Promise.all([bugsnag?.close(), slack?.close()]);
  });

  it('a deploy with registry basic auth and git credentials succeeds (the secrets were used)', async () => {
    const answer = captured.answer('deploy ok', await call(`${main.url}/${names.basicRegistry}/deploy`, { auth: ci, form: { commit: 'main', tag: TAG } }));
    expect(answer.status, JSON.stringify(answer.body)).toBe(200);
    const embedded = captured.answer('deploy embedded', await call(`${main.url}/${names.embedded}/deploy`, { auth: ci, form: { commit: 'main', tag: TAG } }));
    expect(embedded.status, JSON.stringify(embedded.body)).toBe(200);
  });

  it('wrong git credentials: 502 naming the repository, not the password', async () => {
    const answer = captured.answer('wrong git', await call(`${main.url}/${names.wrongGit}/deploy`, { auth: ci, form: { commit: 'main', tag: TAG } }));
    expect(answer.status, JSON.stringify(answer.body)).toBe(502);
    expect(answer.body['system']).toBe('git');
    expect(String(answer.body['error'])).toMatch(/refused the credentials of service/);
  });

  it('wrong registry password: 502 naming the registry, not the password', async () => {
    const answer = captured.answer('wrong registry', await call(`${wrongRegistry.url}/${names.basicRegistry}/deploy`, { auth: ci, form: { commit: 'main', tag: TAG } }));
    expect(answer.status, JSON.stringify(answer.body)).toBe(502);
    expect(answer.body).toMatchObject({ system: 'registry' });
  });

  it('failures are reported to Bugsnag and Slack (so their payloads are scanned too)', async () => {
    await bugsnag.waitForRequests(1);
    await slack.waitForRequests(3);
    expect(bugsnag.requests.some((r) => r.path === '/notify')).toBe(true);
  });

  it('GET / and GET /:service show the services without any credential', async () => {
    for (const d of deployers) {
      const list = captured.answer('GET /', await call(`${d.url}/`, { method: 'GET', auth: reader }));
      expect(list.status).toBe(200);
      for (const name of Object.values(names)) {
        const view = captured.answer(`GET /${name}`, await call(`${d.url}/${name}`, { method: 'GET', auth: reader }));
        expect(view.status).toBe(200);
        expect(JSON.stringify(view.body)).not.toMatch(/@127\.0\.0\.1/);
      }
    }
    const embedded = await call(`${main.url}/${names.embedded}`, { method: 'GET', auth: reader });
    // Credentials written into the URL are taken out of it before it is shown.
    expect((embedded.body['repository'] as { url?: unknown }).url).toMatch(new RegExp(`^${ground('git').baseUrl}embedded-[0-9a-f]+\\.git$`));
  });

  it('refused credentials do not echo the secret that was tried', async () => {
    const tries = [basic('ci', `${CI_SECRET}x`), basic('reader', CI_SECRET), basic(CI_SECRET, CI_SECRET), `Basic ${CI_SECRET}`];
    for (const auth of tries) {
      const answer = captured.answer('refused auth', await call(`${main.url}/${names.basicRegistry}`, { method: 'GET', auth }));
      expect(answer.status).toBe(401);
    }
  });

  it('no secret in any log, answer or report captured in this file', () => {
    expect(captured.size).toBeGreaterThan(10);
    expect(main.logText()).toMatch(/"level":20/);
    expect(
      captured.leaks({
        CI_SECRET,
        READ_SECRET,
        BUGSNAG_KEY,
        SLACK_PATH,
        WRONG_GIT,
        WRONG_REGISTRY,
        git: ground('git').password,
        registry: ground('registry').basic.password,
        kubeToken: ground('kube').adminToken,
      }),
    ).toEqual([]);
  });
});
