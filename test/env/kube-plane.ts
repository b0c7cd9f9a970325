import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import type { Started } from './global-setup.js';
import type { KubeGround } from './ground.js';
import { freePort, httpGet, spawnServer, stopAll, waitFor, waitForUrl, type ServerProcess } from './processes.js';

const execFileAsync = promisify(execFile);

/** Where test/env/prepare.sh puts kube-apiserver and kube-controller-manager. */
export function kubeBinDir(): string {
  return join(process.env['DEPLOYER_TESTENV_CACHE'] ?? join(homedir(), '.cache', 'deployer-testenv'), 'bin');
}

/** A kubeconfig for `server` that authenticates with a bearer token. */
export function tokenKubeconfig(options: { server: string; caFile: string; user: string; token: string; namespace?: string }): string {
  const context: Record<string, string> = { cluster: 'ground', user: options.user };
  if (options.namespace !== undefined) context['namespace'] = options.namespace;
  // JSON is YAML: no YAML library needed to write it.
  return JSON.stringify(
    {
      apiVersion: 'v1',
      kind: 'Config',
      clusters: [{ name: 'ground', cluster: { server: options.server, 'certificate-authority': options.caFile } }],
      users: [{ name: options.user, user: { token: options.token } }],
      contexts: [{ name: 'ground', context }],
      'current-context': 'ground',
    },
    null,
    2,
  );
}

/**
 * A Kubernetes control plane: etcd, kube-apiserver (token auth, RBAC) and a kube-controller-manager running the
 * controllers of a real cluster. Its one node, when the `node` part runs, has a scheduler of its own name (node.ts):
 * pods that do not name it stay Pending until a test marks them ready by hand (kube-helpers.ts).
 */
export interface KubeNetwork {
  /** An address of the ground network (not loopback) the apiserver advertises as the `kubernetes` Service's endpoint. */
  advertiseAddress: string;
  serviceCidr: string;
}

/**
 * Without `network`, the apiserver advertises 127.0.0.1 and keeps the `kubernetes` Service without endpoints (no
 * pod could reach it anyway). With it (the `node` part), the endpoint is the ground network's host address, where
 * a forwarder passes connections to the loopback port (forwarders.ts), so pods reach the apiserver through the
 * Service's ClusterIP as in a real cluster.
 */
