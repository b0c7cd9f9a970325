import { connect, type Socket } from 'node:net';

/**
 * A raw client on a loopback socket for the slow-client tests (finding 4) and the combined load scenario: it writes
 * what a test tells it, as slowly as it is told, and records what the server sent and when the server closed.
 */

export interface Conversation {
  readonly socket: Socket;
  /** Everything the server sent. */
  received(): string;
  /** Resolves when the server (or the network) closed the connection. */
  readonly closed: Promise<void>;
}

/** Opens a connection to the host and port of `url`; resolves once connected. */
export function openConnection(url: string): Promise<Conversation> {
  const { port } = new URL(url);
  return new Promise((resolve, reject) => {
    const socket = connect({ host: '127.0.0.1', port: Number(port) });
    let text = '';
    socket.setEncoding('utf8');
    socket.on('data', (chunk: string) => (text += chunk));
    // A reset is a close too: the server ended the connection.
    socket.on('error', () => undefined);
    const closed = new Promise<void>((r) => socket.once('close', () => r()));
    socket.once('connect', () => resolve({ socket, received: () => text, closed }));
    socket.once('error', reject);
  });
}

/** Writes `chunk` every `everyMs` until the socket closes or `times` writes were made; how many were made. */
export async function trickleWrites(c: Conversation, chunk: string, everyMs: number, times: number): Promise<number> {
  let written = 0;
  let closed = false;
  void c.closed.then(() => (closed = true));
  while (!closed && written < times) {
    c.socket.write(chunk);
    written++;
    await new Promise((r) => setTimeout(r, everyMs));
  }
  return written;
}
