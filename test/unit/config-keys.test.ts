import { readFileSync } from 'node:fs';
import { load } from 'js-yaml';
import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { FileConfig } from '../../src/config/schema.js';

/**
 * config.example.yaml says it documents every key: each key of the schema must appear in it, as a key or in a
 * commented-out line (`# kubeconfig: ...`), so that a key added to the schema cannot go undocumented.
 */

const EXAMPLE = 'config.example.yaml';
/** Stands for the names of a record's entries (tokens, services, registries). */
const ANY = '*';

function unwrap(schema: z.ZodType): z.ZodType {
  if (schema instanceof z.ZodOptional || schema instanceof z.ZodNullable) return unwrap(schema.unwrap() as z.ZodType);
  if (schema instanceof z.ZodDefault || schema instanceof z.ZodPrefault) return unwrap(schema.unwrap() as z.ZodType);
  if (schema instanceof z.ZodPipe) return unwrap(schema.in as z.ZodType);
  return schema;
}

/** Every key path of the schema (`listen.host`, `tokens.*.secret`); a secret reference or a list is one leaf. */
function schemaKeys(schema: z.ZodType, prefix: readonly string[] = []): string[] {
  const inner = unwrap(schema);
  if (inner instanceof z.ZodObject) {
    return Object.entries(inner.shape as Record<string, z.ZodType>).flatMap(([key, value]) => [
      [...prefix, key].join('.'),
      ...schemaKeys(value, [...prefix, key]),
    ]);
  }
  if (inner instanceof z.ZodRecord) return schemaKeys(inner.valueType as z.ZodType, [...prefix, ANY]);
  return [];
}

/** Every key path of the example, read with the schema beside it (to know which maps are records). */
function exampleKeys(value: unknown, schema: z.ZodType, prefix: readonly string[] = []): string[] {
  const inner = unwrap(schema);
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return [];
  if (inner instanceof z.ZodObject) {
    const shape = inner.shape as Record<string, z.ZodType>;
    return Object.entries(value).flatMap(([key, v]) => {
      const sub = shape[key];
      const path = [...prefix, key];
      return [path.join('.'), ...(sub === undefined ? [] : exampleKeys(v, sub, path))];
    });
  }
  if (inner instanceof z.ZodRecord) {
    return Object.values(value).flatMap((v) => exampleKeys(v, inner.valueType as z.ZodType, [...prefix, ANY]));
  }
  return [];
}

describe('config.example.yaml documents every key of the schema', () => {
  const text = readFileSync(EXAMPLE, 'utf8');
  const example: unknown = load(text);
  const keys = schemaKeys(FileConfig);

  it('the schema walk finds the keys (a sanity check of the walk itself)', () => {
    expect(keys).toEqual(expect.arrayContaining(['listen.host', 'tokens.*.secret', 'services.*.repository.credentials.sshKey', 'deploy.lockWaitSeconds']));
  });

  it('the example is a valid configuration', () => {
    expect(FileConfig.safeParse(example).success).toBe(true);
  });

  it('every key of the schema is in the example, as a key or a commented-out one', () => {
    const present = new Set(exampleKeys(example, FileConfig));
    const commented = new Set([...text.matchAll(/^\s*#\s*([A-Za-z]+):/gm)].map((m) => m[1]));
    const missing = keys.filter((k) => !present.has(k) && !commented.has(k.split('.').at(-1)));
    expect(missing).toEqual([]);
  });

  it('every key of the example is a key of the schema', () => {
    const known = new Set(keys);
    expect(exampleKeys(example, FileConfig).filter((k) => !known.has(k))).toEqual([]);
  });
});
