import { join } from 'node:path';
import type { Started } from './global-setup.js';
import type { Ground } from './ground.js';
import type { PartName } from './parts.js';

/**
 * Starts the parts of a test ground under `base` (logs in `logsDir`): every part on free loopback ports, in
 * parallel. The `node` part first creates the ground's namespaces (the apiserver advertises an address of them),
 * and starts last, on the apiserver and the registry. Used by the global setup of a test run and by `npm run demo`.
 * When a part fails to start, what did start is stopped and the failures are thrown together.
 */
export async function startGround(options: { base: string; logsDir: string; parts: readonly PartName[] }): Promise<Started<Ground>> {
  const { base, logsDir, parts: wanted } = options;
  const stops: Array<() => Promise<void>> = [];
  const stopAll = async (): Promise<void> => {
    await Promise.all(stops.map((s) => s().catch(() => undefined)));
  };
  const ground: Ground = { logsDir };
  const withNode = wanted.includes('node');
  if (withNode && !(wanted.includes('kube') && wanted.includes('registry'))) {
    throw new Error('test ground part "node" needs the parts "kube" and "registry" (TESTGROUND_PARTS)');
  }
  // The node's namespaces and network exist before the apiserver starts: it advertises an address of them.
  const network = withNode
    ? await (async () => {
        const { createGroundNetwork } = await import('./ground-net.js');
        const { programPath } = await import('./node-images.js');
        return createGroundNetwork({ init: programPath('pause'), logsDir });
      })()
    : undefined;

  /** A started part: stopped with the ground, its info in the ground. */
  const keep = <T>(part: Started<T>, put: (info: T) => void): void => {
    stops.push(() => part.stop());
    put(part.info);
  };
  // Parts are imported only when started, so a focused run loads only what it needs.
  const starters: Record<PartName, () => Promise<void>> = {
    kube: async () => {
      const { startKube } = await import('./kube-plane.js');
      const address = network === undefined ? undefined : { advertiseAddress: network.hostAddress, serviceCidr: network.serviceCidr };
      keep(await startKube(join(base, 'kube'), logsDir, address), (info) => (ground.kube = info));
    },
    registry: async () => {
      const { startRegistries } = await import('./registry-server.js');
      keep(await startRegistries(join(base, 'registry'), logsDir), (info) => (ground.registry = info));
    },
    git: async () => {
      const { startGitServer } = await import('./git-server.js');
      keep(await startGitServer(join(base, 'git'), logsDir), (info) => (ground.git = info));
    },
    svn: async () => {
      const { startSvnServer } = await import('./svn-server.js');
      keep(await startSvnServer(join(base, 'svn'), logsDir), (info) => (ground.svn = info));
    },
    prometheus: async () => {
      const { startPrometheus } = await import('./prometheus.js');
      // Its discovery and cAdvisor job read the apiserver: it starts once the kube part is up (a second or two more).
      if (wanted.includes('kube')) await kubeUp?.catch(() => undefined);
      keep(await startPrometheus(join(base, 'prometheus'), logsDir, ground.kube), (info) => (ground.prometheus = info));
    },
    node: async () => {
      if (network === undefined || ground.kube === undefined || ground.registry === undefined) return;
      const { startForwarders } = await import('./forwarders.js');
      const { startNode } = await import('./node.js');
      const forwarders = startForwarders(network.hostAddress);
      // The network itself is stopped by its own entry in `stops` (it kills whatever the node left running).
      const nodeStops: Array<() => Promise<void>> = [() => forwarders.close()];
      stops.push(async () => {
        for (const s of nodeStops) await s().catch(() => undefined);
      });
      const ports = [ground.kube.server, `http://${ground.registry.anonymous}`, ground.git?.baseUrl]
        .filter((u): u is string => u !== undefined)
        .map((u) => Number(new URL(u).port));
      for (const port of ports) await forwarders.add(port);
      const s = await startNode({ dir: join(base, 'node'), logsDir, network, kube: ground.kube, registryHost: ground.registry.anonymous });
      nodeStops.unshift(() => s.stop());
      ground.node = s.info;
    },
  };

  const first = wanted.filter((p) => p !== 'node' && p !== 'prometheus');
  const started = first.map((p) => starters[p]());
  const kubeUp = wanted.includes('kube') ? started[first.indexOf('kube')] : undefined;
  if (wanted.includes('prometheus')) started.push(starters.prometheus());
  const results: PromiseSettledResult<void>[] = await Promise.allSettled(started);
  if (network !== undefined) {
    stops.push(() => network.stop());
    if (!results.some((r) => r.status === 'rejected')) results.push(...(await Promise.allSettled([starters.node()])));
  }
  const failed = results.filter((r): r is PromiseRejectedResult => r.status === 'rejected');
  if (failed.length > 0) {
    await stopAll();
    throw new AggregateError(
      failed.map((f) => f.reason as Error),
      `test ground failed to start (logs in ${logsDir})`,
    );
  }
  return { info: ground, stop: stopAll };
}
