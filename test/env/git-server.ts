import { spawn } from 'node:child_process';
import { appendFileSync, mkdirSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import type { Started } from './global-setup.js';
import type { GitGround } from './ground.js';
import { httpGet } from './processes.js';

/** What the server saw of one request; `GET /_stats` returns these so tests can tell a clone from a fetch. */
export interface GitRequestRecord {
  /** NAME.git */
  repo: string;
  method: string;
  /** `info/refs?service=git-upload-pack`, `git-upload-pack`, ... */
  path: string;
  status: number;
  /** Protocol v2 command of an upload-pack POST (`ls-refs`, `fetch`), or `v0` for the old protocol. */
  command?: string | undefined;
  /** `want` and `have` lines of an upload-pack POST: a first clone has no `have`, a later fetch has some. */
  wants: number;
  haves: number;
  filter?: string | undefined;
  /** Bytes of the response body (the pack, for a fetch). */
  bytesOut: number;
}

export interface GitRepoStats {
  /** Every authenticated request for the repository. */
  requests: number;
  /** Upload-pack POSTs that fetched objects (protocol v2 `fetch`, or a v0 upload-pack). */
  fetches: number;
  bytesOut: number;
}

export interface GitStats {
  repos: Record<string, GitRepoStats>;
  log: GitRequestRecord[];
  /** Requests refused for missing or wrong credentials. */
  unauthorized: number;
}

const USERNAME = 'deployer';
const PASSWORD_DEFAULT = 'git-secret-password';

/**
 * A git smart HTTP server: node's http server with basic auth in front of `git http-backend` run as CGI per
 * request. Repositories are the bare NAME.git directories below `info.root`. `GET /_stats` (no auth) returns
 * `GitStats`. Every served repository allows partial clone filters and fetching any SHA.
 */
export async function startGitServer(
  dir: string,
  logsDir: string,
  options: { password?: string } = {},
): Promise<Started<GitGround>> {
  const root = join(dir, 'repos');
  mkdirSync(root, { recursive: true });
  mkdirSync(logsDir, { recursive: true });
  const logFile = join(logsDir, `git-http-${process.pid}.log`);
  const password = options.password ?? PASSWORD_DEFAULT;
  const expected = `Basic ${Buffer.from(`${USERNAME}:${password}`).toString('base64')}`;
  const stats: GitStats = { repos: {}, log: [], unauthorized: 0 };

  const log = (line: string): void => {
    try {
      appendFileSync(logFile, `${new Date().toISOString()} ${line}\n`);
    } catch {
      // the log is a debugging aid only
    }
  };

  const server = createServer((req, res) => {
    handle(req, res).catch((err: unknown) => {
      log(`error ${String(err)}`);
      if (!res.headersSent) res.writeHead(500);
      res.end();
    });
  });

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://localhost');
    if (req.method === 'GET' && url.pathname === '/_stats') {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify(stats));
      return;
    }
    if (req.headers.authorization !== expected) {
      stats.unauthorized++;
      log(`401 ${req.method ?? '?'} ${url.pathname}`);
      req.resume();
      res.writeHead(401, { 'www-authenticate': 'Basic realm="git"', 'content-type': 'text/plain' });
      res.end('authentication required\n');
      return;
    }
    const match = /^\/([A-Za-z0-9._-]+\.git)(\/.*)$/.exec(url.pathname);
    if (match === null || match[1] === undefined || match[2] === undefined || match[1].startsWith('.')) {
      req.resume();
      res.writeHead(404);
      res.end();
      return;
    }
    const repo = match[1];
    const rest = match[2];
    await runBackend(req, res, { repo, pathInfo: url.pathname, query: url.search.replace(/^\?/, ''), rest });
  }

  function runBackend(
    req: IncomingMessage,
    res: ServerResponse,
    r: { repo: string; pathInfo: string; query: string; rest: string },
  ): Promise<void> {
    const record: GitRequestRecord = {
      repo: r.repo,
      method: req.method ?? 'GET',
      path: r.rest.slice(1) + (r.query === '' ? '' : `?${r.query}`),
      status: 0,
      wants: 0,
      haves: 0,
      bytesOut: 0,
    };
    const env: NodeJS.ProcessEnv = {
      PATH: process.env['PATH'],
      HOME: dir,
      GIT_PROJECT_ROOT: root,
      GIT_HTTP_EXPORT_ALL: '1',
      PATH_INFO: r.pathInfo,
      QUERY_STRING: r.query,
      REQUEST_METHOD: req.method ?? 'GET',
      CONTENT_TYPE: req.headers['content-type'] ?? '',
      REMOTE_USER: USERNAME,
      REMOTE_ADDR: req.socket.remoteAddress ?? '127.0.0.1',
      SERVER_PROTOCOL: 'HTTP/1.1',
      GIT_CONFIG_NOSYSTEM: '1',
      // Served repositories allow what the deployer's partial clone needs, whoever created them.
      GIT_CONFIG_COUNT: '2',
      GIT_CONFIG_KEY_0: 'uploadpack.allowFilter',
      GIT_CONFIG_VALUE_0: 'true',
      GIT_CONFIG_KEY_1: 'uploadpack.allowAnySHA1InWant',
      GIT_CONFIG_VALUE_1: 'true',
    };
    const protocol = req.headers['git-protocol'];
    if (typeof protocol === 'string') {
      env['GIT_PROTOCOL'] = protocol;
      env['HTTP_GIT_PROTOCOL'] = protocol;
    }
    const encoding = req.headers['content-encoding'];
    if (typeof encoding === 'string') env['HTTP_CONTENT_ENCODING'] = encoding;
    const length = req.headers['content-length'];
    if (typeof length === 'string') env['CONTENT_LENGTH'] = length;

    return new Promise((resolve) => {
      const child = spawn('git', ['http-backend'], { env, stdio: ['pipe', 'pipe', 'pipe'] });
      const body: Buffer[] = [];
      let bodySize = 0;
      req.on('data', (chunk: Buffer) => {
        // Keep the start of an upload-pack request to count its want/have lines (they come first).
        if (bodySize < 1 << 20) body.push(chunk);
        bodySize += chunk.length;
      });
      req.pipe(child.stdin);
      child.stdin.on('error', () => undefined);
      let stderr = '';
      child.stderr.on('data', (c: Buffer) => {
        stderr += c.toString('utf8');
      });

      let head = Buffer.alloc(0);
      let headerDone = false;
      child.stdout.on('data', (chunk: Buffer) => {
        if (headerDone) {
          record.bytesOut += chunk.length;
          res.write(chunk);
          return;
        }
        head = Buffer.concat([head, chunk]);
        const split = findHeaderEnd(head);
        if (split === undefined) return;
        headerDone = true;
        const { status, headers } = parseCgiHeaders(head.subarray(0, split.at).toString('latin1'));
        record.status = status;
        res.writeHead(status, headers);
        const rest = head.subarray(split.at + split.length);
        record.bytesOut += rest.length;
        if (rest.length > 0) res.write(rest);
      });
      child.on('error', (err) => {
        log(`spawn error ${String(err)}`);
      });
      child.on('close', (code) => {
        if (!headerDone) {
          record.status = 500;
          if (!res.headersSent) res.writeHead(500, { 'content-type': 'text/plain' });
        }
        res.end();
        if (record.method === 'POST' && r.rest === '/git-upload-pack') {
          Object.assign(record, countUploadPackLines(Buffer.concat(body), encoding));
        }
        const repoStats = (stats.repos[r.repo] ??= { requests: 0, fetches: 0, bytesOut: 0 });
        repoStats.requests++;
        repoStats.bytesOut += record.bytesOut;
        if (record.command === 'fetch' || record.command === 'v0') repoStats.fetches++;
        stats.log.push(record);
        log(
          `${record.status} ${record.method} /${r.repo}/${record.path} command=${record.command ?? '-'} ` +
            `wants=${record.wants} haves=${record.haves} bytes=${record.bytesOut} exit=${code ?? 'signal'}` +
            (stderr.trim() === '' ? '' : ` stderr=${JSON.stringify(stderr.trim())}`),
        );
        resolve();
      });
    });
  }

  const port = await listen(server);
  const baseUrl = `http://127.0.0.1:${port}/`;
  // The server answers once it listens; a quick probe makes sure the stats endpoint is up.
  await httpGet(`${baseUrl}_stats`);

  return {
    info: { baseUrl, username: USERNAME, password, root },
    stop: () => close(server),
  };
}