export async function startKube(dir: string, logsDir: string, network?: KubeNetwork): Promise<Started<KubeGround>> {
  const bin = kubeBinDir();
  for (const name of ['kube-apiserver', 'kube-controller-manager']) {
    if (!existsSync(join(bin, name))) {
      throw new Error(`${join(bin, name)} is missing: run \`bash test/env/prepare.sh\` first`);
    }
  }
  const certDir = join(dir, 'certs');
  mkdirSync(certDir, { recursive: true });
  mkdirSync(logsDir, { recursive: true });

  const saKey = join(dir, 'service-account.key');
  await execFileAsync('openssl', ['genrsa', '-out', saKey, '2048']);
  const adminToken = randomBytes(24).toString('hex');
  const tokenFile = join(dir, 'tokens.csv');
  writeFileSync(tokenFile, `${adminToken},admin,admin,"system:masters"\n`, { mode: 0o600 });

  const processes: ServerProcess[] = [];
  const stop = async (): Promise<void> => {
    // Controllers and apiserver before etcd, so that they do not spin on a vanished store.
    const [etcd, ...rest] = processes;
    await stopAll(rest);
    await stopAll([etcd]);
  };

  try {
    const [etcdClientPort, etcdPeerPort, apiPort] = [await freePort(), await freePort(), await freePort()];
    const etcdClient = `http://127.0.0.1:${etcdClientPort}`;
    const etcdPeer = `http://127.0.0.1:${etcdPeerPort}`;
    const etcd = spawnServer({
      name: 'etcd',
      command: '/usr/bin/etcd',
      args: [
        '--name=ground',
        `--data-dir=${join(dir, 'etcd')}`,
        `--listen-client-urls=${etcdClient}`,
        `--advertise-client-urls=${etcdClient}`,
        `--listen-peer-urls=${etcdPeer}`,
        `--initial-advertise-peer-urls=${etcdPeer}`,
        `--initial-cluster=ground=${etcdPeer}`,
        '--initial-cluster-state=new',
        '--log-level=warn',
      ],
      logsDir,
    });
    processes.push(etcd);
    await waitForUrl(`${etcdClient}/health`, { what: 'etcd', process: etcd, timeoutMs: 30_000 });

    const server = `https://127.0.0.1:${apiPort}`;
    const apiserver = spawnServer({
      name: 'kube-apiserver',
      command: join(bin, 'kube-apiserver'),
      args: [
        `--etcd-servers=${etcdClient}`,
        `--secure-port=${apiPort}`,
        '--insecure-port=0',
        '--bind-address=127.0.0.1',
        `--advertise-address=${network?.advertiseAddress ?? '127.0.0.1'}`,
        `--cert-dir=${certDir}`,
        `--token-auth-file=${tokenFile}`,
        `--service-account-key-file=${saKey}`,
        `--service-account-signing-key-file=${saKey}`,
        '--service-account-issuer=https://kubernetes.default.svc.cluster.local',
        '--authorization-mode=RBAC',
        `--service-cluster-ip-range=${network?.serviceCidr ?? '10.0.0.0/24'}`,
        `--endpoint-reconciler-type=${network === undefined ? 'none' : 'lease'}`,
        // Logs and exec go to the node's address: its name (ground-node) resolves nowhere.
        '--kubelet-preferred-address-types=InternalIP',
        '--profiling=false',
        '--v=1',
      ],
      logsDir,
    });
    processes.push(apiserver);
    const admin = { authorization: `Bearer ${adminToken}` };
    // The serving certificate is generated at start-up, so the first probes cannot verify it.
    await waitForUrl(`${server}/readyz`, { what: 'kube-apiserver /readyz', process: apiserver, headers: admin, insecure: true, timeoutMs: 90_000, intervalMs: 500 });

    // The self-signed serving certificate (apiserver.crt holds the leaf and its CA) is the trust anchor.
    const caFile = join(certDir, 'apiserver.crt');
    const ca = readFileSync(caFile);
    const adminKubeconfig = join(dir, 'admin.kubeconfig');
    writeFileSync(adminKubeconfig, tokenKubeconfig({ server, caFile, user: 'admin', token: adminToken }), { mode: 0o600 });

    const controllers = spawnServer({
      name: 'kube-controller-manager',
      command: join(bin, 'kube-controller-manager'),
      args: [
        `--kubeconfig=${adminKubeconfig}`,
        `--service-account-private-key-file=${saKey}`,
        `--root-ca-file=${caFile}`,
        '--use-service-account-credentials=false',
        '--leader-elect=false',
        // What a real cluster runs (job, cronjob, statefulset, daemonset, disruption, endpoint, endpointslice,
        // nodelifecycle, persistentvolume-binder, ...): '*' is the default set; the cloud ones skip themselves.
        '--controllers=*',
        '--port=0',
        '--secure-port=0',
        '--concurrent-gc-syncs=5',
        '--v=1',
      ],
      logsDir,
    });
    processes.push(controllers);
    // Pods can only be created once the namespace's default service account and its token exist.
    await waitFor(
      async () => {
        const res = await httpGet(`${server}/api/v1/namespaces/default/serviceaccounts/default`, { headers: admin, ca });
        if (res.status !== 200) return false;
        const sa = JSON.parse(res.body) as { secrets?: unknown[] };
        return (sa.secrets?.length ?? 0) > 0;
      },
      { what: 'the default service account (kube-controller-manager)', process: controllers, timeoutMs: 60_000, intervalMs: 300 },
    );

    return { info: { server, adminKubeconfig, adminToken, caFile, dir }, stop };
  } catch (err) {
    await stop();
    throw err;
  }
}
