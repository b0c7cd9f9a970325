import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { memoryOf, startScratchDeployer, type ScratchDeployer } from './harness.js';
import { basic } from '../e2e/setup.js';

/**
 * A bounded load test on `GET /` and `GET /:service` with authentication, against the deployer in a child process
 * (`src/main.ts` as `npm start` runs it, through tsx) so that its own resident memory can be measured: no request
 * fails, and after the run the RSS is back within 20 % of what it was after a warm-up. Loopback only; a fixed number
 * of requests at a fixed concurrency. The warm-up is long enough for V8's heap to reach its working size (about
 * 4,000 requests here: RSS then stays flat over further rounds), so that growth after it would be a leak.
 */

const CI_SECRET = 'ci-secret-load-0123456789';
const SERVICES = Array.from({ length: 20 }, (_, i) => `svc-${i}`);
const WARMUP = 4_000;
const REQUESTS = 3_000;
const CONCURRENCY = 8;

interface LoadResult {
  ok: number;
  failures: string[];
}

/** `total` requests, `concurrency` at a time; request i is `make(i)`. */
async function load(total: number, concurrency: number, make: (i: number) => Promise<string | undefined>): Promise<LoadResult> {
  let next = 0;
  const result: LoadResult = { ok: 0, failures: [] };
  const worker = async (): Promise<void> => {
    while (next < total) {
      const i = next++;
      try {
        const problem = await make(i);
        if (problem === undefined) result.ok++;
        else result.failures.push(problem);
      } catch (err) {
        result.failures.push(`request ${i}: ${String(err)}`);
      }
    }
  };
  await Promise.all(Array.from({ length: concurrency }, () => worker()));
  return result;
}

describe('bounded load on GET / and GET /:service', () => {
  let deployer: ScratchDeployer | undefined;
  const printed = (): string => deployer?.output() ?? '';
  let url: string;

  beforeAll(async () => {
    deployer = await startScratchDeployer('hardening-load-', {
      tokens: { ci: { secret: { value: CI_SECRET }, services: ['*'], actions: ['read'] } },
      services: Object.fromEntries(
        SERVICES.map((s) => [s, { repository: { url: `https://git.example.test/${s}.git`, credentials: { username: 'u', password: { value: 'repo-password-load-xyz' } } }, namespace: s }]),
      ),
    });
    url = deployer.url;
  });

  afterAll(async () => {
    await deployer?.close();
  });

  const auth = basic('ci', CI_SECRET);
  const request = async (i: number): Promise<string | undefined> => {
    const service = SERVICES[i % SERVICES.length] ?? '';
    const path = i % 2 === 0 ? '/' : `/${service}`;
    const res = await fetch(`${url}${path}`, { headers: { authorization: auth } });
    const body = (await res.json()) as Record<string, unknown>;
    if (res.status !== 200) return `${path}: ${res.status} ${JSON.stringify(body)}`;
    if (path === '/' && (body['services'] as unknown[]).length !== SERVICES.length) return `${path}: ${JSON.stringify(body)}`;
    if (path !== '/' && body['name'] !== service) return `${path}: ${JSON.stringify(body)}`;
    return undefined;
  };

  it(`${REQUESTS} requests at concurrency ${CONCURRENCY}: no errors, RSS back within 20 % afterwards`, async () => {
    const pid = deployer?.child.pid ?? 0;
    const warm = await load(WARMUP, CONCURRENCY, request);
    expect(warm.failures).toEqual([]);
    const start = memoryOf(pid, 'VmRSS');

    const run = await load(REQUESTS, CONCURRENCY, request);
    expect(run.failures.slice(0, 5)).toEqual([]);
    expect(run.ok).toBe(REQUESTS);

    // Memory is given back lazily (V8 shrinks its heap after idle GCs): poll for a while before judging.
    const limit = start * 1.2;
    let end = memoryOf(pid, 'VmRSS');
    for (let i = 0; i < 150 && end > limit; i++) {
      await new Promise((r) => setTimeout(r, 200));
      end = memoryOf(pid, 'VmRSS');
    }
    console.info(`load: ${run.ok} requests ok; RSS ${(start / 2 ** 20).toFixed(1)} MiB after warm-up, ${(end / 2 ** 20).toFixed(1)} MiB after the run`);
    expect(end, `RSS ${(start / 2 ** 20).toFixed(1)} MiB after warm-up, ${(end / 2 ** 20).toFixed(1)} MiB after the run`).toBeLessThanOrEqual(limit);
    expect(deployer?.child.exitCode).toBeNull();
  }, 300_000);

  it('the child logged no secret', () => {
    expect(printed()).toContain('listening');
    expect(printed()).not.toContain(CI_SECRET);
    expect(printed()).not.toContain(Buffer.from(`ci:${CI_SECRET}`).toString('base64'));
    expect(printed()).not.toContain('repo-password-load-xyz');
  });
});
