import { describe, expect, it, vi } from 'vitest';
import { ConflictError } from '../../src/errors.js';
import { ServiceLocks, type Burst } from '../../src/deploy/lock.js';

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

  describe('a burst (requests of one group)', () => {
    const burst = (id: string, group = 'deploy'): Burst<string> => ({
      group,
      id,
      superseded: (by) => (by.ok ? Promise.resolve(`${id} answered by ${by.id}: ${by.value}`) : Promise.reject(new Error(`${id} answered by ${by.id}: failed`))),
    });

    /** Locks whose work records the order it ran in; request `a` holds its turn until `gate` opens. */
    const recorded = () => {
      const ran: string[] = [];
      const gate = deferred();
      const work = (id: string) => async (): Promise<string> => {
        ran.push(id);
        if (id === 'a') await gate.promise;
        return `${id} ran`;
      };
      return { locks: new ServiceLocks(), ran, gate, work };
    };

    it('runs the newest in the place of those waiting; the one running finishes first', async () => {
      const { locks, ran, gate, work } = recorded();
      const answers = ['a', 'b', 'c', 'd'].map((id) => locks.run('web', 10_000, work(id), burst(id)));
      gate.resolve();

      expect(await Promise.all(answers)).toEqual(['a ran', 'b answered by d: d ran', 'c answered by d: d ran', 'd ran']);
      expect(ran).toEqual(['a', 'd']);
    });

    it('answers those it replaced from the failure of the newest', async () => {
      const locks = new ServiceLocks();
      const gate = deferred();
      const a = locks.run('web', 10_000, () => gate.promise.then(() => 'a ran'), burst('a'));
      const b = locks.run('web', 10_000, () => Promise.resolve('b ran'), burst('b'));
      const c = locks.run('web', 10_000, () => Promise.reject(new Error('c broke')), burst('c'));
      gate.resolve();

      await expect(a).resolves.toBe('a ran');
      await expect(b).rejects.toThrow('b answered by c: failed');
      await expect(c).rejects.toThrow('c broke');
    });

    it('never replaces a request of another group, nor one that has a request of another group behind it', async () => {
      const { locks, ran, gate, work } = recorded();
      const answers = [
        locks.run('web', 10_000, work('a'), burst('a')),
        locks.run('web', 10_000, work('canary'), burst('canary', 'canary')),
        locks.run('web', 10_000, work('b'), burst('b')),
        locks.run('web', 10_000, work('rollback')),
        locks.run('web', 10_000, work('c'), burst('c')),
      ];
      gate.resolve();

      await Promise.all(answers);
      expect(ran).toEqual(['a', 'canary', 'b', 'rollback', 'c']);
    });
  });
});
