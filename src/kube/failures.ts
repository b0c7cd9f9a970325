import { UpstreamError } from '../errors.js';
import { Status } from './schemas.js';
import type { KubeResponse } from './transport.js';

/** What a request was doing, to name it when the apiserver refuses. */
export interface RequestContext {
  verb: string;
  /** Plural resource (`deployments`), or a description for requests that are not about one resource. */
  resource: string;
  group?: string | undefined;
  namespace?: string | undefined;
  name?: string | undefined;
}

function statusOf(res: KubeResponse): Status | undefined {
  const parsed = Status.safeParse(res.body);
  return parsed.success ? parsed.data : undefined;
}

/** The apiserver's reason for refusing an object (validation, admission), for the caller to fix the manifest. */
export function failureReason(res: KubeResponse): string {
  const status = statusOf(res);
  if (status?.message !== undefined) return status.message;
  return `the apiserver answered ${res.status}`;
}

/**
 * Whether the apiserver refused an apply because of the object itself: invalid (422), malformed (400), in a
 * namespace that does not exist (404), or not fitting the kind's schema. The last one comes as a 500 from
 * Kubernetes before 1.21 ("failed to create typed patch object"), for example for a port without `protocol`,
 * a key field of server-side apply (kubernetes-sigs/structured-merge-diff#130).
 */
export function isManifestFault(res: KubeResponse): boolean {
  if (res.status === 400 || res.status === 404 || res.status === 409 || res.status === 422) return true;
  return res.status === 500 && (statusOf(res)?.message ?? '').startsWith('failed to create typed patch object');
}

/** RBAC's wording: `... cannot patch resource "deployments" in API group "apps" in the namespace "web"`. */
const RBAC_DENIAL = /cannot (\S+) resource "([^"]+)"(?: in API group "([^"]*)")?(?: in the namespace "([^"]+)")?/;

function resourceName(resource: string, group: string | undefined): string {
  return group === undefined || group === '' ? resource : `${resource}.${group}`;
}

/**
 * The error for a refusal that is not the manifests' fault: the deployer's identity lacks credentials or rights,
 * or the apiserver failed. The message names what RBAC refused, so that an operator can fix the Role.
 */
export function refusal(res: KubeResponse, context: RequestContext): UpstreamError {
  const status = statusOf(res);
  const apiMessage = status?.message ?? (typeof res.body === 'string' ? res.body.slice(0, 200) : '');
  const cause = new Error(`apiserver ${res.status}: ${apiMessage}`);
  if (res.status === 401) {
    return new UpstreamError('kubernetes', "the Kubernetes apiserver rejected the deployer's credentials (401)", { cause });
  }
  if (res.status === 403) {
    const denial = RBAC_DENIAL.exec(apiMessage);
    if (denial !== null) {
      const [, verb = context.verb, resource = context.resource, group, namespace] = denial;
      const where = namespace === undefined ? 'at cluster scope' : `in namespace ${namespace}`;
      return new UpstreamError(
        'kubernetes',
        `Kubernetes RBAC refused the deployer: it may not ${verb} ${resourceName(resource, group)} ${where}`,
        { cause, detail: { verb, resource, group: group ?? '', namespace } },
      );
    }
    // Server-side apply of an object that does not exist yet also needs `create`; Kubernetes 1.20 refuses that
    // with an empty reason ("configmaps \"x\" is forbidden: "), after RBAC allowed the patch itself.
    if (context.verb === 'patch' && /is forbidden: $/.test(apiMessage)) {
      const where = context.namespace === undefined ? 'at cluster scope' : `in namespace ${context.namespace}`;
      return new UpstreamError(
        'kubernetes',
        `Kubernetes RBAC refused the deployer: it may not create ${resourceName(context.resource, context.group)} ${where}`,
        { cause, detail: { verb: 'create', resource: context.resource, group: context.group ?? '', namespace: context.namespace } },
      );
    }
    // Forbidden for another reason than RBAC (an admission plugin, a namespace being deleted).
    return new UpstreamError(
      'kubernetes',
      `the Kubernetes apiserver forbade ${context.verb} ${resourceName(context.resource, context.group)}` +
        `${context.name === undefined ? '' : ` ${context.name}`}${context.namespace === undefined ? '' : ` in namespace ${context.namespace}`}: ${apiMessage}`,
      { cause },
    );
  }
  const outage = res.status === 429 || res.status === 503 ? 503 : res.status === 504 ? 504 : 502;
  const what = `${context.verb} ${resourceName(context.resource, context.group)}${context.name === undefined ? '' : ` ${context.name}`}`;
  return new UpstreamError('kubernetes', `the Kubernetes apiserver failed to ${what} (${res.status})`, { cause, status: outage });
}
