import { z } from 'zod';
import { asRecord, groupOf, podImageProblems } from './pod-template.js';
import type { KubeObject } from '../core/types.js';

/**
 * What makes a YAML document one Kubernetes object the deployer can apply (manifests.ts reads the files): the fields
 * the deployer relies on, kustomize's own files named as what they are, images Docker accepts.
 */

/** `spec.template.spec.containers[0].image`; a very deep path keeps its start and end. */
export function pathText(path: readonly (string | number)[]): string {
  const text = (p: string | number, i: number): string => (typeof p === 'number' ? `[${p}]` : i === 0 ? p : `.${p}`);
  if (path.length <= 12) return path.map(text).join('');
  return `${path.slice(0, 8).map(text).join('')}…${path.slice(-3).map((p, i) => text(p, path.length - 3 + i)).join('')}`;
}


const DNS_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const DNS_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
const API_VERSION = /^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*\/)?[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const KIND = /^[A-Za-z]([-A-Za-z0-9]*[A-Za-z0-9])?$/;
const RBAC_GROUP = 'rbac.authorization.k8s.io';
const KUSTOMIZE_GROUP = 'kustomize.config.k8s.io';

/** What to do with a file that is no object: the service's `exclude` option names it without moving it. */
const KEEP_OUT = "keep it out of the manifests directory, or list it in the service's exclude globs (exclude: [GLOB])";

const stringMap = z.record(z.string(), z.string()).nullish();

/** What the deployer relies on; the rest is for the apiserver to judge (passthrough). */
const ObjectSchema = z
  .looseObject({
    apiVersion: z.string().regex(API_VERSION, 'must be "version" or "group/version", as "apps/v1"'),
    kind: z.string().regex(KIND, 'must be a kind, as "Deployment"'),
    metadata: z.looseObject({
      name: z.string().min(1).max(253),
      namespace: z.string().max(63).regex(DNS_LABEL, 'must be a DNS label').nullish(),
      labels: stringMap,
      annotations: stringMap,
    }),
  })
  .superRefine((o, ctx) => {
    // RBAC names are path segments (`system:reader`); everything else the deployer names is a DNS subdomain.
    const ok =
      groupOf(o.apiVersion) === RBAC_GROUP
        ? !/[/%]/.test(o.metadata.name) && o.metadata.name !== '.' && o.metadata.name !== '..'
        : DNS_SUBDOMAIN.test(o.metadata.name);
    if (!ok) ctx.addIssue({ code: 'custom', path: ['metadata', 'name'], message: 'must be a DNS subdomain name' });
  });

export function validate(value: unknown, fail: (reason: string) => void): KubeObject | undefined {
  const record = asRecord(value);
  if (record === undefined) {
    fail('a document must be a mapping (a Kubernetes object)');
    return undefined;
  }
  if (typeof record['apiVersion'] === 'string' && groupOf(record['apiVersion']) === KUSTOMIZE_GROUP) {
    // The most common file in a manifests directory that is no object (kustomize's own), so its refusal says what to do.
    fail(`a ${String(record['kind'])} is kustomize's input, not a Kubernetes object (kubectl apply -f refuses it too): ${KEEP_OUT}`);
    return undefined;
  }
  if (record['apiVersion'] === undefined && record['kind'] === undefined) {
    // A Helm values file, a kustomize patch, an app's own settings: YAML, but not meant for the apiserver.
    fail(`not a Kubernetes object (no apiVersion and no kind): ${KEEP_OUT}`);
    return undefined;
  }
  const result = ObjectSchema.safeParse(value);
  if (!result.success) {
    fail(result.error.issues.map((i) => `${pathText(i.path.map((p) => (typeof p === 'symbol' ? String(p) : p)))}: ${i.message}`).join('; '));
    return undefined;
  }
  const object: KubeObject = result.data as KubeObject;
  // `namespace:` or `labels:` written without a value means unset, as kubectl reads it.
  for (const key of ['namespace', 'labels', 'annotations'] as const) {
    if (object.metadata[key] === null) delete object.metadata[key];
  }
  const imageProblems = podImageProblems(object);
  if (imageProblems.length > 0) {
    fail(imageProblems.join('; '));
    return undefined;
  }
  return object;
}
