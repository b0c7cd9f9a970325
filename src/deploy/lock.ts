import { ConflictError } from '../errors.js';

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
