import { describe, expect, it, vi } from 'vitest';
import { ConflictError } from '../../src/errors.js';
import { ServiceLocks } from '../../src/deploy/lock.js';

function deferred(): { promise: Promise<void>; resolve: () => void } {
  let resolve!: () => void;
  const promise = new Promise<void>((r) => (resolve = r));
  return { promise, resolve };
}

describe('ServiceLocks', () => {
  it('runs requests for one service one at a time, in arrival order', async () => {
    const locks = new ServiceLocks();
    const order: string[] = [];
    const gate = deferred();
    const a = locks.run('web', 10_000, async () => {
      order.push('a start');
      await gate.promise;
      order.push('a end');
    });
    const b = locks.run('web', 10_000, () => {
      order.push('b');
      return Promise.resolve();
    });
    await vi.waitFor(() => expect(order).toEqual(['a start']));
    await new Promise((r) => setTimeout(r, 20));
    expect(order).toEqual(['a start']); // b still waits
    gate.resolve();
    await Promise.all([a, b]);
    expect(order).toEqual(['a start', 'a end', 'b']);
  });

  it('runs different services in parallel', async () => {
    const locks = new ServiceLocks();
    const gate = deferred();
    const a = locks.run('web', 10_000, () => gate.promise);
    const b = await locks.run('api', 10_000, () => Promise.resolve('api ran'));
    expect(b).toBe('api ran');
    gate.resolve();
    await a;
  });

  it('gives up with 409 after the bounded wait, and the queue behind still runs', async () => {
    const locks = new ServiceLocks();
    const gate = deferred();
    const a = locks.run('web', 10_000, () => gate.promise);
    await expect(locks.run('web', 10, () => Promise.resolve())).rejects.toThrow(ConflictError);
    const c = locks.run('web', 10_000, () => Promise.resolve('c ran'));
    gate.resolve();
    await a;
    await expect(c).resolves.toBe('c ran');
  });

  it('releases the lock when the work throws', async () => {
    const locks = new ServiceLocks();
    await expect(locks.run('web', 100, () => Promise.reject(new Error('boom')))).rejects.toThrow('boom');
    await expect(locks.run('web', 100, () => Promise.resolve(1))).resolves.toBe(1);
  });
});
