import type { ServiceConfig } from '../config/load.js';
import { BusyError, TimeLimitError } from '../errors.js';
import type { LeaseLock } from './lease.js';

/** What became of a request that took the lock, by the request's id: its value, or the error it failed with. */
export type Outcome<T> = { readonly id: string; readonly ok: true; readonly value: T } | { readonly id: string; readonly ok: false; readonly error: unknown };

/**
 * A request that a newer one of the same `group` may take the place of while it waits (a burst of deploys of one
 * service: only the newest runs). `superseded` makes the waiter's answer from the outcome of the request that ran in
 * its place (followed through any number of newer ones).
 */
export interface Burst<T> {
  readonly group: string;
  readonly id: string;
  readonly superseded: (by: Outcome<T>) => Promise<T>;
}

interface Waiter {
  readonly group: string | undefined;
  /** Takes the waiter out of the queue in favour of a newer request; false when it has started (or left) already. */
  supersede(by: Promise<Outcome<unknown>>): boolean;
}

/**
 * One deploy per service at a time within this process (issue: "a second waits, bounded, then 409"); different
 * services run in parallel. Waiters are served in arrival order, except that a request with a `Burst` group takes
 * the place of the request queued right before it when that one is of the same group and still waiting: of a burst
 * of deploys of one service, the one running finishes and the newest runs next; those in between do not run.
 */
export class ServiceLocks {
  readonly #tails = new Map<string, Promise<void>>();
  /** The last request queued per key while it waits: the one a newer request of its group may take the place of. */
  readonly #last = new Map<string, Waiter>();

  async run<T>(key: string, waitMs: number, fn: () => Promise<T>, burst?: Burst<T>): Promise<T> {
    // With nobody queued, the turn is this request's at once: no newer one may take its place.
    const idle = !this.#tails.has(key);
    const previous = this.#tails.get(key) ?? Promise.resolve();
    let release!: () => void;
    const mine = new Promise<void>((resolve) => {
      release = resolve;
    });
    const tail = previous.then(() => mine);
    this.#tails.set(key, tail);

    let settle!: (outcome: Outcome<T> | Promise<Outcome<T>>) => void;
    const outcome = new Promise<Outcome<T>>((resolve) => {
      settle = resolve;
    });
    let state: 'waiting' | 'started' | 'left' = idle ? 'started' : 'waiting';
    let timer: NodeJS.Timeout | undefined;
    let onSupersede: (() => void) | undefined;
    const me: Waiter = {
      group: burst?.group,
      supersede: (by) => {
        if (state !== 'waiting') return false;
        state = 'left';
        settle(by as Promise<Outcome<T>>);
        onSupersede?.();
        return true;
      },
    };
    const before = this.#last.get(key);
    if (burst !== undefined && before?.group === burst.group) before.supersede(outcome);
    this.#last.set(key, me);

    const got = await new Promise<'locked' | 'timeout' | 'superseded'>((resolve) => {
      onSupersede = () => resolve('superseded');
      void previous.then(() => {
        if (state === 'left') return;
        state = 'started';
        resolve('locked');
      });
      if (idle) return;
      timer = setTimeout(() => {
        if (state !== 'waiting') return;
        state = 'left';
        resolve('timeout');
      }, waitMs);
    });
    clearTimeout(timer);
    if (this.#last.get(key) === me) this.#last.delete(key);
    if (got !== 'locked') {
      // Give the turn up without blocking those queued behind: they wait for `previous` through our `mine`.
      void previous.then(release);
      this.#cleanup(key, tail);
    }
    if (got === 'superseded' && burst !== undefined) return burst.superseded(await outcome);
    if (got !== 'locked') {
      const busy = new BusyError(`another deploy of ${key} is running; try again later`, { detail: { service: key } });
      settle({ id: burst?.id ?? '', ok: false, error: busy });
      throw busy;
    }
    try {
      const value = await fn();
      settle({ id: burst?.id ?? '', ok: true, value });
      return value;
    } catch (err) {
      settle({ id: burst?.id ?? '', ok: false, error: err });
      throw err;
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

  /** This process's queue of the service; with `burst`, a newer request of its group may take its place (ServiceLocks). */
  queued<T>(service: ServiceConfig, fn: () => Promise<T>, burst?: Burst<T>): Promise<T> {
    return this.#queue.run(service.name, this.#waitMs, fn, burst);
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
