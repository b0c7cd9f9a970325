import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { loadAll } from 'js-yaml';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ground } from '../env/ground.js';
import { createNamespace, kubeRequest } from '../env/kube-helpers.js';
import { pushImage } from '../env/registry-helpers.js';
import { basic, call, serviceRepo, startDeployer, type Answer, type RunningDeployer } from './setup.js';

// Each set of test/corpus/ (manifests written in the shapes public projects' deploy manifests have; each folder's
// README names the project, path and commit) is deployed through HTTP as CI would: deploy, canary where the set has a
// versioned Deployment, deploy again; the answer and the cluster are checked against the outcome its README gives.

const CORPUS = join(import.meta.dirname, '..', 'corpus');
const CI_SECRET = 'corpus-ci-secret-0123456789';
/** The host the corpus names the images CI builds under; the test points it at the ground's registry. */
const PLACEHOLDER_REGISTRY = 'registry.corpus.test';
const PLACEHOLDER_NAMESPACE = 'CORPUS_NAMESPACE';

type Outcome =
  /** 200, and every object of the set's manifests at that commit is in the cluster. */
  | {
      status: 200;
      canaries?: string[];
      /** Replicas of each canary; default 1. */
      canaryReplicas?: number;
      /** Deployments that must have no canary. */
      noCanaries?: string[];
      removedCanaries?: string[];
      /** Objects the answer must list with these actions (`replaced`, `pruned`). */
      results?: { kind: string; name: string; action: string }[];
    }
  /** A refusal: the answer mentions each string (the object, the field or version, the file), and nothing was applied. */
  | { status: number; mentions: string[] };

interface Step {
  action: 'deploy' | 'canary';
  /** Which commit of the set's repository: 0 the set as written, 1 the next commit (only the README changes). */
  commit: 0 | 1;
  expect: Outcome;
}

interface CorpusCase {
  set: string;
  title: string;
  /** The service's configuration besides repository and namespace (`registry.corpus.test` stands for the ground's registry). */
  service?: Record<string, unknown>;
  /** Files of the set's folder (outside kubernetes/) that this case puts into the manifests directory too. */
  alsoInManifests?: string[];
  steps: Step[];
  /** What else to check in the cluster once every step went as expected. */
  check?: (namespace: string) => Promise<void>;
}

const ok: Outcome = { status: 200 };
const stable = (commit: 0 | 1, expect: Outcome = ok): Step => ({ action: 'deploy', commit, expect });

