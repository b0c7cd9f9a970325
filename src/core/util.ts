/** Small helpers every layer shares: one copy each. */

export const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * `promise`, or a rejection with `message` after `ms`. The loser keeps running; it must not become an unhandled
 * rejection once the timeout has won. The timer never keeps the process alive.
 */
export function withTimeout<T>(promise: Promise<T>, ms: number, message: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(message)), ms);
    timer.unref();
  });
  promise.catch(() => undefined);
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

/** A git commit (SHA-1 or SHA-256) as people write it: its first 7 characters; anything else (an svn revision) as is. */
export function shortCommit(commit: string): string {
  return /^[0-9a-f]{40}([0-9a-f]{24})?$/i.test(commit) ? commit.slice(0, 7) : commit;
}

/** One limit per concept: the most a service's manifests directory may hold, read from git or svn. */
export const MAX_MANIFEST_BYTES = 8 * 1024 * 1024;
