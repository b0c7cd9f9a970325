import type { Logger } from 'pino';
import { UpstreamError } from '../errors.js';
import type { GitCaches, Repo } from './git-cache.js';
import type { GitFetcher } from './git-fetch.js';
import type { GitReader } from './git-read.js';
import type { CommitFacts } from './types.js';

/** The empty tree of SHA-1 repositories: the "parent" of a root commit. */
const EMPTY_TREE = '4b825dc642cb6eb9a060e54bf8d69288fbee4904';
/** Above this many changed paths, the line counts are of the first ones only (pathspecs go on git's command line). */
const MAX_PATHSPECS = 500;
/** Changed blobs the cache lacks are fetched for the line counts only up to this many... */
const MAX_FACT_BLOBS = 64;
/** ...and only while the pack stays this small; a larger change is left out of the counts rather than fetched. */
const MAX_FACT_PACK_BYTES = 1024 * 1024;

/**
 * Facts about a commit for the event log (author, date, lines added and removed against the first parent). They are
 * nice to have and must cost the deploy nothing noticeable: the header comes from the cache's object reader, and the
 * line counts only from what is cheap — the changed blobs the cache holds (the manifests a deploy has just read
 * among them), plus the missing ones when there are few and they come in one small pack (a fetch that grows past
 * 1 MiB is stopped and its partial pack removed; a read-priority fetch, so it never holds up a deploy's fetch). The
 * lines of changed files left out are not counted.
 */
export class CommitFactsReader {
  readonly #caches: GitCaches;
  readonly #fetcher: GitFetcher;
  readonly #reader: GitReader;
  readonly #log: Logger;

  constructor(caches: GitCaches, fetcher: GitFetcher, reader: GitReader, logger: Logger) {
    this.#caches = caches;
    this.#fetcher = fetcher;
    this.#reader = reader;
    this.#log = logger;
  }

  /** The facts of `sha` (the caller made sure the commit is cached). */
  async facts(repo: Repo, sha: string): Promise<CommitFacts> {
    const raw = await this.#reader.commit(repo, sha);
    const header = raw.slice(0, raw.indexOf('\n\n') < 0 ? raw.length : raw.indexOf('\n\n'));
    const parent = /^parent ([0-9a-f]{40})$/m.exec(header)?.[1] ?? EMPTY_TREE;
    const author = /^author (.*) <([^>]*)> (\d+) ([+-]\d{4})$/m.exec(header);
    const [, name = '', email = '', seconds = '0', zone = '+0000'] = author ?? [];
    const { insertions, deletions } = await this.#lineCounts(repo, parent, sha);
    return {
      commit: sha,
      author: email === '' ? name : `${name} <${email}>`,
      date: isoDate(Number(seconds), zone),
      insertions,
      deletions,
    };
  }

  async #lineCounts(repo: Repo, parent: string, sha: string): Promise<{ insertions: number; deletions: number }> {
    const diffTree = (await this.#caches.local(repo, ['diff-tree', '-r', '-z', '--no-renames', '--no-commit-id', parent, sha])) ?? '';
    const files = changedFiles(diffTree);
    if (files.length === 0) return { insertions: 0, deletions: 0 };
    const changed = { files, blobs: [...new Set(files.flatMap((f) => f.blobs))] };

    let infos = await this.#reader.info(repo, changed.blobs);
    let missing = changed.blobs.filter((_, i) => infos[i] === undefined);
    if (missing.length > 0 && missing.length <= MAX_FACT_BLOBS) {
      try {
        const outcome = await this.#fetcher.fetch(repo, { kind: 'blobs', oids: missing }, sha, {
          purpose: 'read',
          maxPackBytes: MAX_FACT_PACK_BYTES,
        });
        if (outcome === 'ok') infos = await this.#reader.info(repo, changed.blobs);
      } catch (err) {
        // Counts without the missing files are still counts; a remote that is down or busy does not stop them.
        if (!(err instanceof UpstreamError)) throw err;
        this.#log.info({ repository: repo.remote.url, commit: sha, err: err.message }, 'line counts without the files the cache lacks');
      }
      missing = changed.blobs.filter((_, i) => infos[i] === undefined);
    }
    const absent = new Set(missing);
    const countable = changed.files.filter((f) => f.blobs.every((b) => !absent.has(b))).map((f) => f.path);
    if (countable.length === 0) return { insertions: 0, deletions: 0 };
    const pathspecs = countable.length === files.length && countable.length > MAX_PATHSPECS ? [] : countable.slice(0, MAX_PATHSPECS);
    const numstat =
      (await this.#caches.local(repo, [
        '--literal-pathspecs',
        'diff',
        '--numstat',
        '-M',
        '--no-textconv',
        '--no-ext-diff',
        '--no-color',
        parent,
        sha,
        ...(pathspecs.length > 0 ? ['--', ...pathspecs] : []),
      ])) ?? '';
    let insertions = 0;
    let deletions = 0;
    for (const line of numstat.split('\n')) {
      const [added, removed] = line.split('\t');
      // Binary files show "-": they have no lines.
      if (added !== undefined && /^\d+$/.test(added)) insertions += Number(added);
      if (removed !== undefined && /^\d+$/.test(removed)) deletions += Number(removed);
    }
    return { insertions, deletions };
  }
}

/** A git timestamp as ISO 8601 in the author's own time zone, as `git log --format=%aI` prints it. */
export function isoDate(seconds: number, zone: string): string {
  const sign = zone.startsWith('-') ? -1 : 1;
  const offsetMinutes = sign * (Number(zone.slice(1, 3)) * 60 + Number(zone.slice(3, 5)));
  const local = new Date((seconds + offsetMinutes * 60) * 1000).toISOString().slice(0, 19);
  return `${local}${zone.slice(0, 3)}:${zone.slice(3, 5)}`;
}

/** Paths and blob ids (both sides) of `diff-tree -r -z --no-renames` output. */
export function parseRawDiff(raw: string): { paths: string[]; blobs: string[] } {
  const files = changedFiles(raw);
  return { paths: files.map((f) => f.path), blobs: [...new Set(files.flatMap((f) => f.blobs))] };
}

/** Each changed path of `diff-tree -r -z --no-renames` output with its blob ids (both sides). */
export function changedFiles(raw: string): Array<{ path: string; blobs: string[] }> {
  const fields = raw.split('\0');
  const files: Array<{ path: string; blobs: string[] }> = [];
  for (let i = 0; i + 1 < fields.length; i += 2) {
    const meta = fields[i] ?? '';
    const path = fields[i + 1] ?? '';
    if (!meta.startsWith(':')) break;
    const [oldMode, newMode, oldOid, newOid] = meta.slice(1).split(' ');
    const blobs: string[] = [];
    for (const [mode, oid] of [
      [oldMode, oldOid],
      [newMode, newOid],
    ] as const) {
      // Gitlinks (160000) name commits of other repositories; zero ids are the missing side of an add or delete.
      if (mode !== undefined && oid !== undefined && /^10|^12/.test(mode) && !/^0+$/.test(oid)) blobs.push(oid);
    }
    files.push({ path, blobs });
  }
  return files;
}
