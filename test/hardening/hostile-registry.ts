import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

/**
 * A hostile registry for the hardening tests: a loopback server whose answers a test writes (huge, trickling,
 * redirecting), counting the bytes it managed to send, so that a test can tell a client that stopped reading at
 * its limit (the count stays near the limit) from one that read the whole body.
 */

const MiB = 1024 * 1024;
/** Far larger than any limit: the body a hostile registry offers. */
export const HUGE = 400 * MiB;
/**
 * What may be in flight beyond a client's limit when it stops reading: the loopback socket buffers of both sides
 * and undici's stream queue (a few MiB), well below the size of any body offered here.
 */
export const IN_FLIGHT = 32 * MiB;

/** One answer being written, and how much of it went out before the connection closed. */
export interface Sent {
  written: number;
  /** Resolves once the connection is closed, by the client or at the end. */
  readonly closed: Promise<void>;
}

export type Handler = (req: IncomingMessage, res: ServerResponse, sent: (s: Sent) => void) => void;

export interface Hostile {
  /** `127.0.0.1:PORT`, as an image reference names the registry. */
  readonly host: string;
  readonly origin: string;
  readonly requests: string[];
  readonly answers: Sent[];
  /** Stops it, cutting any answer still being written. */
  readonly close: () => Promise<void>;
}

/** Starts a hostile registry on a free loopback port; `handler` answers every request. */
export async function startHostileRegistry(handler: Handler): Promise<Hostile> {
  const requests: string[] = [];
  const answers: Sent[] = [];
  const server = createServer((req, res) => {
    requests.push(`${req.method ?? ''} ${req.url ?? ''}`);
    handler(req, res, (s) => answers.push(s));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const host = `127.0.0.1:${(server.address() as AddressInfo).port}`;
  return {
    host,
    origin: `http://${host}`,
    requests,
    answers,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

/**
 * Writes `total` bytes made of `chunk` (repeated), as fast as the client reads them, stopping when it hangs up.
 * `prefix` goes first (the start of a JSON document, say), so the body is well-formed as far as it goes.
 */
export function stream(res: ServerResponse, options: { total: number; chunk: Buffer; prefix?: string; status?: number; headers?: Record<string, string> }): Sent {
  let closedResolve: () => void = () => undefined;
  const sent: Sent = { written: 0, closed: new Promise((resolve) => (closedResolve = resolve)) };
  let open = true;
  res.on('close', () => {
    open = false;
    closedResolve();
  });
  res.writeHead(options.status ?? 200, { 'content-type': 'application/json', ...options.headers });
  if (options.prefix !== undefined) {
    res.write(options.prefix);
    sent.written += Buffer.byteLength(options.prefix);
  }
  const pump = (): void => {
    while (open && sent.written < options.total) {
      sent.written += options.chunk.length;
      if (!res.write(options.chunk)) {
        res.once('drain', pump);
        return;
      }
    }
    if (open) res.end();
  };
  pump();
  return sent;
}

/** A body that sends one byte every 20 ms and never ends. */
export function trickle(res: ServerResponse): Sent {
  let closedResolve: () => void = () => undefined;
  const sent: Sent = { written: 0, closed: new Promise((resolve) => (closedResolve = resolve)) };
  res.writeHead(200, { 'content-type': 'application/json' });
  const timer = setInterval(() => {
    res.write(' ');
    sent.written += 1;
  }, 20);
  res.on('close', () => {
    clearInterval(timer);
    closedResolve();
  });
  return sent;
}

