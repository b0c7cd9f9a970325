import { describe, expect, it } from 'vitest';
import { withApiDefaults } from '../../src/deploy/defaults.js';
import type { KubeObject } from '../../src/core/types.js';

// ---- fixtures ---------------------------------------------------------------------------------------------------

/** A pod spec whose containers of every list have ports with and without `protocol`. */
function podSpec(): Record<string, unknown> {
  return {
    initContainers: [{ name: 'migrate', image: 'migrate', ports: [{ containerPort: 9000 }] }],
    containers: [
      {
        name: 'app',
        image: 'web',
        ports: [{ name: 'http', containerPort: 8080 }, { containerPort: 8125, protocol: 'UDP' }, { containerPort: 9090, hostPort: 9090 }],
      },
      { name: 'sidecar', image: 'statsd:1.2' },
    ],
    ephemeralContainers: [{ name: 'debug', image: 'busybox:1.36', ports: [{ containerPort: 7000, protocol: null }] }],
  };
}

/** The same pod spec as the apiserver would default its port protocols. */
function defaultedPodSpec(): Record<string, unknown> {
  return {
    initContainers: [{ name: 'migrate', image: 'migrate', ports: [{ containerPort: 9000, protocol: 'TCP' }] }],
    containers: [
      {
        name: 'app',
        image: 'web',
        ports: [
          { name: 'http', containerPort: 8080, protocol: 'TCP' },
          { containerPort: 8125, protocol: 'UDP' },
          { containerPort: 9090, hostPort: 9090, protocol: 'TCP' },
        ],
      },
      { name: 'sidecar', image: 'statsd:1.2' },
    ],
    ephemeralContainers: [{ name: 'debug', image: 'busybox:1.36', ports: [{ containerPort: 7000, protocol: 'TCP' }] }],
  };
}

const template = (spec: Record<string, unknown>) => ({ metadata: { labels: { app: 'web' } }, spec });
const selector = { matchLabels: { app: 'web' } };

/** Every kind with a pod template, built around a pod spec. */
const POD_KINDS: Array<{ kind: string; apiVersion: string; build: (spec: Record<string, unknown>) => Record<string, unknown> }> = [
  { kind: 'Pod', apiVersion: 'v1', build: (spec) => ({ spec }) },
  { kind: 'Deployment', apiVersion: 'apps/v1', build: (spec) => ({ spec: { replicas: 2, selector, template: template(spec) } }) },
  { kind: 'StatefulSet', apiVersion: 'apps/v1', build: (spec) => ({ spec: { serviceName: 'web', selector, template: template(spec) } }) },
  { kind: 'DaemonSet', apiVersion: 'apps/v1', build: (spec) => ({ spec: { selector, template: template(spec) } }) },
  { kind: 'ReplicaSet', apiVersion: 'apps/v1', build: (spec) => ({ spec: { selector, template: template(spec) } }) },
  { kind: 'Job', apiVersion: 'batch/v1', build: (spec) => ({ spec: { backoffLimit: 2, template: template(spec) } }) },
  {
    kind: 'CronJob',
    apiVersion: 'batch/v1beta1',
    build: (spec) => ({ spec: { schedule: '*/5 * * * *', jobTemplate: { spec: { template: template(spec) } } } }),
  },
  { kind: 'ReplicationController', apiVersion: 'v1', build: (spec) => ({ spec: { replicas: 1, selector: { app: 'web' }, template: template(spec) } }) },
  { kind: 'PodTemplate', apiVersion: 'v1', build: (spec) => ({ template: template(spec) }) },
];

function object(apiVersion: string, kind: string, body: Record<string, unknown>): KubeObject {
  return { apiVersion, kind, metadata: { name: 'web', namespace: 'team' }, ...body };
}

function service(ports: unknown): KubeObject {
  return object('v1', 'Service', { spec: { selector: { app: 'web' }, ports } });
}

// ---- tests ------------------------------------------------------------------------------------------------------

