import type { Logger } from 'pino';
import { UpstreamError } from '../errors.js';
import type { GitCaches, Repo } from './git-cache.js';
import type { GitFetcher } from './git-fetch.js';
import type { GitReader } from './git-read.js';
import type { CommitFacts } from '../core/types.js';

/** The empty tree of SHA-1 repositories: the "parent" of a root commit. */
const EMPTY_TREE = '4b825dc642cb6eb9a060e54bf8d69288fbee4904';
/** Above this many changed paths, the line counts are of the first ones only (pathspecs go on git's command line). */
const MAX_PATHSPECS = 500;
/** Changed blobs the cache lacks are fetched for the line counts only up to this many... */
const MAX_FACT_BLOBS = 64;
/** ...and only while the pack stays this small; a larger change is left out of the counts rather than fetched. */
const MAX_FACT_PACK_BYTES = 1024 * 1024;
/** Commits remembered as fetched with their new small blobs (the recent deploys'), over all caches. */
const MAX_REMEMBERED_COMMITS = 1024;

/**
 * Facts about a commit for the event log (author, date, lines added and removed against the first parent). They are
 * nice to have and must cost the deploy nothing noticeable: the header comes from the cache's object reader, and the
 * line counts only from what is cheap — the changed blobs the cache holds (the manifests a deploy has just read
 * among them), plus the missing ones when there are few and they come in one small pack (a fetch that grows past
 * 1 MiB is stopped and its partial pack removed; a read-priority fetch, so it never holds up a deploy's fetch). The
 * lines of changed files left out are not counted. A file whose new version a commit fetched with its new small blobs
 * did not bring is above the small-blob limit: it is left out without asking the server for it at all (a server
 * asked for a 512 MiB blob starts sending it; stopping at 1 MiB spares the cache, not the server).
 */
export class CommitFactsReader {
  readonly #caches: GitCaches;
  readonly #fetcher: GitFetcher;
  readonly #reader: GitReader;
  readonly #log: Logger;
  /** `cache dir NUL sha` of commits fetched with their new small blobs, oldest first. */
  readonly #withSmallBlobs = new Set<string>();

  constructor(caches: GitCaches, fetcher: GitFetcher, reader: GitReader, logger: Logger) {
    this.#caches = caches;
    this.#fetcher = fetcher;
    this.#reader = reader;
    this.#log = logger;
  }

  /**
   * `sha` came into the cache in a fetch that brought its new blobs up to the small-blob limit (git-fetch.ts
   * `smallBlobs`): a new version of a changed file it lacks is larger, and its line counts are not worth a fetch.
   */
  cameWithSmallBlobs(repo: Repo, sha: string): void {
    const key = `${repo.dir}\0${sha}`;
    this.#withSmallBlobs.delete(key);
    this.#withSmallBlobs.add(key);
    for (const oldest of this.#withSmallBlobs) {
      if (this.#withSmallBlobs.size <= MAX_REMEMBERED_COMMITS) break;
      this.#withSmallBlobs.delete(oldest);
    }
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

  /** Which of `blobs` the cache holds (a partial cache lacks what it never fetched). */
  async #held(repo: Repo, blobs: readonly string[]): Promise<Set<string>> {
    const infos = await this.#reader.info(repo, blobs);
    return new Set(blobs.filter((_, i) => infos[i] !== undefined));
  }

  async #lineCounts(repo: Repo, parent: string, sha: string): Promise<{ insertions: number; deletions: number }> {
    const diffTree = (await this.#caches.local(repo, ['diff-tree', '-r', '-z', '--no-renames', '--no-commit-id', parent, sha])) ?? '';
    const files = changedFiles(diffTree);
    if (files.length === 0) return { insertions: 0, deletions: 0 };
    const all = blobsOf(files);
    let held = await this.#held(repo, all);
    // A new version that did not come with the commit's small blobs is a large file: left out, neither side fetched.
    const counted = this.#withSmallBlobs.has(`${repo.dir}\0${sha}`)
      ? files.filter((f) => f.newBlob === undefined || held.has(f.newBlob))
      : files;
    const missing = blobsOf(counted).filter((b) => !held.has(b));
    if (missing.length > 0 && missing.length <= MAX_FACT_BLOBS) {
      try {
        const outcome = await this.#fetcher.fetch(repo, { kind: 'blobs', oids: missing }, sha, {
          purpose: 'read',
          maxPackBytes: MAX_FACT_PACK_BYTES,
        });
        if (outcome === 'ok') held = await this.#held(repo, all);
      } catch (err) {
        // Counts without the missing files are still counts; a remote that is down or busy does not stop them.
        if (!(err instanceof UpstreamError)) throw err;
        this.#log.info({ repository: repo.remote.url, commit: sha, err: err.message }, 'line counts without the files the cache lacks');
      }
    }
    const countable = counted.filter((f) => f.blobs.every((b) => held.has(b))).map((f) => f.path);
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

interface ChangedFile {
  path: string;
  /** Blob ids of both sides (one for an added or deleted file). */
  blobs: string[];
  /** The blob id of the new side, unless the file was deleted. */
  newBlob?: string;
}

function blobsOf(files: readonly ChangedFile[]): string[] {
  return [...new Set(files.flatMap((f) => f.blobs))];
}

/** Each changed path of `diff-tree -r -z --no-renames` output with its blob ids (both sides). */
export function changedFiles(raw: string): ChangedFile[] {
  const fields = raw.split('\0');
  const files: ChangedFile[] = [];
  for (let i = 0; i + 1 < fields.length; i += 2) {
    const meta = fields[i] ?? '';
    const path = fields[i + 1] ?? '';
    if (!meta.startsWith(':')) break;
    const [oldMode, newMode, oldOid, newOid] = meta.slice(1).split(' ');
    // Gitlinks (160000) name commits of other repositories; zero ids are the missing side of an add or delete.
    const blob = (mode: string | undefined, oid: string | undefined): string | undefined =>
      mode !== undefined && oid !== undefined && /^10|^12/.test(mode) && !/^0+$/.test(oid) ? oid : undefined;
    const before = blob(oldMode, oldOid);
    const after = blob(newMode, newOid);
    const blobs = [before, after].filter((b): b is string => b !== undefined);
    files.push({ path, blobs, ...(after === undefined ? {} : { newBlob: after }) });
  }
  return files;
}
