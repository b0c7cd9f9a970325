import { randomUUID } from 'node:crypto';
import { Writable } from 'node:stream';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Config } from '../../src/config/load.js';
import { Secret } from '../../src/config/secret.js';
import { InputError, NotFoundError, UpstreamError } from '../../src/errors.js';
import { RegistryClient } from '../../src/registry/client.js';
import { parseImageRef } from '../../src/registry/image-ref.js';
import { ground } from '../env/ground.js';
import { freePort } from '../env/processes.js';
import {
  pushImage,
  pushIndex,
  startFrontServer,
  startPagingProxy,
  tokensIssued,
  type FrontServer,
  type ManifestFormat,
} from '../env/registry-helpers.js';

const reg = ground('registry');
const basicAuth = { username: reg.basic.username, password: reg.basic.password };
const bearerAuth = { username: reg.bearer.username, password: reg.bearer.password };
/** Repository names of this file's own, so parallel files and reruns on the same ground do not meet. */
const ns = `client-${randomUUID().slice(0, 8)}`;

const fronts: FrontServer[] = [];
afterAll(async () => {
  await Promise.all(fronts.map((f) => f.stop()));
});
async function front<T extends FrontServer>(started: Promise<T>): Promise<T> {
  const server = await started;
  fronts.push(server);
  return server;
}

/** Every log line the client writes, at debug level, to check that no secret reaches a log. */
const logLines: string[] = [];
const logger = pino(
  { level: 'debug' },
  new Writable({
    write(chunk: Buffer, _enc, done) {
      logLines.push(chunk.toString('utf8'));
      done();
    },
  }),
);

function client(options: { extra?: Config['registries']; timeoutMs?: number; pageSize?: number; now?: () => number } = {}): RegistryClient {
  return new RegistryClient({
    credentials: {
      [reg.anonymous]: { insecure: true },
      [reg.basic.host]: { username: basicAuth.username, password: new Secret(basicAuth.password), insecure: true },
      [reg.bearer.host]: { username: bearerAuth.username, password: new Secret(bearerAuth.password), insecure: true },
      ...options.extra,
    },
    timeoutMs: options.timeoutMs ?? 10_000,
    logger,
    ...(options.pageSize === undefined ? {} : { pageSize: options.pageSize }),
    ...(options.now === undefined ? {} : { now: options.now }),
  });
}

const image = (host: string, repository: string): ReturnType<typeof parseImageRef> => parseImageRef(`${host}/${repository}`);

const tokensFor = (scope: string): Promise<number> => tokensIssued(reg.bearer.realm, scope);

async function caught(promise: Promise<unknown>): Promise<unknown> {
  try {
    await promise;
  } catch (err) {
    return err;
  }
  throw new Error('expected a rejection');
}

describe('RegistryClient.tags', () => {
  const repository = `${ns}/paged`;
  const pushedTags = ['v1', 'v2', 'v3', 'v4', 'v5', 'build-7'];

  beforeAll(async () => {
    for (const tag of pushedTags) await pushImage({ host: reg.anonymous, repository, tag });
  });

  it.each(['relative', 'absolute'] as const)('follows %s Link pagination over several pages', async (links) => {
    const proxy = await front(startPagingProxy({ upstream: reg.anonymous, links }));
    const registry = client({ extra: { [proxy.host]: { insecure: true } }, pageSize: 2 });

    const tags = await registry.tags(image(proxy.host, repository));

    expect(tags.sort()).toEqual([...pushedTags].sort());
    const pages = proxy.requests.filter((r) => r.path.includes('/tags/list'));
    expect(pages).toHaveLength(3);
    expect(pages[0]?.path).toBe(`/v2/${repository}/tags/list?n=2`);
  });

  it('lists every tag when the registry answers in one page', async () => {
    expect((await client().tags(image(reg.anonymous, repository))).sort()).toEqual([...pushedTags].sort());
  });

  it('lists the tags of a basic-auth registry', async () => {
    const repo = `${ns}/basic-tags`;
    await pushImage({ host: reg.basic.host, repository: repo, tag: '1.0.0', auth: basicAuth });
    await pushImage({ host: reg.basic.host, repository: repo, tag: '1.0.1', auth: basicAuth });

    expect((await client().tags(image(reg.basic.host, repo))).sort()).toEqual(['1.0.0', '1.0.1']);
  });

  it('answers NotFoundError for an unknown repository', async () => {
    const err = await caught(client().tags(image(reg.anonymous, `${ns}/never-pushed`)));

    expect(err).toBeInstanceOf(NotFoundError);
    expect((err as NotFoundError).message).toBe(`image repository ${reg.anonymous}/${ns}/never-pushed not found in the registry`);
    expect((err as NotFoundError).detail).toMatchObject({ code: 'NAME_UNKNOWN' });
  });
});

