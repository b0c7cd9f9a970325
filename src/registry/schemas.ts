import { z } from 'zod';
import { UpstreamError } from '../errors.js';

/** What the deployer reads of a registry's JSON answers: only the fields it needs (STYLE.md habit 4). */

/** Every manifest kind a tag may name; without the list types a registry would answer for one platform only. */
export const MANIFEST_ACCEPT = [
  'application/vnd.oci.image.index.v1+json',
  'application/vnd.oci.image.manifest.v1+json',
  'application/vnd.docker.distribution.manifest.list.v2+json',
  'application/vnd.docker.distribution.manifest.v2+json',
].join(', ');

/** `GET /v2/NAME/tags/list`; distribution answers `tags: null` for a repository whose tags were all deleted. */
export const TagsList = z.object({
  name: z.string().optional(),
  tags: z.array(z.string()).nullable().optional(),
});

/** The token endpoint's answer; Docker's spec names the field `token`, OAuth2 servers `access_token`. */
export const TokenResponse = z
  .object({
    token: z.string().min(1).optional(),
    access_token: z.string().min(1).optional(),
    expires_in: z.number().positive().optional(),
  })
  .refine((t) => t.token !== undefined || t.access_token !== undefined, 'no token or access_token');
export type TokenResponse = z.infer<typeof TokenResponse>;

/** The registry's error body (`{ errors: [{ code, message }] }`). */
export const ErrorsBody = z.object({
  errors: z.array(z.object({ code: z.string(), message: z.string().optional() })).min(1),
});

/** A content digest as `Docker-Content-Digest` carries it. */
export const DIGEST = /^[a-z0-9]+(?:[.+_-][a-z0-9]+)*:[0-9a-fA-F]{32,}$/;

/** The first error code of a registry error body, if it is one. */
export function errorCode(text: string): string | undefined {
  try {
    const parsed = ErrorsBody.safeParse(JSON.parse(text));
    return parsed.success ? parsed.data.errors[0]?.code : undefined;
  } catch {
    return undefined;
  }
}

export function parseJson<T>(schema: z.ZodType<T>, text: string, what: string): T {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (err) {
    throw new UpstreamError('registry', `${what} is not JSON`, { cause: err });
  }
  const parsed = schema.safeParse(raw);
  if (!parsed.success) {
    throw new UpstreamError('registry', `${what} is unusable: ${parsed.error.issues[0]?.message ?? 'invalid'}`);
  }
  return parsed.data;
}
