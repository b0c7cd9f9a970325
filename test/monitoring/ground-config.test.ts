import { dump, load } from 'js-yaml';
import { afterAll, describe, expect, it } from 'vitest';
import { RULES_FILE, renderFiles } from '../../src/prometheus/render.js';
import { podTargets, nodeTargets, type SdPod } from '../env/pod-sd.js';
import { GROUND_MONITORING, groundPrometheusConfig, SYNTHETIC_CADVISOR_JOB } from '../env/prometheus.js';
import { folderWith, PROMTOOL, tool } from './tools.js';

/**
 * The ground's Prometheus runs the shipped configuration with only its discovery swapped (Debian's build has no
 * kubernetes_sd): these check the swap, and that the HTTP discovery gives a pod the meta labels kubernetes_sd gives.
 * test/monitoring/loop.test.ts proves on real pods that the relabelled target labels come out as in a cluster.
 */

const cleanups: Array<() => void> = [];
afterAll(() => {
  for (const c of cleanups) c();
});

const SCRAPE = {
  discoveryUrl: 'http://127.0.0.1:1234',
  targetsDir: '/tmp/targets',
  alertmanager: '127.0.0.1:9093',
  apiserver: { hostPort: '127.0.0.1:6443', caFile: '/tmp/ca.crt', tokenFile: '/tmp/token' },
};

type Job = Record<string, unknown> & { job_name: string };

describe("the ground's Prometheus configuration", () => {
  const ground = groundPrometheusConfig(GROUND_MONITORING, SCRAPE) as { scrape_configs: Job[] } & Record<string, unknown>;
  const shipped = load(renderFiles(GROUND_MONITORING)['prometheus.yml'] ?? '') as { scrape_configs: Job[] } & Record<string, unknown>;
  const job = (c: { scrape_configs: Job[] }, name: string): Job | undefined => c.scrape_configs.find((j) => j.job_name === name);

  it('keeps every shipped job and relabelling; only discovery, the apiserver credentials and addresses differ', () => {
    const pods = job(ground, GROUND_MONITORING.job);
    const shippedPods = job(shipped, GROUND_MONITORING.job);
    expect(pods?.['relabel_configs']).toEqual(shippedPods?.['relabel_configs']);
    expect(pods?.['kubernetes_sd_configs']).toBeUndefined();
    expect(pods?.['http_sd_configs']).toEqual([{ url: 'http://127.0.0.1:1234/pods', refresh_interval: '1s' }]);
    expect(pods?.['file_sd_configs']).toEqual([{ files: ['/tmp/targets/pods-*.json'], refresh_interval: '1s' }]);

    const cadvisor = job(ground, 'kubernetes-cadvisor');
    const shippedCadvisor = job(shipped, 'kubernetes-cadvisor');
    expect(cadvisor).toMatchObject({
      scheme: 'https',
      http_sd_configs: [{ url: 'http://127.0.0.1:1234/nodes', refresh_interval: '1s' }],
      tls_config: { ca_file: '/tmp/ca.crt' },
      authorization: { credentials_file: '/tmp/token' },
      metric_relabel_configs: shippedCadvisor?.['metric_relabel_configs'],
      relabel_configs: [{ target_label: '__address__', replacement: '127.0.0.1:6443' }, (shippedCadvisor?.['relabel_configs'] as unknown[])[1]],
    });
    expect(ground.scrape_configs.map((j) => j.job_name)).toEqual([...shipped.scrape_configs.map((j) => j.job_name), SYNTHETIC_CADVISOR_JOB]);
    expect(ground['rule_files']).toEqual(shipped['rule_files']);
    expect(ground['alerting']).toEqual({ alertmanagers: [{ static_configs: [{ targets: ['127.0.0.1:9093'] }] }] });
  });

  it('passes promtool check config (http_sd_configs is in Debian’s build)', async () => {
    const f = folderWith({ 'prometheus.yml': dump(ground), [RULES_FILE]: renderFiles(GROUND_MONITORING)[RULES_FILE] ?? '' });
    cleanups.push(f.remove);
    const checked = await tool(PROMTOOL, ['check', 'config', '--syntax-only', 'prometheus.yml'], f.dir);
    expect(checked.output).not.toContain('FAILED');
    expect(checked.code).toBe(0);
  });

  it('without an apiserver there is no cAdvisor job, and the pods job still reads the test targets', () => {
    const bare = groundPrometheusConfig(GROUND_MONITORING, { ...SCRAPE, apiserver: undefined }) as { scrape_configs: Job[] };
    expect(bare.scrape_configs.map((j) => j.job_name)).toEqual([GROUND_MONITORING.job, SYNTHETIC_CADVISOR_JOB]);
  });
});

