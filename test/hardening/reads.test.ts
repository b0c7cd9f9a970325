import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { send } from '../e2e/flows-setup.js';
import { basic, serviceRepo, startDeployer, type RunningDeployer } from '../e2e/setup.js';
import { ground } from '../env/ground.js';
import { createNamespace } from '../env/kube-helpers.js';
import { serviceManifests } from '../env/manifests.js';
import { pushImage } from '../env/registry-helpers.js';

/**
 * Finding 6 through the HTTP API: `GET /:service/tags?commit=<random hex>` with a read token forces a fetch each
 * time. The git source bounds fetches made for reads (a few wait, the rest are refused with 503, deploys go first;
 * test/integration/git-source-hardening.test.ts), but the tags route asked for its fetches as a deploy does, so 100
 * such reads all queued and a CI deploy waited behind every one of them (the combined load scenario showed 27 s).
 * Here twenty at once, as a read token may send them: beyond the few that may wait, they are refused at once.
 */

const READER = basic('reader', 'reader-secret-r3ads-0123');

describe("a read token's fetches through GET /:service/tags", () => {
  let deployer: RunningDeployer;
  let svc: Awaited<ReturnType<typeof serviceRepo>>;

  beforeAll(async () => {
    const registry = ground('registry').anonymous;
    const namespace = await createNamespace('reads');
    const repository = `hardening/reads-${Date.now().toString(36)}`;
    svc = await serviceRepo('reads', [{ files: serviceManifests({ name: 'app', image: `${registry}/${repository}` }) }]);
    await pushImage({ host: registry, repository, tag: `main-${(svc.repo.shas[0] ?? '').slice(0, 7)}` });
    deployer = await startDeployer({
      tokens: { reader: { secret: { value: 'reader-secret-r3ads-0123' }, actions: ['read'] } },
      services: { [svc.name]: { repository: svc.repository, namespace } },
    });
    // The cache exists: what follows are fetches of commits it does not hold.
    const warm = await send(`${deployer.url}/${svc.name}/tags`, { method: 'GET', auth: READER });
    expect(warm.status, JSON.stringify(warm.body)).toBe(200);
  });

  afterAll(async () => {
    await deployer?.close();
  });

  it('twenty reads of unknown commits at once: a few fetch (404), the rest are refused at once (503, try again)', async () => {
    const answers = await Promise.all(
      Array.from({ length: 20 }, () =>
        send(`${deployer.url}/${svc.name}/tags?commit=${randomBytes(20).toString('hex')}`, { method: 'GET', auth: READER }),
      ),
    );
    const refused = answers.filter((a) => a.status === 503);
    expect(answers.filter((a) => a.status !== 503 && a.status !== 404).map((a) => `${a.status} ${JSON.stringify(a.body)}`)).toEqual([]);
    // One read fetching and four waiting at most; had reads queued as deploys do, none would be refused.
    expect(refused.length, JSON.stringify(answers.map((a) => a.status))).toBeGreaterThanOrEqual(1);
    expect(refused[0]?.body['error']).toBe(`git fetches of ${String(svc.repository['url'])} are busy (4 reads already waiting); try again in a moment`);
  });
});
