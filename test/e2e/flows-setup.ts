import { mkdtempSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Logger } from 'pino';
import { buildApp } from '../../src/app.js';
import { parseConfig, type Config } from '../../src/config/load.js';
import { createDeployer } from '../../src/deploy/create.js';
import { adminClient } from '../env/kube-helpers.js';
import { ground } from '../env/ground.js';
import { memoryLogger } from './setup.js';

/** A deployer with the flows (rollback, promote, hooks, live state, verdicts), as main.ts builds it. */
export interface FlowDeployer {
  url: string;
  config: Config;
  logs: Array<Record<string, unknown>>;
  close(): Promise<void>;
}

/**
 * Starts a deployer with `raw` config merged over defaults for the ground. `logger` and `logs` let several deployers
 * write one log, in the order things happened (they run in this process); `identity` names its lease holder.
 */
export async function startFlowDeployer(
  raw: Record<string, unknown>,
  options: { identity?: string; logger?: Logger; logs?: Array<Record<string, unknown>> } = {},
): Promise<FlowDeployer> {
  const kube = ground('kube');
  const registry = ground('registry');
  const config = parseConfig(
    {
      kubernetes: { kubeconfig: kube.adminKubeconfig },
      registries: { [registry.anonymous]: { insecure: true } },
      cache: { dir: mkdtempSync(join(tmpdir(), 'deployer-cache-')) },
      versions: { registryWaitSeconds: 0 },
      ...raw,
    },
    {},
  );
  let logger = options.logger;
  let logs = options.logs;
  if (logger === undefined || logs === undefined) {
    const memory = memoryLogger();
    logger = memory.logger;
    logs = memory.logs;
  }
  const { engine, flows } = createDeployer({ config, logger, version: 'test', identity: options.identity });
  const app = buildApp({ config, logger, engine, flows, version: 'test' });
  await app.listen({ host: '127.0.0.1', port: 0 });
  const { port } = app.server.address() as AddressInfo;
  return { url: `http://127.0.0.1:${port}`, config, logs, close: () => app.close() };
}

export interface JsonAnswer {
  status: number;
  body: Record<string, unknown>;
}

/** A request with a JSON body (or none), as Alertmanager, depctl or a monitor sends it. */
export async function send(
  url: string,
  options: { method?: string; auth: string; json?: unknown; requestId?: string; userAgent?: string },
): Promise<JsonAnswer> {
  const headers: Record<string, string> = { authorization: options.auth, 'user-agent': options.userAgent ?? 'test-client/1.0' };
  if (options.json !== undefined) headers['content-type'] = 'application/json';
  if (options.requestId !== undefined) headers['x-request-id'] = options.requestId;
  const res = await fetch(url, {
    method: options.method ?? 'PUT',
    headers,
    body: options.json === undefined ? undefined : JSON.stringify(options.json),
  });
  const text = await res.text();
  return { status: res.status, body: JSON.parse(text) as Record<string, unknown> };
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Polls until the Deployment carries version `tag` (the deploy applied it), then returns. */
export async function waitForTag(namespace: string, name: string, tag: string, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      const d = await adminClient().apps.readNamespacedDeployment({ name, namespace });
      if (d.metadata?.annotations?.['deployer.io/tag'] === tag) return;
    } catch {
      // not there yet
    }
    if (Date.now() > deadline) throw new Error(`deployment ${namespace}/${name} never got tag ${tag}`);
    await sleep(100);
  }
}

/** A Deployment manifest with one untagged image, the way the services of these tests are written. */
export function deploymentYaml(name: string, image: string, replicas = 2): string {
  return `apiVersion: apps/v1
kind: Deployment
metadata:
  name: ${name}
  labels: { app: ${name} }
spec:
  replicas: ${replicas}
  selector:
    matchLabels: { app: ${name} }
  template:
    metadata:
      labels: { app: ${name} }
    spec:
      containers:
        - name: app
          image: ${image}
`;
}

export function configMapYaml(name: string, value: string): string {
  return `apiVersion: v1
kind: ConfigMap
metadata:
  name: ${name}-config
data:
  value: "${value}"
`;
}