const CASES: CorpusCase[] = [
  {
    set: 'online-boutique',
    title: 'untagged images, ports without protocol, LoadBalancer',
    steps: [
      stable(0),
      { action: 'canary', commit: 1, expect: { status: 200, canaries: ['frontend', 'emailservice'] } },
      stable(1, { status: 200, removedCanaries: ['frontend', 'emailservice'] }),
    ],
    // kubernetes#98576: the ports were written without protocol; they are applied with the one the API defaults.
    check: async (namespace) => {
      const service = await live({ apiVersion: 'v1', kind: 'Service', name: 'emailservice' }, namespace);
      expect(service).toMatchObject({ spec: { ports: [{ name: 'grpc', port: 5000, protocol: 'TCP', targetPort: 8080 }] } });
      const deployment = await live({ apiVersion: 'apps/v1', kind: 'Deployment', name: 'emailservice' }, namespace);
      expect(deployment).toMatchObject({ spec: { template: { spec: { containers: [{ ports: [{ containerPort: 8080, protocol: 'TCP' }] }] } } } });
    },
  },
  {
    set: 'guestbook',
    title: 'tagged images, flow-style Service with comments; a canary has nothing to copy',
    steps: [
      stable(0),
      { action: 'canary', commit: 1, expect: { status: 422, mentions: ['no Deployment with an untagged image in kubernetes/', 'nothing to deploy as canary'] } },
      stable(1),
    ],
  },
  { set: 'guestbook-go', title: 'ReplicationControllers, extensions/v1beta1 Ingress, env: null', steps: [stable(0), stable(1)] },
  { set: 'wordpress', title: 'Secret, PVCs, headless and LoadBalancer Services', steps: [stable(0), stable(1)] },
  {
    set: 'cassandra',
    title: 'StatefulSet with volumeClaimTemplates and a StorageClass',
    service: { allowClusterScoped: true },
    steps: [stable(0), stable(1)],
  },
  {
    set: 'zookeeper',
    title: 'policy/v1 PodDisruptionBudget, not served by Kubernetes 1.20',
    steps: [stable(0, { status: 422, mentions: ['PodDisruptionBudget', 'zk-pdb', 'policy/v1', 'the cluster serves PodDisruptionBudget as policy/v1beta1'] })],
  },
  {
    set: 'fluentd-daemonset',
    title: 'DaemonSet in kube-system',
    service: { allowNamespaces: ['kube-system'] },
    steps: [stable(0), stable(1)],
  },
  {
    set: 'php-apache-hpa',
    title: 'autoscaling/v2 HorizontalPodAutoscaler, not served by Kubernetes 1.20',
    steps: [
      stable(0, { status: 422, mentions: ['HorizontalPodAutoscaler', 'php-apache', 'autoscaling/v2', 'the cluster serves HorizontalPodAutoscaler as autoscaling/v1, autoscaling/v2beta1, autoscaling/v2beta2'] }),
      { action: 'canary', commit: 0, expect: { status: 422, mentions: ['HorizontalPodAutoscaler', 'autoscaling/v2'] } },
    ],
  },
  { set: 'podinfo', title: 'autoscaling/v2beta2 HPA, ports with protocol', steps: [stable(0), stable(1)] },
  {
    set: 'podinfo',
    title: 'kustomization.yaml in the manifests directory',
    alsoInManifests: ['kustomization.yaml'],
    steps: [stable(0, { status: 422, mentions: ['kubernetes/kustomization.yaml', 'Kustomization', 'keep it out of the manifests directory'] })],
  },
  {
    set: 'podinfo',
    title: 'kustomization.yaml in the manifests directory, excluded by the service',
    alsoInManifests: ['kustomization.yaml'],
    service: { exclude: ['kustomization.yaml'] },
    steps: [stable(0), stable(1)],
  },
  {
    set: 'voting-app',
    title: 'an untagged third-party image left alone by image globs; canaries of 2 replicas',
    service: { images: ['registry.corpus.test/**'], canary: { replicas: 2 } },
    steps: [
      stable(0),
      { action: 'canary', commit: 1, expect: { status: 200, canaries: ['vote', 'worker'], canaryReplicas: 2, noCanaries: ['db'] } },
      stable(1, { status: 200, removedCanaries: ['vote', 'worker'] }),
    ],
    check: async (namespace) => {
      const db = await live({ apiVersion: 'apps/v1', kind: 'Deployment', name: 'db' }, namespace);
      expect(db).toMatchObject({ spec: { template: { spec: { containers: [{ image: 'postgres' }] } } } });
    },
  },
  {
    set: 'knative-event-display',
    title: 'YAML anchors, untagged images, a bare Pod',
    steps: [
      stable(0),
      { action: 'canary', commit: 1, expect: { status: 200, canaries: ['hello-display', 'goodbye-display'] } },
      stable(1, { status: 200, removedCanaries: ['hello-display', 'goodbye-display'] }),
    ],
  },
  {
    set: 'knative-helloworld',
    title: 'Knative Broker and Trigger on a cluster without Knative',
    service: { allowClusterScoped: true, allowNamespaces: ['knative-samples'] },
    steps: [
      stable(0, { status: 422, mentions: ['Broker', 'Trigger', 'eventing.knative.dev/v1', 'is its CRD installed?'] }),
      { action: 'canary', commit: 0, expect: { status: 422, mentions: ['Broker', 'eventing.knative.dev/v1'] } },
    ],
  },
  {
    set: 'automata-prometheus',
    title: 'kind: List with RBAC, Secret, ConfigMap, PVC and pinned images',
    service: { allowClusterScoped: true },
    steps: [stable(0), stable(1)],
  },
  {
    set: 'jobs',
    title: 'a Job with an untagged image',
    steps: [stable(0), stable(0), stable(1, { status: 422, mentions: ['Job', '"pi"', 'spec.template', 'immutable', 'replaceJobs: true'] })],
  },
  {
    set: 'jobs',
    title: 'a Job with an untagged image, replaced on a new version (replaceJobs)',
    service: { replaceJobs: true },
    steps: [stable(0), stable(1, { status: 200, results: [{ kind: 'Job', name: 'pi', action: 'replaced' }] }), stable(1)],
    check: async (namespace) => {
      const job = await live({ apiVersion: 'batch/v1', kind: 'Job', name: 'pi' }, namespace);
      const image = (job as { spec: { template: { spec: { containers: { image: string }[] } } } }).spec.template.spec.containers[0]?.image;
      expect(image).toMatch(/\/website\/perl:main-[0-9a-f]{7}@sha256:/);
    },
  },
  { set: 'cronjob-v1beta1', title: 'batch/v1beta1 CronJob with an untagged image', steps: [stable(0), stable(1)] },
  {
    set: 'backup-cronjob',
    title: 'batch/v1 CronJob, not served by Kubernetes 1.20',
    steps: [stable(0, { status: 422, mentions: ['CronJob', 'storage-backup', 'batch/v1', 'the cluster serves CronJob as batch/v1beta1'] })],
  },
];

