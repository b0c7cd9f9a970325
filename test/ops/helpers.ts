import { mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { Writable } from 'node:stream';
import { load, loadAll } from 'js-yaml';
import { pino, type Logger } from 'pino';
import { FileConfig } from '../../src/config/schema.js';
import { applyOrder } from '../../src/deploy/order.js';
import { Kubernetes } from '../../src/kube/kubernetes.js';
import { ground } from '../env/ground.js';
import { adminClient } from '../env/kube-helpers.js';
import { tokenKubeconfig } from '../env/kube-plane.js';
import type { KubeObject } from '../../src/core/types.js';

/** The repository root (vitest runs from it). */
export const ROOT = process.cwd();
export const KUBERNETES_DIR = join(ROOT, 'kubernetes');

/** Every file below `dir`, as paths relative to `base`, sorted. */
export function filesBelow(dir: string, base = ROOT): string[] {
  const out: string[] = [];
  for (const entry of readdirSync(dir).sort()) {
    const path = join(dir, entry);
    if (statSync(path).isDirectory()) out.push(...filesBelow(path, base));
    else out.push(relative(base, path));
  }
  return out;
}

/** The objects of the YAML files below `kubernetes/<sub>` (all of kubernetes/ when `sub` is ''). */
export function manifestsIn(sub: string): KubeObject[] {
  return filesBelow(join(KUBERNETES_DIR, sub))
    .filter((f) => f.endsWith('.yaml') || f.endsWith('.yml'))
    .flatMap((f) => loadAll(readFileSync(join(ROOT, f), 'utf8')) as KubeObject[])
    .filter((o) => o !== null && o !== undefined);
}

export function find(objects: readonly KubeObject[], kind: string, name?: string): KubeObject {
  const found = objects.find((o) => o.kind === kind && (name === undefined || o.metadata.name === name));
  if (found === undefined) throw new Error(`no ${kind}${name === undefined ? '' : ` ${name}`} in the manifests`);
  return found;
}

/** The deployer's configuration as kubernetes/app/configmap.yaml ships it, parsed by the real schema. */
export function shippedConfig(): FileConfig {
  const cm = find(manifestsIn('app'), 'ConfigMap', 'deployer-config') as KubeObject & { data: Record<string, string> };
  const text = cm.data['config.yaml'];
  if (text === undefined) throw new Error('the ConfigMap has no config.yaml');
  return FileConfig.parse(load(text));
}

/**
 * The objects of kubernetes/rbac/ with the example's namespaces replaced by the test's own (`deployer` → `own`,
 * `apps` → `target`), wherever a namespace is named: Namespace names, metadata.namespace, subjects.
 */
export function rbacObjects(own: string, target: string): KubeObject[] {
  const rename = (ns: unknown): unknown => (ns === 'deployer' ? own : ns === 'apps' ? target : ns);
  return manifestsIn('rbac').map((o) => {
    const copy = structuredClone(o) as KubeObject & { subjects?: Array<{ namespace?: string }> };
    if (copy.kind === 'Namespace') copy.metadata.name = rename(copy.metadata.name) as string;
    if (copy.metadata.namespace !== undefined) copy.metadata.namespace = rename(copy.metadata.namespace) as string;
    for (const s of copy.subjects ?? []) s.namespace = rename(s.namespace) as string;
    return copy;
  });
}

export function silentLogger(): Logger {
  return pino({ level: 'silent' });
}

/** Collects pino's JSON lines in memory. */
export function memoryLogger(): { logger: Logger; logs: Array<Record<string, unknown>> } {
  const logs: Array<Record<string, unknown>> = [];
  const stream = new Writable({
    write(chunk: Buffer, _enc, done) {
      for (const line of chunk.toString('utf8').split('\n')) if (line.trim() !== '') logs.push(JSON.parse(line) as Record<string, unknown>);
      done();
    },
  });
  return { logger: pino({ level: 'debug' }, stream), logs };
}

/** Applies objects as cluster-admin with the deployer's own Kubernetes adapter (namespaces and RBAC in order). */
export async function applyAsAdmin(objects: KubeObject[]): Promise<void> {
  const admin = new Kubernetes({ kubeconfig: ground('kube').adminKubeconfig, fieldManager: 'test-admin', logger: silentLogger() });
  await admin.apply(applyOrder(objects));
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/**
 * A kubeconfig for the service account `namespace/name` from its token secret (Kubernetes 1.20: the token controller
 * writes one per account), as a pod of that account would authenticate. Returns the file and the token.
 */
export async function serviceAccountKubeconfig(namespace: string, name: string): Promise<{ kubeconfig: string; token: string }> {
  const { core } = adminClient();
  const deadline = Date.now() + 30_000;
  let token: string | undefined;
  while (token === undefined) {
    const secrets = await core.listNamespacedSecret({ namespace });
    const secret = secrets.items.find(
      (s) => s.type === 'kubernetes.io/service-account-token' && s.metadata?.annotations?.['kubernetes.io/service-account.name'] === name,
    );
    const data = secret?.data?.['token'];
    if (data !== undefined) token = Buffer.from(data, 'base64').toString('utf8');
    else if (Date.now() > deadline) throw new Error(`no token secret for service account ${namespace}/${name}`);
    else await sleep(200);
  }
  const kube = ground('kube');
  const dir = join(kube.dir, 'identities');
  mkdirSync(dir, { recursive: true });
  const kubeconfig = join(dir, `${namespace}-${name}-ops.kubeconfig`);
  writeFileSync(kubeconfig, tokenKubeconfig({ server: kube.server, caFile: kube.caFile, user: name, token, namespace }), { mode: 0o600 });
  return { kubeconfig, token };
}

export const short = (sha: string): string => sha.slice(0, 7);

export function basic(user: string, secret: string): string {
  return `Basic ${Buffer.from(`${user}:${secret}`).toString('base64')}`;
}
