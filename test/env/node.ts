import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Started } from './global-setup.js';
import type { KubeGround, NodeGround } from './ground.js';
import type { GroundNetwork } from './ground-net.js';
import { kubeBinDir, tokenKubeconfig } from './kube-plane.js';
import { pushProgramImage } from './node-images.js';
import { freePort, httpGet, spawnServer, stopAll, waitFor, waitForUrl, type ServerProcess } from './processes.js';

/** The node's name, and the name of the scheduler that places pods on it (see NodeGround.schedulerName). */
export const NODE_NAME = 'ground-node';
export const SCHEDULER_NAME = 'ground-scheduler';

interface NodeStatus {
  spec?: { taints?: Array<{ key: string }> };
  status?: { conditions?: Array<{ type: string; status: string }> };
}

function containerdConfig(dir: string, network: GroundNetwork, pauseImage: string, registryHost: string): string {
  const port = registryHost.split(':')[1];
  // TOML by hand: a handful of keys, all strings from this file.
  return `version = 2
root = "${join(dir, 'containerd', 'root')}"
state = "${join(dir, 'containerd', 'state')}"
disabled_plugins = ["io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.devmapper", "io.containerd.internal.v1.tracing"]

[grpc]
  address = "${join(dir, 'containerd.sock')}"

[plugins."io.containerd.internal.v1.opt"]
  path = "${join(dir, 'containerd', 'opt')}"

[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "${pauseImage}"
  # The sandbox may not lower oom_score_adj: without this runc fails with "can't get final child's PID from pipe".
  restrict_oom_score_adj = true
  enable_selinux = false
  stream_server_address = "127.0.0.1"
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "${join(dir, 'cni')}"
  # The registry listens on the machine's loopback; from the ground's namespace it is the forwarder on the
  # ground network's host address, same port, plain http. Images are named either way: by the loopback address
  # (what tests push and the deployer in the test process resolves) or by the ground address (what a deployer
  # running in a pod reaches).
  [plugins."io.containerd.grpc.v1.cri".registry.mirrors."${registryHost}"]
    endpoint = ["http://${network.hostAddress}:${port}"]
  [plugins."io.containerd.grpc.v1.cri".registry.mirrors."${network.hostAddress}:${port}"]
    endpoint = ["http://${network.hostAddress}:${port}"]
`;
}

function cniConfig(dir: string, network: GroundNetwork): string {
  return JSON.stringify(
    {
      cniVersion: '0.4.0',
      name: 'ground',
      plugins: [
        {
          type: 'bridge',
          bridge: 'cni0',
          isGateway: true,
          ipMasq: false,
          hairpinMode: true,
          ipam: {
            type: 'host-local',
            ranges: [[{ subnet: network.podCidr }]],
            routes: [{ dst: '0.0.0.0/0' }],
            dataDir: join(dir, 'cni-ipam'),
          },
        },
        { type: 'portmap', capabilities: { portMappings: true } },
      ],
    },
    null,
    2,
  );
}

/**
 * The test ground's node: containerd, kubelet and kube-proxy inside the ground's namespaces (ground-net.ts), and a
 * kube-scheduler. The scheduler answers to its own name only, so that the pods of the tests that drive pod status by
 * hand stay Pending and to themselves (no scheduler writes their status); pods that should run say
 * `schedulerName: ground-scheduler`. Resolves once the node is Ready.
 */
