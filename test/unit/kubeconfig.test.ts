import { mkdtempSync, mkdirSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ConfigError } from '../../src/config/load.js';
import { loadKubeAccess } from '../../src/kube/kubeconfig.js';

const work = mkdtempSync(join(tmpdir(), 'deployer-kubeconfig-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));

type Options = Parameters<ReturnType<typeof loadKubeAccess>['apply']>[0];
const request = (): Options => ({ headers: {} });

function kubeconfig(name: string, cluster: Record<string, unknown>, user: Record<string, unknown>): string {
  const file = join(work, name);
  writeFileSync(
    file,
    [
      'apiVersion: v1',
      'kind: Config',
      'current-context: here',
      'contexts:',
      '  - name: here',
      '    context: { cluster: c, user: u }',
      '  - name: other',
      '    context: { cluster: nowhere, user: u }',
      'clusters:',
      `  - name: c`,
      `    cluster: ${JSON.stringify(cluster)}`,
      'users:',
      `  - name: u`,
      `    user: ${JSON.stringify(user)}`,
      '',
    ].join('\n'),
  );
  return file;
}

describe('loadKubeAccess: kubeconfig files, without client-node', () => {
  it('a token and a CA file relative to the kubeconfig', async () => {
    writeFileSync(join(work, 'ca.pem'), 'CA-PEM');
    const file = kubeconfig('token.yaml', { server: 'https://10.9.8.7:6443', 'certificate-authority': 'ca.pem' }, { token: 'tok-1' });
    const access = loadKubeAccess(file);
    const options = request();
    await access.apply(options);
    expect(access.server).toBe('https://10.9.8.7:6443');
    expect(options.headers).toEqual({ authorization: 'Bearer tok-1' });
    expect(String(options.ca)).toBe('CA-PEM');
    expect(options.rejectUnauthorized).toBe(true);
  });

  it('client certificate and key data inline; insecure-skip-tls-verify', async () => {
    const b64 = (s: string): string => Buffer.from(s).toString('base64');
    const file = kubeconfig(
      'cert.yaml',
      { server: 'https://k8s.example:443', 'insecure-skip-tls-verify': true },
      { 'client-certificate-data': b64('CERT'), 'client-key-data': b64('KEY') },
    );
    const options = request();
    await loadKubeAccess(file).apply(options);
    expect([options.cert, options.key, options.rejectUnauthorized]).toEqual([Buffer.from('CERT'), Buffer.from('KEY'), false]);
    expect(options.headers).toEqual({});
  });

  it('basic auth', async () => {
    const options = request();
    await loadKubeAccess(kubeconfig('basic.yaml', { server: 'https://k8s.example' }, { username: 'ann', password: 's3cret' })).apply(options);
    expect(options.headers['authorization']).toBe(`Basic ${Buffer.from('ann:s3cret').toString('base64')}`);
  });

  it.each([
    ['a file that is not there', join(work, 'missing.yaml'), /^cannot read the kubeconfig .*missing\.yaml: ENOENT/],
    ['a context naming no cluster', 'no-cluster', /has no current cluster$/],
    ['not a kubeconfig', 'garbage', /^cannot read the kubeconfig .*garbage\.yaml: not a kubeconfig/],
  ])('%s is a ConfigError naming the file', (_case, which, message) => {
    let file = which;
    if (which === 'no-cluster') {
      file = join(work, 'no-cluster.yaml');
      writeFileSync(file, 'current-context: other\ncontexts:\n  - name: other\n    context: { cluster: nowhere }\nclusters: []\n');
    } else if (which === 'garbage') {
      file = join(work, 'garbage.yaml');
      writeFileSync(file, 'clusters: 12\n');
    }
    expect(() => loadKubeAccess(file)).toThrow(ConfigError);
    expect(() => loadKubeAccess(file)).toThrow(message);
  });
});

describe('loadKubeAccess: in a pod', () => {
  it('reads the service account token and CA, and re-reads a rotated token', async () => {
    const sa = join(work, 'sa');
    mkdirSync(sa);
    writeFileSync(join(sa, 'ca.crt'), 'CLUSTER-CA');
    writeFileSync(join(sa, 'token'), 'first\n');
    let now = 1_000_000;
    const access = loadKubeAccess(undefined, { KUBERNETES_SERVICE_HOST: 'fd00::1', KUBERNETES_SERVICE_PORT: '443' }, sa, () => now);
    expect(access.server).toBe('https://[fd00::1]:443');
    const first = request();
    await access.apply(first);
    expect([first.headers['authorization'], String(first.ca)]).toEqual(['Bearer first', 'CLUSTER-CA']);

    writeFileSync(join(sa, 'token'), 'second\n');
    utimesSync(join(sa, 'token'), new Date(), new Date(Date.now() + 5000));
    const soon = request();
    await access.apply(soon);
    expect(soon.headers['authorization']).toBe('Bearer first');
    now += 61_000;
    const later = request();
    await access.apply(later);
    expect(later.headers['authorization']).toBe('Bearer second');
  });
});
