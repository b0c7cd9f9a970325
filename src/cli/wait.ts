import type { Answer, DeployerClient } from './client.js';
import { WRITE_TIMEOUT_S, type Context } from './context.js';
import { EXIT, UsageError, type ExitCode } from './errors.js';
import { formatAge, formatDeploy, Spinner } from './output.js';
import { DEFAULT_WAIT_S, type DeployResult, type FlowResult, type ServiceView } from './schemas.js';

/**
 * `--wait[=DURATION]` of deploy, canary, promote and rollback: the deployer waits for the rollout's verdict
 * (`wait=` on its routes: 200 success, 422 failure, 202 timeout) while depctl shows how far it got.
 */

/** How often to ask the deployer what runs, at a terminal and in a log. */
const POLL_TTY_MS = 2_000;
const POLL_PLAIN_MS = 10_000;

const DURATION = /^(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?$/;

/**
 * Seconds of `--wait`'s value, in the deployer's grammar (`90`, `90s`, `5m`, `1h30m`; `true` for its default);
 * undefined without `--wait`. The deployer judges the maximum.
 */
export function waitSecondsOf(value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  if (value === 'true') return DEFAULT_WAIT_S;
  const m = value === '' ? null : DURATION.exec(value);
  const seconds = /^\d+$/.test(value) ? Number(value) : m === null ? undefined : Number(m[1] ?? 0) * 3600 + Number(m[2] ?? 0) * 60 + Number(m[3] ?? 0);
  if (seconds === undefined || seconds === 0) {
    throw new UsageError(`--wait takes a duration like 90s, 5m or 1h30m, or none (${DEFAULT_WAIT_S / 60}m), not ${JSON.stringify(value)}`);
  }
  return seconds;
}

export type ChangeResult = DeployResult | FlowResult;

export interface Change {
  readonly service: string;
  /** What runs while it waits: the canary Deployments for a canary, else the stable ones. */
  readonly track: 'stable' | 'canary';
  /** For the spinner and the progress line: `deploying shop`. */
  readonly label: string;
  send(client: DeployerClient, waitS: number | undefined): Promise<Answer<ChangeResult>>;
}

/**
 * Sends a change and prints its result; with `--wait`, the exit code says the verdict: 0 success, 70 timeout
 * (applied, still rolling out). A failed rollout is the deployer's 422, an `ApiError` (exit 1).
 */
export async function runChange(ctx: Context, change: Change): Promise<ExitCode> {
  const waitS = waitSecondsOf(ctx.values.wait);
  const client = ctx.client(WRITE_TIMEOUT_S, waitS ?? 0);
  const work = (): Promise<Answer<ChangeResult>> => change.send(client, waitS);
  const answer = waitS === undefined ? await ctx.spin(change.label, work) : await watch(ctx, client, change, waitS, work);
  ctx.print(answer.json, formatDeploy(answer.body));
  const verdict = answer.body.verdict;
  if (waitS === undefined) return EXIT.ok;
  if (verdict === undefined) {
    ctx.note('the deployer answered without waiting for the rollout (a version without wait=?)');
    return EXIT.ok;
  }
  if (answer.status === 202 || verdict.result === 'timeout') {
    ctx.note(`${verdict.message}; the rollout goes on in the cluster ("depctl show ${change.service}" says how far it got)`);
    return EXIT.timeout;
  }
  return EXIT.ok;
}

/** Ready and desired pods of the track's Deployments, summed; undefined when nothing of it runs yet. */
export function podsOf(view: ServiceView, track: 'stable' | 'canary'): { ready: number; desired: number } | undefined {
  const states = (view.deployments ?? []).flatMap((d) => (d[track] === undefined ? [] : [d[track]]));
  if (states.length === 0) return undefined;
  return {
    ready: states.reduce((n, s) => n + s.replicas.ready, 0),
    desired: states.reduce((n, s) => n + s.replicas.desired, 0),
  };
}

/**
 * Runs `work` while showing the elapsed time and the pods ready (from `GET /SERVICE`, when the token may read it):
 * a line redrawn in place at a terminal, else a plain line on stderr whenever the count changes.
 */
async function watch<T>(ctx: Context, client: DeployerClient, change: Change, waitS: number, work: () => Promise<T>): Promise<T> {
  const tty = ctx.io.stderr.isTTY === true && !ctx.json;
  const started = Date.now();
  const elapsed = (): string => formatAge((Date.now() - started) / 1000);
  let pods: string | undefined;
  const line = tty ? new Spinner(ctx.io.stderr, () => `${change.label}: ${elapsed()}${pods === undefined ? '' : `, ${pods} pods ready`}`) : undefined;
  if (line === undefined) ctx.note(`${change.label}, waiting up to ${formatAge(waitS)} for the rollout`);
  else line.start();

  const stop = new AbortController();
  const poll = async (): Promise<void> => {
    while (!stop.signal.aborted) {
      await sleep(tty ? POLL_TTY_MS : POLL_PLAIN_MS, stop.signal);
      if (stop.signal.aborted) return;
      let counts: ReturnType<typeof podsOf>;
      try {
        counts = podsOf((await client.service(change.service, { signal: stop.signal })).body, change.track);
      } catch {
        // A token without read scope, a deployer busy or gone: the change's own answer says what matters.
        return;
      }
      const now = counts === undefined ? undefined : `${counts.ready}/${counts.desired}`;
      if (line === undefined && now !== undefined && now !== pods && !stop.signal.aborted) {
        ctx.note(`${change.label}: ${now} pods ready after ${elapsed()}`);
      }
      pods = now;
    }
  };
  const poller = poll();
  try {
    return await work();
  } finally {
    stop.abort();
    line?.stop();
    await poller;
  }
}

/** Resolves after `ms`, or at once when `signal` aborts. */
function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(done, ms);
    function done(): void {
      clearTimeout(timer);
      signal.removeEventListener('abort', done);
      resolve();
    }
    signal.addEventListener('abort', done);
  });
}
