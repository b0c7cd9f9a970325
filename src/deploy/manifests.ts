import { posix } from 'node:path';
import {
  CORE_SCHEMA,
  EVENT_ID,
  YAMLException,
  constructFromEvents,
  defineScalarTag,
  intCoreTag,
  mergeTag,
  parseEvents,
  type Event,
} from 'js-yaml';
import { ManifestError } from '../errors.js';
import { asRecord, groupOf } from './pod-template.js';
import { pathText, validate } from './manifest-objects.js';
import { fileMatcher } from './globs.js';
import type { KubeObject, ManifestFile } from '../core/types.js';

/** Limits that keep a hostile repository from exhausting the deployer (every manifest comes from a repository). */
export interface ManifestLimits {
  /** Bytes of one file. */
  readonly maxFileBytes: number;
  /** Bytes of all manifest files of one deploy together. */
  readonly maxTotalBytes: number;
  /** Levels of nested mappings and sequences, aliases expanded. */
  readonly maxDepth: number;
  /** Aliases (`*name`) in one document. */
  readonly maxAliases: number;
  /**
   * Values in all documents together with every alias expanded. The guard against alias bombs ("billion laughs"):
   * js-yaml shares an aliased value instead of copying it, so a bomb loads in a millisecond and explodes only
   * later, when the objects are copied or serialized for the apiserver.
   */
  readonly maxNodes: number;
}

export const DEFAULT_MANIFEST_LIMITS: ManifestLimits = {
  maxFileBytes: 1024 * 1024,
  maxTotalBytes: 8 * 1024 * 1024,
  maxDepth: 100,
  maxAliases: 1000,
  maxNodes: 1_000_000,
};

/** An object read from the manifests, with where it was written; the location is never part of what is applied. */
export interface ManifestObject {
  readonly object: KubeObject;
  /** The file's path relative to the repository root (as `ManifestFile.path`). */
  readonly file: string;
  /** 1-based position of the YAML document in the file; empty documents are counted, as an editor shows them. */
  readonly document: number;
  /** 0-based position in `items` when the document is a `List`. */
  readonly item?: number | undefined;
}

/** One reason the manifests were refused; the list of them is `ManifestError.detail.problems`. */
export interface ManifestProblem {
  readonly file: string;
  /** 1-based line: of the syntax error, or where the refused document starts. */
  readonly line?: number | undefined;
  readonly document?: number | undefined;
  readonly item?: number | undefined;
  readonly reason: string;
}

/**
 * Reads the Kubernetes objects of every `*.yaml` / `*.yml` file below `manifestsDir` (relative to the repository
 * root; recursive), in the order `kubectl apply -R` would (path by path, each directory's entries sorted).
 * Files matching an `exclude` glob (the service's, relative to `manifestsDir`; globs.ts) are not read.
 * Either every file is valid and all objects are returned, or `ManifestError` lists every problem of every file.
 */
export function parseManifests(
  files: readonly ManifestFile[],
  manifestsDir: string,
  limits: Partial<ManifestLimits> = {},
  exclude: readonly string[] = [],
): ManifestObject[] {
  const lim: ManifestLimits = { ...DEFAULT_MANIFEST_LIMITS, ...limits };
  const dir = normalizeDir(manifestsDir);
  const excluded = fileMatcher(exclude);
  const chosen = files
    .map((file) => ({ file, path: posix.normalize(file.path) }))
    .filter(({ path }) => isManifestPath(path, dir) && !excluded(dir === '' ? path : path.slice(dir.length + 1)))
    .sort((a, b) => comparePaths(a.path, b.path));

  const problems: ManifestProblem[] = [];
  const objects: ManifestObject[] = [];
  const budget = { nodes: lim.maxNodes };
  let totalBytes = 0;
  for (const { file } of chosen) {
    totalBytes += file.content.byteLength;
    if (totalBytes > lim.maxTotalBytes) {
      problems.push({ file: file.path, reason: `the manifests exceed ${lim.maxTotalBytes} bytes in total` });
      break;
    }
    parseFile(file, lim, budget, objects, problems);
  }
  problems.push(...duplicates(objects));

  if (problems.length > 0) {
    const shown = problems.slice(0, 5).map(describe).join('; ');
    const more = problems.length > 5 ? `; and ${problems.length - 5} more` : '';
    throw new ManifestError(`invalid manifests: ${shown}${more}`, { detail: { problems } });
  }
  if (objects.length === 0) {
    throw new ManifestError(`no Kubernetes objects in "${manifestsDir}"`, { detail: { manifestsDir, problems: [] } });
  }
  return objects;
}

