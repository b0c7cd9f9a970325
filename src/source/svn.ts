import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import type { Logger } from 'pino';
import type { ServiceConfig } from '../config/load.js';
import { InputError, ManifestError, NotFoundError, UpstreamError } from '../errors.js';
import { errorCode } from './git-process.js';
import { MAX_READ_BYTES } from './limits.js';
import { redact } from './redact.js';
import { cleanDir, printable } from './refs.js';
import { countUnifiedDiff } from './unified-diff.js';
import type { CommitFacts, ManifestFile } from '../core/types.js';
import type { Source } from '../core/ports.js';

export interface SvnSourceOptions {
  /** The pod's cache directory; svn keeps only its (credential-free) runtime configuration in `cacheDir/svn`. */
  cacheDir: string;
  /** Timeout of each svn call. */
  timeoutMs: number;
  logger: Logger;
  /** The svn binary (default: `svn` from PATH). */
  svn?: string | undefined;
}

/** svn cat takes one file per call; a few at once keep a large directory fast without flooding the server. */
const CAT_CONCURRENCY = 4;

interface SvnResult {
  stdout: Buffer;
}

/**
 * Subversion (thesis 5.3.3: revision numbers instead of commit hashes). svn reads any file at any revision from the
 * server without a working copy, so there is nothing to cache: every call goes to the server, non-interactively,
 * with the password on stdin (never on the command line) and no credential cache.
 */
export class SvnSource implements Source {
  readonly #configDir: string;
  readonly #timeoutMs: number;
  readonly #log: Logger;
  readonly #binary: string;

  constructor(options: SvnSourceOptions) {
    this.#binary = options.svn ?? 'svn';
    this.#configDir = join(options.cacheDir, 'svn');
    this.#timeoutMs = options.timeoutMs;
    this.#log = options.logger.child({ module: 'source', vcs: 'svn' });
  }

  async resolve(service: ServiceConfig, ref: string): Promise<string> {
    const url = baseUrl(service);
    if (/^head$/i.test(ref) || namesUrlBranch(url, ref)) {
      const info = await this.#svn(service, ['info', '--xml', '--', `${url}@HEAD`], 'HEAD');
      // The last revision that changed the service's path: the same manifests give the same version.
      const rev = /<commit\s+revision="(\d+)"/.exec(info.stdout.toString('utf8'))?.[1];
      if (rev === undefined) throw new UpstreamError('svn', `svn info of ${url} named no revision`);
      return rev;
    }
    const rev = parseRevision(ref);
    await this.#svn(service, ['info', '--xml', '--', `${url}@${rev}`], `revision ${rev}`);
    return rev;
  }

  /** svn history is one line of revisions: an earlier (or the same) revision is contained in a later one. */
  contains(_service: ServiceConfig, ref: string, commit: string): Promise<boolean> {
    const m = /^r?(\d{1,10})$/i.exec(ref);
    return Promise.resolve(m?.[1] !== undefined && Number(m[1]) <= Number(commit));
  }

  async filesAt(service: ServiceConfig, commit: string): Promise<ManifestFile[]> {
    const rev = parseRevision(commit);
    const dir = cleanDir(service.manifestsDir);
    const base = dir === '' ? baseUrl(service) : `${baseUrl(service)}/${encodePath(dir)}`;
    const what = `${dir}/ at revision ${rev}`;
    const listing = (await this.#svn(service, ['list', '-R', '--xml', '--', `${base}@${rev}`], what)).stdout.toString('utf8');
    const files: Array<{ name: string; size: number }> = [];
    for (const m of listing.matchAll(/<entry\s+kind="(file|dir)"\s*>\s*<name>([^<]*)<\/name>(?:\s*<size>(\d+)<\/size>)?/g)) {
      if (m[1] === 'file' && m[2] !== undefined) files.push({ name: unescapeXml(m[2]), size: Number(m[3] ?? 0) });
    }
    const total = files.reduce((a, f) => a + f.size, 0);
    if (total > MAX_READ_BYTES) {
      throw new ManifestError(`the manifests directory holds ${total} bytes; at most ${MAX_READ_BYTES} are read`);
    }

    // svn stores links as files marked svn:special; never follow one (it could point anywhere).
    const special = (
      await this.#svn(service, ['propget', 'svn:special', '-R', '--xml', '--', `${base}@${rev}`], what)
    ).stdout.toString('utf8');
    for (const m of special.matchAll(/<target\s+path="([^"]*)"/g)) {
      const target = unescapeXml(m[1] ?? '');
      const path = decodeURIComponent(target.startsWith(`${base}/`) ? target.slice(base.length + 1) : target);
      throw new ManifestError(`${dir === '' ? path : `${dir}/${path}`} is a symbolic link; manifests must be regular files`, {
        detail: { path, revision: rev },
      });
    }

    const out: ManifestFile[] = new Array<ManifestFile>(files.length);
    let next = 0;
    const worker = async (): Promise<void> => {
      while (next < files.length) {
        const i = next++;
        const file = files[i];
        if (file === undefined) continue;
        const content = await this.#svn(service, ['cat', '--', `${base}/${encodePath(file.name)}@${rev}`], what);
        out[i] = { path: dir === '' ? file.name : `${dir}/${file.name}`, content: content.stdout };
      }
    };
    await Promise.all(Array.from({ length: Math.min(CAT_CONCURRENCY, files.length) }, worker));
    return out.sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
  }

