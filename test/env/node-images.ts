import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { kubeBinDir } from './kube-plane.js';
import { MEDIA_TYPES, pushBlob, putManifest, tarOf, type PushedManifest } from './registry-helpers.js';

/**
 * The images pods run on the test ground. Nothing can be pulled from outside, so they are built here: prepare.sh
 * compiles static Go programs (test/images/NAME/main.go) into the cache, and this pushes each as a FROM-scratch OCI
 * image — one layer holding the one program — through the registry API.
 */
export type GroundProgram = 'pause' | 'sample' | 'job';

/** Where prepare.sh puts each program. */
export function programPath(program: GroundProgram): string {
  return join(kubeBinDir(), `ground-${program}`);
}

const sha256 = (data: Buffer): string => `sha256:${createHash('sha256').update(data).digest('hex')}`;

export interface PushProgramOptions {
  /** host:port of an anonymous registry. */
  host: string;
  repository: string;
  tag: string;
  program: GroundProgram;
  /** Baked into the image's config, so that tags can differ in behaviour (e.g. VERSION=v2). */
  env?: Readonly<Record<string, string>>;
}

/** Pushes `program` as the image `host/repository:tag`; returns the manifest's digest. */
export async function pushProgramImage(options: PushProgramOptions): Promise<PushedManifest> {
  const target = { host: options.host, repository: options.repository };
  const tar = tarOf(options.program, readFileSync(programPath(options.program)), '0000755');
  const layer = await pushBlob(target, gzipSync(tar));
  const env = Object.entries(options.env ?? {}).map(([k, v]) => `${k}=${v}`);
  const config = await pushBlob(
    target,
    Buffer.from(
      JSON.stringify({
        architecture: 'amd64',
        os: 'linux',
        config: { Entrypoint: [`/${options.program}`], Env: env, User: '65534:65534' },
        rootfs: { type: 'layers', diff_ids: [sha256(tar)] },
      }),
    ),
  );
  const manifest = {
    schemaVersion: 2,
    mediaType: MEDIA_TYPES.oci.manifest,
    config: { mediaType: MEDIA_TYPES.oci.config, ...config },
    layers: [{ mediaType: MEDIA_TYPES.oci.layer, ...layer }],
  };
  return putManifest(target, options.tag, manifest, MEDIA_TYPES.oci.manifest);
}

/** Where prepare.sh puts the deployer's own image (an OCI image layout, built by deployer-image.sh). */
export function deployerImageLayout(): string {
  return join(kubeBinDir(), '..', 'deployer-image');
}

interface OciDescriptor {
  mediaType: string;
  digest: string;
  size: number;
}

/** Pushes the one image of an OCI image layout directory as `host/repository:tag`; returns its manifest's digest. */
export async function pushOciLayout(layout: string, options: { host: string; repository: string; tag: string }): Promise<PushedManifest> {
  if (!existsSync(join(layout, 'index.json'))) {
    throw new Error(`${layout} holds no OCI image layout: run \`bash test/env/prepare.sh\` first`);
  }
  const blob = (digest: string): Buffer => readFileSync(join(layout, 'blobs', ...digest.split(':')));
  const index = JSON.parse(readFileSync(join(layout, 'index.json'), 'utf8')) as { manifests: OciDescriptor[] };
  const top = index.manifests[0];
  if (top === undefined) throw new Error(`${layout}/index.json names no image`);
  const manifest = JSON.parse(blob(top.digest).toString('utf8')) as { config: OciDescriptor; layers: OciDescriptor[] };
  const target = { host: options.host, repository: options.repository };
  for (const d of [manifest.config, ...manifest.layers]) await pushBlob(target, blob(d.digest));
  return putManifest(target, options.tag, manifest, top.mediaType);
}
