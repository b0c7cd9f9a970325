import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ANSWER_LIMITS } from '../../src/registry/transport.js';
import { basic, serviceRepo } from '../e2e/setup.js';
import { deploymentYaml } from '../env/manifests.js';
import { memoryOf, startScratchDeployer, type ScratchDeployer } from './harness.js';
import { HUGE, startHostileRegistry, stream, type Hostile } from './hostile-registry.js';

/**
 * The registry bounds seen from outside, in the deployer's own process (`src/main.ts` through tsx, as the load test
 * runs it) so that its peak memory is its own: a read token's `GET /:service/tags` against a registry that answers
 * 400 MB tag lists (three at once took the process to 1.75 GB before), and against one that redirects to another
 * host (whose body was echoed in the answer).
 */

const SECRET = 'reader-secret-bounds-0123456789';
const auth = basic('reader', SECRET);
const MiB = 1024 * 1024;
/** The pod's memory limit is 512 Mi; the hardening target leaves room below it. */
const PEAK_TARGET = 400 * MiB;
/** Three tags lists of at most 8 MiB each, with their parsed copies: well below one offered body. */
const GROWTH_BOUND = 150 * MiB;

describe("a read token's GET /:service/tags against a hostile registry, in the deployer's process", () => {
  let deployer: ScratchDeployer | undefined;
  const printed = (): string => deployer?.output() ?? '';
  let url = '';
  let huge: Hostile;
  let redirecting: Hostile;
  let elsewhere: Hostile;
  let bigService = '';
  let movedService = '';

  beforeAll(async () => {
    huge = await startHostileRegistry((_req, res, sent) => {
      sent(stream(res, { total: HUGE, chunk: Buffer.from('"t-xxxxxxxx",'.repeat(5000)), prefix: '{"tags":[' }));
    });
    elsewhere = await startHostileRegistry((_req, res) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end('{"tags":["SECRET-FROM-ELSEWHERE"]}');
    });
    redirecting = await startHostileRegistry((_req, res) => {
      res.writeHead(302, { location: `${elsewhere.origin}/latest/meta-data` });
      res.end();
    });
    const big = await serviceRepo('bounds', [
      { files: { 'kubernetes/deployment.yaml': deploymentYaml({ name: 'app', image: `${huge.host}/team/app`, port: false }) } },
    ]);
    const moved = await serviceRepo('moved', [
      { files: { 'kubernetes/deployment.yaml': deploymentYaml({ name: 'app', image: `${redirecting.host}/team/app`, port: false }) } },
    ]);
    bigService = big.name;
    movedService = moved.name;

    deployer = await startScratchDeployer('hardening-registry-', {
      tokens: { reader: { secret: { value: SECRET }, services: ['*'], actions: ['read'] } },
      services: {
        [big.name]: { repository: big.repository, namespace: 'default' },
        [moved.name]: { repository: moved.repository, namespace: 'default' },
      },
      registries: { [huge.host]: { insecure: true }, [redirecting.host]: { insecure: true } },
    });
    url = deployer.url;
  });

  afterAll(async () => {
    await deployer?.close();
    await Promise.all([huge, redirecting, elsewhere].map((s) => s?.close()));
  });

  const tags = async (service: string): Promise<{ status: number; text: string; body: Record<string, unknown> }> => {
    const res = await fetch(`${url}/${service}/tags`, { headers: { authorization: auth } });
    const text = await res.text();
    return { status: res.status, text, body: JSON.parse(text) as Record<string, unknown> };
  };

  it('three 400 MB tag lists at once: each a 502 naming the registry and the limit; peak RSS stays below 400 MiB', async () => {
    const pid = deployer?.child.pid ?? 0;
    const before = memoryOf(pid, 'VmHWM');
    const answers = await Promise.all([tags(bigService), tags(bigService), tags(bigService)]);

    for (const answer of answers) {
      expect(answer.status, answer.text).toBe(502);
      expect(answer.body).toMatchObject({
        error: `registry ${huge.host} answered more than 8 MiB for the tags list of ${huge.host}/team/app`,
        system: 'registry',
        limitBytes: ANSWER_LIMITS.tags,
      });
    }
    // Every answer was cut off near the limit, not read to its 400 MB.
    await Promise.all(huge.answers.map((a) => a.closed));
    expect(huge.answers).toHaveLength(3);
    for (const a of huge.answers) expect(a.written).toBeLessThan(ANSWER_LIMITS.tags + 32 * MiB);
    const peak = memoryOf(pid, 'VmHWM');
    console.info(
      `registry bounds: peak RSS ${(before / MiB).toFixed(0)} MiB before, ${(peak / MiB).toFixed(0)} MiB after; ` +
        `now ${(memoryOf(pid, 'VmRSS') / MiB).toFixed(0)} MiB`,
    );
    expect(peak).toBeLessThan(PEAK_TARGET);
    // Three bounded lists in flight, not three bodies of 400 MB (which took it past 1.7 GB).
    expect(peak - before).toBeLessThan(GROWTH_BOUND);
    expect(deployer?.child.exitCode).toBeNull();
  });

  it('a redirect to another host: 502 naming the redirect, nothing asked of that host, nothing of its body shown', async () => {
    const answer = await tags(movedService);

    expect(answer.status, answer.text).toBe(502);
    expect(answer.body['error']).toBe(
      `registry ${redirecting.host} redirected GET /v2/team/app/tags/list to another host (${elsewhere.origin}); ` +
        `the deployer follows redirects only within ${redirecting.origin}`,
    );
    expect(answer.text).not.toContain('SECRET');
    expect(elsewhere.requests).toEqual([]);
  });

  it('the child logged no secret and lived', () => {
    expect(printed()).not.toContain(SECRET);
    expect(printed()).not.toContain('SECRET-FROM-ELSEWHERE');
    expect(deployer?.child.exitCode).toBeNull();
  });
});