function describe(p: ManifestProblem): string {
  const at = p.line === undefined ? p.file : `${p.file}:${p.line}`;
  const doc = p.document === undefined ? '' : ` (document ${p.document}${p.item === undefined ? '' : `, item ${p.item}`})`;
  return `${at}${doc}: ${p.reason}`;
}

// ---- which files ------------------------------------------------------------------------------------------------

function normalizeDir(dir: string): string {
  const d = posix.normalize(dir).replace(/\/+$/, '');
  return d === '.' ? '' : d;
}

function isManifestPath(path: string, dir: string): boolean {
  if (path.startsWith('/') || path === '..' || path.startsWith('../')) return false;
  if (dir !== '' && !path.startsWith(`${dir}/`)) return false;
  // As kubectl: the extension is matched exactly (`.YAML` is not a manifest), and `.json` is left out on purpose.
  return path.endsWith('.yaml') || path.endsWith('.yml');
}

/** Compares directory by directory, as a recursive walk visits them (`a/b.yaml` before `a-c.yaml`). */
function comparePaths(a: string, b: string): number {
  const as = a.split('/');
  const bs = b.split('/');
  for (let i = 0; i < Math.min(as.length, bs.length); i++) {
    const x = as[i] ?? '';
    const y = bs[i] ?? '';
    if (x !== y) return x < y ? -1 : 1;
  }
  return as.length - bs.length;
}

// ---- YAML -------------------------------------------------------------------------------------------------------

/**
 * The YAML 1.2 core schema (plain JSON values, no custom types; `yes`/`on` stay strings), plus two things of the
 * YAML 1.1 that kubectl reads (go-yaml v2 through sigs.k8s.io/yaml): `<<` merge keys, which the core schema would
 * keep as a literal key the apiserver silently drops, and octal `0644`, which the core schema reads as decimal 644,
 * so `defaultMode: 0400` would silently become mode 0620.
 */
const LEGACY_OCTAL = /^[-+]?0[0-7]+$/;
const intTag = defineScalarTag<number>('tag:yaml.org,2002:int', {
  implicit: true,
  implicitFirstChars: intCoreTag.implicitFirstChars,
  resolve: (source, isExplicit, tagName) =>
    LEGACY_OCTAL.test(source) ? Number.parseInt(source, 8) : intCoreTag.resolve(source, isExplicit, tagName),
  identify: intCoreTag.identify,
  represent: intCoreTag.represent,
});
const SCHEMA = CORE_SCHEMA.withTags(intTag, mergeTag);

const decoder = new TextDecoder('utf-8', { fatal: true });

function parseFile(
  file: ManifestFile,
  lim: ManifestLimits,
  budget: { nodes: number },
  objects: ManifestObject[],
  problems: ManifestProblem[],
): void {
  const fail = (reason: string, at: { line?: number; document?: number; item?: number } = {}): void => {
    problems.push({ file: file.path, ...at, reason });
  };
  if (file.content.byteLength > lim.maxFileBytes) {
    fail(`the file has ${file.content.byteLength} bytes, more than ${lim.maxFileBytes}`);
    return;
  }
  let text: string;
  try {
    text = decoder.decode(file.content);
  } catch {
    fail('the file is not valid UTF-8');
    return;
  }

  let events: Event[];
  let documents: unknown[];
  try {
    // The parser's own count is looser (a flow collection in a block mapping does not count the mapping); it only
    // keeps the parser's stack small. `expand` checks the exact depth, aliases included.
    events = parseEvents(text, { filename: file.path, maxDepth: lim.maxDepth + 1 });
    documents = constructFromEvents(events, {
      source: text,
      filename: file.path,
      schema: SCHEMA,
      maxAliases: lim.maxAliases,
    });
  } catch (err) {
    if (err instanceof YAMLException) {
      fail(err.reason, err.mark === undefined ? {} : { line: err.mark.line + 1 });
    } else {
      fail(`cannot parse: ${err instanceof Error ? err.message : String(err)}`);
    }
    return;
  }

  const lines = documentLines(text, events);
  documents.forEach((raw, i) => {
    const at = { line: lines[i], document: i + 1 };
    if (raw === null || raw === undefined) return;
    let value: unknown;
    try {
      value = expand(raw, lim, budget);
    } catch (err) {
      if (!(err instanceof ExpandError)) throw err;
      fail(err.message, at);
      return;
    }
    const list = asRecord(value);
    if (list !== undefined && typeof list['kind'] === 'string' && list['kind'].endsWith('List') && Array.isArray(list['items'])) {
      // As kubectl: a `List` (what `kubectl get -o yaml` writes) stands for its items.
      list['items'].forEach((item: unknown, j) => {
        const object = validate(item, (reason) => fail(reason, { ...at, item: j }));
        if (object !== undefined) objects.push({ object, file: file.path, document: i + 1, item: j });
      });
      return;
    }
    const object = validate(value, (reason) => fail(reason, at));
    if (object !== undefined) objects.push({ object, file: file.path, document: i + 1 });
  });
}

