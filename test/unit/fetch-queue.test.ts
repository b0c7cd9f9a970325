import { afterEach, describe, expect, it, vi } from 'vitest';
import { UpstreamError } from '../../src/errors.js';
import { FetchQueue } from '../../src/source/fetch-queue.js';

/** A fetch that ends when the test says so, recording when it started. */
function gate(log: string[], name: string): { run: () => Promise<string>; open: () => void } {
  let open: () => void = () => undefined;
  const opened = new Promise<void>((resolve) => {
    open = resolve;
  });
  return {
    run: async () => {
      log.push(name);
      await opened;
      return name;
    },
    open: () => open(),
  };
}

const flush = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

describe('FetchQueue', () => {
  it('runs one fetch per repository at a time, every waiting deploy before any read', async () => {
    const queue = new FetchQueue({ maxQueuedReads: 4, readWaitMs: 60_000 });
    const started: string[] = [];
    const first = gate(started, 'read-1');
    const second = gate(started, 'read-2');
    const deploy = gate(started, 'deploy');
    const opts = { joinRunning: false, what: 'repo' };

    const p1 = queue.run('r', 'a', 'read', first.run, opts);
    const p2 = queue.run('r', 'b', 'read', second.run, opts);
    const p3 = queue.run('r', 'c', 'deploy', deploy.run, opts);
    await flush();
    expect(started).toEqual(['read-1']);
    first.open();
    await p1;
    await flush();
    expect(started).toEqual(['read-1', 'deploy']);
    deploy.open();
    second.open();

    expect(await Promise.all([p2, p3])).toEqual(['read-2', 'deploy']);
    expect(started).toEqual(['read-1', 'deploy', 'read-2']);
  });

  it('joins a waiting fetch of the same key, and a running one only when asked to', async () => {
    const queue = new FetchQueue({ maxQueuedReads: 4, readWaitMs: 60_000 });
    const started: string[] = [];
    const running = gate(started, 'running');
    const waiting = gate(started, 'waiting');
    const other = gate(started, 'other');

    const a = queue.run('r', 'branch:main', 'deploy', running.run, { joinRunning: false, what: 'repo' });
    const b = queue.run('r', 'branch:main', 'deploy', waiting.run, { joinRunning: false, what: 'repo' });
    const c = queue.run('r', 'branch:main', 'deploy', other.run, { joinRunning: false, what: 'repo' });
    const d = queue.run('r', 'branch:main', 'read', other.run, { joinRunning: true, what: 'repo' });
    running.open();
    waiting.open();

    expect(await Promise.all([a, b, c, d])).toEqual(['running', 'waiting', 'waiting', 'running']);
    expect(started).toEqual(['running', 'waiting']);
  });

  it('refuses reads beyond the bound at once and after their wait, with a 503; other repositories go on', async () => {
    const queue = new FetchQueue({ maxQueuedReads: 1, readWaitMs: 20 });
    const started: string[] = [];
    const running = gate(started, 'running');
    const opts = { joinRunning: false, what: 'http://git/x.git' };

    const a = queue.run('r', 'a', 'read', running.run, opts);
    const waited = queue.run('r', 'b', 'read', () => Promise.resolve('b'), opts).catch((err: unknown) => err);
    let refused: unknown;
    try {
      void queue.run('r', 'c', 'read', () => Promise.resolve('c'), opts);
    } catch (err) {
      refused = err;
    }
    const elsewhere = await queue.run('s', 'a', 'read', () => Promise.resolve('elsewhere'), opts);
    const late = (await waited) as UpstreamError;
    running.open();

    expect(await a).toBe('running');
    expect(elsewhere).toBe('elsewhere');
    expect(refused).toBeInstanceOf(UpstreamError);
    expect((refused as UpstreamError).status).toBe(503);
    expect((refused as UpstreamError).message).toBe(
      'git fetches of http://git/x.git are busy (1 read already waiting); try again in a moment',
    );
    expect(late).toBeInstanceOf(UpstreamError);
    expect(late.message).toBe('git fetches of http://git/x.git are busy (waited 20 ms); try again in a moment');
  });
});

