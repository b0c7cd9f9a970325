import { UpstreamError } from '../errors.js';

/** Who waits for a fetch: a deploy (goes first), or a read (`GET /:service/tags`, the event log's facts). */
export type Purpose = 'deploy' | 'read';

export interface FetchQueueOptions {
  /** Reads waiting for one repository beyond this many are refused at once (503). */
  readonly maxQueuedReads: number;
  /** A read that has not started fetching after this long is refused (503). */
  readonly readWaitMs: number;
  /**
   * A read waiting while a deploy fetched starts only once no deploy has fetched for this long (default 0): a deploy
   * fetches its commit and then, once it has read the tree, its manifests' blobs; a read started in between made the
   * deploy's second fetch wait. Reads queued with no deploy about (the event log's facts after a deploy) start at once.
   */
  readonly deployGraceMs?: number | undefined;
}

interface Job<T> {
  readonly key: string;
  purpose: Purpose;
  readonly run: () => Promise<T>;
  readonly promise: Promise<T>;
  start(): void;
  refuse(err: Error): void;
  started: boolean;
  timer?: NodeJS.Timeout | undefined;
  /** A read waiting while a deploy fetched or waited to: it leaves the deploy's next fetch its turn (deployGraceMs). */
  behindDeploy?: boolean;
}

interface Lane {
  running: Job<unknown> | undefined;
  /** When the last deploy's fetch ended (Date.now()), and the pump waiting for its grace to pass. */
  deployEndedAt: number | undefined;
  graceTimer: NodeJS.Timeout | undefined;
  readonly deploys: Array<Job<unknown>>;
  readonly reads: Array<Job<unknown>>;
}

/**
 * Fetches into one repository run one at a time (git's ref and shallow locks would make a second one fail), and
 * this queue decides which runs next: every waiting deploy before any read; a request for what is already waiting
 * (same key) joins that fetch instead of queueing another; a request for what is being fetched right now joins the
 * running fetch when `joinRunning` says the running one answers it (a commit id; not a branch, which may have moved
 * since that fetch began). Reads are bounded: a few may wait per repository, each for a limited time, and the rest are
 * refused with a 503 that says to try again — a read token must not be able to stall a deploy.
 */
export class FetchQueue {
  readonly #lanes = new Map<string, Lane>();
  readonly #options: FetchQueueOptions;

  constructor(options: FetchQueueOptions) {
    this.#options = options;
  }

  run<T>(
    lane: string,
    key: string,
    purpose: Purpose,
    run: () => Promise<T>,
    options: { joinRunning: boolean; what: string },
  ): Promise<T> {
    const l = this.#lane(lane);
    if (options.joinRunning && l.running?.key === key) return l.running.promise as Promise<T>;
    const waiting = [...l.deploys, ...l.reads].find((j) => j.key === key);
    if (waiting !== undefined) {
      if (purpose === 'deploy' && waiting.purpose === 'read') this.#promote(l, waiting);
      return waiting.promise as Promise<T>;
    }
    if (purpose === 'read' && l.reads.length >= this.#options.maxQueuedReads) {
      throw busy(options.what, `${l.reads.length} read${l.reads.length === 1 ? '' : 's'} already waiting`);
    }
    const job = newJob(key, purpose, run);
    if (purpose === 'deploy') {
      // Reads waiting now leave this deploy's later fetches their turn too, not only its first.
      for (const read of l.reads) read.behindDeploy = true;
      l.deploys.push(job);
    } else {
      job.behindDeploy = l.running?.purpose === 'deploy' || l.deploys.length > 0;
      l.reads.push(job);
      job.timer = setTimeout(() => {
        const i = l.reads.indexOf(job);
        if (i < 0) return;
        l.reads.splice(i, 1);
        job.refuse(busy(options.what, `waited ${this.#options.readWaitMs} ms`));
        this.#forget(lane, l);
      }, this.#options.readWaitMs);
      job.timer.unref();
    }
    this.#pump(lane, l);
    return job.promise;
  }

  #lane(name: string): Lane {
    let l = this.#lanes.get(name);
    if (l === undefined) {
      l = { running: undefined, deployEndedAt: undefined, graceTimer: undefined, deploys: [], reads: [] };
      this.#lanes.set(name, l);
    }
    return l;
  }

  #promote(l: Lane, job: Job<unknown>): void {
    l.reads.splice(l.reads.indexOf(job), 1);
    clearTimeout(job.timer);
    job.purpose = 'deploy';
    l.deploys.push(job);
  }

  #pump(name: string, l: Lane): void {
    if (l.running !== undefined) return;
    clearTimeout(l.graceTimer);
    l.graceTimer = undefined;
    if (l.deploys.length === 0 && l.reads[0]?.behindDeploy === true) {
      const graceLeft = (l.deployEndedAt ?? -Infinity) + (this.#options.deployGraceMs ?? 0) - Date.now();
      if (graceLeft > 0) {
        l.graceTimer = setTimeout(() => this.#pump(name, l), graceLeft);
        l.graceTimer.unref();
        return;
      }
    }
    const next = l.deploys.shift() ?? l.reads.shift();
    if (next === undefined) {
      this.#forget(name, l);
      return;
    }
    clearTimeout(next.timer);
    l.running = next;
    next.start();
    void next.promise
      .catch(() => undefined)
      .finally(() => {
        l.running = undefined;
        if (next.purpose === 'deploy') l.deployEndedAt = Date.now();
        this.#pump(name, l);
      });
  }

  /** An idle lane is dropped, so the map does not grow with every repository ever seen. */
  #forget(name: string, l: Lane): void {
    if (l.running === undefined && l.deploys.length === 0 && l.reads.length === 0) {
      clearTimeout(l.graceTimer);
      this.#lanes.delete(name);
    }
  }
}

function newJob<T>(key: string, purpose: Purpose, run: () => Promise<T>): Job<T> {
  let resolve: (value: T) => void = () => undefined;
  let reject: (err: unknown) => void = () => undefined;
  const promise = new Promise<T>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  const job: Job<T> = {
    key,
    purpose,
    run,
    promise,
    started: false,
    start() {
      job.started = true;
      run().then(resolve, reject);
    },
    refuse: reject,
  };
  return job;
}

function busy(what: string, why: string): UpstreamError {
  return new UpstreamError('git', `git fetches of ${what} are busy (${why}); try again in a moment`, { status: 503 });
}