/** The server's request statistics (`GitStats`), read over HTTP so tests in any worker can use them. */
export async function gitStats(baseUrl: string): Promise<GitStats> {
  const res = await httpGet(new URL('_stats', baseUrl).toString());
  if (res.status !== 200) throw new Error(`GET _stats answered ${res.status}`);
  return JSON.parse(res.body) as GitStats;
}

function listen(server: Server): Promise<number> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      if (typeof address === 'object' && address !== null) resolve(address.port);
      else reject(new Error('git server has no port'));
    });
  });
}

function close(server: Server): Promise<void> {
  return new Promise((resolve) => {
    server.close(() => resolve());
    // Keep-alive connections of git clients would hold close() open.
    server.closeAllConnections();
  });
}

function findHeaderEnd(buf: Buffer): { at: number; length: number } | undefined {
  const crlf = buf.indexOf('\r\n\r\n');
  const lf = buf.indexOf('\n\n');
  if (crlf >= 0 && (lf < 0 || crlf <= lf)) return { at: crlf, length: 4 };
  if (lf >= 0) return { at: lf, length: 2 };
  return undefined;
}

function parseCgiHeaders(text: string): { status: number; headers: Record<string, string> } {
  let status = 200;
  const headers: Record<string, string> = {};
  for (const line of text.split(/\r?\n/)) {
    const colon = line.indexOf(':');
    if (colon <= 0) continue;
    const name = line.slice(0, colon).trim();
    const value = line.slice(colon + 1).trim();
    if (name.toLowerCase() === 'status') {
      status = Number.parseInt(value, 10) || 500;
    } else {
      headers[name] = value;
    }
  }
  return { status, headers };
}

