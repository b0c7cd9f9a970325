import { createHash, randomBytes } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { gzipSync } from 'node:zlib';

/**
 * Test helpers that talk to the test ground's registries through the HTTP API v2 only (there is no Docker engine):
 * push images and indexes, list tags, delete manifests; and small loopback servers to put in front of a registry.
 * Independent of src/registry on purpose: they must not share the client's bugs.
 */

export interface RegistryAuth {
  username: string;
  password: string;
}

export type ManifestFormat = 'oci' | 'docker';

export const MEDIA_TYPES = {
  oci: {
    manifest: 'application/vnd.oci.image.manifest.v1+json',
    index: 'application/vnd.oci.image.index.v1+json',
    config: 'application/vnd.oci.image.config.v1+json',
    layer: 'application/vnd.oci.image.layer.v1.tar+gzip',
  },
  docker: {
    manifest: 'application/vnd.docker.distribution.manifest.v2+json',
    index: 'application/vnd.docker.distribution.manifest.list.v2+json',
    config: 'application/vnd.docker.container.image.v1+json',
    layer: 'application/vnd.docker.image.rootfs.diff.tar.gzip',
  },
} as const;

const ALL_MANIFEST_TYPES = [
  MEDIA_TYPES.oci.index,
  MEDIA_TYPES.oci.manifest,
  MEDIA_TYPES.docker.index,
  MEDIA_TYPES.docker.manifest,
].join(', ');

const sha256 = (data: Buffer | string): string => `sha256:${createHash('sha256').update(data).digest('hex')}`;

function challengeParams(header: string): Record<string, string> {
  const params: Record<string, string> = {};
  for (const m of header.matchAll(/(\w+)="([^"]*)"/g)) params[m[1]!.toLowerCase()] = m[2]!;
  return params;
}

const basicHeader = (auth: RegistryAuth): string =>
  `Basic ${Buffer.from(`${auth.username}:${auth.password}`).toString('base64')}`;

/**
 * A request to a registry on loopback (plain http), answering its challenge once: basic credentials for `Basic`,
 * a token from the realm (with basic credentials) for `Bearer`. `path` starts with `/v2/` or is an absolute URL.
 */
export async function registryFetch(
  host: string,
  path: string,
  init: { method?: string; headers?: Record<string, string>; body?: Buffer | string } = {},
  auth?: RegistryAuth,
): Promise<Response> {
  const url = new URL(path, `http://${host}`);
  const send = (authorization?: string): Promise<Response> =>
    fetch(url, {
      method: init.method ?? 'GET',
      headers: { ...init.headers, ...(authorization === undefined ? {} : { authorization }) },
      ...(init.body === undefined ? {} : { body: init.body }),
      redirect: 'manual',
      signal: AbortSignal.timeout(30_000),
    });
  const first = await send();
  if (first.status !== 401 || auth === undefined) return first;
  await first.body?.cancel();
  const challenge = first.headers.get('www-authenticate') ?? '';
  if (/^basic/i.test(challenge)) return send(basicHeader(auth));
  if (!/^bearer/i.test(challenge)) throw new Error(`unexpected challenge from ${host}: ${challenge}`);
  const { realm, service, scope } = challengeParams(challenge);
  if (realm === undefined) throw new Error(`bearer challenge without realm from ${host}`);
  const tokenUrl = new URL(realm);
  if (service !== undefined) tokenUrl.searchParams.set('service', service);
  if (scope !== undefined) for (const s of scope.split(' ')) tokenUrl.searchParams.append('scope', s);
  const tokenRes = await fetch(tokenUrl, {
    headers: { authorization: basicHeader(auth) },
    signal: AbortSignal.timeout(30_000),
  });
  if (!tokenRes.ok) throw new Error(`token server answered ${tokenRes.status}`);
  const body = (await tokenRes.json()) as { token?: string; access_token?: string };
  const token = body.token ?? body.access_token;
  if (token === undefined) throw new Error('token server answered without a token');
  return send(`Bearer ${token}`);
}

