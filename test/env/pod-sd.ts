import { readFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { z } from 'zod';
import { metaLabelName } from '../../src/prometheus/render.js';
import type { KubeGround } from './ground.js';
import { httpGet } from './processes.js';

/**
 * Prometheus' Kubernetes discovery for the ground, over HTTP: Debian builds Prometheus without `kubernetes_sd_configs`
 * but with `http_sd_configs`, so this small loopback server lists the ground apiserver's pods (GET /pods) and nodes
 * (GET /nodes) as HTTP discovery target groups carrying the meta labels kubernetes_sd gives (role pod and role node,
 * prometheus/discovery/kubernetes/pod.go and node.go). The shipped scrape configuration's relabelling then runs
 * unchanged on the ground: only its discovery block is swapped (see prometheus.ts).
 */

const Container = z.object({
  name: z.string(),
  image: z.string().optional(),
  ports: z.array(z.object({ name: z.string().optional(), containerPort: z.number(), protocol: z.string().optional() })).optional(),
});

const Pod = z.object({
  metadata: z.object({
    name: z.string(),
    namespace: z.string(),
    uid: z.string().optional(),
    labels: z.record(z.string(), z.string()).optional(),
    annotations: z.record(z.string(), z.string()).optional(),
    ownerReferences: z.array(z.object({ kind: z.string(), name: z.string(), controller: z.boolean().optional() })).optional(),
  }),
  spec: z.object({
    nodeName: z.string().optional(),
    containers: z.array(Container),
    initContainers: z.array(Container).optional(),
  }),
  status: z
    .object({
      phase: z.string().optional(),
      podIP: z.string().optional(),
      hostIP: z.string().optional(),
      conditions: z.array(z.object({ type: z.string(), status: z.string() })).optional(),
    })
    .optional(),
});
export type SdPod = z.infer<typeof Pod>;

const Node = z.object({
  metadata: z.object({
    name: z.string(),
    labels: z.record(z.string(), z.string()).optional(),
    annotations: z.record(z.string(), z.string()).optional(),
  }),
  status: z
    .object({
      addresses: z.array(z.object({ type: z.string(), address: z.string() })).optional(),
      daemonEndpoints: z.object({ kubeletEndpoint: z.object({ Port: z.number() }).optional() }).optional(),
    })
    .optional(),
});
export type SdNode = z.infer<typeof Node>;

/** One HTTP discovery target group (Prometheus' http_sd format). */
export interface TargetGroup {
  targets: string[];
  labels: Record<string, string>;
}

/** `__meta_kubernetes_<kind>_label_*` / `_labelpresent_*` (and the same for annotations) of an object's metadata. */
function metadataLabels(kind: 'pod' | 'node', meta: { labels?: Record<string, string> | undefined; annotations?: Record<string, string> | undefined }): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [field, map] of [['label', meta.labels], ['annotation', meta.annotations]] as const) {
    for (const [key, value] of Object.entries(map ?? {})) {
      const name = metaLabelName(key);
      out[`__meta_kubernetes_${kind}_${field}_${name}`] = value;
      out[`__meta_kubernetes_${kind}_${field}present_${name}`] = 'true';
    }
  }
  return out;
}

