import { z } from 'zod';
import { UpstreamError } from '../errors.js';
import { refusal, type RequestContext } from './failures.js';
import { Labels, ObjectMeta } from './schemas.js';
import type { KubeTransport } from './transport.js';
import type { LiveDaemonSet, LiveStatefulSet, UpdateStrategy } from '../core/types.js';

/**
 * Reads of the StatefulSets and DaemonSets a deploy applied, for the rollout verdict: the fields `kubectl rollout
 * status` reads, and what names the pods of the newest revision (StatefulSet `status.updateRevision`, DaemonSet
 * template generation).
 */

const Meta = ObjectMeta;
const Strategy = z
  .looseObject({
    type: z.string().optional(),
    rollingUpdate: z.looseObject({ partition: z.number().optional() }).nullish(),
  })
  .optional();
const Selector = z.looseObject({ matchLabels: Labels.optional() }).optional();

const StatefulSetItem = z.looseObject({
  metadata: Meta,
  spec: z.looseObject({ replicas: z.number().optional(), selector: Selector, updateStrategy: Strategy }).optional(),
  status: z
    .looseObject({
      observedGeneration: z.number().optional(),
      readyReplicas: z.number().optional(),
      currentReplicas: z.number().optional(),
      updatedReplicas: z.number().optional(),
      currentRevision: z.string().optional(),
      updateRevision: z.string().optional(),
    })
    .optional(),
});

const DaemonSetItem = z.looseObject({
  metadata: Meta,
  spec: z.looseObject({ selector: Selector, updateStrategy: Strategy }).optional(),
  status: z
    .looseObject({
      observedGeneration: z.number().optional(),
      desiredNumberScheduled: z.number().optional(),
      updatedNumberScheduled: z.number().optional(),
      numberAvailable: z.number().optional(),
      numberReady: z.number().optional(),
    })
    .optional(),
});

/** The annotation in which apps/v1 keeps a DaemonSet's template generation (its new pods' `pod-template-generation`). */
export const DAEMONSET_TEMPLATE_GENERATION = 'deprecated.daemonset.template.generation';

/** Both kinds default to RollingUpdate when the manifest names no strategy (the apiserver fills it in). */
function strategyOf(s: z.output<typeof Strategy>): UpdateStrategy {
  return {
    type: s?.type === 'OnDelete' ? 'OnDelete' : 'RollingUpdate',
    partition: s?.rollingUpdate?.partition ?? undefined,
  };
}

/** GET of one apps/v1 object; undefined when it does not exist. */
async function getApps<T extends z.ZodType>(transport: KubeTransport, resource: string, namespace: string, name: string, schema: T): Promise<z.output<T> | undefined> {
  const context: RequestContext = { verb: 'get', resource, group: 'apps', namespace, name };
  const res = await transport.send({
    method: 'GET',
    path: `/apis/apps/v1/namespaces/${encodeURIComponent(namespace)}/${resource}/${encodeURIComponent(name)}`,
  });
  if (res.status === 404) return undefined;
  if (res.status !== 200) throw refusal(res, context);
  const parsed = schema.safeParse(res.body);
  if (!parsed.success) {
    throw new UpstreamError('kubernetes', `the Kubernetes apiserver answered something unexpected for ${resource} ${namespace}/${name}`, { cause: parsed.error });
  }
  return parsed.data;
}

export async function getStatefulSet(transport: KubeTransport, namespace: string, name: string): Promise<LiveStatefulSet | undefined> {
  const s = await getApps(transport, 'statefulsets', namespace, name, StatefulSetItem);
  if (s === undefined) return undefined;
  const st = s.status;
  return {
    namespace: s.metadata.namespace ?? namespace,
    name: s.metadata.name,
    uid: s.metadata.uid ?? '',
    generation: s.metadata.generation ?? 0,
    selector: s.spec?.selector?.matchLabels ?? {},
    desired: s.spec?.replicas ?? 1,
    updateStrategy: strategyOf(s.spec?.updateStrategy),
    status: {
      observedGeneration: st?.observedGeneration ?? 0,
      ready: st?.readyReplicas ?? 0,
      current: st?.currentReplicas ?? 0,
      updated: st?.updatedReplicas ?? 0,
      currentRevision: st?.currentRevision,
      updateRevision: st?.updateRevision,
    },
  };
}

export async function getDaemonSet(transport: KubeTransport, namespace: string, name: string): Promise<LiveDaemonSet | undefined> {
  const d = await getApps(transport, 'daemonsets', namespace, name, DaemonSetItem);
  if (d === undefined) return undefined;
  const st = d.status;
  return {
    namespace: d.metadata.namespace ?? namespace,
    name: d.metadata.name,
    uid: d.metadata.uid ?? '',
    generation: d.metadata.generation ?? 0,
    selector: d.spec?.selector?.matchLabels ?? {},
    templateGeneration: d.metadata.annotations?.[DAEMONSET_TEMPLATE_GENERATION],
    updateStrategy: strategyOf(d.spec?.updateStrategy),
    status: {
      observedGeneration: st?.observedGeneration ?? 0,
      desired: st?.desiredNumberScheduled ?? 0,
      updated: st?.updatedNumberScheduled ?? 0,
      available: st?.numberAvailable ?? 0,
      ready: st?.numberReady ?? 0,
    },
  };
}