describe('withApiDefaults: container ports', () => {
  it.each(POD_KINDS)('$apiVersion $kind: every port without protocol gets TCP, in every container list', ({ kind, apiVersion, build }) => {
    const input = object(apiVersion, kind, build(podSpec()));
    const before = structuredClone(input);

    const [out] = withApiDefaults([input]);

    expect(out).toEqual(object(apiVersion, kind, build(defaultedPodSpec())));
    // Only what is sent changes: the parsed manifest is left as the repository has it.
    expect(input).toEqual(before);
  });

  it.each(POD_KINDS)('$apiVersion $kind whose ports all name a protocol is returned as it is', ({ kind, apiVersion, build }) => {
    const input = object(apiVersion, kind, build(defaultedPodSpec()));
    const [out] = withApiDefaults([input]);
    expect(out).toBe(input);
  });

  it('a workload kind of another API group (a custom resource) is not touched', () => {
    const input = object('example.com/v1', 'Deployment', { spec: { template: template(podSpec()) } });
    expect(withApiDefaults([input])[0]).toBe(input);
  });

  it('malformed pod specs are left for the apiserver to refuse', () => {
    const inputs = [
      object('apps/v1', 'Deployment', { spec: { template: { spec: 'none' } } }),
      object('apps/v1', 'Deployment', { spec: { template: { spec: { containers: 'app' } } } }),
      object('v1', 'Pod', { spec: { containers: ['app', { name: 'x', ports: 'http' }, { name: 'y', ports: [8080, null] }] } }),
      object('batch/v1beta1', 'CronJob', { spec: { jobTemplate: null } }),
    ];
    const out = withApiDefaults(inputs);
    out.forEach((o, i) => expect(o).toBe(inputs[i]));
  });
});

describe('withApiDefaults: Service ports', () => {
  it('fills protocol TCP where it is missing or empty, keeps UDP and SCTP and every other field', () => {
    const input = service([
      { name: 'http', port: 80, targetPort: 8080 },
      { name: 'dns', port: 53, protocol: 'UDP' },
      { name: 'sctp', port: 9, protocol: 'SCTP' },
      { name: 'grpc', port: 5050, targetPort: 'grpc', protocol: null, appProtocol: 'grpc' },
    ]);
    const before = structuredClone(input);

    const [out] = withApiDefaults([input]);

    expect(out).toEqual(
      service([
        { name: 'http', port: 80, targetPort: 8080, protocol: 'TCP' },
        { name: 'dns', port: 53, protocol: 'UDP' },
        { name: 'sctp', port: 9, protocol: 'SCTP' },
        { name: 'grpc', port: 5050, targetPort: 'grpc', protocol: 'TCP', appProtocol: 'grpc' },
      ]),
    );
    expect(input).toEqual(before);
  });

  it('a Service without ports (headless, ExternalName) or with protocols given is returned as it is', () => {
    const inputs = [
      object('v1', 'Service', { spec: { clusterIP: 'None', selector: { app: 'web' } } }),
      object('v1', 'Service', { spec: { type: 'ExternalName', externalName: 'db.example.com' } }),
      service([{ port: 80, protocol: 'TCP' }]),
      object('v1', 'Service', { spec: null }),
      service('80'),
    ];
    const out = withApiDefaults(inputs);
    out.forEach((o, i) => expect(o).toBe(inputs[i]));
  });

  it('a Service of another API group (Knative serving) is not a core Service', () => {
    const input = object('serving.knative.dev/v1', 'Service', { spec: { ports: [{ port: 80 }] } });
    expect(withApiDefaults([input])[0]).toBe(input);
  });
});

describe('withApiDefaults: other objects', () => {
  it.each([
    // Key fields that are required (kubectl fails too) or that the API does not default: not filled.
    object('apps/v1', 'Deployment', { spec: { selector, template: template({ containers: [{ name: 'a', image: 'x', env: [{ value: 'v' }] }] }) } }),
    object('apps/v1', 'Deployment', { spec: { selector, template: template({ containers: [{ name: 'a', image: 'x' }], hostAliases: [{ hostnames: ['db'] }] }) } }),
    object('v1', 'ServiceAccount', { secrets: [{}] }),
    // Atomic lists: the apiserver defaults their protocol, but server-side apply does not merge them by it.
    object('v1', 'Endpoints', { subsets: [{ addresses: [{ ip: '10.0.0.1' }], ports: [{ port: 80 }] }] }),
    object('discovery.k8s.io/v1beta1', 'EndpointSlice', { addressType: 'IPv4', endpoints: [], ports: [{ port: 80 }] }),
    object('networking.k8s.io/v1', 'NetworkPolicy', { spec: { podSelector: {}, ingress: [{ ports: [{ port: 80 }] }] } }),
    object('v1', 'ConfigMap', { data: { ports: '80' } }),
  ])('$apiVersion $kind is returned as it is', (input) => {
    expect(withApiDefaults([input])[0]).toBe(input);
  });

  it('keeps the order and the unchanged objects of a mixed list', () => {
    const config = object('v1', 'ConfigMap', { data: { a: 'b' } });
    const svc = service([{ port: 80 }]);
    const out = withApiDefaults([config, svc, config]);
    expect(out).toHaveLength(3);
    expect(out[0]).toBe(config);
    expect(out[2]).toBe(config);
    expect(out[1]).not.toBe(svc);
    expect(out[1]).toEqual(service([{ port: 80, protocol: 'TCP' }]));
  });
});