// ---- reading a set ----------------------------------------------------------------------------------------------

function filesBelow(dir: string): string[] {
  return readdirSync(dir).flatMap((entry) => {
    const path = join(dir, entry);
    return statSync(path).isDirectory() ? filesBelow(path) : [path];
  });
}

/** The set's manifests as the repository holds them: kubernetes/… with the ground's registry and namespace filled in. */
function manifestFiles(c: CorpusCase, registry: string, namespace: string): Record<string, string> {
  const setDir = join(CORPUS, c.set);
  const fill = (text: string): string => text.replaceAll(PLACEHOLDER_REGISTRY, registry).replaceAll(PLACEHOLDER_NAMESPACE, namespace);
  const files: Record<string, string> = {};
  for (const path of filesBelow(join(setDir, 'kubernetes'))) files[relative(setDir, path)] = fill(readFileSync(path, 'utf8'));
  for (const extra of c.alsoInManifests ?? []) files[`kubernetes/${extra}`] = fill(readFileSync(join(setDir, extra), 'utf8'));
  return files;
}

/** The repositories of the images the set names under the placeholder host (the images its CI would build). */
function builtImages(files: Record<string, string>, registry: string): string[] {
  const found = new Set<string>();
  const pattern = new RegExp(`${registry.replace(/[.:]/g, '\\$&')}/([a-z0-9][a-z0-9._/-]*)`, 'g');
  for (const text of Object.values(files)) for (const m of text.matchAll(pattern)) found.add(m[1] as string);
  return [...found];
}

interface ObjectRef {
  apiVersion: string;
  kind: string;
  name: string;
  namespace?: string | undefined;
}

/** Every object of the manifests (a List stands for its items), read independently of the deployer's parser. */
function objectsOf(files: Record<string, string>): ObjectRef[] {
  const refs: ObjectRef[] = [];
  const add = (doc: unknown): void => {
    if (typeof doc !== 'object' || doc === null) return;
    const o = doc as { apiVersion: string; kind: string; metadata?: { name: string; namespace?: string }; items?: unknown[] };
    if (o.kind === 'List') {
      for (const item of o.items ?? []) add(item);
      return;
    }
    if (o.metadata === undefined) return;
    refs.push({ apiVersion: o.apiVersion.trim(), kind: o.kind, name: o.metadata.name, namespace: o.metadata.namespace });
  };
  for (const [path, text] of Object.entries(files)) if (path.endsWith('.yaml')) for (const doc of loadAll(text)) add(doc);
  return refs;
}

const RESOURCES: Record<string, { plural: string; clusterScoped?: boolean }> = {
  Deployment: { plural: 'deployments' },
  StatefulSet: { plural: 'statefulsets' },
  DaemonSet: { plural: 'daemonsets' },
  ReplicationController: { plural: 'replicationcontrollers' },
  Job: { plural: 'jobs' },
  CronJob: { plural: 'cronjobs' },
  Pod: { plural: 'pods' },
  Service: { plural: 'services' },
  ConfigMap: { plural: 'configmaps' },
  Secret: { plural: 'secrets' },
  ServiceAccount: { plural: 'serviceaccounts' },
  PersistentVolumeClaim: { plural: 'persistentvolumeclaims' },
  Ingress: { plural: 'ingresses' },
  HorizontalPodAutoscaler: { plural: 'horizontalpodautoscalers' },
  PodDisruptionBudget: { plural: 'poddisruptionbudgets' },
  StorageClass: { plural: 'storageclasses', clusterScoped: true },
  ClusterRole: { plural: 'clusterroles', clusterScoped: true },
  ClusterRoleBinding: { plural: 'clusterrolebindings', clusterScoped: true },
  Namespace: { plural: 'namespaces', clusterScoped: true },
  // Knative's; the ground has no such API, so a GET answers 404 like a missing object.
  Broker: { plural: 'brokers' },
  Trigger: { plural: 'triggers' },
};

function pathOf(ref: ObjectRef, namespace: string): string {
  const resource = RESOURCES[ref.kind];
  if (resource === undefined) throw new Error(`the corpus test does not know the resource of ${ref.kind}`);
  const base = ref.apiVersion.includes('/') ? `/apis/${ref.apiVersion}` : `/api/${ref.apiVersion}`;
  const ns = resource.clusterScoped === true ? '' : `/namespaces/${ref.namespace ?? namespace}`;
  return `${base}${ns}/${resource.plural}/${encodeURIComponent(ref.name)}`;
}

