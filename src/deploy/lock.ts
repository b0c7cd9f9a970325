import type { ServiceConfig } from '../config/load.js';
import { ConflictError } from '../errors.js';
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
      throw new ConflictError(`another deploy of ${key} is running; try again later`, { detail: { service: key } });
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

/** Runs the cluster phase of a deploy under the Lease, or as it is when the caller holds the Lease already. */
export type Hold = <T>(fn: () => Promise<T>) => Promise<T>;

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

  constructor(options: { readonly lease: LeaseLock; readonly waitMs: number }) {
    this.#lease = options.lease;
    this.#waitMs = options.waitMs;
  }

  /** This process's queue of the service. */
  queued<T>(service: ServiceConfig, fn: () => Promise<T>): Promise<T> {
    return this.#queue.run(service.name, this.#waitMs, fn);
  }

  /** The service's Lease across replicas, to be taken inside `queued`. */
  leased(service: ServiceConfig, requestId: string): Hold {
    return (fn) => this.#lease.hold(service, this.#waitMs, fn, { requestId });
  }

  /** Both: the queue, then the Lease. */
  exclusive<T>(service: ServiceConfig, requestId: string, fn: () => Promise<T>): Promise<T> {
    return this.queued(service, () => this.leased(service, requestId)(fn));
  }
}

/** For a flow that holds the lock already: the cluster phase runs as it is. */
export const held: Hold = (fn) => fn();
