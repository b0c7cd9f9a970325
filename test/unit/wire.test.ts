import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { afterAll, describe, expect, it } from 'vitest';
import { parseConfig } from '../../src/config/load.js';
import { kubeCounts } from '../../src/kube/transport.js';
import { wire } from '../../src/wire.js';

const work = mkdtempSync(join(tmpdir(), 'deployer-wire-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));

function kubeconfig(): string {
  const file = join(work, 'kubeconfig');
  writeFileSync(
    file,
    JSON.stringify({
      apiVersion: 'v1',
      kind: 'Config',
      clusters: [{ name: 'c', cluster: { server: 'https://127.0.0.1:9' } }],
      users: [{ name: 'u', user: { token: 'x' } }],
      contexts: [{ name: 'c', context: { cluster: 'c', user: 'u' } }],
      'current-context': 'c',
    }),
  );
  return file;
}

describe('wire (the composition root)', () => {
  it('loads one kubeconfig and builds one transport for the whole deployer', async () => {
    const config = parseConfig(
      {
        tokens: { ops: { secret: { value: 'ops-secret' } } },
        services: { web: { repository: { url: 'https://git.example.com/web.git' }, namespace: 'web' } },
        kubernetes: { kubeconfig: kubeconfig() },
        cache: { dir: join(work, 'cache') },
      },
      {},
    );
    const before = kubeCounts();

    const { app, deployer, kube } = wire({ config, logger: pino({ level: 'silent' }), version: 't', identity: 'test' });

    expect(kubeCounts()).toEqual({ kubeConfigLoads: before.kubeConfigLoads + 1, transports: before.transports + 1 });
    expect(kube.server).toBe('https://127.0.0.1:9');
    expect(typeof deployer.deploy).toBe('function');
    // The readiness probe, the deploys, the live reads and the Leases all go through that one transport.
    const ready = await app.inject({ method: 'GET', url: '/readyz' });
    expect(ready.json()).toMatchObject({ checks: { kubernetes: 'failed' } });
    expect(kubeCounts()).toEqual({ kubeConfigLoads: before.kubeConfigLoads + 1, transports: before.transports + 1 });
    await app.close();
  });

  it('without any kubeconfig it starts, and every apiserver call says where it looked (not localhost:8080)', async () => {
    const saved = { ...process.env };
    delete process.env['KUBECONFIG'];
    delete process.env['KUBERNETES_SERVICE_HOST'];
    process.env['HOME'] = join(work, 'home');
    try {
      const config = parseConfig(
        {
          tokens: { ops: { secret: { value: 'ops-secret' } } },
          services: { web: { repository: { url: 'https://git.example.com/web.git' }, namespace: 'web' } },
          cache: { dir: join(work, 'cache') },
        },
        {},
      );
      const { app, deployer } = wire({ config, logger: pino({ level: 'silent' }), version: 't', identity: 'test' });
      const service = config.services['web'];
      if (service === undefined) throw new Error('no service');
      const error = await deployer.state(service).then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(error).toMatchObject({ system: 'kubernetes', status: 503 });
      expect((error as Error).message).toBe(
        'the deployer has no Kubernetes credentials: cannot read the kubeconfig: no kubeconfig found: kubernetes.kubeconfig is not set, ' +
          `KUBECONFIG is unset, ${join(work, 'home', '.kube', 'config')} does not exist, and this is not a pod (KUBERNETES_SERVICE_HOST is unset); ` +
          'set kubernetes.kubeconfig in the configuration',
      );
      const ready = await app.inject({ method: 'GET', url: '/readyz' });
      expect(ready.json()).toMatchObject({ checks: { kubernetes: 'failed' } });
      await app.close();
    } finally {
      process.env = saved;
    }
  });

  it('refuses to start with a kubeconfig that is not there, naming it', () => {
    const config = parseConfig(
      {
        tokens: { ops: { secret: { value: 'ops-secret' } } },
        kubernetes: { kubeconfig: join(work, 'missing.kubeconfig') },
        cache: { dir: join(work, 'cache') },
      },
      {},
    );
    expect(() => wire({ config, logger: pino({ level: 'silent' }), version: 't' })).toThrow(`cannot read the kubeconfig ${join(work, 'missing.kubeconfig')}`);
  });
});
