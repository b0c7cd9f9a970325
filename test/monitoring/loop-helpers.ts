import { readFileSync } from 'node:fs';
import { load } from 'js-yaml';
import { ground } from '../env/ground.js';
import { adminClient, kubeRequest } from '../env/kube-helpers.js';
import { deployerImageLayout, pushOciLayout } from '../env/node-images.js';
import { sampleManifests } from '../node/real-pods.js';

/**
 * The sample service's manifests for the loop: 2 stable replicas whose pods tell Prometheus their metrics port by the
 * annotation the shipped scrape configuration reads, and `env` (LATENCY_MS, ERROR_RATIO) setting how it behaves.
 */
export function loopManifests(spec: { name: string; image: string; env: Record<string, string> }): Record<string, string> {
  return sampleManifests({ name: spec.name, image: spec.image, replicas: 2, env: spec.env, podAnnotations: { 'prometheus.io/port': '8080' } });
}

/** Pushes the deployer's own image (depctl inside) to the ground's registry; returns its name as the node pulls it. */
export async function pushDeployerImage(): Promise<string> {
  const anonymous = ground('registry').anonymous;
  const tag = `cron-${Date.now().toString(36)}`;
  await pushOciLayout(deployerImageLayout(), { host: anonymous, repository: 'ops/deployer', tag });
  return `${anonymous}/ops/deployer:${tag}`;
}

const EXAMPLE = new URL('../../kubernetes/examples/promote-cronjob.yaml', import.meta.url).pathname;

/**
 * Applies kubernetes/examples/promote-cronjob.yaml to the ground, changed only where the ground differs from a real
 * cluster: `batch/v1beta1` (Kubernetes 1.20 serves no batch/v1 CronJob), every minute, the node's scheduler, and
 * depctl from the deployer's own image instead of curl (no public image can be pulled here): `depctl promote
 * SERVICE --analysis --min-age MIN_AGE`, with the token from the same Secret. Also creates that Secret.
 */
export async function applyPromoteCronJob(o: { namespace: string; service: string; deployerUrl: string; image: string; schedulerName: string; tokenSecret: string }): Promise<void> {
  const cron = load(readFileSync(EXAMPLE, 'utf8')) as Record<string, unknown> & { spec: { jobTemplate: { spec: { template: { spec: Record<string, unknown> & { containers: Array<Record<string, unknown>> } } } } } };
  cron['apiVersion'] = 'batch/v1beta1';
  (cron['metadata'] as Record<string, unknown>)['namespace'] = o.namespace;
  (cron['spec'] as Record<string, unknown>)['schedule'] = '*/1 * * * *';
  const pod = cron.spec.jobTemplate.spec.template.spec;
  pod['schedulerName'] = o.schedulerName;
  const container = pod.containers[0] ?? {};
  const env = (container['env'] as Array<{ name: string; value?: string; valueFrom?: unknown }>).map((e) => {
    if (e.name === 'SERVICE') return { ...e, value: o.service };
    if (e.name === 'DEPLOYER_URL') return { ...e, value: o.deployerUrl };
    if (e.name === 'MIN_AGE') return { ...e, value: '0s' };
    return e;
  });
  container['env'] = [
    ...env.map((e) => (e.name === 'TOKEN' ? { ...e, name: 'DEPLOYER_AUTH_TOKEN' } : e)),
    { name: 'DEPLOYER_TOKEN_NAME', value: 'cron' },
    { name: 'HOME', value: '/tmp' },
  ];
  container['image'] = o.image;
  container['command'] = ['node', '/app/dist/cli/depctl.js'];
  container['args'] = ['promote', o.service, '--analysis', '--min-age', '0s', '--wait=3m'];
  // Node needs more than curl's 32 MiB.
  container['resources'] = { limits: { memory: '256Mi' } };
  const core = adminClient().core;
  await core.createNamespacedSecret({ namespace: o.namespace, body: { metadata: { name: 'deployer-cron-token' }, stringData: { token: o.tokenSecret } } });
  const res = await kubeRequest('POST', `/apis/batch/v1beta1/namespaces/${o.namespace}/cronjobs`, { body: JSON.stringify(cron) });
  if (res.status !== 201) throw new Error(`creating the CronJob: ${res.status} ${JSON.stringify(res.body)}`);
}
