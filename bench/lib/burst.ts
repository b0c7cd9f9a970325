import { z } from 'zod';
import { newVersion, run, tagOf, type BenchRepo } from './fixtures.js';
import type { Row } from './report.js';

/** One answer of the deployer, as bench/run.ts's `call` gives it. */
export interface BurstAnswer {
  status: number;
  ms: number;
  body: Record<string, unknown>;
  endedAt: number;
}

export interface BurstOptions {
  gitRoot: string;
  registry: string;
  /** A service already deployed once (warm cache, live objects). */
  repo: BenchRepo;
  /** Its namespace in the cluster. */
  namespace: string;
  kubectl: string;
  kubeconfig: string;
  count: number;
  /** One deploy request of `commit` (PUT /SERVICE/deploy). */
  deploy: (commit: string) => Promise<BurstAnswer>;
  say: (line: string) => void;
}

/** Requests leave this far apart, so that they reach the deployer in the order they were sent. */
const STAGGER_MS = 10;

const Live = z.object({
  items: z.array(
    z.object({
      kind: z.string(),
      metadata: z.object({ name: z.string(), annotations: z.record(z.string(), z.string()).optional() }),
      data: z.record(z.string(), z.string()).optional(),
      spec: z.object({ template: z.object({ spec: z.object({ containers: z.array(z.object({ image: z.string() })) }) }).optional() }).optional(),
    }),
  ),
});

/**
 * A burst of deploys of one service, as CI sends it when commits land in quick succession: `count` new commits,
 * deployed at once in commit order. The deployer runs the newest and answers the others as superseded (200 with
 * `supersededBy`: the newest contains them). Measured: the wall from the first request to the last answer; checked:
 * the final state is the newest commit's, and every request got an answer that says what happened to it.
 */
export async function measureBurst(options: BurstOptions): Promise<Row> {
  const { repo, count } = options;
  const versions: Array<{ sha: string; value: string }> = [];
  for (let k = 0; k < count; k++) {
    const value = `burst-${k}`;
    versions.push({ sha: await newVersion({ gitRoot: options.gitRoot, registry: options.registry, repo, value }), value });
  }
  options.say(`burst: ${count} deploys of distinct commits of ${repo.name} at once`);
  const start = performance.now();
  const pending: Array<Promise<BurstAnswer>> = [];
  for (const [k, v] of versions.entries()) {
    if (k > 0) await new Promise((resolve) => setTimeout(resolve, STAGGER_MS));
    pending.push(
      options
        .deploy(v.sha)
        .catch((err: unknown): BurstAnswer => ({ status: 0, ms: Number.NaN, body: { error: String(err) }, endedAt: performance.now() })),
    );
  }
  const answers = await Promise.all(pending);
  const wallMs = Math.max(...answers.map((a) => a.endedAt)) - start;

  const deployed = answers.filter((a) => a.status === 200 && a.body['supersededBy'] === undefined).length;
  const superseded = answers.filter((a) => a.status === 200 && a.body['supersededBy'] !== undefined).length;
  const refused = answers.filter((a) => a.status === 409).length;
  const errors = answers.length - deployed - superseded - refused;
  const newest = versions.at(-1);
  const live = Live.parse(
    JSON.parse(
      await run(options.kubectl, ['--kubeconfig', options.kubeconfig, '-n', options.namespace, 'get', 'deployments,configmaps', '-o', 'json']),
    ),
  );
  const dep = live.items.find((o) => o.kind === 'Deployment' && o.metadata.name === repo.name);
  const cm = live.items.find((o) => o.kind === 'ConfigMap' && o.metadata.name === `${repo.name}-config`);
  const finalNewest =
    newest !== undefined &&
    dep?.metadata.annotations?.['deployer.internal/commit'] === newest.sha &&
    (dep.spec?.template?.spec.containers[0]?.image ?? '').startsWith(`${repo.image}:${tagOf(newest.sha)}@sha256:`) &&
    cm?.data?.['value'] === newest.value;
  const finalAt = versions.findIndex((v) => v.sha === dep?.metadata.annotations?.['deployer.internal/commit']);
  return {
    section: 'Concurrency',
    figure: `burst of ${count} deploys of distinct commits of one service at once, sent in commit order ${STAGGER_MS} ms apart: wall ${(wallMs / 1000).toFixed(2)} s (per-request answer times as samples)`,
    samples: answers.filter((a) => a.status === 200).map((a) => a.ms),
    target: 'wall ≤ 1.5 s, final state = the newest, no errors',
    met: wallMs <= 1500 && finalNewest && errors === 0 && refused === 0,
    note:
      `answers: ${deployed} deployed, ${superseded} superseded, ${refused} refused (409), ${errors} errors; ` +
      `final state: ${finalNewest ? 'the newest' : `commit ${finalAt + 1} of ${count}`}`,
  };
}
