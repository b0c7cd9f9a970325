import type { ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { errorCode, gitEnv, GitCommandError, GitSpawnError, GitTimeoutError, startGit } from './git-process.js';

/** What `info` says of an object: its id, type and size, or nothing when the cache does not hold it. */
export interface ObjectInfo {
  readonly oid: string;
  readonly type: string;
  readonly size: number;
}

/** A cached object with its content. */
export interface GitObject extends ObjectInfo {
  readonly content: Buffer;
}

/** A reader idle this long is stopped (the next read starts another). */
const IDLE_MS = 60_000;

/**
 * One long-lived `git cat-file --batch-command --buffer` per repository cache: every object read of a deploy (does
 * the commit exist, its tree, the manifests' blobs, the parent of a commit) is a line on its stdin instead of a git
 * process. Requests are answered one after another, each as one write ending in `flush`; a reader that dies, stalls or
 * cannot start fails the request at hand (the next request starts a new one).
 *
 * In a partial clone, git treats any missing object as one to fetch from the promisor remote, and cat-file dies when
 * it cannot (git 2.39 has no way to ask it not to). So the reader looks at the cache's object store through a
 * repository of its own that is no partial clone (`<cache>/deployer-reader`, with `GIT_OBJECT_DIRECTORY` set to the
 * cache's objects): there a blob the cache lacks is simply "missing". It sees no refs; object names given here are
 * full ids (with `^{commit}` at most), never raw input.
 */
export class CatFileBatch {
  readonly #binary: string;
  readonly #dir: string;
  readonly #timeoutMs: number;
  #child: ChildProcess | undefined;
  #reader: ByteReader | undefined;
  #queue: Promise<unknown> = Promise.resolve();
  #idle: NodeJS.Timeout | undefined;

  /** `dir`: the cache (a bare repository). */
  constructor(options: { binary: string; dir: string; timeoutMs: number }) {
    this.#binary = options.binary;
    this.#dir = options.dir;
    this.#timeoutMs = options.timeoutMs;
  }

  /** Type and size of each named object, in order; undefined for an object the cache does not hold. */
  info(names: readonly string[]): Promise<Array<ObjectInfo | undefined>> {
    return this.#request(names.map((n) => `info ${n}`), async (reader) => {
      const result: Array<ObjectInfo | undefined> = [];
      for (let i = 0; i < names.length; i++) result.push(parseHeader(await reader.line()));
      return result;
    });
  }

  /** Each named object with its content; undefined for an object the cache does not hold. */
  contents(names: readonly string[]): Promise<Array<GitObject | undefined>> {
    return this.#request(names.map((n) => `contents ${n}`), async (reader) => {
      const result: Array<GitObject | undefined> = [];
      for (let i = 0; i < names.length; i++) {
        const header = parseHeader(await reader.line());
        if (header === undefined) {
          result.push(undefined);
          continue;
        }
        const content = await reader.bytes(header.size);
        await reader.bytes(1);
        result.push({ ...header, content });
      }
      return result;
    });
  }

  /** Stops the reader (a later request starts another). */
  close(): void {
    clearTimeout(this.#idle);
    const child = this.#child;
    this.#child = undefined;
    this.#reader = undefined;
    if (child !== undefined) {
      child.stdin?.end();
      child.kill('SIGKILL');
    }
  }

  #request<T>(lines: readonly string[], parse: (reader: ByteReader) => Promise<T>): Promise<T> {
    if (lines.length === 0) return parse(new ByteReader());
    const run = async (): Promise<T> => {
      clearTimeout(this.#idle);
      // Throws a GitSpawnError when git cannot even be started.
      const { child, reader } = this.#start();
      let timer: NodeJS.Timeout | undefined;
      const stalled = new Promise<never>((_, reject) => {
        const arm = (): void => {
          clearTimeout(timer);
          timer = setTimeout(() => reject(new GitTimeoutError('git cat-file stalled')), this.#timeoutMs);
        };
        reader.onProgress = arm;
        arm();
      });
      try {
        child.stdin?.write(`${lines.join('\n')}\nflush\n`);
        return await Promise.race([parse(reader), reader.failed, stalled]);
      } catch (err) {
        // Whatever the reader had not answered yet would answer the next request: start afresh.
        if (this.#child === child) this.close();
        throw err;
      } finally {
        clearTimeout(timer);
        reader.onProgress = undefined;
        if (this.#child === child) this.#idle = setTimeout(() => this.close(), IDLE_MS).unref();
      }
    };
    // A reader that died under the request (killed from outside, or gone idle at the wrong moment) is started again
    // once; a second death is the cache's (a corrupt object kills cat-file) and goes to the caller.
    const once = async (): Promise<T> => {
      try {
        return await run();
      } catch (err) {
        if (err instanceof GitCommandError) return run();
        throw err;
      }
    };
    const result = this.#queue.then(once, once);
    this.#queue = result.catch(() => undefined);
    return result;
  }

  #start(): { child: ChildProcess; reader: ByteReader } {
    if (this.#child !== undefined && this.#reader !== undefined) return { child: this.#child, reader: this.#reader };
    const reader = new ByteReader();
    let child: ChildProcess;
    try {
      const view = readerView(this.#dir);
      child = startGit(
        this.#binary,
        view,
        ['cat-file', '--batch-command', '--buffer'],
        gitEnv({ GIT_DIR: view, GIT_OBJECT_DIRECTORY: join(this.#dir, 'objects') }),
      );
    } catch (err) {
      throw new GitSpawnError(errorCode(err), { cause: err });
    }
    let stderr = '';
    child.on('error', (err) => reader.fail(new GitSpawnError(errorCode(err), { cause: err })));
    // A write to a reader that died fails with EPIPE; its 'close' says why it died (stderr), which is what counts.
    child.stdin?.on('error', () => undefined);
    child.stdout?.on('error', (err) => reader.fail(new GitSpawnError(errorCode(err), { cause: err })));
    child.stderr?.on('error', () => undefined);
    child.stdout?.on('data', (chunk: Buffer) => reader.push(chunk));
    child.stderr?.on('data', (chunk: Buffer) => {
      if (stderr.length < 16 * 1024) stderr += chunk.toString('utf8');
    });
    child.on('close', (code, signal) => {
      reader.fail(new GitCommandError(code ?? -1, stderr, signal));
      if (this.#child === child) {
        this.#child = undefined;
        this.#reader = undefined;
      }
    });
    // The reader must not keep a finished script or test alive; a server has other reasons to live.
    child.unref();
    for (const stream of [child.stdin, child.stdout, child.stderr]) (stream as { unref?: () => void } | null)?.unref?.();
    this.#child = child;
    this.#reader = reader;
    return { child, reader };
  }
}

/** The reader's own repository inside the cache (see the class comment); created when missing. */
function readerView(cacheDir: string): string {
  const view = join(cacheDir, 'deployer-reader');
  if (!existsSync(join(view, 'HEAD'))) {
    mkdirSync(join(view, 'refs'), { recursive: true });
    writeFileSync(join(view, 'config'), '[core]\n\trepositoryformatversion = 0\n\tbare = true\n');
    writeFileSync(join(view, 'HEAD'), 'ref: refs/heads/none\n');
  }
  return view;
}

/** `<oid> <type> <size>` of cat-file's default format; "<name> missing" (or ambiguous) is undefined. */
function parseHeader(line: string): ObjectInfo | undefined {
  const [oid, type, size] = line.split(' ');
  if (type === 'missing' || type === 'ambiguous' || oid === undefined || type === undefined || size === undefined) return undefined;
  if (!/^[0-9a-f]{40,64}$/.test(oid) || !/^\d+$/.test(size)) throw new Error(`unexpected git cat-file output: ${line.slice(0, 100)}`);
  return { oid, type, size: Number(size) };
}

/** Lines and byte runs read from a stream as they arrive. */
class ByteReader {
  #chunks: Buffer[] = [];
  #length = 0;
  #wake: (() => void) | undefined;
  #error: Error | undefined;
  onProgress: (() => void) | undefined;
  readonly failed: Promise<never>;
  #rejectFailed: (err: Error) => void = () => undefined;

  constructor() {
    this.failed = new Promise<never>((_, reject) => {
      this.#rejectFailed = reject;
    });
    this.failed.catch(() => undefined);
  }

  push(chunk: Buffer): void {
    this.#chunks.push(chunk);
    this.#length += chunk.length;
    this.onProgress?.();
    this.#wake?.();
  }

  fail(err: Error): void {
    this.#error ??= err;
    this.#rejectFailed(this.#error);
    this.#wake?.();
  }

  async line(): Promise<string> {
    for (;;) {
      const all = this.#joined();
      const nl = all.indexOf(0x0a);
      if (nl >= 0) return this.#take(nl + 1).subarray(0, nl).toString('utf8');
      await this.#more();
    }
  }

  async bytes(n: number): Promise<Buffer> {
    while (this.#length < n) await this.#more();
    return this.#take(n);
  }

  #joined(): Buffer {
    if (this.#chunks.length > 1) this.#chunks = [Buffer.concat(this.#chunks)];
    return this.#chunks[0] ?? Buffer.alloc(0);
  }

  #take(n: number): Buffer {
    const all = this.#joined();
    const taken = Buffer.from(all.subarray(0, n));
    const rest = all.subarray(n);
    this.#chunks = rest.length > 0 ? [rest] : [];
    this.#length = rest.length;
    return taken;
  }

  #more(): Promise<void> {
    if (this.#error !== undefined) return Promise.reject(this.#error);
    return new Promise((resolve) => {
      this.#wake = () => {
        this.#wake = undefined;
        resolve();
      };
    });
  }
}
