import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { ground } from '../env/ground.js';
import { adminClient } from '../env/kube-helpers.js';
import { startChild, type Child } from './child.js';
import { basic, ROOT } from './helpers.js';

/**
 * README "Run it on your machine", as written: config.local.yaml as shipped, KUBECONFIG naming the cluster, one
 * token variable, and a deploy of this clone's HEAD with the printed curl command's fields. Only the port is
 * overridden (DEPLOYER_PORT), so that the test does not need 8081 free.
 */

const CACHE = join(ROOT, '.deployer-cache');
const cacheExisted = existsSync(CACHE);
afterAll(() => {
  if (!cacheExisted) rmSync(CACHE, { recursive: true, force: true });
});
const children: Child[] = [];
afterEach(() => {
  for (const c of children.splice(0)) c.kill();
});

describe('config.local.yaml (README: Run it on your machine)', () => {
  it('starts with one token and the cluster of KUBECONFIG, and deploys the sample service of this clone', async () => {
    const token = randomBytes(16).toString('hex');
    const main = startChild('src/main.ts', [], {
      DEPLOYER_CONFIG: 'config.local.yaml',
      KUBECONFIG: ground('kube').adminKubeconfig,
      DEPLOYER_LOCAL_TOKEN: token,
      DEPLOYER_PORT: '0',
    });
    children.push(main);
    const listening = await main.logLine((l) => l['msg'] === 'listening');
    const url = new URL(String(listening['address']));
    expect(url.hostname).toBe('127.0.0.1');

    const { stdout } = await promisify(execFile)('git', ['rev-parse', '--short', 'HEAD'], { cwd: ROOT });
    const commit = stdout.trim();
    const res = await fetch(`http://127.0.0.1:${url.port}/hello/deploy`, {
      method: 'PUT',
      headers: { authorization: basic('local', token), 'content-type': 'application/x-www-form-urlencoded' },
      body: `commit=${commit}`,
    });
    const body = await res.text();
    expect(res.status, body).toBe(200);
    expect(JSON.parse(body)).toMatchObject({ service: 'hello', kind: 'deploy', commit: expect.stringMatching(new RegExp(`^${commit}`)) as unknown });

    const deployment = await adminClient().apps.readNamespacedDeployment({ name: 'hello', namespace: 'default' });
    // The image carries its own tag: left as it is, no registry asked.
    expect(deployment.spec?.template.spec?.containers[0]?.image).toBe('docker.io/library/nginx:1.27-alpine');

    main.process.kill('SIGTERM');
    expect(await main.exit).toBe(0);
  }, 180_000);

  it('without its token variable, the start names the variable and the key', async () => {
    const main = startChild('src/main.ts', [], { DEPLOYER_CONFIG: 'config.local.yaml', KUBECONFIG: ground('kube').adminKubeconfig });
    children.push(main);
    expect(await main.exit).toBe(1);
    expect(main.stderr.join('')).toBe('deployer: tokens.local.secret: environment variable DEPLOYER_LOCAL_TOKEN is not set\n');
  }, 180_000);
});
