import { z } from 'zod';

/**
 * The few apiserver payloads the deployer relies on, narrowed to the fields it reads (everything else passes
 * through untouched).
 */

/** `metav1.Status`: what the apiserver answers on failure. */
export const Status = z.object({
  kind: z.literal('Status'),
  message: z.string().optional(),
  reason: z.string().optional(),
  code: z.number().optional(),
  details: z
    .object({
      name: z.string().optional(),
      group: z.string().optional(),
      kind: z.string().optional(),
      causes: z
        .array(z.object({ field: z.string().optional(), message: z.string().optional(), reason: z.string().optional() }))
        .optional(),
    })
    .optional(),
});
export type Status = z.infer<typeof Status>;

/** `metav1.APIResourceList` from discovery (`/api/v1`, `/apis/GROUP/VERSION`). */
export const ApiResourceList = z.object({
  resources: z.array(z.object({ name: z.string(), kind: z.string(), namespaced: z.boolean() })),
});

/** Any object the apiserver returns: only its identity and version are read. */
export const LiveObject = z.looseObject({
  apiVersion: z.string().optional(),
  kind: z.string().optional(),
  metadata: z.looseObject({
    name: z.string(),
    namespace: z.string().optional(),
    resourceVersion: z.string().optional(),
    labels: z.record(z.string(), z.string()).optional(),
    annotations: z.record(z.string(), z.string()).optional(),
  }),
});
export type LiveObject = z.infer<typeof LiveObject>;

export const ObjectList = z.object({
  items: z.array(LiveObject),
  metadata: z.object({ continue: z.string().optional() }).optional(),
});

/** Labels, annotations, selectors: string to string. */
export const Labels = z.record(z.string(), z.string());

/** The metadata the live reads use (every field optional but the name; the rest passes through). */
export const ObjectMeta = z.looseObject({
  name: z.string(),
  namespace: z.string().optional(),
  uid: z.string().optional(),
  generation: z.number().optional(),
  creationTimestamp: z.string().optional(),
  deletionTimestamp: z.string().optional(),
  labels: Labels.optional(),
  annotations: Labels.optional(),
  ownerReferences: z.array(z.looseObject({ uid: z.string() })).optional(),
});

/** `status.conditions` of a workload or Job. */
export const Conditions = z
  .array(z.looseObject({ type: z.string(), status: z.string(), reason: z.string().optional(), message: z.string().optional() }))
  .optional();

/** One entry of `metadata.managedFields`: who set which fields, by which operation (server-side apply's record). */
export const ManagedFieldsEntry = z.looseObject({
  manager: z.string().optional(),
  operation: z.string().optional(),
  fieldsType: z.string().optional(),
  fieldsV1: z.record(z.string(), z.unknown()).optional(),
});
export const ManagedFields = z.array(ManagedFieldsEntry);
