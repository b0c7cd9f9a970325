import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ground } from '../env/ground.js';
import { createNamespace, kubeRequest } from '../env/kube-helpers.js';
import { pushImage } from '../env/registry-helpers.js';
import { addSvnRevision, createSvnRepo } from '../env/svn-fixtures.js';
import { basic, call, startDeployer, type RunningDeployer } from './setup.js';

// An svn service end to end through the deployer's HTTP API: the repository on the ground's svnserve (the ground
// has no Subversion over HTTP: that needs Apache's mod_dav_svn), its trunk holding the corpus' online-boutique
// emailservice (untagged image, ports without protocol); CI tags the image with the revision.

const CI_SECRET = 'svn-ci-secret-0123456789';
const EMAIL = readFileSync(join(import.meta.dirname, '..', 'corpus', 'online-boutique', 'kubernetes', 'emailservice.yaml'), 'utf8');

describe('an svn service deployed over HTTP', () => {
  let deployer: RunningDeployer;
  let namespace: string;
  let revisions: number[];
  const auth = basic('ci', CI_SECRET);

  beforeAll(async () => {
    const svn = ground('svn');
    const registry = ground('registry').anonymous;
    namespace = await createNamespace('svn');
    const name = `legacy-${Date.now().toString(36)}`;
    const manifest = EMAIL.replaceAll('registry.corpus.test', registry);
    const repo = await createSvnRepo(svn.root, name, [{ files: { 'trunk/kubernetes/emailservice.yaml': manifest } }]);
    const second = await addSvnRevision(svn.root, name, { files: { 'trunk/README': 'the next revision\n' } });
    revisions = [...repo.revisions, second];
    for (const r of revisions) await pushImage({ host: registry, repository: 'online-boutique/emailservice', tag: `trunk-${r}` });
    deployer = await startDeployer({
      tokens: { ci: { secret: { value: CI_SECRET }, services: ['legacy'], actions: ['read', 'deploy', 'canary'] } },
      services: {
        legacy: {
          repository: {
            url: `${svn.baseUrl}${repo.urlPath}/trunk`,
            type: 'svn',
            defaultBranch: 'trunk',
            credentials: { username: svn.username, password: { value: svn.password } },
          },
          namespace,
        },
      },
      versions: { registryWaitSeconds: 0 },
    });
  });

  afterAll(async () => {
    await deployer?.close();
  });

  it('lists tags of the default branch, deploys a revision, a canary of the next, and the next', async () => {
    const tags = await call(`${deployer.url}/legacy/tags`, { method: 'GET', auth });
    expect(tags.status, JSON.stringify(tags.body)).toBe(200);
    expect(JSON.stringify(tags.body)).toContain(`trunk-${revisions[1]}`);

    const first = await call(`${deployer.url}/legacy/deploy`, { auth, form: { commit: String(revisions[0]) } });
    expect(first.status, JSON.stringify(first.body)).toBe(200);
    expect(first.body['tag']).toBe(`trunk-${revisions[0]}`);

    const canary = await call(`${deployer.url}/legacy/canary`, { auth, form: { commit: String(revisions[1]) } });
    expect(canary.status, JSON.stringify(canary.body)).toBe(200);
    expect((await kubeRequest('GET', `/apis/apps/v1/namespaces/${namespace}/deployments/emailservice-canary`)).status).toBe(200);

    const next = await call(`${deployer.url}/legacy/deploy`, { auth, form: { commit: String(revisions[1]) } });
    expect(next.status, JSON.stringify(next.body)).toBe(200);
    const live = await kubeRequest('GET', `/apis/apps/v1/namespaces/${namespace}/deployments/emailservice`);
    expect(JSON.stringify(live.body)).toContain(`emailservice:trunk-${revisions[1]}@sha256:`);
    expect((await kubeRequest('GET', `/apis/apps/v1/namespaces/${namespace}/deployments/emailservice-canary`)).status).toBe(404);
  });
});