async function expectStatus(res: Response, expected: number[], what: string): Promise<void> {
  if (expected.includes(res.status)) return;
  const text = await res.text().catch(() => '');
  throw new Error(`${what}: registry answered ${res.status} ${text}`);
}

interface Target {
  host: string;
  repository: string;
  auth?: RegistryAuth | undefined;
}

/** Uploads a blob: POST to start an upload, then a monolithic PUT ?digest= to its Location. */
export async function pushBlob(target: Target, data: Buffer): Promise<{ digest: string; size: number }> {
  const digest = sha256(data);
  const start = await registryFetch(target.host, `/v2/${target.repository}/blobs/uploads/`, { method: 'POST' }, target.auth);
  await expectStatus(start, [202], `start upload to ${target.repository}`);
  const location = start.headers.get('location');
  if (location === null) throw new Error('upload without Location');
  const url = new URL(location, `http://${target.host}`);
  url.searchParams.set('digest', digest);
  const put = await registryFetch(
    target.host,
    url.toString(),
    { method: 'PUT', headers: { 'content-type': 'application/octet-stream' }, body: data },
    target.auth,
  );
  await expectStatus(put, [201], `upload blob to ${target.repository}`);
  return { digest, size: data.length };
}

/** PUTs a manifest under `reference` (a tag or its own digest); returns its digest as the registry computed it. */
export async function putManifest(
  target: Target,
  reference: string,
  manifest: unknown,
  mediaType: string,
): Promise<{ digest: string; size: number; mediaType: string }> {
  const body = Buffer.from(JSON.stringify(manifest));
  const res = await registryFetch(
    target.host,
    `/v2/${target.repository}/manifests/${reference}`,
    { method: 'PUT', headers: { 'content-type': mediaType }, body },
    target.auth,
  );
  await expectStatus(res, [201], `put manifest ${target.repository}:${reference}`);
  const digest = sha256(body);
  const answered = res.headers.get('docker-content-digest');
  if (answered !== null && answered !== digest) throw new Error(`registry computed ${answered}, expected ${digest}`);
  return { digest, size: body.length, mediaType };
}

/** A one-file tar archive (ustar), enough to be a real layer; `mode` is octal, e.g. '0000755' for a program. */
export function tarOf(name: string, content: Buffer, mode = '0000644'): Buffer {
  const header = Buffer.alloc(512);
  const field = (offset: number, length: number, value: string): void => {
    header.write(value, offset, length, 'ascii');
  };
  field(0, 100, name);
  field(100, 8, `${mode}\0`);
  field(108, 8, '0000000\0');
  field(116, 8, '0000000\0');
  field(124, 12, content.length.toString(8).padStart(11, '0') + '\0');
  field(136, 12, '00000000000\0');
  field(148, 8, '        ');
  field(156, 1, '0');
  field(257, 6, 'ustar\0');
  field(263, 2, '00');
  let sum = 0;
  for (const byte of header) sum += byte;
  field(148, 8, sum.toString(8).padStart(6, '0') + '\0 ');
  const padding = Buffer.alloc((512 - (content.length % 512)) % 512);
  return Buffer.concat([header, content, padding, Buffer.alloc(1024)]);
}

export interface PushImageOptions extends Target {
  tag: string;
  /** `oci` (default): OCI image manifest; `docker`: Docker image manifest v2 schema 2. */
  format?: ManifestFormat;
  /** The content of the image's one file; default random, so that every push gives a new digest. */
  content?: string;
  platform?: { os: string; architecture: string };
}

export interface PushedManifest {
  digest: string;
  size: number;
  mediaType: string;
}

