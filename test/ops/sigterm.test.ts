import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { createRepo } from '../env/git-fixtures.js';
import { ground } from '../env/ground.js';
import { adminClient, createNamespace, uniqueName } from '../env/kube-helpers.js';
import { serviceManifests } from '../env/manifests.js';
import { pushImage } from '../env/registry-helpers.js';
import { startChild, type Child } from './child.js';
import { basic, short } from './helpers.js';
import { sampleValue } from './prometheus.js';

const SECRET = 'sigterm-ops-secret-42';
/** A process start, a deploy and a stop: ~50 s on a busy 2-core machine; a bound for hangs, not a speed measure. */
const SLOW_MS = 180_000;
const work = mkdtempSync(join(tmpdir(), 'ops-sigterm-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));
const children: Child[] = [];
afterEach(() => {
  for (const c of children.splice(0)) c.kill();
});

interface Answer {
  status: number;
  body: string;
}

/** A deploy request that stays open until answered; rejects when the connection dies without an answer. */
function deployRequest(port: number, service: string, commit: string, requestId: string): Promise<Answer> {
  const body = `commit=${commit}`;
  return new Promise((resolve, reject) => {
    const req = request(
      {
        host: '127.0.0.1',
        port,
        // A connection of its own: no kept-alive socket of an earlier test's (dead) server is reused.
        agent: false,
        method: 'PUT',
        path: `/${service}/deploy`,
        headers: {
          authorization: basic('ops', SECRET),
          'content-type': 'application/x-www-form-urlencoded',
          'content-length': String(body.length),
          'x-request-id': requestId,
        },
      },
      (res) => {
        let text = '';
        res.setEncoding('utf8').on('data', (c: string) => (text += c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: text }));
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}

/** A service repository whose CI tag is not pushed yet; the deployer's config file for it; the image. */
async function setUp(shutdownGraceSeconds: number) {
  const git = ground('git');
  const registry = ground('registry').anonymous;
  const namespace = await createNamespace('ops-sigterm');
  const service = uniqueName('slow');
  const repository = `ops/${service}`;
  const repo = await createRepo(git.root, service, [{ files: serviceManifests({ name: service, image: `${registry}/${repository}`, replicas: 2 }) }]);
  const sha = repo.shas[0] ?? '';
  const file = join(work, `${service}.json`);
  // JSON is YAML.
  writeFileSync(
    file,
    JSON.stringify({
      tokens: { ops: { secret: { value: SECRET } } },
      services: {
        [service]: {
          repository: { url: `${git.baseUrl}${repo.urlPath}`, credentials: { username: git.username, password: { value: git.password } } },
          namespace,
        },
      },
      registries: { [registry]: { insecure: true } },
      cache: { dir: join(work, `cache-${service}`) },
      kubernetes: { kubeconfig: ground('kube').adminKubeconfig },
      // The deploy waits (with back-off) for CI's tag; the test pushes it after the SIGTERM.
      versions: { registryWaitSeconds: 120 },
      shutdownGraceSeconds,
    }),
  );
  const main = startChild('src/main.ts', [], { DEPLOYER_CONFIG: file, DEPLOYER_PORT: '0' });
  children.push(main);
  const listening = await main.logLine((l) => l['msg'] === 'listening');
  const port = Number(new URL(String(listening['address'])).port);
  return { main, port, service, namespace, sha, registry, repository };
}

/** Waits until the deployer's own metrics say that a deploy is running. */
async function untilInFlight(port: number): Promise<void> {
  for (;;) {
    const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
    if (sampleValue(text, 'deployer_deploys_in_flight') === 1) return;
    await new Promise((r) => setTimeout(r, 100));
  }
}

describe('SIGTERM during a deploy (the real deployer process)', () => {
  it('finishes the deploy in flight, answers 200, then exits 0', async () => {
    const { main, port, service, namespace, sha, registry, repository } = await setUp(25);

    const answer = deployRequest(port, service, short(sha), 'sigterm-1');
    await untilInFlight(port);
    main.process.kill('SIGTERM');
    await main.logLine((l) => l['msg'] === 'closing: no new requests, waiting for requests in flight');
    // No new requests from now on (refused, or 503 on a kept-alive connection); the deploy in flight goes on waiting.
    const late = await fetch(`http://127.0.0.1:${port}/healthz`).then(
      (r) => r.status,
      () => 'refused',
    );
    expect([503, 'refused']).toContain(late);
    const { digest } = await pushImage({ host: registry, repository, tag: `main-${short(sha)}` });

    const { status, body } = await answer;
    expect(status, body).toBe(200);
    expect(JSON.parse(body)).toMatchObject({ message: `${service} main-${short(sha)} is deployed`, commit: sha });
    expect(await main.exit).toBe(0);
    const deployment = await adminClient().apps.readNamespacedDeployment({ name: service, namespace });
    expect(deployment.spec?.template.spec?.containers[0]?.image).toBe(`${registry}/${repository}:main-${short(sha)}@${digest}`);
    expect(main.lines.some((l) => l.includes(`"msg":"closed"`))).toBe(true);
  }, SLOW_MS);

  it('exits anyway, logged and with code 1, when the deploy outlasts shutdownGraceSeconds', async () => {
    const { main, port, service, namespace, sha } = await setUp(1);

    const answer = deployRequest(port, service, short(sha), 'sigterm-2');
    // The connection breaks when the process exits, before the assertion below awaits it: handled from the start.
    answer.catch(() => undefined);
    await untilInFlight(port);
    main.process.kill('SIGTERM');
    // The tag never comes: the deploy would wait for two minutes.
    const line = await main.logLine((l) => l['msg'] === 'requests still in flight at the end of the shutdown grace: exiting anyway');
    expect(line).toMatchObject({ level: 50, graceSeconds: 1 });
    expect(await main.exit).toBe(1);
    await expect(answer).rejects.toThrow();
    await expect(adminClient().apps.readNamespacedDeployment({ name: service, namespace })).rejects.toThrow();
  }, SLOW_MS);
});
