/** A Kubernetes object as read from a manifest (validated for these fields, the rest passed through). */
export interface KubeObject {
  apiVersion: string;
  kind: string;
  metadata: {
    name: string;
    namespace?: string | undefined;
    labels?: Record<string, string> | undefined;
    annotations?: Record<string, string> | undefined;
    [key: string]: unknown;
  };
  [key: string]: unknown;
}

export type ObjectAction = 'created' | 'configured' | 'unchanged' | 'deleted';

export interface ObjectResult {
  readonly apiVersion: string;
  readonly kind: string;
  readonly namespace?: string | undefined;
  readonly name: string;
  readonly action: ObjectAction;
}

/** One object the apiserver refused in a dry-run. */
export interface ObjectFailure {
  readonly kind: string;
  readonly namespace?: string | undefined;
  readonly name: string;
  readonly reason: string;
}
