import type { ServiceConfig } from '../config/load.js';
import { BusyError, TimeLimitError } from '../errors.js';
import type { LeaseLock } from './lease.js';

/**
 * One deploy per service at a time within this process (issue: "a second waits, bounded, then 409"); different
 * services run in parallel. Waiters are served in arrival order.
 */
export class ServiceLocks {
  readonly #tails = new Map<string, Promise<void>>();

  async run<T>(key: string, waitMs: number, fn: () => Promise<T>): Promise<T> {
    const previous = this.#tails.get(key) ?? Promise.resolve();
    let release!: () => void;
    const mine = new Promise<void>((resolve) => {
      release = resolve;
    });
    const tail = previous.then(() => mine);
    this.#tails.set(key, tail);

    let timer: NodeJS.Timeout | undefined;
    const timedOut = new Promise<'timeout'>((resolve) => {
      timer = setTimeout(() => resolve('timeout'), waitMs);
    });
    const got = await Promise.race([previous.then(() => 'locked' as const), timedOut]);
    clearTimeout(timer);
    if (got === 'timeout') {
      // Give the turn up without blocking those queued behind: they wait for `previous` through our `mine`.
      void previous.then(release);
      this.#cleanup(key, tail);
      throw new BusyError(`another deploy of ${key} is running; try again later`, { detail: { service: key } });
    }
    try {
      return await fn();
    } finally {
      release();
      this.#cleanup(key, tail);
    }
  }

  #cleanup(key: string, tail: Promise<void>): void {
    void tail.then(() => {
      if (this.#tails.get(key) === tail) this.#tails.delete(key);
    });
  }
}

/**
 * How long a request may still hold the service's lock (`deploy.maxLockSeconds`, or the service's
 * `limits.maxLockSeconds`): each step under the lock checks it before it starts, so that a step that began in time
 * finishes (a half-done apply is worse than a late one) but no further step starts.
 */
export class Deadline {
  readonly #service: string;
  readonly #limitMs: number;
  readonly #now: () => number;
  readonly #since: number;

  constructor(service: string, limitMs: number, now: () => number = Date.now) {
    this.#service = service;
    this.#limitMs = limitMs;
    this.#now = now;
    this.#since = now();
  }

  /** 504 naming the step that would have started, once the time under the lock is over. */
  check(step: string): void {
    const heldMs = this.#now() - this.#since;
    if (heldMs <= this.#limitMs) return;
    const limit = this.#limitMs / 1000;
    throw new TimeLimitError(
      `${this.#service} held its deploy lock for ${(heldMs / 1000).toFixed(1)}s, longer than its limit of ${limit}s ` +
        `(deploy.maxLockSeconds or the service's limits.maxLockSeconds): stopped before ${step}`,
      { detail: { service: this.#service, step, maxLockSeconds: limit } },
    );
  }
}

/**
 * Runs the cluster phase of a deploy under the Lease, or as it is when the caller holds the Lease already; `fn` gets
 * the deadline of the time under the lock.
 */
export type Hold = <T>(fn: (deadline: Deadline) => Promise<T>) => Promise<T>;

/**
 * A service's deploy lock, in two parts: this process's queue (ServiceLocks), then the Lease shared by every deployer
 * replica (LeaseLock). Each waits up to `waitMs`, then 409. A deploy holds the queue throughout but the Lease only
 * for its cluster phase, so a slow git fetch does not keep other replicas waiting; a flow (rollback, promote) holds
 * both across the read and the deploy it decides, so what it read is still true when it acts.
 */
export class DeployLock {
  readonly #queue = new ServiceLocks();
  readonly #lease: LeaseLock;
  readonly #waitMs: number;
  readonly #maxLockMs: number;
  readonly #now: () => number;

  constructor(options: { readonly lease: LeaseLock; readonly waitMs: number; readonly maxLockMs: number; readonly now?: (() => number) | undefined }) {
    this.#lease = options.lease;
    this.#waitMs = options.waitMs;
    this.#maxLockMs = options.maxLockMs;
    this.#now = options.now ?? Date.now;
  }

  /** This process's queue of the service. */
  queued<T>(service: ServiceConfig, fn: () => Promise<T>): Promise<T> {
    return this.#queue.run(service.name, this.#waitMs, fn);
  }

  /** The service's Lease across replicas, to be taken inside `queued`. */
  leased(service: ServiceConfig, requestId: string): Hold {
    return (fn) => this.#lease.hold(service, this.#waitMs, () => fn(this.#deadline(service)), { requestId });
  }

  /** Both: the queue, then the Lease. */
  exclusive<T>(service: ServiceConfig, requestId: string, fn: (deadline: Deadline) => Promise<T>): Promise<T> {
    return this.queued(service, () => this.leased(service, requestId)(fn));
  }

  #deadline(service: ServiceConfig): Deadline {
    const seconds = service.limits?.maxLockSeconds;
    return new Deadline(service.name, seconds === undefined ? this.#maxLockMs : seconds * 1000, this.#now);
  }
}

/** For a flow that holds the lock already: the cluster phase runs as it is, within the flow's deadline. */
export function within(deadline: Deadline): Hold {
  return (fn) => fn(deadline);
}