/** Builds and pushes a small one-layer image; with `tag: ''` the manifest is pushed by digest only (untagged). */
export async function pushImage(options: PushImageOptions): Promise<PushedManifest> {
  const format = options.format ?? 'oci';
  const types = MEDIA_TYPES[format];
  const platform = options.platform ?? { os: 'linux', architecture: 'amd64' };
  const content = Buffer.from(options.content ?? `deployer test image ${randomBytes(12).toString('hex')}\n`);
  const tar = tarOf('hello.txt', content);
  const layer = await pushBlob(options, gzipSync(tar));
  const config = await pushBlob(
    options,
    Buffer.from(
      JSON.stringify({
        ...platform,
        config: { Cmd: ['/hello.txt'] },
        rootfs: { type: 'layers', diff_ids: [sha256(tar)] },
      }),
    ),
  );
  const manifest = {
    schemaVersion: 2,
    mediaType: types.manifest,
    config: { mediaType: types.config, ...config },
    layers: [{ mediaType: types.layer, ...layer }],
  };
  const digest = sha256(JSON.stringify(manifest));
  return putManifest(options, options.tag === '' ? digest : options.tag, manifest, types.manifest);
}

export interface PushIndexOptions extends Target {
  tag: string;
  /** `oci` (default): OCI image index of OCI manifests; `docker`: Docker manifest list of Docker v2 manifests. */
  format?: ManifestFormat;
  platforms?: Array<{ os: string; architecture: string }>;
}

/** Pushes one image per platform (by digest, untagged), then an index of them under `tag`. */
export async function pushIndex(options: PushIndexOptions): Promise<PushedManifest & { children: PushedManifest[] }> {
  const format = options.format ?? 'oci';
  const platforms = options.platforms ?? [
    { os: 'linux', architecture: 'amd64' },
    { os: 'linux', architecture: 'arm64' },
  ];
  const children: PushedManifest[] = [];
  for (const platform of platforms) {
    children.push(await pushImage({ ...options, tag: '', format, platform }));
  }
  const index = {
    schemaVersion: 2,
    mediaType: MEDIA_TYPES[format].index,
    manifests: children.map((c, i) => ({ mediaType: c.mediaType, digest: c.digest, size: c.size, platform: platforms[i] })),
  };
  const pushed = await putManifest(options, options.tag, index, MEDIA_TYPES[format].index);
  return { ...pushed, children };
}

/** The tags of a repository as the registry lists them (unsorted in distribution 2.8); undefined when unknown. */
export async function listTags(target: Target): Promise<string[] | undefined> {
  const res = await registryFetch(target.host, `/v2/${target.repository}/tags/list`, {}, target.auth);
  if (res.status === 404) {
    await res.body?.cancel();
    return undefined;
  }
  await expectStatus(res, [200], `list tags of ${target.repository}`);
  const body = (await res.json()) as { tags?: string[] | null };
  return body.tags ?? [];
}

/** The digest the registry answers for `reference` (HEAD), or undefined (404). */
export async function headManifest(target: Target, reference: string): Promise<string | undefined> {
  const res = await registryFetch(
    target.host,
    `/v2/${target.repository}/manifests/${reference}`,
    { method: 'HEAD', headers: { accept: ALL_MANIFEST_TYPES } },
    target.auth,
  );
  if (res.status === 404) return undefined;
  await expectStatus(res, [200], `head manifest ${target.repository}:${reference}`);
  return res.headers.get('docker-content-digest') ?? undefined;
}

/** Deletes a manifest by digest (the registry has `storage.delete.enabled`); every tag on it goes with it. */
export async function deleteManifest(target: Target, digest: string): Promise<void> {
  const res = await registryFetch(target.host, `/v2/${target.repository}/manifests/${digest}`, { method: 'DELETE' }, target.auth);
  await expectStatus(res, [202], `delete manifest ${target.repository}@${digest}`);
}

/**
 * Makes a tag disappear. Distribution 2.8 cannot delete a single tag, so this deletes the manifest the tag points
 * at — and every other tag on that manifest (pushImage gives each push its own digest, so usually only this tag).
 */
export async function deleteTag(target: Target, tag: string): Promise<string> {
  const digest = await headManifest(target, tag);
  if (digest === undefined) throw new Error(`tag ${target.repository}:${tag} does not exist`);
  await deleteManifest(target, digest);
  return digest;
}

/**
 * How many tokens the bearer registry's token server has issued for `scope` (e.g. `repository:NAME:pull`), from its
 * `/stats` endpoint beside the realm; use a repository name of your own so other tests do not count.
 */
