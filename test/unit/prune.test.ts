import pino from 'pino';
import { describe, expect, it } from 'vitest';
import { DEFAULT_KEYS } from '../../src/core/keys.js';
import type { Cluster } from '../../src/core/ports.js';
import type { KubeObject, LabelledObject } from '../../src/core/types.js';
import { planPrune, pruneSelection } from '../../src/deploy/prune.js';
import { ConflictError } from '../../src/errors.js';
import type { ServiceConfig } from '../../src/config/load.js';

const keys = DEFAULT_KEYS;
let uid = 0;

function live(kind: string, name: string, owner: string | undefined, extra: Partial<LabelledObject> = {}): LabelledObject {
  return {
    apiVersion: kind === 'Deployment' ? 'apps/v1' : 'v1',
    kind,
    namespace: 'web',
    name,
    uid: `uid-${++uid}`,
    labels: { [keys.serviceLabel]: 'web' },
    annotations: owner === undefined ? {} : { [keys.serviceAnnotation]: owner },
    controlled: false,
    ...extra,
  };
}

const manifest = (kind: string, name: string, namespace: string | undefined = 'web'): KubeObject => ({
  apiVersion: 'v1',
  kind,
  metadata: { name, ...(namespace === undefined ? {} : { namespace }) },
});

describe('pruneSelection', () => {
  it('picks this service\'s objects that the manifests no longer hold, dependents first', () => {
    const objects = [live('ConfigMap', 'old', 'web'), live('Deployment', 'gone', 'web'), live('Service', 'kept', 'web')];
    const { prune, foreign } = pruneSelection(objects, [manifest('Service', 'kept')], 'web', keys);
    expect(prune.map((o) => `${o.kind} ${o.name}`)).toEqual(['Deployment gone', 'ConfigMap old']);
    expect(foreign).toEqual([]);
  });

  it('never picks canaries, objects a controller made, unannotated objects, namespaces or volume claims', () => {
    const objects = [
      live('Deployment', 'web-canary', 'web', { annotations: { [keys.serviceAnnotation]: 'web', [keys.annotations.track]: 'canary' } }),
      live('Deployment', 'api-canary', 'web', { labels: { [keys.canaryOfLabel]: 'api' } }),
      live('Pod', 'web-abc', 'web', { controlled: true }),
      live('ConfigMap', 'by-hand', undefined),
      live('Namespace', 'web', 'web', { namespace: undefined }),
      live('PersistentVolumeClaim', 'data', 'web'),
    ];
    expect(pruneSelection(objects, [], 'web', keys)).toEqual({ prune: [], foreign: [] });
  });

  it('reports an object labelled as this service\'s that another service owns', () => {
    const { prune, foreign } = pruneSelection([live('ConfigMap', 'stray', 'api')], [], 'web', keys);
    expect(prune).toEqual([]);
    expect(foreign).toEqual([expect.objectContaining({ kind: 'ConfigMap', name: 'stray', owner: 'api' })]);
  });

  it('matches by kind, namespace and name whatever the API group, and cluster-scoped objects by name', () => {
    const ingress = { ...live('Ingress', 'site', 'web'), apiVersion: 'networking.k8s.io/v1' };
    const role = live('ClusterRole', 'reader', 'web', { namespace: undefined });
    const manifests = [{ ...manifest('Ingress', 'site'), apiVersion: 'extensions/v1beta1' }, manifest('ClusterRole', 'reader', 'web')];
    expect(pruneSelection([ingress, ingress, role], manifests, 'web', keys).prune).toEqual([]);
  });

  it('reads the ownership an earlier release wrote', () => {
    const legacy = keys.legacy?.serviceAnnotation ?? '';
    const old = live('ConfigMap', 'old', undefined, { annotations: { [legacy]: 'web' } });
    expect(pruneSelection([old], [], 'web', keys).prune).toEqual([old]);
  });
});

describe('planPrune', () => {
  const service = { name: 'web', namespace: 'web', allowNamespaces: [], allowClusterScoped: false, prune: true } as unknown as ServiceConfig;
  const calls: string[] = [];
  const cluster = {
    scopeOf: (_apiVersion: string, kind: string) => Promise.resolve(kind === 'ClusterRole' || kind === 'ClusterRoleBinding' ? { namespaced: false } : { namespaced: true }),
    listLabelled: (apiVersion: string, kind: string, namespace: string | undefined, selector: string) => {
      calls.push(`list ${apiVersion} ${kind} ${namespace ?? '-'} ${selector}`);
      return Promise.resolve(kind === 'ConfigMap' ? [live('ConfigMap', 'old', 'web')] : []);
    },
    deleteObjects: (objects: readonly { name: string }[], options: { dryRun: boolean }) => {
      calls.push(`delete ${options.dryRun ? 'dry-run ' : ''}${objects.map((o) => o.name).join(',')}`);
      return Promise.resolve([]);
    },
  } as unknown as Cluster;
  const deps = { keys, cluster, logger: pino({ level: 'silent' }) };

  it('lists by the service\'s label in its namespaces, leaves cluster-scoped kinds alone unless allowed, dry-runs the deletions', async () => {
    calls.length = 0;
    const chosen = await planPrune(deps, service, 'stable', []);
    expect(chosen.map((o) => o.name)).toEqual(['old']);
    expect(calls).toContain('list v1 ConfigMap web deployer.internal/service=web,app.kubernetes.io/managed-by=deployer');
    expect(calls.some((c) => c.includes('ClusterRole'))).toBe(false);
    expect(calls.at(-1)).toBe('delete dry-run old');
  });

  it('does nothing for a canary or a service without prune', async () => {
    calls.length = 0;
    expect(await planPrune(deps, service, 'canary', [])).toEqual([]);
    expect(await planPrune(deps, { ...service, prune: false }, 'stable', [])).toEqual([]);
    expect(calls).toEqual([]);
  });

  it('refuses with a conflict when another service owns a labelled object', async () => {
    const foreign = { ...cluster, listLabelled: () => Promise.resolve([live('ConfigMap', 'stray', 'api')]) } as unknown as Cluster;
    await expect(planPrune({ ...deps, cluster: foreign }, service, 'stable', [])).rejects.toThrow(ConflictError);
  });
});
