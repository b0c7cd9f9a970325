import { chmodSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import { UpstreamError } from '../../src/errors.js';
import { Kubernetes } from '../../src/kube/kubernetes.js';
import { ground } from '../env/ground.js';
import { uniqueName } from '../env/kube-helpers.js';

/**
 * A kubeconfig whose user runs an exec plugin (as cloud logins do: `aws eks get-token`, `gke-gcloud-auth-plugin`,
 * `kubelogin`) is the one case the deployer loads @kubernetes/client-node for (src/kube/kubeconfig.ts). The plugin
 * here is a shell script that prints an ExecCredential with the ground's admin token and counts its runs.
 */

const kube = ground('kube');
const logger = pino({ level: 'silent' });

function execKubeconfig(script: string): { path: string; runs: string } {
  const name = uniqueName('exec');
  const plugin = join(kube.dir, `${name}.sh`);
  const runs = join(kube.dir, `${name}.runs`);
  writeFileSync(runs, '');
  writeFileSync(plugin, `#!/bin/sh\necho run >>'${runs}'\n${script}\n`);
  chmodSync(plugin, 0o755);
  const path = join(kube.dir, `${name}.kubeconfig`);
  const user = { exec: { apiVersion: 'client.authentication.k8s.io/v1beta1', command: plugin, args: [], interactiveMode: 'Never' } };
  writeFileSync(
    path,
    JSON.stringify({
      apiVersion: 'v1',
      kind: 'Config',
      clusters: [{ name: 'ground', cluster: { server: kube.server, 'certificate-authority': kube.caFile } }],
      users: [{ name: 'plugin', user }],
      contexts: [{ name: 'ground', context: { cluster: 'ground', user: 'plugin' } }],
      'current-context': 'ground',
    }),
  );
  return { path, runs };
}

const credential = (token: string): string =>
  `printf '%s' '${JSON.stringify({ apiVersion: 'client.authentication.k8s.io/v1beta1', kind: 'ExecCredential', status: { token } })}'`;

describe('a kubeconfig with an exec plugin', () => {
  it('authenticates with the token the plugin prints, running it once while the token has no expiry', async () => {
    const { path, runs } = execKubeconfig(credential(kube.adminToken));
    const client = new Kubernetes({ kubeconfig: path, fieldManager: 'deployer-test', logger });

    await client.ping();
    expect(await client.listDeployments('kube-system', 'no-such-label=x')).toEqual([]);
    expect(await client.scopeOf('apps/v1', 'Deployment')).toMatchObject({ namespaced: true });

    expect(readFileSync(runs, 'utf8').split('\n').filter(Boolean)).toHaveLength(1);
  });

  it('fails the request with a 503 UpstreamError that gives what the plugin said on stderr, when it fails', async () => {
    const { path } = execKubeconfig(`echo 'secret-looking output' >&2; exit 3`);
    const client = new Kubernetes({ kubeconfig: path, fieldManager: 'deployer-test', logger });

    const error = await client.listDeployments('default', '').catch((e: unknown) => e);

    expect(error).toBeInstanceOf(UpstreamError);
    expect(error).toMatchObject({ system: 'kubernetes', status: 503 });
    // The plugin's own complaint is the useful part ("run gcloud auth login"); its stdout (a token) is not shown.
    // (client-node passes stderr on as the plugin wrote it, its line break included.)
    expect((error as Error).message.trimEnd()).toBe(`cannot use the kubeconfig's credentials for ${kube.server}: secret-looking output`);
  });
});