export async function tokensIssued(realm: string, scope: string): Promise<number> {
  const res = await fetch(new URL('/stats', realm), { signal: AbortSignal.timeout(10_000) });
  const stats = (await res.json()) as { byScope: Record<string, number> };
  return stats.byScope[scope] ?? 0;
}

/** A loopback HTTP server for tests; `stop` also drops connections a handler left open. */
export interface FrontServer {
  /** 127.0.0.1:PORT */
  host: string;
  /** Requests seen so far (method and path). */
  requests: Array<{ method: string; path: string }>;
  stop(): Promise<void>;
}

/** Starts a loopback HTTP server with `handler` (which may never answer, to test timeouts). */
export async function startFrontServer(
  handler: (req: IncomingMessage, res: ServerResponse) => void | Promise<void>,
): Promise<FrontServer> {
  const requests: FrontServer['requests'] = [];
  const server: Server = createServer((req, res) => {
    requests.push({ method: req.method ?? '', path: req.url ?? '' });
    Promise.resolve(handler(req, res)).catch((err: unknown) => {
      if (!res.headersSent) res.writeHead(500);
      res.end(String(err));
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const { port } = server.address() as AddressInfo;
  return {
    host: `127.0.0.1:${port}`,
    requests,
    stop: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

const HOP_BY_HOP = new Set(['connection', 'keep-alive', 'transfer-encoding', 'content-encoding', 'content-length', 'host']);

async function readBody(req: IncomingMessage): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of req) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

/**
 * A proxy in front of `upstream` that paginates `GET /v2/NAME/tags/list` as the distribution spec describes
 * (lexical order, `n` and `last`, `Link: <...>; rel="next"`), which distribution 2.8 itself ignores. Everything
 * else, and every non-200 answer, passes through unchanged. `links` chooses relative or absolute next links.
 */
export async function startPagingProxy(options: { upstream: string; links: 'relative' | 'absolute' }): Promise<FrontServer> {
  let self = '';
  const front = await startFrontServer(async (req, res) => {
    const url = new URL(req.url ?? '/', `http://${options.upstream}`);
    const headers: Record<string, string> = {};
    for (const [name, value] of Object.entries(req.headers)) {
      if (!HOP_BY_HOP.has(name) && typeof value === 'string') headers[name] = value;
    }
    const body = await readBody(req);
    const tagsList = req.method === 'GET' && /^\/v2\/.+\/tags\/list$/.test(url.pathname);
    const upstreamUrl = new URL(url.pathname, url);
    if (!tagsList) upstreamUrl.search = url.search;
    const upstream = await fetch(upstreamUrl, {
      method: req.method ?? 'GET',
      headers,
      ...(body.length > 0 ? { body } : {}),
      redirect: 'manual',
    });
    const answer = Buffer.from(await upstream.arrayBuffer());
    const outHeaders: Record<string, string> = {};
    upstream.headers.forEach((value, name) => {
      if (!HOP_BY_HOP.has(name)) outHeaders[name] = value;
    });
    if (!tagsList || upstream.status !== 200) {
      res.writeHead(upstream.status, outHeaders);
      res.end(answer);
      return;
    }
    const list = JSON.parse(answer.toString('utf8')) as { name: string; tags: string[] | null };
    const all = [...(list.tags ?? [])].sort();
    const last = url.searchParams.get('last');
    const n = Number(url.searchParams.get('n') ?? all.length);
    const after = last === null ? all : all.filter((t) => t > last);
    const page = after.slice(0, n);
    if (page.length < after.length && page.length > 0) {
      const next = `/v2/${list.name}/tags/list?n=${n}&last=${encodeURIComponent(page[page.length - 1]!)}`;
      outHeaders['link'] = `<${options.links === 'absolute' ? `http://${self}${next}` : next}>; rel="next"`;
    }
    res.writeHead(200, { ...outHeaders, 'content-type': 'application/json' });
    res.end(JSON.stringify({ name: list.name, tags: page }));
  });
  self = front.host;
  return front;
}