export async function startNode(options: {
  dir: string;
  logsDir: string;
  network: GroundNetwork;
  kube: KubeGround;
  /** host:port of the anonymous registry (loopback). */
  registryHost: string;
}): Promise<Started<NodeGround>> {
  const { dir, logsDir, network, kube, registryHost } = options;
  const bin = kubeBinDir();
  mkdirSync(join(dir, 'cni'), { recursive: true });
  mkdirSync(join(dir, 'kubelet'), { recursive: true });

  const pauseImage = `${registryHost}/ground/pause:3.4`;
  const sampleRepository = `${registryHost}/ground/sample`;
  await pushProgramImage({ host: registryHost, repository: 'ground/pause', tag: '3.4', program: 'pause' });
  await pushProgramImage({ host: registryHost, repository: 'ground/sample', tag: 'v1', program: 'sample', env: { VERSION: 'v1' } });

  const containerdToml = join(dir, 'containerd.toml');
  writeFileSync(containerdToml, containerdConfig(dir, network, pauseImage, registryHost));
  writeFileSync(join(dir, 'cni', '10-ground.conflist'), cniConfig(dir, network));
  const apiPort = new URL(kube.server).port;
  // Inside the ground namespace the machine's loopback is out of reach: the node talks to the apiserver's forwarder.
  const nodeKubeconfig = join(dir, 'node.kubeconfig');
  writeFileSync(
    nodeKubeconfig,
    tokenKubeconfig({ server: `https://${network.hostAddress}:${apiPort}`, caFile: kube.caFile, user: 'admin', token: kube.adminToken }),
    { mode: 0o600 },
  );

  const schedulerConfig = join(dir, 'scheduler.yaml');
  const schedulerPort = await freePort();
  writeFileSync(
    schedulerConfig,
    JSON.stringify({
      apiVersion: 'kubescheduler.config.k8s.io/v1beta1',
      kind: 'KubeSchedulerConfiguration',
      clientConnection: { kubeconfig: kube.adminKubeconfig },
      leaderElection: { leaderElect: false },
      // With --config, --port=0 is ignored and these default to 0.0.0.0:10251: every interface of the machine, and
      // the second ground on a machine failed to start its scheduler (its pods stayed Pending). Port 0 is refused.
      healthzBindAddress: `127.0.0.1:${schedulerPort}`,
      metricsBindAddress: `127.0.0.1:${schedulerPort}`,
      profiles: [{ schedulerName: SCHEDULER_NAME }],
    }),
  );

  const processes: ServerProcess[] = [];
  const stop = async (): Promise<void> => {
    await stopAll(processes, 3_000);
  };
  // kubelet and kube-proxy call iptables, mount and the like by name.
  const env = { ...process.env, PATH: `/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin` };
  const inside = (name: string, command: string, args: readonly string[]): ServerProcess => {
    const p = spawnServer({ name, command: network.enter[0]!, args: [...network.enter.slice(1), command, ...args], logsDir, env });
    processes.push(p);
    return p;
  };

  try {
    const socket = join(dir, 'containerd.sock');
    const containerd = inside('containerd', '/usr/bin/containerd', ['--config', containerdToml, '--log-level', 'warn']);
    await waitFor(() => Promise.resolve(readFileSync(containerd.logFile, 'utf8').includes('containerd successfully booted') || existsSocket(socket)), {
      what: 'containerd',
      process: containerd,
      timeoutMs: 30_000,
      intervalMs: 100,
    });

    const kubelet = inside('kubelet', join(bin, 'kubelet'), [
      `--kubeconfig=${nodeKubeconfig}`,
      `--hostname-override=${NODE_NAME}`,
      `--node-ip=${network.nodeAddress}`,
      '--container-runtime=remote',
      `--container-runtime-endpoint=unix://${socket}`,
      // cAdvisor (the kubelet's /metrics/cadvisor) names a container's pod and namespace only when it finds the
      // container in containerd, which it asks at this socket (its default is the machine's /run/containerd).
      `--containerd=${socket}`,
      `--root-dir=${join(dir, 'kubelet')}`,
      `--cert-dir=${join(dir, 'kubelet', 'pki')}`,
      `--volume-plugin-dir=${join(dir, 'kubelet', 'volume-plugins')}`,
      '--cgroup-driver=cgroupfs',
      '--cgroups-per-qos=false',
      `--cgroup-root=${network.cgroupRoot}`,
      '--enforce-node-allocatable=',
      '--eviction-hard=',
      '--image-gc-high-threshold=100',
      '--image-gc-low-threshold=99',
      '--fail-swap-on=false',
      '--read-only-port=0',
      '--healthz-bind-address=127.0.0.1',
      // On the ground network: the apiserver reaches it there for logs and exec.
      `--address=${network.nodeAddress}`,
      '--resolv-conf=',
      '--node-status-update-frequency=4s',
      '--sync-frequency=10s',
      '--v=1',
    ]);
    const scheduler = spawnServer({
      name: 'kube-scheduler',
      command: join(bin, 'kube-scheduler'),
      args: [`--config=${schedulerConfig}`, '--port=0', '--secure-port=0', '--v=1'],
      logsDir,
    });
    processes.push(scheduler);
    inside('kube-proxy', join(bin, 'kube-proxy'), [
      `--kubeconfig=${nodeKubeconfig}`,
      `--hostname-override=${NODE_NAME}`,
      '--proxy-mode=iptables',
      `--cluster-cidr=${network.podCidr}`,
      // Real ports of the ground namespace's own loopback: iptables mode wants them.
      '--healthz-bind-address=127.0.0.1:10256',
      '--metrics-bind-address=127.0.0.1:10249',
      // Leave the machine-wide conntrack sysctls alone.
      '--conntrack-max-per-core=0',
      '--conntrack-tcp-timeout-established=0',
      '--conntrack-tcp-timeout-close-wait=0',
      '--v=1',
    ]);

    await waitForScheduler(scheduler, schedulerPort);

    const admin = { authorization: `Bearer ${kube.adminToken}` };
    const ca = readFileSync(kube.caFile);
    await waitFor(
      async () => {
        const res = await httpGet(`${kube.server}/api/v1/nodes/${NODE_NAME}`, { headers: admin, ca });
        if (res.status !== 200) return false;
        const node = JSON.parse(res.body) as NodeStatus;
        const ready = node.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True') ?? false;
        // The node lifecycle controller lifts the not-ready taint a moment after the kubelet reports Ready.
        const untainted = !(node.spec?.taints ?? []).some((t) => t.key.startsWith('node.kubernetes.io/'));
        return ready && untainted;
      },
      { what: `node ${NODE_NAME} to be Ready`, process: kubelet, timeoutMs: 90_000, intervalMs: 500 },
    );

    return {
      info: {
        name: NODE_NAME,
        hostAddress: network.hostAddress,
        hostLink: network.hostLink,
        nodeAddress: network.nodeAddress,
        podCidr: network.podCidr,
        serviceCidr: network.serviceCidr,
        schedulerName: SCHEDULER_NAME,
        pauseImage,
        sampleRepository,
        initPid: network.initPid,
        cgroupRoot: network.cgroupRoot,
        runDir: dir,
      },
      stop,
    };
  } catch (err) {
    await stop();
    throw err;
  }
}

/**
 * Resolves once kube-scheduler answers its health check on its loopback port. Without this wait, a scheduler that
 * did not start (a refused config, a port taken) showed only later, as pods Pending in some test; now the ground's
 * start fails, naming the scheduler's log file (with its tail).
 */
export async function waitForScheduler(scheduler: ServerProcess, port: number, timeoutMs = 60_000): Promise<void> {
  await waitForUrl(`http://127.0.0.1:${port}/healthz`, {
    what: `kube-scheduler to answer /healthz on 127.0.0.1:${port}`,
    process: scheduler,
    timeoutMs,
    intervalMs: 200,
  });
}

function existsSocket(path: string): boolean {
  try {
    readFileSync(path);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code !== 'ENOENT';
  }
}