/** A host and port as Go's net.JoinHostPort writes them (IPv6 in brackets). */
const joinHostPort = (host: string, port: number): string => (host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`);

/**
 * The target groups kubernetes_sd (role pod) gives for one pod: one target per declared container port
 * (`podIP:port`), and one bare `podIP` target per container that declares none, init containers last (as in
 * Prometheus 2.4x; `__meta_kubernetes_pod_container_id` is left out). A pod without an IP yet gives none.
 */
export function podTargets(pod: SdPod): TargetGroup[] {
  const ip = pod.status?.podIP;
  if (ip === undefined || ip === '') return [];
  const controller = pod.metadata.ownerReferences?.find((o) => o.controller === true);
  const ready = pod.status?.conditions?.find((c) => c.type === 'Ready')?.status;
  const common: Record<string, string> = {
    __meta_kubernetes_namespace: pod.metadata.namespace,
    __meta_kubernetes_pod_name: pod.metadata.name,
    __meta_kubernetes_pod_ip: ip,
    __meta_kubernetes_pod_ready: (ready ?? 'unknown').toLowerCase(),
    __meta_kubernetes_pod_phase: pod.status?.phase ?? '',
    __meta_kubernetes_pod_node_name: pod.spec.nodeName ?? '',
    __meta_kubernetes_pod_host_ip: pod.status?.hostIP ?? '',
    __meta_kubernetes_pod_uid: pod.metadata.uid ?? '',
    ...(controller === undefined ? {} : { __meta_kubernetes_pod_controller_kind: controller.kind, __meta_kubernetes_pod_controller_name: controller.name }),
    ...metadataLabels('pod', pod.metadata),
  };
  const groups: TargetGroup[] = [];
  const containers = [...pod.spec.containers.map((c) => ({ c, init: false })), ...(pod.spec.initContainers ?? []).map((c) => ({ c, init: true }))];
  for (const { c, init } of containers) {
    const container = { __meta_kubernetes_pod_container_name: c.name, __meta_kubernetes_pod_container_image: c.image ?? '', __meta_kubernetes_pod_container_init: String(init) };
    const ports = c.ports ?? [];
    if (ports.length === 0) {
      groups.push({ targets: [ip], labels: { ...common, ...container } });
      continue;
    }
    for (const port of ports) {
      groups.push({
        targets: [joinHostPort(ip, port.containerPort)],
        labels: {
          ...common,
          ...container,
          __meta_kubernetes_pod_container_port_name: port.name ?? '',
          __meta_kubernetes_pod_container_port_number: String(port.containerPort),
          __meta_kubernetes_pod_container_port_protocol: port.protocol ?? 'TCP',
        },
      });
    }
  }
  return groups;
}

/** The target group kubernetes_sd (role node) gives for a node: its kubelet's address and port. */
export function nodeTargets(node: SdNode): TargetGroup[] {
  const addresses = node.status?.addresses ?? [];
  const address = (['InternalIP', 'InternalDNS', 'ExternalIP', 'ExternalDNS', 'Hostname'] as const)
    .map((t) => addresses.find((a) => a.type === t)?.address)
    .find((a) => a !== undefined);
  if (address === undefined) return [];
  const port = node.status?.daemonEndpoints?.kubeletEndpoint?.Port ?? 10250;
  const byType: Record<string, string> = {};
  for (const a of addresses) byType[`__meta_kubernetes_node_address_${a.type}`] ??= a.address;
  return [
    {
      targets: [joinHostPort(address, port)],
      labels: { __meta_kubernetes_node_name: node.metadata.name, ...byType, ...metadataLabels('node', node.metadata), instance: node.metadata.name },
    },
  ];
}

export interface PodDiscovery {
  /** http://127.0.0.1:PORT; `/pods` and `/nodes` answer target groups. */
  readonly url: string;
  close(): Promise<void>;
}

/**
 * Serves the discovery on loopback. `kube` is read at each request: before the apiserver is up (or in a ground
 * without it) both lists are empty.
 */
export async function startPodDiscovery(kube: () => KubeGround | undefined): Promise<PodDiscovery> {
  const list = async (path: '/pods' | '/nodes'): Promise<TargetGroup[]> => {
    const k = kube();
    if (k === undefined) return [];
    const res = await httpGet(`${k.server}/api/v1${path}`, { headers: { authorization: `Bearer ${k.adminToken}` }, ca: readFileSync(k.caFile) });
    if (res.status !== 200) throw new Error(`GET /api/v1${path}: ${res.status}`);
    const items = z.object({ items: z.array(z.unknown()) }).parse(JSON.parse(res.body)).items;
    if (path === '/pods') return items.flatMap((i) => podTargets(Pod.parse(i)));
    return items.flatMap((i) => nodeTargets(Node.parse(i)));
  };
  const server: Server = createServer((req, res) => {
    const path = req.url === '/pods' || req.url === '/nodes' ? req.url : undefined;
    if (path === undefined) {
      res.writeHead(404).end();
      return;
    }
    list(path).then(
      (groups) => res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(groups)),
      // Prometheus keeps the last good list when a refresh fails.
      (err: unknown) => res.writeHead(502, { 'content-type': 'text/plain' }).end(err instanceof Error ? err.message : String(err)),
    );
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}
