import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import type { ServiceConfig } from '../../src/config/load.js';
import { holderIdentity, LeaseLock, leaseName } from '../../src/deploy/lease.js';
import { ConflictError } from '../../src/errors.js';
import type { LeaseRecord, LeaseSpec } from '../../src/core/types.js';
import type { LeaseStore } from '../../src/core/ports.js';

/** An in-memory Lease store with the apiserver's optimistic concurrency: an update must name the current version. */
class MemoryLeases implements LeaseStore {
  readonly records = new Map<string, LeaseRecord>();
  readonly writes: Array<{ holder: string | undefined; renewTime: Date | undefined }> = [];
  failures = 0;
  reads = 0;
  #version = 0;

  get(namespace: string, name: string): Promise<LeaseRecord | undefined> {
    this.reads++;
    return Promise.resolve(this.records.get(`${namespace}/${name}`));
  }

  create(namespace: string, name: string, spec: LeaseSpec): Promise<LeaseRecord | 'conflict'> {
    if (this.records.has(`${namespace}/${name}`)) return Promise.resolve('conflict');
    return Promise.resolve(this.#store(namespace, name, spec));
  }

  update(record: LeaseRecord, spec: LeaseSpec): Promise<LeaseRecord | 'conflict'> {
    if (this.failures > 0) {
      this.failures--;
      return Promise.reject(new Error('apiserver unreachable'));
    }
    const current = this.records.get(`${record.namespace}/${record.name}`);
    if (current?.resourceVersion !== record.resourceVersion) return Promise.resolve('conflict');
    return Promise.resolve(this.#store(record.namespace, record.name, spec));
  }

  /** Someone else writes the lease (another replica, by hand). */
  put(namespace: string, name: string, spec: Partial<LeaseSpec> & { holder: string | undefined }): LeaseRecord {
    return this.#store(namespace, name, { durationSeconds: 15, acquireTime: undefined, renewTime: undefined, transitions: 0, ...spec });
  }

  #store(namespace: string, name: string, spec: LeaseSpec): LeaseRecord {
    const record: LeaseRecord = {
      namespace,
      name,
      resourceVersion: String(++this.#version),
      holder: spec.holder,
      durationSeconds: spec.durationSeconds,
      acquireTime: spec.acquireTime,
      renewTime: spec.renewTime,
      transitions: spec.transitions,
    };
    this.records.set(`${namespace}/${name}`, record);
    this.writes.push({ holder: spec.holder, renewTime: spec.renewTime });
    return record;
  }
}

function capture(): { logger: pino.Logger; lines: Array<Record<string, unknown>> } {
  const lines: Array<Record<string, unknown>> = [];
  const logger = pino({ level: 'debug' }, { write: (s: string) => void lines.push(JSON.parse(s) as Record<string, unknown>) });
  return { logger, lines };
}

const service = { name: 'shop', namespace: 'shop' } as ServiceConfig;
const KEY = 'shop/deployer-shop';
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Resolves once `done()` holds (the test's timeout bounds it). */
async function until(done: () => boolean): Promise<void> {
  while (!done()) await sleep(5);
}

/** A clock that only moves when a waiter sleeps, so expiry is tested without waiting. */
function fakeClock(start = Date.parse('2024-05-06T07:00:00Z')): { now: () => number; sleep: (ms: number) => Promise<void> } {
  let t = start;
  return {
    now: () => t,
    sleep: (ms) => {
      t += ms;
      return Promise.resolve();
    },
  };
}

describe('LeaseLock', () => {
  it('creates the lease, holds it while fn runs, and releases it', async () => {
    const store = new MemoryLeases();
    const { logger, lines } = capture();
    const lock = new LeaseLock({ store, identity: 'pod-a', logger });

    const result = await lock.hold(
      service,
      1000,
      () => {
        expect(store.records.get(KEY)).toMatchObject({ holder: 'pod-a', durationSeconds: 15, transitions: 0 });
        return Promise.resolve(42);
      },
      { requestId: 'r1' },
    );

    expect(result).toBe(42);
    expect(store.records.get(KEY)?.holder).toBeUndefined();
    expect(lines.filter((l) => l['module'] === 'lease').map((l) => [l['msg'], l['requestId'], l['lease']])).toEqual([
      ['lease acquired', 'r1', KEY],
      ['lease released', 'r1', KEY],
    ]);
  });

  it('releases the lease when fn fails, and passes the error on', async () => {
    const store = new MemoryLeases();
    const lock = new LeaseLock({ store, identity: 'pod-a', logger: pino({ level: 'silent' }) });
    await expect(lock.hold(service, 1000, () => Promise.reject(new Error('apply failed')))).rejects.toThrow('apply failed');
    expect(store.records.get(KEY)?.holder).toBeUndefined();
  });

  it('never lets two holders run at once, two holds of one replica included', async () => {
    const store = new MemoryLeases();
    const silent = pino({ level: 'silent' });
    const locks = [
      new LeaseLock({ store, identity: 'pod-a', logger: silent, pollMs: 5 }),
      new LeaseLock({ store, identity: 'pod-b', logger: silent, pollMs: 5 }),
    ];
    let inside = 0;
    let most = 0;
    const order: string[] = [];
    await Promise.all(
      Array.from({ length: 6 }, (_, i) =>
        (locks[i % 2] as LeaseLock).hold(service, 5000, async () => {
          inside++;
          most = Math.max(most, inside);
          order.push(`in ${i}`);
          await sleep(10);
          order.push(`out ${i}`);
          inside--;
        }),
      ),
    );
    expect(most).toBe(1);
    expect(order).toHaveLength(12);
  });

  it('takes over a lease whose holder stopped renewing (renewTime older than its duration), counting the transition', async () => {
    const store = new MemoryLeases();
    const clock = fakeClock();
    const { logger, lines } = capture();
    store.put('shop', 'deployer-shop', { holder: 'dead-pod', renewTime: new Date(clock.now() - 16_000), transitions: 3 });
    const lock = new LeaseLock({ store, identity: 'pod-a', logger, now: clock.now, sleep: clock.sleep });

    await lock.hold(service, 0, () => {
      expect(store.records.get(KEY)).toMatchObject({ holder: 'pod-a', transitions: 4 });
      return Promise.resolve();
    });
    expect(lines).toContainEqual(expect.objectContaining({ msg: 'lease taken over from a holder that stopped renewing it', previousHolder: 'dead-pod' }));
  });

  it('takes over a lease that has not changed for its duration even if its renewTime lies ahead (a holder clock ahead)', async () => {
    const store = new MemoryLeases();
    const clock = fakeClock();
    store.put('shop', 'deployer-shop', { holder: 'fast-clock-pod', renewTime: new Date(clock.now() + 3_600_000), durationSeconds: 15 });
    const lock = new LeaseLock({ store, identity: 'pod-a', logger: pino({ level: 'silent' }), now: clock.now, sleep: clock.sleep });
    const start = clock.now();

    await lock.hold(service, 60_000, () => Promise.resolve());
    expect(clock.now() - start).toBeGreaterThan(15_000);
    expect(clock.now() - start).toBeLessThan(17_000);
  });

  it('takes the lease it released last without reading it first: one write per acquisition', async () => {
    const store = new MemoryLeases();
    const lock = new LeaseLock({ store, identity: 'pod-a', logger: pino({ level: 'silent' }) });
    await lock.hold(service, 1000, () => Promise.resolve());
    const reads = store.reads;
    const writes = store.writes.length;

    await lock.hold(service, 1000, () => {
      expect(store.records.get(KEY)?.holder).toBe('pod-a');
      return Promise.resolve();
    });

    expect(store.reads - reads).toBe(0);
    expect(store.writes.slice(writes).map((w) => w.holder)).toEqual(['pod-a', undefined]);
  });

  it('reads the lease again when another replica wrote it after this one released it, and waits for that holder', async () => {
    const store = new MemoryLeases();
    const clock = fakeClock();
    const lock = new LeaseLock({ store, identity: 'pod-a', logger: pino({ level: 'silent' }), now: clock.now, sleep: clock.sleep });
    await lock.hold(service, 1000, () => Promise.resolve());
    // pod-b took the lease meanwhile and is still deploying: the version pod-a remembers is stale.
    store.put('shop', 'deployer-shop', { holder: 'pod-b', renewTime: new Date(clock.now()), transitions: 1 });
    let ran = false;

    const err = await lock.hold(service, 1000, () => Promise.resolve((ran = true))).catch((e: unknown) => e);

    expect(err).toBeInstanceOf(ConflictError);
    expect(ran).toBe(false);
    expect(store.records.get(KEY)?.holder).toBe('pod-b');
    // Once pod-b released it, pod-a takes it (read again, not from its memory).
    store.put('shop', 'deployer-shop', { holder: undefined, transitions: 1 });
    await lock.hold(service, 1000, () => {
      expect(store.records.get(KEY)).toMatchObject({ holder: 'pod-a', transitions: 2 });
      return Promise.resolve();
    });
  });

  it('waits for a live holder, then answers 409 naming it; the holder keeps its lease', async () => {
    const store = new MemoryLeases();
    const clock = fakeClock();
    // The holder renews whenever the waiter looks: it is alive.
    const lock = new LeaseLock({
      store,
      identity: 'pod-a',
      logger: pino({ level: 'silent' }),
      now: clock.now,
      sleep: async (ms) => {
        await clock.sleep(ms);
        store.put('shop', 'deployer-shop', { holder: 'busy-pod', renewTime: new Date(clock.now()) });
      },
    });
    store.put('shop', 'deployer-shop', { holder: 'busy-pod', renewTime: new Date(clock.now()) });
    let ran = false;

    const err = await lock.hold(service, 30_000, () => Promise.resolve((ran = true))).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ConflictError);
    expect(err).toMatchObject({ message: 'another deploy of shop is running (lock held by busy-pod); try again later', detail: { service: 'shop', holder: 'busy-pod' } });
    expect(ran).toBe(false);
    expect(store.records.get(KEY)?.holder).toBe('busy-pod');
  });

  it('renews the lease while fn runs, and survives a failed renewal', async () => {
    const store = new MemoryLeases();
    const { logger, lines } = capture();
    const lock = new LeaseLock({ store, identity: 'pod-a', logger, renewSeconds: 0.02 });

    const byA = (): number => store.writes.filter((w) => w.holder === 'pod-a').length;
    await lock.hold(service, 1000, async () => {
      store.failures = 1;
      // Created, then (after one failed renewal) renewed twice.
      await until(() => byA() >= 3);
    });
    expect(lines).toContainEqual(expect.objectContaining({ msg: 'lease renewal failed', level: 40 }));
    const renewTimes = store.writes.filter((w) => w.holder === 'pod-a').map((w) => w.renewTime?.getTime() ?? 0);
    expect(renewTimes).toEqual([...renewTimes].sort((x, y) => x - y));
    expect(store.records.get(KEY)?.holder).toBeUndefined();
  });

  it('logs a lease lost to another replica during the deploy, and leaves that replica its lease', async () => {
    const store = new MemoryLeases();
    const { logger, lines } = capture();
    const lock = new LeaseLock({ store, identity: 'pod-a', logger, renewSeconds: 0.02 });

    await lock.hold(service, 1000, async () => {
      store.put('shop', 'deployer-shop', { holder: 'thief', renewTime: new Date() });
      await until(() => lines.some((l) => l['msg'] === 'lease lost while deploying: another replica took it over'));
    });
    expect(lines).toContainEqual(expect.objectContaining({ msg: 'lease lost while deploying: another replica took it over', newHolder: 'thief', level: 50 }));
    expect(store.records.get(KEY)?.holder).toBe('thief');
  });

  it('takes at once a lease held under its own identity by an earlier process (a restarted container)', async () => {
    const store = new MemoryLeases();
    const clock = fakeClock();
    store.put('shop', 'deployer-shop', { holder: 'pod-a', renewTime: new Date(clock.now()), transitions: 2 });
    const lock = new LeaseLock({ store, identity: 'pod-a', logger: pino({ level: 'silent' }), now: clock.now, sleep: clock.sleep });
    const start = clock.now();
    await lock.hold(service, 60_000, () => {
      expect(store.records.get(KEY)).toMatchObject({ holder: 'pod-a', transitions: 2 });
      return Promise.resolve();
    });
    expect(clock.now()).toBe(start);
  });

  it('puts the lease into the configured namespace', async () => {
    const store = new MemoryLeases();
    const lock = new LeaseLock({ store, identity: 'pod-a', logger: pino({ level: 'silent' }), namespace: 'deployer' });
    await lock.hold(service, 1000, () => Promise.resolve());
    expect([...store.records.keys()]).toEqual(['deployer/deployer-shop']);
  });
});

describe('lease names and holders', () => {
  it('names a service lease', () => {
    expect(leaseName('shop')).toBe('deployer-shop');
  });

  it.each([
    [{ POD_NAME: 'deployer-7d9f-abcde' }, 'deployer-7d9f-abcde'],
    [{ POD_NAME: '  ' }, new RegExp(`-${process.pid}$`)],
    [{}, new RegExp(`-${process.pid}$`)],
  ])('holder identity from %j', (env, expected) => {
    if (typeof expected === 'string') expect(holderIdentity(env)).toBe(expected);
    else expect(holderIdentity(env)).toMatch(expected);
  });
});
