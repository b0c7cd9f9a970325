import { readFileSync } from 'node:fs';
import { request as httpRequest, type IncomingMessage, type ServerResponse } from 'node:http';
import { createServer, request as httpsRequest, type Server } from 'node:https';
import type { AddressInfo, Socket } from 'node:net';

/**
 * A front of the test ground's apiserver that can be stopped and started again on the same port, so a deployer
 * pointed at it sees the apiserver go away (connection refused) and come back, before or in the middle of a deploy.
 * It serves TLS with the apiserver's own certificate (client-node refuses plain http without skipTLSVerify), so
 * the same CA file trusts it; the token travels in the forwarded Authorization header.
 */
export interface ApiserverFront {
  /** https://127.0.0.1:PORT */
  readonly url: string;
  readonly up: boolean;
  /** Requests forwarded so far, as `METHOD path?query`. */
  readonly seen: string[];
  /** Requests answered so far, as `METHOD path?query STATUS` (the apiserver's status), in the order answered. */
  readonly answered: string[];
  stop(): Promise<void>;
  start(): Promise<void>;
  /** Stops the front right after forwarding the answer to the first request `when` matches. */
  stopAfter(when: (method: string, url: string) => boolean): void;
  close(): Promise<void>;
}

export async function startApiserverFront(options: { upstream: string; certFile: string; keyFile: string }): Promise<ApiserverFront> {
  const { upstream } = options;
  const ca = readFileSync(options.certFile);
  const sockets = new Set<Socket>();
  const seen: string[] = [];
  const answered: string[] = [];
  let trip: ((method: string, url: string) => boolean) | undefined;
  let up = false;
  let port = 0;

  const forward = (req: IncomingMessage, body: Buffer, res: ServerResponse): void => {
    const headers = { ...req.headers, host: new URL(upstream).host };
    const out = httpsRequest(new URL(req.url ?? '/', upstream), { method: req.method, headers, ca }, (answer) => {
      res.writeHead(answer.statusCode ?? 502, answer.headers);
      answer.pipe(res);
    });
    out.on('error', () => res.destroy());
    out.end(body);
  };

  const server: Server = createServer({ cert: ca, key: readFileSync(options.keyFile) }, (req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const method = req.method ?? 'GET';
      const url = req.url ?? '/';
      seen.push(`${method} ${url}`);
      res.on('finish', () => {
        answered.push(`${method} ${url} ${res.statusCode}`);
        if (trip?.(method, url) === true) {
          trip = undefined;
          void front.stop();
        }
      });
      forward(req, Buffer.concat(chunks), res);
    });
  });
  server.on('connection', (s: Socket) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });

  const listen = (): Promise<void> =>
    new Promise((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, '127.0.0.1', () => {
        server.off('error', reject);
        port = (server.address() as AddressInfo).port;
        up = true;
        resolve();
      });
    });

  const front: ApiserverFront = {
    get url() {
      return `https://127.0.0.1:${port}`;
    },
    get up() {
      return up;
    },
    seen,
    answered,
    stop: () =>
      new Promise<void>((resolve) => {
        if (!up) return resolve();
        up = false;
        server.close(() => resolve());
        // Let the answer that tripped the stop reach the client, then cut everything.
        setImmediate(() => {
          for (const s of sockets) s.destroy();
        });
      }),
    start: listen,
    stopAfter(when) {
      trip = when;
    },
    close: () => front.stop(),
  };
  await listen();
  return front;
}

/** Whether an http URL answers at all (used to show a port is closed). */
export function reachable(url: string): Promise<boolean> {
  return new Promise((resolve) => {
    const req = httpRequest(url, { timeout: 2_000 }, (res) => {
      res.resume();
      resolve(true);
    });
    req.on('error', () => resolve(false));
    req.on('timeout', () => req.destroy());
    req.end();
  });
}
