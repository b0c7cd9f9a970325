import { z } from 'zod';
import { InputError } from '../errors.js';
import { isValidTag } from '../registry/image-ref.js';
import { nearest } from './suggest.js';

const HEX_SHA = /^[0-9a-fA-F]{4,40}$/;
/**
 * Stricter than git: git would accept `;ls`, `$x` or `a@b` as a branch name. We never pass a ref to a shell, but a
 * ref also ends up in logs, Slack messages and image tags, so only characters branch names really use are allowed
 * (the same set src/source accepts, so what passes here is not refused later).
 */
const BRANCH_CHARS = /^[A-Za-z0-9._/+-]+$/;
const MAX_BRANCH_LENGTH = 200;

/**
 * Whether `git check-ref-format --branch NAME` would accept NAME (the rules of git-check-ref-format(1) applied to
 * `refs/heads/NAME`), within that character set, and with no component starting with `-`, so a ref can never be
 * taken for an option of git or svn. The character set already excludes the rules about control characters,
 * space, `~^:?*[\` and `@{`.
 */
export function isBranchName(name: string): boolean {
  if (name.length === 0 || name.length > MAX_BRANCH_LENGTH) return false;
  if (!BRANCH_CHARS.test(name)) return false;
  // git --branch: "HEAD" is refused (refs/heads/HEAD would shadow HEAD).
  if (name === 'HEAD') return false;
  // git: no ".." anywhere, no trailing ".".
  if (name.includes('..') || name.endsWith('.')) return false;
  for (const component of name.split('/')) {
    // git: no empty component (leading, trailing or doubled "/"), none starts with "." or ends with ".lock".
    if (component === '' || component.startsWith('.') || component.endsWith('.lock')) return false;
    if (component.startsWith('-')) return false;
  }
  return true;
}

/** A commit SHA (abbreviated to at least 4 hex digits), an svn revision number (digits), or a branch name. */
export function isCommitRef(ref: string): boolean {
  return HEX_SHA.test(ref) || isBranchName(ref);
}

const COMMIT_MESSAGE = 'commit must be a commit SHA (4 to 40 hex digits), a revision number or a branch name';
const TAG_MESSAGE = 'tag must match [A-Za-z0-9_][A-Za-z0-9_.-]{0,127}';

/** An empty form field (`commit=`) counts as not given, as HTML forms and curl send it. */
const blankIsAbsent = (v: unknown): unknown => (v === '' ? undefined : v);

export const CommitRef = z.preprocess(
  blankIsAbsent,
  z.string({ error: 'commit must be given once, as a string' }).refine(isCommitRef, COMMIT_MESSAGE).optional(),
);
export const ImageTag = z.preprocess(
  blankIsAbsent,
  z.string({ error: 'tag must be given once, as a string' }).refine(isValidTag, TAG_MESSAGE).optional(),
);

/** `commit` and `tag` of a deploy, from a form or JSON body; unknown fields are refused (`unknownFieldsError`). */
export const DeployBody = z
  .object({ commit: CommitRef, tag: ImageTag }, { error: 'the request body must be an object or a form' })
  // Fastify gives null for a request without a body.
  .nullish();
export type DeployBody = z.infer<typeof DeployBody>;

/** The same fields in the query string (`PUT /api/deploy?commit=abc`). */
export const DeployQuery = z.object({ commit: CommitRef, tag: ImageTag });
export type DeployQuery = z.infer<typeof DeployQuery>;

export const TagsQuery = z.object({ commit: CommitRef });
export type TagsQuery = z.infer<typeof TagsQuery>;

export const ServiceParams = z.object({ service: z.string() });

export interface Version {
  readonly commit?: string | undefined;
  readonly tag?: string | undefined;
}

/** Merges the body's and the query's version fields; one of them must name a version, and they must agree. */
export function versionOf(body: DeployBody, query: DeployQuery): Version {
  const pick = (field: 'commit' | 'tag'): string | undefined => {
    const fromBody = body?.[field];
    const fromQuery = query[field];
    if (fromBody !== undefined && fromQuery !== undefined && fromBody !== fromQuery) {
      throw new InputError(`${field} is given twice, in the body and in the query, with different values`, { field });
    }
    return fromBody ?? fromQuery;
  };
  const version = { commit: pick('commit'), tag: pick('tag') };
  if (version.commit === undefined && version.tag === undefined) throw new InputError('commit or tag must be given');
  return version;
}

/** Parses a URL-encoded form as a plain object; a field given more than once becomes an array (then refused). */
export function parseForm(text: string): Record<string, string | string[]> {
  // No prototype: a field named "__proto__" must stay a field.
  const out = Object.create(null) as Record<string, string | string[]>;
  for (const [key, value] of new URLSearchParams(text)) {
    const seen = out[key];
    out[key] = seen === undefined ? value : [...(Array.isArray(seen) ? seen : [seen]), value];
  }
  return out;
}

/** The field names an input schema takes: the keys of its object, through optional, nullable, default and pipe. */
export function fieldsOf(schema: unknown): readonly string[] | undefined {
  if (schema instanceof z.ZodObject) return Object.keys(schema.shape);
  if (schema instanceof z.ZodOptional || schema instanceof z.ZodNullable) return fieldsOf(schema.unwrap());
  if (schema instanceof z.ZodDefault || schema instanceof z.ZodPrefault) return fieldsOf(schema.unwrap());
  if (schema instanceof z.ZodPipe) return fieldsOf(schema.in);
  return undefined;
}

/**
 * 400 for fields the endpoint does not take, naming each (with the known field it is probably a typo of): a
 * `comit=abc` would otherwise be dropped silently and answered "commit or tag must be given". Undefined when every
 * field of `data` is known (or `data` is no object: the schema then says what is wrong).
 */
export function unknownFieldsError(data: unknown, known: readonly string[]): InputError | undefined {
  if (typeof data !== 'object' || data === null || Array.isArray(data)) return undefined;
  const unknown = Object.keys(data).filter((k) => !known.includes(k));
  const first = unknown[0];
  if (first === undefined) return undefined;
  const named = unknown.map((k) => {
    // Field names come from the caller: keep them short and printable in the answer and the log.
    const shown = k.length > 40 || !/^[\x21-\x7e]+$/.test(k) ? JSON.stringify(k.slice(0, 40)) : k;
    const near = nearest(k, known);
    return near === undefined ? shown : `${shown} (did you mean ${near}?)`;
  });
  const fields = known.length === 0 ? 'it takes no fields' : `the fields are ${known.join(', ')}`;
  return new InputError(`unknown field${unknown.length === 1 ? '' : 's'} ${named.join(', ')}; ${fields}`, {
    field: first,
    detail: { unknownFields: unknown },
  });
}
