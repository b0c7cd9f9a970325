import { execFile } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, rmdirSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { spawnServer, waitFor, type ServerProcess } from './processes.js';

const run = promisify(execFile);

/**
 * The node's own corner of the machine: one process (the "holder", PID 1 of a new PID namespace) owns a new network
 * namespace and a new mount namespace, and every node process (containerd, its shims, the pods, kubelet,
 * kube-proxy) is started inside them with nsenter. So:
 *
 * - the bridge, the pods' routes and kube-proxy's iptables rules live in the ground's network namespace only;
 * - containerd's overlay mounts, the pods' network namespace files (/run/netns), /run and /var/log are mounts of the
 *   ground's mount namespace only (private propagation), never the machine's;
 * - when the holder dies, the kernel kills every process of its PID namespace, and with the last of them the
 *   namespaces, their mounts, the bridge and the veth pair vanish. Stopping is killing the holder; a SIGKILLed runner
 *   is covered by processes.ts' watchdog (it kills the holder's process group) and by the next run's sweep.
 *
 * The one thing on the machine's side is the host end of a veth pair, `dgr-SLOT`, with a /30 address and routes to
 * the pod and service ranges of this ground: it belongs to the pair, so it goes when the namespace goes. Servers pods
 * must reach listen on its address (see forwarders.ts); tests reach pod IPs and ClusterIPs through it. A slot number
 * keeps concurrent runs on one machine apart; `ip link add` claims it atomically.
 */

/** The marker every ground holder carries in its command line: `MARKER OWNER_PID`. */
export const HOLDER_MARKER = 'deployer-ground-node';
/** Name prefix of the ground's cgroups: `/sys/fs/cgroup/SUBSYSTEM/deployer-ground-OWNER_PID`. */
const CGROUP_PREFIX = 'deployer-ground-';
const CGROUP_ROOT = '/sys/fs/cgroup';
const LINK_PREFIX = 'dgr-';
const MAX_SLOT = 250;

export interface GroundNetwork {
  slot: number;
  /** The machine's end of the veth pair (servers for pods listen here), and its link's name. */
  hostAddress: string;
  hostLink: string;
  /** The node's address (the ground namespace's end of the veth pair). */
  nodeAddress: string;
  podCidr: string;
  serviceCidr: string;
  /** The apiserver's ClusterIP (first address of the service range). */
  kubernetesServiceIp: string;
  /** The cgroup (relative to each hierarchy's root) under which every pod of this ground runs. */
  cgroupRoot: string;
  /** PID (as the machine sees it) of the holder, PID 1 of the ground's PID namespace. */
  initPid: number;
  /** Arguments that run a command inside the ground's namespaces: `[...enter, command, ...args]` with nsenter. */
  enter: readonly string[];
  holder: ServerProcess;
  stop(): Promise<void>;
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

function cmdline(pid: number): string[] {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');
  } catch {
    return [];
  }
}

function subsystems(): string[] {
  try {
    return readdirSync(CGROUP_ROOT, { withFileTypes: true })
      .filter((d) => d.isDirectory())
      .map((d) => d.name);
  } catch {
    return [];
  }
}

/** Kills every process of a cgroup tree, then removes its directories deepest first. Never throws. */
function removeCgroupTree(dir: string): void {
  let children: string[] = [];
  try {
    children = readdirSync(dir, { withFileTypes: true })
      .filter((d) => d.isDirectory())
      .map((d) => join(dir, d.name));
  } catch {
    return;
  }
  for (const child of children) removeCgroupTree(child);
  try {
    for (const pid of readFileSync(join(dir, 'cgroup.procs'), 'utf8').split('\n').filter(Boolean)) {
      try {
        process.kill(Number(pid), 'SIGKILL');
      } catch {
        // gone
      }
    }
  } catch {
    // no procs file (not a cgroup)
  }
  try {
    rmdirSync(dir);
  } catch {
    // busy for a moment after its last process died; the next sweep takes it
  }
}

/** Removes the cgroups of ground `owner` in every hierarchy. */
export function removeCgroups(owner: number): void {
  for (const subsystem of subsystems()) {
    const dir = join(CGROUP_ROOT, subsystem, `${CGROUP_PREFIX}${owner}`);
    if (existsSync(dir)) removeCgroupTree(dir);
  }
}

/**
 * Removes what earlier runs whose runner is gone left behind: their holders (killing a holder kills its whole PID
 * namespace, and with it the namespaces, mounts and veth pair) and their cgroups. Leaves running grounds alone.
 */
export function sweepLeftovers(): void {
  for (const entry of readdirSync('/proc')) {
    const pid = Number(entry);
    if (!Number.isInteger(pid) || pid === process.pid) continue;
    const argv = cmdline(pid);
    const at = argv.indexOf(HOLDER_MARKER);
    if (at < 0) continue;
    const owner = Number(argv[at + 1]);
    if (Number.isInteger(owner) && !isAlive(owner)) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // gone
      }
    }
  }
  for (const subsystem of subsystems()) {
    let names: string[] = [];
    try {
      names = readdirSync(join(CGROUP_ROOT, subsystem)).filter((n) => n.startsWith(CGROUP_PREFIX));
    } catch {
      continue;
    }
    for (const name of names) {
      const owner = Number(name.slice(CGROUP_PREFIX.length));
      if (Number.isInteger(owner) && !isAlive(owner)) removeCgroupTree(join(CGROUP_ROOT, subsystem, name));
    }
  }
}

async function ip(args: readonly string[]): Promise<void> {
  await run('ip', [...args]);
}

