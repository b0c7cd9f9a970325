import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parseManifests } from '../../src/deploy/manifests.js';
import { isUntagged, parseImageRef } from '../../src/registry/image-ref.js';
import { find, filesBelow, KUBERNETES_DIR, manifestsIn, ROOT, shippedConfig } from './helpers.js';

/** The manifests as the deployer reads them from its own repository (manifestsDir of its service entry). */
function deployedFiles(manifestsDir: string, skip: readonly string[] = []) {
  const files = filesBelow(KUBERNETES_DIR)
    .filter((path) => !skip.includes(path))
    .map((path) => ({ path, content: readFileSync(join(ROOT, path)) }));
  return parseManifests(files, manifestsDir);
}

interface Container {
  name: string;
  image: string;
  ports?: Array<{ name?: string; containerPort: number; protocol?: string }>;
  readinessProbe?: { httpGet?: { path: string; port: string | number } };
  livenessProbe?: { httpGet?: { path: string; port: string | number } };
  lifecycle?: { preStop?: { exec?: { command: string[] } } };
  resources?: { requests?: Record<string, string>; limits?: Record<string, string> };
  securityContext?: { readOnlyRootFilesystem?: boolean; allowPrivilegeEscalation?: boolean; capabilities?: { drop?: string[] } };
  volumeMounts?: Array<{ name: string; mountPath: string; readOnly?: boolean }>;
  env?: Array<{ name: string; value?: string; valueFrom?: unknown }>;
}

interface PodSpec {
  serviceAccountName?: string;
  terminationGracePeriodSeconds?: number;
  securityContext?: { runAsNonRoot?: boolean; runAsUser?: number };
  containers: Container[];
  volumes: Array<{ name: string; emptyDir?: unknown; configMap?: { name: string }; secret?: { secretName: string } }>;
}

interface Deployment {
  metadata: { name: string };
  spec: {
    replicas: number;
    selector: { matchLabels: Record<string, string> };
    strategy: { type: string; rollingUpdate: { maxUnavailable: number; maxSurge: number } };
    template: { metadata: { labels: Record<string, string> }; spec: PodSpec };
  };
}

/** Every `ports` list anywhere in an object. */
function portsIn(value: unknown): Array<Record<string, unknown>> {
  if (Array.isArray(value)) return value.flatMap(portsIn);
  if (typeof value !== 'object' || value === null) return [];
  const out: Array<Record<string, unknown>> = [];
  for (const [key, v] of Object.entries(value)) {
    if (key === 'ports' && Array.isArray(v)) out.push(...(v as Array<Record<string, unknown>>));
    else out.push(...portsIn(v));
  }
  return out;
}