async function live(ref: ObjectRef, namespace: string): Promise<Record<string, unknown> | undefined> {
  const res = await kubeRequest('GET', pathOf(ref, namespace));
  if (res.status === 404) return undefined;
  expect(res.status, `GET ${ref.kind} ${ref.name}`).toBe(200);
  return res.body as Record<string, unknown>;
}

const short = (sha: string): string => sha.slice(0, 7);

// ---- the test ---------------------------------------------------------------------------------------------------

interface Prepared {
  c: CorpusCase;
  service: string;
  namespace: string;
  shas: string[];
  objects: ObjectRef[];
}

describe('corpus: manifests as public projects write them, deployed on the ground', () => {
  let deployer: RunningDeployer;
  const prepared: Prepared[] = [];
  const auth = basic('ci', CI_SECRET);

  beforeAll(async () => {
    const registry = ground('registry').anonymous;
    const services: Record<string, unknown> = {};
    for (const [i, c] of CASES.entries()) {
      const namespace = await createNamespace(`corpus-${i}`);
      const files = manifestFiles(c, registry, namespace);
      const readme = readFileSync(join(CORPUS, c.set, 'README.md'), 'utf8');
      const repo = await serviceRepo(c.set, [
        { files: { ...files, 'README.md': readme } },
        { files: { 'README.md': `${readme}\nThe next commit: only this line changes.\n` } },
      ]);
      // CI builds an image per commit for every image the manifests name without a tag.
      for (const image of builtImages(files, registry)) {
        for (const sha of repo.repo.shas) await pushImage({ host: registry, repository: image, tag: `main-${short(sha)}` });
      }
      const extra = JSON.parse(JSON.stringify(c.service ?? {}).replaceAll(PLACEHOLDER_REGISTRY, registry)) as Record<string, unknown>;
      services[repo.name] = { repository: repo.repository, namespace, ...extra };
      prepared.push({ c, service: repo.name, namespace, shas: repo.repo.shas, objects: objectsOf(files) });
    }
    deployer = await startDeployer({
      tokens: { ci: { secret: { value: CI_SECRET }, services: Object.keys(services), actions: ['read', 'deploy', 'canary'] } },
      services,
      versions: { registryWaitSeconds: 0 },
    });
  });

  afterAll(async () => {
    await deployer?.close();
  });

  it.each(CASES.map((c, i) => ({ i, name: `${c.set}: ${c.title}` })))('$name', async ({ i }) => {
    const p = prepared[i] as Prepared;
    let applied = false;
    for (const [n, step] of p.c.steps.entries()) {
      const sha = p.shas[step.commit] as string;
      const answer: Answer = await call(`${deployer.url}/${p.service}/${step.action}`, { auth, form: { commit: sha } });
      const what = `step ${n + 1} (${step.action} of commit ${step.commit}): ${JSON.stringify(answer.body)}`;
      expect(answer.status, what).toBe(step.expect.status);

      if ('mentions' in step.expect) {
        const text = JSON.stringify(answer.body);
        for (const m of step.expect.mentions) expect(text, what).toContain(m);
        // Refused before anything was applied: on a first deploy, none of the set's objects is in the cluster.
        if (!applied) {
          for (const ref of p.objects) expect(await live(ref, p.namespace), `${ref.kind} ${ref.name} after ${what}`).toBeUndefined();
        }
        continue;
      }
      applied = true;
      if (step.action === 'deploy') {
        for (const ref of p.objects) expect(await live(ref, p.namespace), `${ref.kind} ${ref.name} after ${what}`).toBeDefined();
      }
      const deployment = (name: string): ObjectRef => ({ apiVersion: 'apps/v1', kind: 'Deployment', name });
      for (const name of step.expect.canaries ?? []) {
        const canary = await live(deployment(`${name}-canary`), p.namespace);
        expect(canary, `${name}-canary after ${what}`).toMatchObject({ spec: { replicas: step.expect.canaryReplicas ?? 1 } });
      }
      for (const name of step.expect.noCanaries ?? []) {
        expect(await live(deployment(`${name}-canary`), p.namespace), `${name}-canary after ${what}`).toBeUndefined();
      }
      if (step.expect.results !== undefined) {
        const objects = answer.body['objects'] as { kind: string; name: string; action: string }[];
        for (const r of step.expect.results) {
          expect(objects.some((o) => o.kind === r.kind && o.name === r.name && o.action === r.action), what).toBe(true);
        }
      }
      for (const name of step.expect.removedCanaries ?? []) {
        expect(await live(deployment(`${name}-canary`), p.namespace), `${name}-canary after ${what}`).toBeUndefined();
      }
    }
    await p.c.check?.(p.namespace);
  });
});