describe('RegistryClient.digestOf', () => {
  it.each([
    ['OCI image manifest', 'oci', false],
    ['Docker v2 schema 2 manifest', 'docker', false],
    ['OCI image index', 'oci', true],
    ['Docker manifest list', 'docker', true],
  ] as Array<[string, ManifestFormat, boolean]>)('gives the digest of an %s', async (_kind, format, index) => {
    const repository = `${ns}/digest-${format}-${index ? 'index' : 'image'}`;
    const pushed = index
      ? await pushIndex({ host: reg.anonymous, repository, tag: 'v1', format })
      : await pushImage({ host: reg.anonymous, repository, tag: 'v1', format });

    const digest = await client().digestOf(image(reg.anonymous, repository), 'v1');

    expect(digest).toBe(pushed.digest);
  });

  it('answers undefined for an unknown tag, and for an unknown repository', async () => {
    const repository = `${ns}/digest-unknown`;
    await pushImage({ host: reg.anonymous, repository, tag: 'v1' });

    expect(await client().digestOf(image(reg.anonymous, repository), 'v2')).toBeUndefined();
    expect(await client().digestOf(image(reg.anonymous, `${ns}/nothing-here`), 'v1')).toBeUndefined();
  });

  it('follows a moved tag', async () => {
    const repository = `${ns}/moved`;
    await pushImage({ host: reg.anonymous, repository, tag: 'stable' });
    const second = await pushImage({ host: reg.anonymous, repository, tag: 'stable' });

    expect(await client().digestOf(image(reg.anonymous, repository), 'stable')).toBe(second.digest);
  });

  it('hashes the manifest itself when HEAD gives no digest', async () => {
    const repository = `${ns}/no-digest-header`;
    const pushed = await pushImage({ host: reg.anonymous, repository, tag: 'v1', format: 'docker' });
    // A registry that answers HEAD without Docker-Content-Digest and GET with the manifest only.
    const bare = await front(
      startFrontServer(async (req, res) => {
        if (req.method === 'HEAD') {
          res.writeHead(200, { 'content-type': 'application/vnd.docker.distribution.manifest.v2+json' });
          res.end();
          return;
        }
        const upstream = await fetch(`http://${reg.anonymous}${req.url ?? '/'}`, {
          headers: { accept: req.headers.accept ?? '' },
        });
        res.writeHead(upstream.status, { 'content-type': upstream.headers.get('content-type') ?? 'application/json' });
        res.end(Buffer.from(await upstream.arrayBuffer()));
      }),
    );

    const digest = await client({ extra: { [bare.host]: { insecure: true } } }).digestOf(image(bare.host, repository), 'v1');

    expect(digest).toBe(pushed.digest);
    expect(bare.requests.map((r) => r.method)).toEqual(['HEAD', 'GET']);
  });

  it('refuses an invalid tag before asking the registry', async () => {
    await expect(client().digestOf(image(reg.anonymous, `${ns}/x`), '../etc')).rejects.toThrow(InputError);
  });
});

