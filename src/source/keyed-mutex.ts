/**
 * Runs tasks one at a time per key, different keys in parallel: fetches into one repository cache are serialized
 * (git's ref and shallow locks would make a second concurrent fetch fail), other repositories go on.
 */
export class KeyedMutex {
  readonly #tails = new Map<string, Promise<unknown>>();

  async run<T>(key: string, task: () => Promise<T>): Promise<T> {
    const previous = this.#tails.get(key) ?? Promise.resolve();
    const current = previous.then(task, task);
    const tail = current.catch(() => undefined);
    this.#tails.set(key, tail);
    try {
      return await current;
    } finally {
      // The last task of a key drops the entry, so the map does not grow with every repository ever seen.
      if (this.#tails.get(key) === tail) this.#tails.delete(key);
    }
  }
}