describe("the deployer's own manifests (kubernetes/)", () => {
  const app = manifestsIn('app');
  const deployment = find(app, 'Deployment', 'deployer') as unknown as Deployment;
  const pod = deployment.spec.template.spec;
  const container = pod.containers[0] as Container;
  const config = shippedConfig();

  it('the deployer reads kubernetes/app as its own service: the example Secret and the RBAC objects are not in it', () => {
    const self = config.services['deployer'];
    expect(self?.manifestsDir).toBe('kubernetes/app');
    const objects = deployedFiles('kubernetes/app').map((m) => `${m.object.kind}/${m.object.metadata.name}`);
    expect(objects.sort()).toEqual([
      'ConfigMap/deployer-config',
      'Deployment/deployer',
      'PodDisruptionBudget/deployer',
      'Service/deployer',
    ]);
    // The default manifestsDir would read everything below kubernetes/: the installation's kustomization (refused,
    // it is no object) and the example Secret: the reason the deployer's own service names kubernetes/app.
    expect(() => deployedFiles('kubernetes')).toThrow('kubernetes/kustomization.yaml');
    expect(deployedFiles('kubernetes', ['kubernetes/kustomization.yaml']).map((m) => m.object.kind)).toContain('Secret');
  });

  it('no object of kubernetes/app names a namespace: the deployer puts them into its service namespace', () => {
    expect(app.filter((o) => o.metadata.namespace !== undefined)).toEqual([]);
  });

  it('the image has no tag and no digest: the deployer fills in the version', () => {
    expect(container.image).toBe('registry.example.com/deployer');
    expect(isUntagged(parseImageRef(container.image))).toBe(true);
    // The registry of the image has credentials in the shipped config.
    expect(Object.keys(config.registries)).toContain(parseImageRef(container.image).registry);
  });

  it('three replicas, rolling update that never goes below them', () => {
    expect(deployment.spec.replicas).toBe(3);
    expect(deployment.spec.strategy).toEqual({ type: 'RollingUpdate', rollingUpdate: { maxUnavailable: 0, maxSurge: 1 } });
    expect(deployment.spec.template.metadata.labels).toMatchObject(deployment.spec.selector.matchLabels);
  });

  it('probes /healthz (liveness) and /readyz (readiness) on the port the config listens on', () => {
    expect(container.livenessProbe?.httpGet).toEqual({ path: '/healthz', port: 'http' });
    expect(container.readinessProbe?.httpGet).toEqual({ path: '/readyz', port: 'http' });
    expect(container.ports).toEqual([{ name: 'http', containerPort: config.listen.port, protocol: 'TCP' }]);
  });

  it('requests and limits for cpu and memory', () => {
    expect(Object.keys(container.resources?.requests ?? {}).sort()).toEqual(['cpu', 'memory']);
    expect(Object.keys(container.resources?.limits ?? {}).sort()).toEqual(['cpu', 'memory']);
  });

  it('runs as non-root on a read-only root file system, with emptyDirs for the cache and /tmp', () => {
    expect(pod.securityContext?.runAsNonRoot).toBe(true);
    expect(pod.securityContext?.runAsUser).toBeGreaterThan(0);
    expect(container.securityContext).toMatchObject({
      readOnlyRootFilesystem: true,
      allowPrivilegeEscalation: false,
      capabilities: { drop: ['ALL'] },
    });
    const mountOf = (path: string) => container.volumeMounts?.find((m) => m.mountPath === path);
    for (const path of [config.cache.dir, '/tmp']) {
      const volume = pod.volumes.find((v) => v.name === mountOf(path)?.name);
      expect(volume?.emptyDir, path).toBeDefined();
    }
    expect(config.cache.dir).toBe('/var/cache/deployer');
  });

  it('the pod is given longer to stop than the preStop pause plus the deployer’s own shutdown grace', () => {
    const preStop = container.lifecycle?.preStop?.exec?.command ?? [];
    expect(preStop[0]).toBe('sleep');
    const pause = Number(preStop[1]);
    expect(pod.terminationGracePeriodSeconds).toBeGreaterThan(pause + config.shutdownGraceSeconds);
  });

  it('the config comes from the ConfigMap, the secrets it names from the mounted Secret of the example', () => {
    const env = Object.fromEntries((container.env ?? []).map((e) => [e.name, e.value]));
    const configMount = container.volumeMounts?.find((m) => env['DEPLOYER_CONFIG']?.startsWith(`${m.mountPath}/`) === true);
    expect(pod.volumes.find((v) => v.name === configMount?.name)?.configMap?.name).toBe('deployer-config');

    const secretMount = container.volumeMounts?.find((m) => pod.volumes.find((v) => v.name === m.name)?.secret !== undefined);
    const example = find(manifestsIn('examples'), 'Secret', 'deployer-secrets') as unknown as { stringData: Record<string, string> };
    expect(pod.volumes.find((v) => v.name === secretMount?.name)?.secret?.secretName).toBe('deployer-secrets');
    // Every { file: ... } of the shipped config is a key of the example Secret under its mount.
    const files = [...JSON.stringify(config).matchAll(/"file":"([^"]+)"/g)].map((m) => m[1] ?? '');
    expect(files.length).toBeGreaterThan(0);
    for (const file of files) {
      expect(file.startsWith(`${secretMount?.mountPath}/`), file).toBe(true);
      expect(Object.keys(example.stringData), file).toContain(file.slice(`${secretMount?.mountPath ?? ''}/`.length));
    }
    // Secrets are never inline in the shipped config.
    expect(JSON.stringify(config)).not.toContain('"value"');
  });

  it('the Service and the PodDisruptionBudget select the Deployment’s pods; the Service targets the named port', () => {
    const labels = deployment.spec.template.metadata.labels;
    const service = find(app, 'Service', 'deployer') as unknown as { spec: { selector: Record<string, string>; ports: Array<{ targetPort: string }> } };
    const pdb = find(app, 'PodDisruptionBudget', 'deployer') as unknown as { spec: { selector: { matchLabels: Record<string, string> } } };
    expect(labels).toMatchObject(service.spec.selector);
    expect(labels).toMatchObject(pdb.spec.selector.matchLabels);
    expect(service.spec.ports.map((p) => p.targetPort)).toEqual(['http']);
  });

  it('every port of every manifest says protocol: TCP (server-side apply on Kubernetes 1.20 needs it)', () => {
    const ports = manifestsIn('').flatMap(portsIn);
    expect(ports.length).toBeGreaterThanOrEqual(2);
    for (const port of ports) expect(port['protocol'], JSON.stringify(port)).toBe('TCP');
  });

  it('the deploy locks (Leases) live in the namespace whose Role allows them: the deployer’s own', () => {
    const rbac = manifestsIn('rbac');
    const withLeases = rbac.filter(
      (o) => o.kind === 'Role' && JSON.stringify((o as unknown as { rules: unknown }).rules).includes('"leases"'),
    );
    expect(withLeases.map((o) => o.metadata.namespace)).toEqual([config.kubernetes.leaseNamespace]);
    expect(config.kubernetes.leaseNamespace).toBe(config.services['deployer']?.namespace);
    expect(find(rbac, 'ServiceAccount').metadata.namespace).toBe(config.kubernetes.leaseNamespace);
    // The lock holder's name is the pod's.
    expect(container.env).toContainEqual({ name: 'POD_NAME', valueFrom: { fieldRef: { fieldPath: 'metadata.name' } } });
  });

  it('the Roles grant no wildcard, nothing on secrets, and nothing cluster-wide', () => {
    const rbac = manifestsIn('rbac');
    expect(rbac.filter((o) => o.kind.startsWith('Cluster'))).toEqual([]);
    const rules = rbac
      .filter((o) => o.kind === 'Role')
      .flatMap((o) => (o as unknown as { rules: Array<{ apiGroups: string[]; resources: string[]; verbs: string[] }> }).rules);
    const everything = JSON.stringify(rules);
    expect(everything).not.toContain('*');
    expect(everything).not.toContain('secrets');
    expect(rules.flatMap((r) => r.verbs).every((v) => ['get', 'create', 'patch', 'update', 'list', 'delete'].includes(v))).toBe(true);
    // The bindings name the ServiceAccount the Deployment runs as.
    const account = find(rbac, 'ServiceAccount');
    expect(pod.serviceAccountName).toBe(account.metadata.name);
    for (const binding of rbac.filter((o) => o.kind === 'RoleBinding')) {
      expect((binding as unknown as { subjects: unknown[] }).subjects).toEqual([
        { kind: 'ServiceAccount', name: account.metadata.name, namespace: account.metadata.namespace },
      ]);
    }
  });
});
