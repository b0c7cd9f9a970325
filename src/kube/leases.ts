import { z } from 'zod';
import { ConflictError, UpstreamError, type DeployerError } from '../errors.js';
import { failureReason, refusal, type RequestContext } from './failures.js';
import type { KubeResponse, KubeTransport } from './transport.js';
import type { LeaseRecord, LeaseSpec } from '../core/types.js';
import type { LeaseStore } from '../core/ports.js';

const MicroTime = z
  .string()
  .transform((s) => new Date(s))
  .refine((d) => !Number.isNaN(d.getTime()), 'a time');

const Lease = z.looseObject({
  metadata: z.looseObject({ name: z.string(), namespace: z.string().optional(), resourceVersion: z.string() }),
  spec: z
    .looseObject({
      holderIdentity: z.string().nullish(),
      leaseDurationSeconds: z.number().nullish(),
      acquireTime: MicroTime.nullish(),
      renewTime: MicroTime.nullish(),
      leaseTransitions: z.number().nullish(),
    })
    .optional(),
});

/**
 * Kubernetes' MicroTime is RFC 3339 with exactly six fractional digits; the apiserver refuses JavaScript's three.
 */
export function microTime(date: Date): string {
  return date.toISOString().replace(/\.(\d{3})Z$/, '.$1000Z');
}

export interface KubeLeasesOptions {
  transport: KubeTransport;
}

/** Short requests: a lock that cannot be renewed within its duration is lost anyway. */
const LEASE_TIMEOUT_MS = 10_000;

/** Leases over the apiserver's REST API. */
export class KubeLeases implements LeaseStore {
  readonly #transport: KubeTransport;

  constructor(options: KubeLeasesOptions) {
    this.#transport = options.transport;
  }

  async get(namespace: string, name: string): Promise<LeaseRecord | undefined> {
    const res = await this.#transport.send({ method: 'GET', path: leasePath(namespace, name), timeoutMs: LEASE_TIMEOUT_MS });
    if (res.status === 404) return undefined;
    if (res.status !== 200) throw refusal(res, context('get', namespace, name));
    return recordOf(res, namespace, 'get');
  }

  async create(namespace: string, name: string, spec: LeaseSpec): Promise<LeaseRecord | 'conflict'> {
    const res = await this.#transport.send({
      method: 'POST',
      path: leasePath(namespace),
      timeoutMs: LEASE_TIMEOUT_MS,
      body: { apiVersion: 'coordination.k8s.io/v1', kind: 'Lease', metadata: { name, namespace }, spec: specOf(spec) },
    });
    if (res.status === 409) return 'conflict';
    if (res.status === 404) throw missingNamespace(res, namespace);
    if (res.status !== 201 && res.status !== 200) throw refusal(res, context('create', namespace, name));
    return recordOf(res, namespace, 'create');
  }

  async update(record: LeaseRecord, spec: LeaseSpec): Promise<LeaseRecord | 'conflict'> {
    const { namespace, name } = record;
    const res = await this.#transport.send({
      method: 'PUT',
      path: leasePath(namespace, name),
      timeoutMs: LEASE_TIMEOUT_MS,
      body: {
        apiVersion: 'coordination.k8s.io/v1',
        kind: 'Lease',
        metadata: { name, namespace, resourceVersion: record.resourceVersion },
        spec: specOf(spec),
      },
    });
    // 409: changed since it was read; 404: deleted meanwhile. Either way: read it again. 201: deleted meanwhile, and
    // this PUT created it again (the apiserver creates a Lease on update): written as asked, like any other update.
    if (res.status === 409 || res.status === 404) return 'conflict';
    if (res.status !== 200 && res.status !== 201) throw refusal(res, context('update', namespace, name));
    return recordOf(res, namespace, 'update');
  }
}

function leasePath(namespace: string, name?: string): string {
  const base = `/apis/coordination.k8s.io/v1/namespaces/${encodeURIComponent(namespace)}/leases`;
  return name === undefined ? base : `${base}/${encodeURIComponent(name)}`;
}

function context(verb: string, namespace: string, name: string): RequestContext {
  return { verb, resource: 'leases', group: 'coordination.k8s.io', namespace, name };
}

function specOf(spec: LeaseSpec): Record<string, unknown> {
  return {
    holderIdentity: spec.holder ?? null,
    leaseDurationSeconds: spec.durationSeconds,
    acquireTime: spec.acquireTime === undefined ? null : microTime(spec.acquireTime),
    renewTime: spec.renewTime === undefined ? null : microTime(spec.renewTime),
    leaseTransitions: spec.transitions,
  };
}

function recordOf(res: KubeResponse, namespace: string, verb: string): LeaseRecord {
  const parsed = Lease.safeParse(res.body);
  if (!parsed.success) {
    throw new UpstreamError('kubernetes', `the Kubernetes apiserver answered something unexpected to ${verb} a lease`, {
      cause: parsed.error,
    });
  }
  const { metadata, spec } = parsed.data;
  return {
    namespace: metadata.namespace ?? namespace,
    name: metadata.name,
    resourceVersion: metadata.resourceVersion,
    holder: spec?.holderIdentity ?? undefined,
    durationSeconds: spec?.leaseDurationSeconds ?? undefined,
    acquireTime: spec?.acquireTime ?? undefined,
    renewTime: spec?.renewTime ?? undefined,
    transitions: spec?.leaseTransitions ?? 0,
  };
}

/**
 * A Lease cannot be created in a namespace that does not exist: say so, rather than "failed to create leases (404)"
 * with the apiserver's reason only in the log.
 */
function missingNamespace(res: KubeResponse, namespace: string): DeployerError {
  const reason = failureReason(res);
  if (!/^namespaces? "[^"]*" not found/.test(reason)) return refusal(res, context('create', namespace, 'lease'));
  return new ConflictError(
    `namespace ${namespace} does not exist in the cluster (the apiserver says: ${reason}); create it ` +
      `(kubectl create namespace ${namespace}) or fix the service's namespace, or kubernetes.leaseNamespace, in the configuration`,
    { detail: { namespace } },
  );
}
