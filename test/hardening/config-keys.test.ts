import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import type { z } from 'zod';
import { FileConfig } from '../../src/config/schema.js';

/**
 * config.example.yaml says it documents every key: each key of the schema, at its place, appears there (set, or
 * commented out with its default). `kubernetes.leaseNamespace` was missing once, and with it how the locks work.
 */

type Def = { type: string; innerType?: z.ZodType; shape?: Record<string, z.ZodType>; valueType?: z.ZodType; options?: z.ZodType[]; in?: z.ZodType };
const defOf = (schema: z.ZodType): Def => (schema as unknown as { _zod: { def: Def } })._zod.def;

/** Every key path of a schema; records (tokens, services, registries) as `NAME`. */
function keyPaths(schema: z.ZodType, prefix: string[] = []): string[][] {
  const def = defOf(schema);
  if (def.innerType !== undefined) return keyPaths(def.innerType, prefix);
  if (def.type === 'pipe' && def.in !== undefined) return keyPaths(def.in, prefix);
  if (def.type === 'object' && def.shape !== undefined) {
    return Object.entries(def.shape).flatMap(([key, value]) => [[...prefix, key], ...keyPaths(value, [...prefix, key])]);
  }
  if (def.type === 'record' && def.valueType !== undefined) return keyPaths(def.valueType, [...prefix, 'NAME']);
  return [];
}

/** The example's keys as paths, commented-out ones included (`# key: value` at its indentation). */
function examplePaths(text: string): Set<string> {
  const paths = new Set<string>();
  const stack: Array<{ indent: number; key: string }> = [];
  for (const line of text.split('\n')) {
    const m = /^(\s*)(?:# ?)?([A-Za-z][A-Za-z0-9_.:-]*|'[^']*'):(?:\s|$)/.exec(line);
    if (m === null) continue;
    const indent = (m[1] ?? '').length;
    while (stack.length > 0 && (stack.at(-1)?.indent ?? 0) >= indent) stack.pop();
    stack.push({ indent, key: m[2] ?? '' });
    paths.add(stack.map((s) => s.key).join('\n'));
  }
  return paths;
}

describe('config.example.yaml', () => {
  it('documents every key of the configuration schema', () => {
    const example = examplePaths(readFileSync('config.example.yaml', 'utf8'));
    const documented = (path: string[]): boolean =>
      [...example].some((p) => {
        const parts = p.split('\n');
        return parts.length === path.length && path.every((k, i) => k === 'NAME' || k === parts[i]);
      });
    const missing = keyPaths(FileConfig as unknown as z.ZodType).filter((p) => !documented(p)).map((p) => p.join('.'));
    expect(missing).toEqual([]);
  });
});
