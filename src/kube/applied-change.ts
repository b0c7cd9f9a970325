import { isDeepStrictEqual } from 'node:util';
import { ManagedFields, type LiveObject } from './schemas.js';

/**
 * Whether a server-side apply by `manager` changed the object: `before` is the live object read before the apply,
 * `after` the apply's answer. The resourceVersion alone cannot tell: controllers write the objects a deploy applies
 * (a Deployment's status, its `deployment.kubernetes.io/revision` annotation, a ServiceAccount's token secrets), and
 * a write of theirs between the read and the apply moves it. So what is compared is what the manager answers for, as
 * its `managedFields` entry records it: the set of fields it owns, the top-level fields it sets (`spec`, `data`, …, in
 * whole), and the labels and annotations it owns, before and after. Not the status, nor other managers' labels and
 * annotations. Without a record of the manager's fields (a server that strips managedFields), the resourceVersion.
 */
export function changedByApply(before: LiveObject, after: LiveObject, manager: string): boolean {
  if (before.metadata.resourceVersion === after.metadata.resourceVersion) return false;
  const owned = [ownedBy(before, manager), ownedBy(after, manager)];
  const [was, is] = owned;
  if (is === undefined) return true;
  if (!isDeepStrictEqual(was?.fields, is.fields)) return true;
  const union = (pick: (o: Owned) => readonly string[]): string[] => [...new Set(owned.flatMap((o) => (o === undefined ? [] : pick(o))))];
  const keys = { top: union((o) => o.top), labels: union((o) => o.labels), annotations: union((o) => o.annotations) };
  return !isDeepStrictEqual(answeredFor(before, keys), answeredFor(after, keys));
}

interface Owned {
  fields: Record<string, unknown>;
  /** Top-level fields besides apiVersion, kind, metadata and status. */
  top: string[];
  labels: string[];
  annotations: string[];
}

/** The manager's Apply entry of `object`'s managedFields, undefined when there is none. */
function ownedBy(object: LiveObject, manager: string): Owned | undefined {
  const parsed = ManagedFields.safeParse(object.metadata['managedFields']);
  if (!parsed.success) return undefined;
  // The object's own entry, not one of a subresource (`subresource: status`, Kubernetes 1.22 on).
  const entry = parsed.data.find((e) => e.manager === manager && e.operation === 'Apply' && e['subresource'] === undefined);
  if (entry?.fieldsV1 === undefined) return undefined;
  const fields = entry.fieldsV1;
  const names = (set: unknown): string[] =>
    set !== null && typeof set === 'object' ? Object.keys(set).filter((k) => k.startsWith('f:')).map((k) => k.slice(2)) : [];
  const metadata = fields['f:metadata'] as Record<string, unknown> | undefined;
  return {
    fields,
    top: names(fields).filter((k) => !['apiVersion', 'kind', 'metadata', 'status'].includes(k)),
    labels: names(metadata?.['f:labels']),
    annotations: names(metadata?.['f:annotations']),
  };
}

function answeredFor(object: LiveObject, keys: { top: string[]; labels: string[]; annotations: string[] }): unknown {
  const pick = (from: Record<string, unknown> | undefined, names: string[]): Record<string, unknown> =>
    Object.fromEntries(names.map((k) => [k, from?.[k] ?? null]));
  const body = object as Record<string, unknown>;
  return {
    top: pick(body, keys.top),
    labels: pick(object.metadata.labels, keys.labels),
    annotations: pick(object.metadata.annotations, keys.annotations),
  };
}