describe('the HTTP discovery standing in for kubernetes_sd', () => {
  const pod: SdPod = {
    metadata: {
      name: 'shop-7d9f-abcde',
      namespace: 'apps',
      uid: 'u-1',
      labels: { app: 'shop', track: 'canary', 'deployer.internal/service': 'shop', 'app.kubernetes.io/version': 'main-1234567' },
      annotations: { 'prometheus.io/port': '8080' },
      ownerReferences: [{ kind: 'ReplicaSet', name: 'shop-7d9f', controller: true }],
    },
    spec: {
      nodeName: 'ground-node',
      containers: [
        { name: 'app', image: 'r/shop:main', ports: [{ containerPort: 8080, protocol: 'TCP' }, { name: 'metrics', containerPort: 9090 }] },
        { name: 'sidecar', image: 'r/side:1' },
      ],
      initContainers: [{ name: 'init', image: 'r/init:1' }],
    },
    status: { phase: 'Running', podIP: '10.0.0.7', hostIP: '10.0.1.1', conditions: [{ type: 'Ready', status: 'True' }] },
  };

  it("gives a pod one target per container port and one per container without ports, with kubernetes_sd's meta labels", () => {
    const groups = podTargets(pod);
    expect(groups.map((g) => g.targets)).toEqual([['10.0.0.7:8080'], ['10.0.0.7:9090'], ['10.0.0.7'], ['10.0.0.7']]);
    expect(groups[0]?.labels).toEqual({
      __meta_kubernetes_namespace: 'apps',
      __meta_kubernetes_pod_name: 'shop-7d9f-abcde',
      __meta_kubernetes_pod_ip: '10.0.0.7',
      __meta_kubernetes_pod_ready: 'true',
      __meta_kubernetes_pod_phase: 'Running',
      __meta_kubernetes_pod_node_name: 'ground-node',
      __meta_kubernetes_pod_host_ip: '10.0.1.1',
      __meta_kubernetes_pod_uid: 'u-1',
      __meta_kubernetes_pod_controller_kind: 'ReplicaSet',
      __meta_kubernetes_pod_controller_name: 'shop-7d9f',
      __meta_kubernetes_pod_label_app: 'shop',
      __meta_kubernetes_pod_labelpresent_app: 'true',
      __meta_kubernetes_pod_label_track: 'canary',
      __meta_kubernetes_pod_labelpresent_track: 'true',
      __meta_kubernetes_pod_label_deployer_internal_service: 'shop',
      __meta_kubernetes_pod_labelpresent_deployer_internal_service: 'true',
      __meta_kubernetes_pod_label_app_kubernetes_io_version: 'main-1234567',
      __meta_kubernetes_pod_labelpresent_app_kubernetes_io_version: 'true',
      __meta_kubernetes_pod_annotation_prometheus_io_port: '8080',
      __meta_kubernetes_pod_annotationpresent_prometheus_io_port: 'true',
      __meta_kubernetes_pod_container_name: 'app',
      __meta_kubernetes_pod_container_image: 'r/shop:main',
      __meta_kubernetes_pod_container_init: 'false',
      __meta_kubernetes_pod_container_port_name: '',
      __meta_kubernetes_pod_container_port_number: '8080',
      __meta_kubernetes_pod_container_port_protocol: 'TCP',
    });
    expect(groups[1]?.labels).toMatchObject({ __meta_kubernetes_pod_container_port_name: 'metrics', __meta_kubernetes_pod_container_port_number: '9090' });
    expect(groups[2]?.labels).toMatchObject({ __meta_kubernetes_pod_container_name: 'sidecar' });
    expect(groups[2]?.labels['__meta_kubernetes_pod_container_port_number']).toBeUndefined();
    expect(groups[3]?.labels).toMatchObject({ __meta_kubernetes_pod_container_name: 'init', __meta_kubernetes_pod_container_init: 'true' });
  });

  it('gives a pod without an IP no target', () => {
    expect(podTargets({ ...pod, status: { phase: 'Pending' } })).toEqual([]);
  });

  it("gives a node its kubelet's address, named by the node", () => {
    const groups = nodeTargets({
      metadata: { name: 'ground-node', labels: { 'kubernetes.io/os': 'linux' } },
      status: { addresses: [{ type: 'Hostname', address: 'ground-node' }, { type: 'InternalIP', address: '10.0.1.2' }], daemonEndpoints: { kubeletEndpoint: { Port: 10250 } } },
    });
    expect(groups).toEqual([
      {
        targets: ['10.0.1.2:10250'],
        labels: {
          __meta_kubernetes_node_name: 'ground-node',
          __meta_kubernetes_node_address_Hostname: 'ground-node',
          __meta_kubernetes_node_address_InternalIP: '10.0.1.2',
          __meta_kubernetes_node_label_kubernetes_io_os: 'linux',
          __meta_kubernetes_node_labelpresent_kubernetes_io_os: 'true',
          instance: 'ground-node',
        },
      },
    ]);
  });
});