/** The line each document's content starts on (undefined for an empty document). */
function documentLines(text: string, events: readonly Event[]): (number | undefined)[] {
  const starts: (number | undefined)[] = [];
  events.forEach((event, i) => {
    if (event.type !== EVENT_ID.DOCUMENT) return;
    const root = events[i + 1];
    let offset = -1;
    if (root?.type === EVENT_ID.MAPPING || root?.type === EVENT_ID.SEQUENCE) offset = root.start;
    else if (root?.type === EVENT_ID.SCALAR) offset = root.anchorStart !== -1 ? root.anchorStart : root.valueStart;
    else if (root?.type === EVENT_ID.ALIAS) offset = root.anchorStart;
    starts.push(offset < 0 ? undefined : offset);
  });
  const newlines: number[] = [];
  for (let i = text.indexOf('\n'); i !== -1; i = text.indexOf('\n', i + 1)) newlines.push(i);
  return starts.map((offset) => (offset === undefined ? undefined : countBelow(newlines, offset) + 1));
}

/** How many of the sorted `values` are below `limit`. */
function countBelow(values: readonly number[], limit: number): number {
  let lo = 0;
  let hi = values.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if ((values[mid] ?? 0) < limit) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

class ExpandError extends Error {}

/**
 * Copies a loaded document into a plain tree: every alias becomes its own copy (so a later change to one place
 * cannot show up in another), and the size, depth and JSON-ness are checked while copying, so an alias bomb stops
 * at the node budget instead of exhausting memory.
 */
function expand(root: unknown, lim: ManifestLimits, budget: { nodes: number }): unknown {
  const path: (string | number)[] = [];
  const ancestors = new Set<object>();
  const where = (): string => (path.length === 0 ? 'the document' : pathText(path));

  const copy = (value: unknown, depth: number): unknown => {
    if (--budget.nodes < 0) {
      throw new ExpandError(`the manifests expand to more than ${lim.maxNodes} values (aliases expanded)`);
    }
    if (value === null || typeof value === 'string' || typeof value === 'boolean') return value;
    if (typeof value === 'number') {
      if (!Number.isFinite(value)) throw new ExpandError(`${where()}: ${value} cannot be sent as JSON`);
      return value;
    }
    if (typeof value !== 'object' || value === undefined) throw new ExpandError(`${where()}: unsupported value`);
    if (depth > lim.maxDepth) throw new ExpandError(`${where()}: nested deeper than ${lim.maxDepth} levels`);
    if (ancestors.has(value)) throw new ExpandError(`${where()}: an alias refers to a value that contains it`);
    ancestors.add(value);
    try {
      if (Array.isArray(value)) {
        return value.map((item: unknown, i) => {
          path.push(i);
          const out = copy(item, depth + 1);
          path.pop();
          return out;
        });
      }
      if (Object.getPrototypeOf(value) !== Object.prototype) throw new ExpandError(`${where()}: unsupported value`);
      const out: Record<string, unknown> = {};
      for (const [key, item] of Object.entries(value)) {
        path.push(key);
        // `__proto__` is an ordinary key in YAML (a ConfigMap may hold one); assigning it would set the prototype.
        Object.defineProperty(out, key, { value: copy(item, depth + 1), enumerable: true, writable: true, configurable: true });
        path.pop();
      }
      return out;
    } finally {
      ancestors.delete(value);
    }
  };
  return copy(root, 1);
}

/** An object may appear once: a second one would silently win over the first. */
function duplicates(objects: readonly ManifestObject[]): ManifestProblem[] {
  const seen = new Map<string, ManifestObject>();
  const problems: ManifestProblem[] = [];
  for (const entry of objects) {
    const { object } = entry;
    const key = [groupOf(object.apiVersion), object.kind, object.metadata.namespace ?? '', object.metadata.name].join('\n');
    const first = seen.get(key);
    if (first === undefined) {
      seen.set(key, entry);
      continue;
    }
    problems.push({
      file: entry.file,
      document: entry.document,
      item: entry.item,
      reason: `${object.kind} "${object.metadata.name}" is also defined in ${first.file} (document ${first.document})`,
    });
  }
  return problems;
}