describe('RegistryClient authentication', () => {
  it('basic: sends the credentials once the registry asked for them, then up front', async () => {
    const repository = `${ns}/basic-digest`;
    const pushed = await pushImage({ host: reg.basic.host, repository, tag: 'v1', auth: basicAuth });
    const proxy = await front(startPagingProxy({ upstream: reg.basic.host, links: 'relative' }));
    const registry = client({
      extra: { [proxy.host]: { username: basicAuth.username, password: new Secret(basicAuth.password), insecure: true } },
    });

    const first = await registry.digestOf(image(proxy.host, repository), 'v1');
    const second = await registry.digestOf(image(proxy.host, repository), 'v1');

    expect(first).toBe(pushed.digest);
    expect(second).toBe(pushed.digest);
    // 401 + retry for the first call; the second sends basic credentials at once.
    expect(proxy.requests).toHaveLength(3);
  });

  it.each([
    ['a wrong password', { username: reg.basic.username, password: new Secret('wrong-password') }, 'configured'],
    ['no credentials', {}, 'none'],
  ])('basic: %s is denied', async (_case, credentials, described) => {
    const repository = `${ns}/basic-denied`;
    await pushImage({ host: reg.basic.host, repository, tag: 'v1', auth: basicAuth });
    const registry = client({ extra: { [reg.basic.host]: { ...credentials, insecure: true } } });

    const tagsErr = await caught(registry.tags(image(reg.basic.host, repository)));
    const digestErr = await caught(registry.digestOf(image(reg.basic.host, repository), 'v1'));

    for (const err of [tagsErr, digestErr]) {
      expect(err).toBeInstanceOf(UpstreamError);
      expect((err as UpstreamError).system).toBe('registry');
      expect((err as UpstreamError).status).toBe(502);
      expect((err as UpstreamError).message).toBe(`registry denied access to ${reg.basic.host}/${repository}`);
      expect((err as UpstreamError).detail).toMatchObject({ credentials: described });
    }
  });

  it('bearer: fetches a token, reuses it until it expires, then fetches another', async () => {
    const repository = `${ns}/bearer`;
    const pushed = await pushImage({ host: reg.bearer.host, repository, tag: 'v1', auth: bearerAuth });
    await pushImage({ host: reg.bearer.host, repository, tag: 'v2', auth: bearerAuth });
    const scope = `repository:${repository}:pull`;
    let clock = Date.now();
    const registry = client({ now: () => clock });

    const tags = await registry.tags(image(reg.bearer.host, repository));
    const digest = await registry.digestOf(image(reg.bearer.host, repository), 'v1');
    const missing = await registry.digestOf(image(reg.bearer.host, repository), 'v9');
    const afterFirstRound = await tokensFor(scope);
    clock += 31_000; // past the token server's 30 s expires_in
    const again = await registry.digestOf(image(reg.bearer.host, repository), 'v1');

    expect(tags.sort()).toEqual(['v1', 'v2']);
    expect(digest).toBe(pushed.digest);
    expect(missing).toBeUndefined();
    expect(afterFirstRound).toBe(1);
    expect(again).toBe(pushed.digest);
    expect(await tokensFor(scope)).toBe(2);
  });

  it('bearer: concurrent calls share one token request', async () => {
    const repository = `${ns}/bearer-concurrent`;
    await pushImage({ host: reg.bearer.host, repository, tag: 'v1', auth: bearerAuth });
    const registry = client();

    const digests = await Promise.all([1, 2, 3, 4].map(() => registry.digestOf(image(reg.bearer.host, repository), 'v1')));

    expect(new Set(digests).size).toBe(1);
    expect(await tokensFor(`repository:${repository}:pull`)).toBe(1);
  });

  it('bearer: paginates behind token auth with one token for every page', async () => {
    const repository = `${ns}/bearer-paged`;
    for (const tag of ['a', 'b', 'c', 'd', 'e']) await pushImage({ host: reg.bearer.host, repository, tag, auth: bearerAuth });
    const proxy = await front(startPagingProxy({ upstream: reg.bearer.host, links: 'absolute' }));
    const registry = client({
      extra: { [proxy.host]: { username: bearerAuth.username, password: new Secret(bearerAuth.password), insecure: true } },
      pageSize: 2,
    });

    const tags = await registry.tags(image(proxy.host, repository));

    expect(tags).toEqual(['a', 'b', 'c', 'd', 'e']);
    expect(await tokensFor(`repository:${repository}:pull`)).toBe(1);
  });

  it.each([
    ['a wrong password', { username: reg.bearer.username, password: new Secret('wrong-password') }, 'configured'],
    ['no credentials (an anonymous token grants nothing)', {}, 'none'],
  ])('bearer: %s is denied', async (_case, credentials, described) => {
    const repository = `${ns}/bearer-denied`;
    await pushImage({ host: reg.bearer.host, repository, tag: 'v1', auth: bearerAuth });
    const registry = client({ extra: { [reg.bearer.host]: { ...credentials, insecure: true } } });

    const err = await caught(registry.digestOf(image(reg.bearer.host, repository), 'v1'));

    expect(err).toBeInstanceOf(UpstreamError);
    expect((err as UpstreamError).message).toBe(`registry denied access to ${reg.bearer.host}/${repository}`);
    expect((err as UpstreamError).detail).toMatchObject({ credentials: described });
  });

  it('never logs or reports a password or a token', () => {
    const all = logLines.join('\n');

    expect(logLines.length).toBeGreaterThan(0);
    expect(all).not.toContain(basicAuth.password);
    expect(all).not.toContain(bearerAuth.password);
    expect(all).not.toContain('wrong-password');
    expect(all).not.toMatch(/Bearer |Basic |eyJ/);
  });
});