/** Counts want/have lines in an upload-pack request body (pkt-line framed, maybe gzip-compressed). */
function countUploadPackLines(
  raw: Buffer,
  encoding: string | undefined,
): Pick<GitRequestRecord, 'command' | 'wants' | 'haves' | 'filter'> {
  let buf = raw;
  if (encoding === 'gzip' || encoding === 'x-gzip') {
    try {
      buf = gunzipSync(raw);
    } catch {
      // a truncated capture: count what the raw prefix has
    }
  }
  const result: Pick<GitRequestRecord, 'command' | 'wants' | 'haves' | 'filter'> = { wants: 0, haves: 0 };
  let pos = 0;
  while (pos + 4 <= buf.length) {
    const len = Number.parseInt(buf.subarray(pos, pos + 4).toString('latin1'), 16);
    if (!Number.isFinite(len)) break;
    if (len < 4) {
      pos += 4;
      continue;
    }
    const line = buf.subarray(pos + 4, pos + len).toString('utf8').replace(/\n$/, '');
    pos += len;
    if (line.startsWith('command=')) result.command = line.slice('command='.length);
    else if (line.startsWith('want ')) result.wants++;
    else if (line.startsWith('have ')) result.haves++;
    else if (line.startsWith('filter ')) result.filter = line.slice('filter '.length);
  }
  if (result.command === undefined && result.wants > 0) result.command = 'v0';
  return result;
}
