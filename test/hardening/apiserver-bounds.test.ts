import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { UpstreamError } from '../../src/errors.js';
import { Kubernetes } from '../../src/kube/kubernetes.js';
import { KUBE_ANSWER_LIMITS } from '../../src/kube/transport.js';
import { HUGE, IN_FLIGHT, startHostileRegistry, stream, type Handler, type Hostile } from './hostile-registry.js';

/**
 * Finding 3's class, the apiserver's part: "every outside answer is bounded while it streams", apiserver lists
 * included. The deployer lists a service's Deployments, ReplicaSets and Pods (state, verdict, canaries), objects a
 * repository shapes (up to deploy.maxObjects, each with annotations up to 256 KiB). The transport buffered every
 * answer whole and a list read every page it was given. Against a hostile apiserver on loopback: a 400 MB answer is
 * cut at the answer limit, and endless pages stop once their sum passes the list limit.
 */

const MiB = 1024 * 1024;

describe('apiserver answers are bounded while they stream', () => {
  let dir = '';
  let handler: Handler = (_req, res) => res.end();
  let apiserver: Hostile;
  let kube: Kubernetes;

  beforeAll(async () => {
    apiserver = await startHostileRegistry((req, res, sent) => handler(req, res, sent));
    dir = mkdtempSync(join(tmpdir(), 'hardening-apiserver-'));
    const kubeconfig = join(dir, 'kubeconfig');
    writeFileSync(
      kubeconfig,
      JSON.stringify({
        apiVersion: 'v1',
        kind: 'Config',
        clusters: [{ name: 'hostile', cluster: { server: apiserver.origin } }],
        users: [{ name: 'u', user: { token: 'apiserver-token-bounds' } }],
        contexts: [{ name: 'c', context: { cluster: 'hostile', user: 'u' } }],
        'current-context': 'c',
      }),
    );
    kube = new Kubernetes({ kubeconfig, fieldManager: 'deployer-test', logger: pino({ level: 'silent' }) });
  });

  afterEach(() => {
    apiserver.answers.length = 0;
  });

  afterAll(async () => {
    await apiserver?.close();
    if (dir !== '') rmSync(dir, { recursive: true, force: true });
  });

  const failure = (p: Promise<unknown>): Promise<unknown> =>
    p.then(
      () => undefined,
      (err: unknown) => err,
    );

  it('a 400 MB list answer is cut off at the answer limit (502 naming it), not read whole', async () => {
    handler = (_req, res, sent) => sent(stream(res, { total: HUGE, chunk: Buffer.from('{"metadata":{"name":"p"}},'.repeat(4000)), prefix: '{"items":[' }));
    const err = await failure(kube.listPods('shop', 'app=shop'));

    expect(err).toBeInstanceOf(UpstreamError);
    expect((err as UpstreamError).status).toBe(502);
    expect((err as UpstreamError).message).toBe(
      `the Kubernetes apiserver at ${apiserver.origin} answered more than ${KUBE_ANSWER_LIMITS.answer / MiB} MiB for GET /api/v1/namespaces/shop/pods`,
    );
    await Promise.all(apiserver.answers.map((a) => a.closed));
    expect(apiserver.answers).toHaveLength(1);
    expect(apiserver.answers[0]?.written).toBeLessThan(KUBE_ANSWER_LIMITS.answer + IN_FLIGHT);
  });

  it('endless pages of a list stop once their sum passes the list limit', async () => {
    let page = 0;
    const item = JSON.stringify({ metadata: { name: 'd', annotations: { big: 'x'.repeat(200 * 1024) } } });
    handler = (_req, res) => {
      page++;
      // About 1 MiB per page, always with a next page.
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(`{"metadata":{"continue":"page-${page}"},"items":[${Array.from({ length: 5 }, () => item).join(',')}]}`);
    };
    const err = await failure(kube.listDeployments('shop', 'app=shop'));

    expect(err).toBeInstanceOf(UpstreamError);
    expect((err as UpstreamError).message).toBe(
      `the Kubernetes apiserver at ${apiserver.origin} listed more than ${KUBE_ANSWER_LIMITS.list / MiB} MiB of deployments in namespace shop (app=shop)`,
    );
    expect(page).toBeLessThanOrEqual(KUBE_ANSWER_LIMITS.list / MiB + 2);
  });
});
