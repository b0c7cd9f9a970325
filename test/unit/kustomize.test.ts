import { execFile } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { loadAll } from 'js-yaml';
import { describe, expect, it } from 'vitest';
import { z } from 'zod';

/** kubectl renders a kustomization without a cluster; the test ground's prepare installs it (bench/run.ts uses it too). */
const KUBECTL = '/usr/bin/kubectl';
const ROOT = new URL('../../kubernetes/', import.meta.url);

const Object_ = z.object({ kind: z.string(), metadata: z.object({ name: z.string(), namespace: z.string().optional() }) });
type Object_ = z.infer<typeof Object_>;

function render(): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(KUBECTL, ['kustomize', ROOT.pathname], { timeout: 60_000, maxBuffer: 8 * 1024 * 1024 }, (err, stdout, stderr) =>
      err === null ? resolve(stdout) : reject(new Error(`kubectl kustomize failed: ${stderr}`, { cause: err })),
    );
  });
}

function objectsIn(dir: string): Object_[] {
  const path = new URL(`${dir}/`, ROOT);
  return readdirSync(path)
    .filter((f) => f.endsWith('.yaml'))
    .flatMap((f) => loadAll(readFileSync(new URL(f, path), 'utf8')).filter((d) => d !== null && d !== undefined))
    .map((d) => Object_.parse(d));
}

const key = (o: Object_): string => `${o.kind}/${o.metadata.namespace ?? ''}/${o.metadata.name}`;

describe('kubernetes/kustomization.yaml: kubectl apply -k kubernetes/', () => {
  it('renders every object of kubernetes/rbac and kubernetes/app, the app in the namespace deployer', async () => {
    const rendered = loadAll(await render()).map((d) => Object_.parse(d));
    const rbac = objectsIn('rbac');
    const app = objectsIn('app');
    expect(rendered).toHaveLength(rbac.length + app.length);
    // The RBAC objects keep the namespaces they name (the deployer's own and each target namespace).
    expect(rendered.map(key)).toEqual(expect.arrayContaining(rbac.map(key)));
    // The app's objects name none (the deployer places them when it deploys itself); the install puts them here.
    expect(app.every((o) => o.metadata.namespace === undefined)).toBe(true);
    expect(rendered.map(key)).toEqual(expect.arrayContaining(app.map((o) => key({ ...o, metadata: { ...o.metadata, namespace: 'deployer' } }))));
  });

  it('lists every manifest file of kubernetes/rbac and kubernetes/app, so a new one is not forgotten', () => {
    const kustomization = z.object({ resources: z.array(z.string()) }).parse(loadAll(readFileSync(new URL('kustomization.yaml', ROOT), 'utf8'))[0]);
    const files = ['rbac', 'app'].flatMap((dir) => readdirSync(new URL(`${dir}/`, ROOT)).filter((f) => f.endsWith('.yaml')).map((f) => `${dir}/${f}`));
    expect([...kustomization.resources].sort()).toEqual(files.sort());
  });
});
