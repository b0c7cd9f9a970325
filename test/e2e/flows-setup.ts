/** What only the flows tests need: JSON requests (as Alertmanager or depctl send them) and waiting for a rollout. */
import { adminClient } from '../env/kube-helpers.js';

export interface JsonAnswer {
  status: number;
  body: Record<string, unknown>;
}

/** A request with a JSON body (or none), as Alertmanager, depctl or a monitor sends it. */
export async function send(
  url: string,
  options: { method?: string; auth: string; json?: unknown; requestId?: string; userAgent?: string },
): Promise<JsonAnswer> {
  const headers: Record<string, string> = { authorization: options.auth, 'user-agent': options.userAgent ?? 'test-client/1.0' };
  if (options.json !== undefined) headers['content-type'] = 'application/json';
  if (options.requestId !== undefined) headers['x-request-id'] = options.requestId;
  const res = await fetch(url, {
    method: options.method ?? 'PUT',
    headers,
    body: options.json === undefined ? undefined : JSON.stringify(options.json),
  });
  const text = await res.text();
  return { status: res.status, body: JSON.parse(text) as Record<string, unknown> };
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Polls until the Deployment carries version `tag` (the deploy applied it), then returns. */
export async function waitForTag(namespace: string, name: string, tag: string, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      const d = await adminClient().apps.readNamespacedDeployment({ name, namespace });
      if (d.metadata?.annotations?.['deployer.internal/tag'] === tag) return;
    } catch {
      // not there yet
    }
    if (Date.now() > deadline) throw new Error(`deployment ${namespace}/${name} never got tag ${tag}`);
    await sleep(100);
  }
}
