/**
 * Manifest texts for the sample services of the tests (and of `npm run demo`): one writer for the Deployment,
 * Service and ConfigMap that many repositories on the git ground carry, so that a test says only what differs.
 * They are YAML text, not objects, because the deployer reads them from git as a user's repository holds them.
 */

/** A Deployment of one service: selector and pod labels are `app: <name>`, the first container runs `image`. */
export interface DeploymentSpec {
  readonly name: string;
  /** Usually untagged: the deployer writes the version it deploys. */
  readonly image: string;
  /** Default 1. */
  readonly replicas?: number;
  /** The first container's name; default `app`. */
  readonly container?: string;
  /** A comment line above the image, for a human reading the repository (the demo). */
  readonly imageComment?: string;
  /** `containerPort: 8080` on the first container (the Service's target); default true. */
  readonly port?: boolean;
  /** Environment variables of the first container. */
  readonly env?: Readonly<Record<string, string>>;
  /** A ConfigMap whose keys become the first container's environment (`envFrom`). */
  readonly envFrom?: string;
  /** A second container, whose image is tagged (the deployer leaves it alone). */
  readonly sidecar?: { readonly name: string; readonly image: string };
  /**
   * For pods that really run on the ground's node (its sample image): the node's scheduler is named, and the first
   * container gets a readiness probe on GET /ready and a liveness probe on GET /healthz (port 8080).
   */
  readonly realNode?: { readonly schedulerName: string };
  /** Annotations of the pod template (e.g. `prometheus.io/port` for the shipped scrape configuration). */
  readonly podAnnotations?: Readonly<Record<string, string>>;
  /** The Deployment's progressDeadlineSeconds (Kubernetes' default: 600). */
  readonly progressDeadlineSeconds?: number;
}

export function deploymentYaml(spec: DeploymentSpec): string {
  const { name } = spec;
  const lines = [
    'apiVersion: apps/v1',
    'kind: Deployment',
    'metadata:',
    `  name: ${name}`,
    `  labels: { app: ${name} }`,
    'spec:',
    `  replicas: ${spec.replicas ?? 1}`,
    ...(spec.progressDeadlineSeconds === undefined ? [] : [`  progressDeadlineSeconds: ${spec.progressDeadlineSeconds}`]),
    '  selector:',
    `    matchLabels: { app: ${name} }`,
    '  template:',
    '    metadata:',
    `      labels: { app: ${name} }`,
    ...(spec.podAnnotations === undefined
      ? []
      : [`      annotations: { ${Object.entries(spec.podAnnotations).map(([k, v]) => `${k}: ${JSON.stringify(v)}`).join(', ')} }`]),
    '    spec:',
    ...(spec.realNode === undefined
      ? []
      : [
          '      terminationGracePeriodSeconds: 5',
          `      schedulerName: ${spec.realNode.schedulerName}`,
        ]),
    '      containers:',
    `        - name: ${spec.container ?? 'app'}`,
  ];
  if (spec.imageComment !== undefined) lines.push(`          # ${spec.imageComment}`);
  lines.push(`          image: ${spec.image}`);
  if (spec.port ?? true) lines.push('          ports: [{ containerPort: 8080, protocol: TCP }]');
  if (spec.env !== undefined) {
    const vars = Object.entries(spec.env).map(([key, value]) => `{ name: ${key}, value: ${JSON.stringify(value)} }`);
    lines.push(`          env: [${vars.join(', ')}]`);
  }
  if (spec.envFrom !== undefined) lines.push(`          envFrom: [{ configMapRef: { name: ${spec.envFrom} } }]`);
  if (spec.realNode !== undefined) {
    lines.push(
      '          readinessProbe: { httpGet: { path: /ready, port: 8080 }, periodSeconds: 1, failureThreshold: 1 }',
      '          livenessProbe: { httpGet: { path: /healthz, port: 8080 }, periodSeconds: 5 }',
    );
  }
  if (spec.sidecar !== undefined) lines.push(`        - name: ${spec.sidecar.name}`, `          image: ${spec.sidecar.image}`);
  return `${lines.join('\n')}\n`;
}

/**
 * A Service in front of the Deployment `name`: port 80 to the containers' 8080; `clusterIP` fixes its address (the
 * demo prints it before the Service exists).
 */
export function serviceYaml(name: string, options: { clusterIP?: string } = {}): string {
  return `apiVersion: v1
kind: Service
metadata:
  name: ${name}
spec:
  selector: { app: ${name} }
${options.clusterIP === undefined ? '' : `  clusterIP: ${options.clusterIP}\n`}  ports: [{ port: 80, targetPort: 8080, protocol: TCP }]
`;
}

/** A ConfigMap named `name` (as given, no suffix) with string `data`; a new value makes a new commit worth deploying. */
export function configMapYaml(name: string, data: Readonly<Record<string, string>>): string {
  const entries = Object.entries(data).map(([key, value]) => `  ${key}: ${JSON.stringify(value)}`);
  return `apiVersion: v1
kind: ConfigMap
metadata:
  name: ${name}
data:
${entries.join('\n')}
`;
}

/**
 * A small service's `kubernetes/` files: its Deployment (see deploymentYaml), a Service, and a ConfigMap
 * `<name>-config` whose `value` is `value` (default "one").
 */
export function serviceManifests(spec: DeploymentSpec & { readonly value?: string }): Record<string, string> {
  const { value = 'one', ...deployment } = spec;
  return {
    'kubernetes/deployment.yaml': deploymentYaml(deployment),
    'kubernetes/service.yaml': serviceYaml(spec.name),
    'kubernetes/config.yaml': configMapYaml(`${spec.name}-config`, { value }),
  };
}