describe('FetchQueue: a deploy fetches more than once', () => {
  afterEach(() => {
    vi.useRealTimers();
  });

  // Found by bench/hardening-load.ts --components: a deploy fetches its commit, then (a moment later, once it knows
  // the tree) the blobs of its manifests; a read queued meanwhile started in that gap, and the deploy's second fetch
  // waited behind it. Reads now start only once no deploy has fetched for `deployGraceMs`.
  it("a read queued during a deploy's fetch does not start before the deploy's next fetch", async () => {
    vi.useFakeTimers();
    const queue = new FetchQueue({ maxQueuedReads: 4, readWaitMs: 60_000, deployGraceMs: 2_000 });
    const started: string[] = [];
    const opts = { joinRunning: false, what: 'repo' };
    const commit = gate(started, 'deploy: commit');
    const read = gate(started, 'read');
    const blobs = gate(started, 'deploy: blobs');

    const first = queue.run('r', 'commit', 'deploy', commit.run, opts);
    const reading = queue.run('r', 'other', 'read', read.run, opts);
    commit.open();
    await first;
    // The deploy looks at what it fetched, then asks for its blobs.
    await vi.advanceTimersByTimeAsync(300);
    const second = queue.run('r', 'blobs', 'deploy', blobs.run, opts);
    await vi.advanceTimersByTimeAsync(0);
    expect(started).toEqual(['deploy: commit', 'deploy: blobs']);

    blobs.open();
    await second;
    await vi.advanceTimersByTimeAsync(1_999);
    expect(started).toEqual(['deploy: commit', 'deploy: blobs']);
    await vi.advanceTimersByTimeAsync(1);
    expect(started).toEqual(['deploy: commit', 'deploy: blobs', 'read']);
    read.open();
    await expect(reading).resolves.toBe('read');
  });

  it('a read that waited before the deploy came does not start between its fetches either', async () => {
    vi.useFakeTimers();
    const queue = new FetchQueue({ maxQueuedReads: 4, readWaitMs: 60_000, deployGraceMs: 2_000 });
    const started: string[] = [];
    const opts = { joinRunning: false, what: 'repo' };
    const running = gate(started, 'read: running');
    const waiting = gate(started, 'read: waiting');
    const commit = gate(started, 'deploy: commit');
    const blobs = gate(started, 'deploy: blobs');

    const first = queue.run('r', 'a', 'read', running.run, opts);
    const second = queue.run('r', 'b', 'read', waiting.run, opts);
    const deployed = queue.run('r', 'commit', 'deploy', commit.run, opts);
    running.open();
    commit.open();
    await Promise.all([first, deployed]);
    await vi.advanceTimersByTimeAsync(300);
    const more = queue.run('r', 'blobs', 'deploy', blobs.run, opts);
    await vi.advanceTimersByTimeAsync(0);
    expect(started).toEqual(['read: running', 'deploy: commit', 'deploy: blobs']);

    blobs.open();
    waiting.open();
    await more;
    await vi.advanceTimersByTimeAsync(2_000);
    await expect(second).resolves.toBe('read: waiting');
    expect(started).toEqual(['read: running', 'deploy: commit', 'deploy: blobs', 'read: waiting']);
  });

  it('a read queued once the deploy has fetched (the facts of its event line) starts at once', async () => {
    vi.useFakeTimers();
    const queue = new FetchQueue({ maxQueuedReads: 4, readWaitMs: 60_000, deployGraceMs: 2_000 });
    const started: string[] = [];
    const commit = gate(started, 'deploy: commit');
    const read = gate(started, 'read');
    commit.open();
    await queue.run('r', 'commit', 'deploy', commit.run, { joinRunning: false, what: 'repo' });
    await vi.advanceTimersByTimeAsync(300);

    const reading = queue.run('r', 'other', 'read', read.run, { joinRunning: false, what: 'repo' });
    await vi.advanceTimersByTimeAsync(0);
    expect(started).toEqual(['deploy: commit', 'read']);
    read.open();
    await expect(reading).resolves.toBe('read');
  });
});