  async commitFacts(service: ServiceConfig, commit: string): Promise<CommitFacts> {
    const rev = parseRevision(commit);
    const url = baseUrl(service);
    const what = `revision ${rev}`;
    const props = (
      await this.#svn(service, ['proplist', '--revprop', '-v', '--xml', '-r', rev, '--', url], what)
    ).stdout.toString('utf8');
    const prop = (name: string): string =>
      unescapeXml(new RegExp(`<property\\s+name="${name}"\\s*>([^<]*)</property>`).exec(props)?.[1] ?? '');
    const diff = await this.#svn(
      service,
      ['diff', '-c', rev, '--internal-diff', '--ignore-properties', '--', url],
      what,
    );
    const { insertions, deletions } = countUnifiedDiff(diff.stdout.toString('latin1'));
    return { commit: rev, author: prop('svn:author'), date: prop('svn:date'), insertions, deletions };
  }

  /** Runs svn with an argument array; maps its failures to the deployer's errors. */
  async #svn(service: ServiceConfig, args: readonly string[], what: string): Promise<SvnResult> {
    mkdirSync(this.#configDir, { recursive: true });
    const credentials = service.repository.credentials;
    const password = credentials?.password?.reveal() ?? credentials?.token?.reveal();
    const full = ['--non-interactive', '--no-auth-cache', '--config-dir', this.#configDir];
    if (credentials?.username !== undefined) full.push('--username', credentials.username);
    if (password !== undefined) full.push('--password-from-stdin');
    full.push(...args);
    const secrets = password === undefined ? [] : [password];
    const url = baseUrl(service);

    const result = await run(this.#binary, full, { input: password === undefined ? '' : `${password}\n`, timeoutMs: this.#timeoutMs });
    if (result.timedOut) {
      throw new UpstreamError('svn', `svn ${args[0] ?? ''} of ${url} timed out after ${this.#timeoutMs} ms`, { status: 504 });
    }
    if (result.code === 0) return { stdout: result.stdout };
    if (result.spawnError !== undefined) {
      // The machine's trouble (EMFILE, ENOENT, EAGAIN), not the repository's.
      this.#log.error({ repository: url, command: args[0], code: result.spawnError }, 'svn could not run');
      throw new UpstreamError('svn', `svn could not run on the deployer (${result.spawnError}); try again`, { status: 503 });
    }
    const stderr = redact(result.stderr, secrets).trim();
    const codes = [...stderr.matchAll(/\bE(\d{6})\b/g)].map((m) => m[1]);
    const has = (...list: string[]): boolean => codes.some((c) => c !== undefined && list.includes(c));
    this.#log.warn({ repository: url, command: args[0], codes, stderr: stderr.slice(0, 500) }, 'svn failed');
    if (has('170001', '215004', '170009')) {
      throw new UpstreamError('svn', `${url} refused the credentials of service ${service.name}`, { detail: { repository: url } });
    }
    if (has('160006', '160013', '170000', '200009', '195012', '160005', '195002')) {
      throw new NotFoundError(`${printable(what)} not found in ${url}`, { detail: { repository: url } });
    }
    if (has('170013', '210002', '210003', '210005', '000111', '000110', '000113')) {
      throw new UpstreamError('svn', `cannot reach ${url}: ${lastLine(stderr)}`, { status: 503, detail: { repository: url } });
    }
    throw new UpstreamError('svn', `svn ${args[0] ?? ''} of ${url} failed: ${lastLine(stderr)}`, { detail: { repository: url } });
  }
}

/**
 * Whether `ref` is the branch the service's URL names (`trunk` for `svn://host/app/trunk`, `branches/x` for
 * `…/branches/x`): svn has no branch refs to resolve, so that branch is its head — what `GET /:service/tags` and
 * tag completion ask for with the service's `defaultBranch`.
 */
export function namesUrlBranch(url: string, ref: string): boolean {
  if (!/^[A-Za-z0-9._-]+(\/[A-Za-z0-9._-]+)*$/.test(ref) || ref.split('/').some((p) => p === '.' || p === '..')) return false;
  let path: string;
  try {
    path = decodeURIComponent(new URL(url).pathname).replace(/\/+$/, '');
  } catch {
    return false;
  }
  return path.endsWith(`/${ref}`);
}

/** An svn revision number from a request ("123", "r123"); anything else is refused before it reaches svn. */
export function parseRevision(ref: string): string {
  const m = /^r?(\d{1,10})$/i.exec(ref);
  if (m?.[1] === undefined) {
    throw new InputError(`"${printable(ref)}" is not an svn revision number (nor HEAD, nor the branch the repository URL names)`, {
      field: 'commit',
    });
  }
  return String(Number(m[1]));
}

function baseUrl(service: ServiceConfig): string {
  return service.repository.url.replace(/\/+$/, '');
}

/** Percent-encodes each segment of a repository path for a URL (names may hold spaces, '#', '@', '%'). */
function encodePath(path: string): string {
  return path.split('/').map(encodeURIComponent).join('/');
}

function unescapeXml(text: string): string {
  return text
    .replace(/&lt;/g, '<')
    .replace(/&gt;/g, '>')
    .replace(/&quot;/g, '"')
    .replace(/&apos;/g, "'")
    .replace(/&#(\d+);/g, (_, n: string) => String.fromCodePoint(Number(n)))
    .replace(/&amp;/g, '&');
}

function lastLine(text: string): string {
  return (text.split('\n').filter((l) => l.trim() !== '').pop() ?? '').slice(0, 300);
}

interface RunResult {
  code: number | null;
  /** The error code when svn could not be started at all. */
  spawnError?: string | undefined;
  stdout: Buffer;
  stderr: string;
  timedOut: boolean;
}

function run(command: string, args: readonly string[], options: { input: string; timeoutMs: number }): Promise<RunResult> {
  return new Promise((resolve) => {
    let child: ChildProcess;
    try {
      child = spawn(command, [...args], {
        env: { PATH: process.env['PATH'] ?? '/usr/bin:/bin', HOME: process.env['HOME'] ?? '/', LC_ALL: 'C', LANG: 'C' },
        stdio: ['pipe', 'pipe', 'pipe'],
      });
    } catch (err) {
      // Spawning can throw at once (E2BIG, EINVAL); any error here is the machine's, answered like a failed call.
      resolve({ code: -1, stdout: Buffer.alloc(0), stderr: String(err), timedOut: false, spawnError: errorCode(err) });
      return;
    }
    const out: Buffer[] = [];
    let size = 0;
    let stderr = '';
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill('SIGKILL');
    }, options.timeoutMs);
    child.stdout?.on('error', () => undefined);
    child.stderr?.on('error', () => undefined);
    child.stdout?.on('data', (c: Buffer) => {
      size += c.length;
      if (size > MAX_READ_BYTES * 2) child.kill('SIGKILL');
      else out.push(c);
    });
    child.stderr?.on('data', (c: Buffer) => {
      if (stderr.length < 64 * 1024) stderr += c.toString('utf8');
    });
    child.stdin?.on('error', () => undefined);
    child.stdin?.end(options.input);
    child.on('error', (err) => {
      clearTimeout(timer);
      const spawnError = child.pid === undefined ? errorCode(err) : undefined;
      resolve({ code: -1, stdout: Buffer.alloc(0), stderr: String(err), timedOut, spawnError });
    });
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout: Buffer.concat(out), stderr, timedOut });
    });
  });
}