describe('RegistryClient failures', () => {
  it.each([
    [500, 502, 'answered 500', 'answered 500 (UNKNOWN) for'],
    [503, 503, 'answered 503', 'answered 503 (UNKNOWN) for'],
    [429, 503, 'is rate-limiting requests', 'is rate-limiting requests'],
  ])('maps a %i answer to UpstreamError %i', async (status, mapped, text, tagsText) => {
    const failing = await front(
      startFrontServer((_req, res) => {
        res.writeHead(status, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ errors: [{ code: 'UNKNOWN', message: 'storage failed' }] }));
      }),
    );
    const registry = client({ extra: { [failing.host]: { insecure: true } } });

    const tagsErr = await caught(registry.tags(image(failing.host, 'team/app')));
    const digestErr = await caught(registry.digestOf(image(failing.host, 'team/app'), 'v1'));

    for (const err of [tagsErr, digestErr]) {
      expect(err).toBeInstanceOf(UpstreamError);
      expect((err as UpstreamError).system).toBe('registry');
      expect((err as UpstreamError).status).toBe(mapped);
      expect((err as UpstreamError).message).toContain(`registry ${failing.host} `);
      expect((err as UpstreamError).message).toContain(text);
    }
    // The error code comes from the body, which GET has and HEAD has not.
    expect((tagsErr as UpstreamError).message).toContain(tagsText);
  });

  it('maps a registry that does not answer in time to UpstreamError 504', async () => {
    const hanging = await front(startFrontServer(() => undefined));
    const registry = client({ extra: { [hanging.host]: { insecure: true } }, timeoutMs: 300 });

    const err = await caught(registry.digestOf(image(hanging.host, 'team/app'), 'v1'));

    expect(err).toBeInstanceOf(UpstreamError);
    expect((err as UpstreamError).status).toBe(504);
    expect((err as UpstreamError).message).toBe(`registry ${hanging.host} did not answer within 300 ms (${hanging.host})`);
    expect(hanging.requests).toHaveLength(1);
  });

  it('maps a token server that does not answer in time to UpstreamError 504', async () => {
    const hangingRealm = await front(startFrontServer(() => undefined));
    const challenging = await front(
      startFrontServer((_req, res) => {
        res.writeHead(401, { 'www-authenticate': `Bearer realm="http://${hangingRealm.host}/token",service="s"` });
        res.end();
      }),
    );
    const registry = client({ extra: { [challenging.host]: { insecure: true } }, timeoutMs: 300 });

    const err = await caught(registry.tags(image(challenging.host, 'team/app')));

    expect(err).toBeInstanceOf(UpstreamError);
    expect((err as UpstreamError).status).toBe(504);
    expect(hangingRealm.requests[0]?.path).toBe('/token?service=s&scope=repository%3Ateam%2Fapp%3Apull');
  });

  it('maps a closed port to UpstreamError "cannot reach"', async () => {
    const host = `127.0.0.1:${await freePort()}`;
    const registry = client({ extra: { [host]: { insecure: true } } });

    const err = await caught(registry.tags(image(host, 'team/app')));

    expect(err).toBeInstanceOf(UpstreamError);
    expect((err as UpstreamError).message).toBe(`cannot reach registry ${host} at ${host}: ECONNREFUSED`);
  });

  it('speaks https to a registry whose config does not say insecure', async () => {
    const repository = `${ns}/https-default`;
    await pushImage({ host: reg.anonymous, repository, tag: 'v1' });
    const registry = new RegistryClient({ credentials: {}, timeoutMs: 5_000, logger });

    const err = await caught(registry.digestOf(image(reg.anonymous, repository), 'v1'));

    expect(err).toBeInstanceOf(UpstreamError);
    expect((err as UpstreamError).message).toMatch(new RegExp(`^cannot reach registry ${reg.anonymous} at ${reg.anonymous}: `));
  });

  it('refuses an unusable answer', async () => {
    const odd = await front(
      startFrontServer((_req, res) => {
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ name: 'team/app', tags: 'not-a-list' }));
      }),
    );

    const err = await caught(client({ extra: { [odd.host]: { insecure: true } } }).tags(image(odd.host, 'team/app')));

    expect(err).toBeInstanceOf(UpstreamError);
    expect((err as UpstreamError).message).toMatch(/^the tags list of .* is unusable: /);
  });
});