/** Claims the first free slot by creating its veth pair, the peer inside the holder's network namespace. */
async function claimSlot(holderPid: number): Promise<number> {
  for (let slot = 1; slot <= MAX_SLOT; slot++) {
    try {
      await ip(['link', 'add', `${LINK_PREFIX}${slot}`, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', `/proc/${holderPid}/ns/net`]);
      return slot;
    } catch (err) {
      if (!/exists/i.test(String((err as { stderr?: string }).stderr ?? err))) throw err;
    }
  }
  throw new Error(`no free ground network slot (links ${LINK_PREFIX}1..${LINK_PREFIX}${MAX_SLOT} all exist)`);
}

/** The holder's PID as the machine sees it (unshare forks it as PID 1 of the new PID namespace). */
async function holderChild(unsharePid: number, holder: ServerProcess): Promise<number> {
  let child = 0;
  await waitFor(
    () => {
      try {
        const text = readFileSync(`/proc/${unsharePid}/task/${unsharePid}/children`, 'utf8').trim();
        child = Number(text.split(/\s+/)[0]);
      } catch {
        child = 0;
      }
      return Promise.resolve(child > 0 && cmdline(child).includes(HOLDER_MARKER));
    },
    { what: 'the ground namespace holder', process: holder, timeoutMs: 10_000, intervalMs: 50 },
  );
  return child;
}

/**
 * Creates the ground's namespaces and network. `init` is the pause binary (it reaps orphans as PID 1 and ignores
 * nothing but its own signals).
 */
export async function createGroundNetwork(options: { init: string; logsDir: string }): Promise<GroundNetwork> {
  sweepLeftovers();
  const holder = spawnServer({
    name: 'ground-holder',
    command: '/usr/bin/unshare',
    args: ['--fork', '--pid', '--mount-proc', '--net', '--mount', '--propagation', 'private', '--', options.init, HOLDER_MARKER, String(process.pid)],
    logsDir: options.logsDir,
  });
  const cgroupRoot = `/${CGROUP_PREFIX}${process.pid}`;
  const stop = async (): Promise<void> => {
    await holder.stop(2_000);
    // The kernel kills the namespace's processes asynchronously; their cgroups can go once they are gone (on a busy
    // machine that took over 30 s once: a full suite's teardown case found all ten hierarchies still there).
    await waitFor(
      () => {
        removeCgroups(process.pid);
        return Promise.resolve(subsystems().every((s) => !existsSync(join(CGROUP_ROOT, s, cgroupRoot))));
      },
      { what: 'the ground cgroups to be removed', timeoutMs: 45_000, intervalMs: 200 },
    ).catch(() => undefined);
  };
  try {
    const pid = await holderChild(holder.pid, holder);
    const enter = ['/usr/bin/nsenter', `--target=${pid}`, '--net', '--mount', '--pid', '--'];
    const inside = (args: readonly string[]): Promise<unknown> => run(enter[0]!, [...enter.slice(1), ...args]);
    // /run (containerd's shim sockets, /run/netns of the pods, xtables.lock), /var/log (kubelet's fixed
    // /var/log/pods) and /var/lib (the CNI library's result cache, /var/lib/cni) become the ground's own.
    await inside(['/usr/bin/mount', '-t', 'tmpfs', '-o', 'mode=755', 'ground-run', '/run']);
    await inside(['/usr/bin/mount', '-t', 'tmpfs', '-o', 'mode=755', 'ground-log', '/var/log']);
    await inside(['/usr/bin/mount', '-t', 'tmpfs', '-o', 'mode=755', 'ground-lib', '/var/lib']);
    await inside(['/usr/bin/mkdir', '-p', '/run/netns', '/var/log/pods', '/var/log/containers']);

    const slot = await claimSlot(pid);
    const hostAddress = `10.213.${slot}.1`;
    const nodeAddress = `10.213.${slot}.2`;
    const podCidr = `10.214.${slot}.0/24`;
    const serviceCidr = `10.215.${slot}.0/24`;
    const link = `${LINK_PREFIX}${slot}`;
    await ip(['addr', 'add', `${hostAddress}/30`, 'dev', link]);
    await ip(['link', 'set', link, 'up']);
    await inside(['/usr/sbin/ip', 'addr', 'add', `${nodeAddress}/30`, 'dev', 'eth0']);
    await inside(['/usr/sbin/ip', 'link', 'set', 'eth0', 'up']);
    await inside(['/usr/sbin/ip', 'link', 'set', 'lo', 'up']);
    // Per network namespace: forwarding between the veth and the pods' bridge, and bridged traffic through
    // iptables (kube-proxy's rules for a pod calling its own Service).
    await inside(['/usr/sbin/sysctl', '-q', '-w', 'net.ipv4.ip_forward=1', 'net.bridge.bridge-nf-call-iptables=1']);
    await ip(['route', 'add', podCidr, 'via', nodeAddress, 'dev', link]);
    await ip(['route', 'add', serviceCidr, 'via', nodeAddress, 'dev', link]);

    for (const subsystem of subsystems()) {
      try {
        mkdirSync(join(CGROUP_ROOT, subsystem, cgroupRoot));
      } catch {
        // a hierarchy that takes no new groups (named or read-only)
      }
    }
    return {
      slot,
      hostAddress,
      hostLink: link,
      nodeAddress,
      podCidr,
      serviceCidr,
      kubernetesServiceIp: `10.215.${slot}.1`,
      cgroupRoot,
      initPid: pid,
      enter,
      holder,
      stop,
    };
  } catch (err) {
    await stop();
    throw err;
  }
}
