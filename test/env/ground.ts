import { inject } from 'vitest';
import type { AlertmanagerGround } from './alertmanager.js';
import type { PartName } from './parts.js';

/**
 * What the test ground's parts tell the tests: plain JSON (vitest passes it from the global setup to the
 * workers). Every address is on loopback, except those of the node's ground network. Each part is started by `test/env/global-setup.ts` unless
 * `TESTGROUND_PARTS` (comma-separated part names) leaves it out, for a quicker focused run.
 */
export interface KubeGround {
  /** https://127.0.0.1:PORT */
  server: string;
  /** A kubeconfig file for a cluster-admin user. */
  adminKubeconfig: string;
  adminToken: string;
  /** The apiserver's serving CA (PEM file). */
  caFile: string;
  /** Directory the part uses for its state and logs. */
  dir: string;
}

export interface RegistryGround {
  /** host:port of a registry without authentication. */
  anonymous: string;
  /** host:port of a registry with htpasswd basic auth. */
  basic: { host: string; username: string; password: string };
  /** host:port of a registry that uses the bearer token flow, with the token server's credentials. */
  bearer: { host: string; username: string; password: string; realm: string };
}

export interface GitGround {
  /** http://127.0.0.1:PORT/ — repositories are served below it as NAME.git, smart HTTP, basic auth. */
  baseUrl: string;
  username: string;
  password: string;
  /** Directory holding the served bare repositories (NAME.git); fixtures create repositories here. */
  root: string;
}

export interface SvnGround {
  /** svn://127.0.0.1:PORT/ — repositories below it by name (svnserve, user/password). */
  baseUrl: string;
  username: string;
  password: string;
  /** Directory holding the repositories (svnadmin create ROOT/NAME); fixtures create them here. */
  root: string;
}

/**
 * The node (`node` part): containerd, kubelet, kube-proxy and kube-scheduler; pods really run. Its scheduler has a
 * name of its own: pods that should run name it (the others stay Pending, for the tests that drive status by hand).
 * Pod IPs and ClusterIPs answer from the test process; pods reach the ground's servers on `hostAddress` (the
 * apiserver through the `kubernetes` Service, the registry and git at hostAddress:THEIR_LOOPBACK_PORT).
 */
export interface NodeGround {
  name: string;
  /** The machine's end of the ground network: servers for pods are forwarded here from loopback. */
  hostAddress: string;
  /** The name of that end (a veth link on the machine, gone with the ground's network namespace). */
  hostLink: string;
  nodeAddress: string;
  podCidr: string;
  serviceCidr: string;
  /** The scheduler that places pods on the node: pods that should run name it in `spec.schedulerName`. */
  schedulerName: string;
  /** The sandbox image (in the anonymous registry). */
  pauseImage: string;
  /** REGISTRY/ground/sample, tag v1 pushed; push more with test/env/node-images.ts. */
  sampleRepository: string;
  /** PID 1 of the ground's PID namespace (as the machine sees it). */
  initPid: number;
  /** The cgroup under which the node's pods run, e.g. /deployer-ground-1234. */
  cgroupRoot: string;
  /** The node's state directory (containerd, kubelet). */
  runDir: string;
}

/**
 * Prometheus and Alertmanager (`prometheus` part), configured from the shipped rendering with short windows: every
 * second Prometheus scrapes the node's pods (found through `discoveryUrl`, test/env/pod-sd.ts), cAdvisor through the
 * apiserver, and the targets the tests list in `targetsDir`; its alerts go to `alertmanager`, which a test points at
 * its deployer (test/env/alertmanager.ts routeAlertsTo).
 */
export interface PrometheusGround {
  /** http://127.0.0.1:PORT */
  url: string;
  /** File discovery: `pods-*.json` for the pods job (entries carry a pod's meta labels), `cadvisor-*.json` for stand-in cAdvisor targets. */
  targetsDir: string;
  /** The HTTP service discovery standing in for kubernetes_sd: `/pods` and `/nodes` of the ground's apiserver. */
  discoveryUrl: string;
  alertmanager: AlertmanagerGround;
}

export interface Ground {
  kube?: KubeGround;
  registry?: RegistryGround;
  git?: GitGround;
  svn?: SvnGround;
  node?: NodeGround;
  prometheus?: PrometheusGround;
  /** Where every part writes its server logs. */
  logsDir: string;
}

export type { PartName } from './parts.js';

declare module 'vitest' {
  export interface ProvidedContext {
    ground: Ground;
  }
}

/** The started part `name` of the test ground; throws when it was not started (see TESTGROUND_PARTS). */
export function ground<K extends PartName>(name: K): NonNullable<Ground[K]> {
  const part = inject('ground')[name];
  if (part === undefined) {
    throw new Error(`test ground part "${name}" is not running (TESTGROUND_PARTS=${process.env['TESTGROUND_PARTS']})`);
  }
  return part;
}
