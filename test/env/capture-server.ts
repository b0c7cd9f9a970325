import { createServer, type IncomingHttpHeaders } from 'node:http';
import type { AddressInfo } from 'node:net';

/** One request as the capture server saw it. */
export interface CapturedRequest {
  readonly method: string;
  /** Path and query, e.g. `/services/T000/B000/xyz`. */
  readonly path: string;
  readonly headers: IncomingHttpHeaders;
  /** The body as text. */
  readonly raw: string;
  /** The body parsed as JSON; undefined when it is not JSON. */
  readonly body: unknown;
}

/**
 * `ok`: 200 "ok", or what the server's `answer` says; `error`: the given status (default 500) with a short body;
 * `hang`: read the request, never answer.
 */
export type CaptureMode = 'ok' | 'error' | 'hang';

export interface CaptureServer {
  /** http://127.0.0.1:PORT (no trailing slash). */
  readonly url: string;
  /** Every request received so far, in order; recorded once its body is complete, before any answer. */
  readonly requests: CapturedRequest[];
  setMode(mode: CaptureMode, status?: number): void;
  /** Resolves once at least `count` requests were recorded (for senders that do not say when they are done). */
  waitForRequests(count: number): Promise<CapturedRequest[]>;
  /** How many client connections are open now (a client that gave up on a hanging answer closes its own). */
  openConnections(): Promise<number>;
  /** Stops the server and drops every open connection, hanging ones included. */
  close(): Promise<void>;
}

/** A JSON answer for an API that must answer more than "ok" (GitHub's ids); undefined: the plain 200 "ok". */
export type CaptureAnswer = (request: CapturedRequest) => { status: number; body: unknown } | undefined;

/**
 * A loopback HTTP server standing in for an outside service (Bugsnag, Slack, GitHub, a webhook receiver): it records
 * every request and answers as told, so a test can point a real client library at it and look at what was sent.
 */
export async function startCaptureServer(options: { answer?: CaptureAnswer } = {}): Promise<CaptureServer> {
  const requests: CapturedRequest[] = [];
  const waiters: Array<{ count: number; resolve: (r: CapturedRequest[]) => void }> = [];
  let mode: CaptureMode = 'ok';
  let errorStatus = 500;

  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const raw = Buffer.concat(chunks).toString('utf8');
      let body: unknown;
      try {
        body = JSON.parse(raw) as unknown;
      } catch {
        body = undefined;
      }
      const request = { method: req.method ?? '', path: req.url ?? '', headers: req.headers, raw, body };
      requests.push(request);
      for (const w of [...waiters]) {
        if (requests.length >= w.count) {
          waiters.splice(waiters.indexOf(w), 1);
          w.resolve([...requests]);
        }
      }
      if (mode === 'hang') return;
      if (mode === 'error') {
        res.writeHead(errorStatus, { 'content-type': 'text/plain' }).end('capture server told to fail');
        return;
      }
      const answer = options.answer?.(request);
      if (answer !== undefined) {
        res.writeHead(answer.status, { 'content-type': 'application/json' }).end(JSON.stringify(answer.body));
        return;
      }
      res.writeHead(200, { 'content-type': 'text/plain' }).end('ok');
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const { port } = server.address() as AddressInfo;

  return {
    url: `http://127.0.0.1:${port}`,
    requests,
    setMode(next: CaptureMode, status = 500): void {
      mode = next;
      errorStatus = status;
    },
    waitForRequests(count: number): Promise<CapturedRequest[]> {
      if (requests.length >= count) return Promise.resolve([...requests]);
      return new Promise((resolve) => waiters.push({ count, resolve }));
    },
    openConnections(): Promise<number> {
      return new Promise((resolve, reject) => server.getConnections((err, n) => (err ? reject(err) : resolve(n))));
    },
    close(): Promise<void> {
      return new Promise((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      });
    },
  };
}
