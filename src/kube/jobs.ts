import { z } from 'zod';
import { UpstreamError } from '../errors.js';
import type { LiveJob, PodLogTail } from '../core/types.js';
import { failureReason, refusal, type RequestContext } from './failures.js';
import { Conditions, ObjectMeta } from './schemas.js';
import type { KubeTransport } from './transport.js';

/**
 * What the deployer reads of a Job: its status, for the verdict and for a pre-deploy Job's wait
 * (src/deploy/job-status.ts, predeploy.ts), and the last lines its pods wrote, for the answer of a Job that failed.
 */

const JobItem = z.looseObject({
  metadata: ObjectMeta,
  spec: z.looseObject({ completions: z.number().nullish(), backoffLimit: z.number().optional() }).optional(),
  status: z
    .looseObject({
      active: z.number().optional(),
      succeeded: z.number().optional(),
      failed: z.number().optional(),
      conditions: Conditions,
    })
    .optional(),
});

const Terminated = z.looseObject({ exitCode: z.number().optional() });
const PodList = z.object({
  items: z.array(
    z.looseObject({
      metadata: z.looseObject({ name: z.string(), creationTimestamp: z.string().optional() }),
      status: z
        .looseObject({
          containerStatuses: z
            .array(
              z.looseObject({
                name: z.string(),
                state: z.looseObject({ terminated: Terminated.optional() }).optional(),
                lastState: z.looseObject({ terminated: Terminated.optional() }).optional(),
              }),
            )
            .optional(),
        })
        .optional(),
    }),
  ),
});

/** The label the Job controller puts on its pods (Kubernetes 1.20; later releases add `batch.kubernetes.io/controller-uid` beside it). */
const CONTROLLER_UID_LABEL = 'controller-uid';

export class KubeJobs {
  readonly #transport: KubeTransport;

  constructor(options: { readonly transport: KubeTransport }) {
    this.#transport = options.transport;
  }

  async getJob(namespace: string, name: string): Promise<LiveJob | undefined> {
    const context: RequestContext = { verb: 'get', resource: 'jobs', group: 'batch', namespace, name };
    const res = await this.#transport.send({ method: 'GET', path: `${jobsPath(namespace)}/${encodeURIComponent(name)}` });
    if (res.status === 404) return undefined;
    if (res.status !== 200) throw refusal(res, context);
    const parsed = JobItem.safeParse(res.body);
    if (!parsed.success) throw new UpstreamError('kubernetes', `the Kubernetes apiserver answered something unexpected for job ${namespace}/${name}`, { cause: parsed.error });
    const { metadata: m, spec, status } = parsed.data;
    return {
      namespace: m.namespace ?? namespace,
      name: m.name,
      uid: m.uid ?? '',
      annotations: m.annotations ?? {},
      completions: spec?.completions ?? undefined,
      backoffLimit: spec?.backoffLimit ?? 6,
      active: status?.active ?? 0,
      succeeded: status?.succeeded ?? 0,
      failed: status?.failed ?? 0,
      conditions: status?.conditions ?? [],
      terminating: m.deletionTimestamp !== undefined,
    };
  }

  async jobLogs(job: LiveJob, limits: { readonly maxPods: number; readonly tailLines: number; readonly limitBytes: number }): Promise<PodLogTail[]> {
    const { namespace } = job;
    const res = await this.#transport.send({
      method: 'GET',
      path: `/api/v1/namespaces/${encodeURIComponent(namespace)}/pods`,
      query: { labelSelector: `${CONTROLLER_UID_LABEL}=${job.uid}`, limit: '100' },
    });
    if (res.status !== 200) return [{ pod: '', container: '', unavailable: `the pods of Job ${job.name} could not be listed: ${failureReason(res)}` }];
    const pods = PodList.safeParse(res.body);
    if (!pods.success) return [];
    const newest = [...pods.data.items]
      .sort((a, b) => (b.metadata.creationTimestamp ?? '').localeCompare(a.metadata.creationTimestamp ?? ''))
      .slice(0, limits.maxPods);
    const tails: PodLogTail[] = [];
    for (const pod of newest) {
      for (const c of pod.status?.containerStatuses ?? []) {
        // A container that restarted (restartPolicy OnFailure) and runs again: its failed run is the previous one.
        const previous = c.state?.terminated === undefined && c.lastState?.terminated !== undefined;
        tails.push(await this.#tail(namespace, pod.metadata.name, c.name, previous, limits));
      }
    }
    return tails;
  }

  async #tail(namespace: string, pod: string, container: string, previous: boolean, limits: { tailLines: number; limitBytes: number }): Promise<PodLogTail> {
    const res = await this.#transport.send({
      method: 'GET',
      path: `/api/v1/namespaces/${encodeURIComponent(namespace)}/pods/${encodeURIComponent(pod)}/log`,
      query: {
        container,
        tailLines: String(limits.tailLines),
        limitBytes: String(limits.limitBytes),
        ...(previous ? { previous: 'true' } : {}),
      },
    });
    if (res.status !== 200) return { pod, container, unavailable: failureReason(res) };
    // A log that happens to be one JSON document comes back parsed.
    const text = typeof res.body === 'string' ? res.body : JSON.stringify(res.body);
    const lines = text.split('\n');
    if (lines.at(-1) === '') lines.pop();
    return { pod, container, lines: lines.slice(-limits.tailLines).map((l) => l.slice(0, limits.limitBytes)) };
  }
}

function jobsPath(namespace: string): string {
  return `/apis/batch/v1/namespaces/${encodeURIComponent(namespace)}/jobs`;
}
