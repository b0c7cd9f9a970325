import { execFile } from 'node:child_process';
import { closeSync, constants, openSync } from 'node:fs';
import { Socket } from 'node:net';
import { promisify } from 'node:util';
import { lineReader } from './lines.js';

/** Both ends of a named pipe (a FIFO: a real pipe, as a shell's `|` or a container runtime's log pipe gives). */
export interface Fifo {
  readonly reader: number;
  readonly writer: number;
  /** Reads the pipe from now on, line by line, into `lines`. */
  read(): { readonly lines: string[]; line(match: (line: string) => boolean): Promise<string> };
  /** Closes this process's writing end (once a child has it). */
  closeWriter(): void;
  /** The reader goes away: a writer then gets EPIPE. */
  closeReader(): void;
  /** Closes whatever end is still open here. */
  close(): void;
}

/**
 * Creates a FIFO at `path` and opens both ends, without blocking and without O_NONBLOCK on either end (that flag
 * is for the process that writes to choose): a temporary read-write descriptor stands in for the other end while
 * each end opens.
 */
export async function fifo(path: string): Promise<Fifo> {
  await promisify(execFile)('mkfifo', [path]);
  const both = openSync(path, constants.O_RDWR);
  const reader = openSync(path, constants.O_RDONLY);
  const writer = openSync(path, constants.O_WRONLY);
  closeSync(both);
  const open = new Set([reader, writer]);
  let socket: Socket | undefined;
  const closeEnd = (fd: number): void => {
    // Only what is still ours: a closed descriptor's number may already belong to another file.
    if (open.delete(fd)) closeSync(fd);
  };
  return {
    reader,
    writer,
    read() {
      const received = lineReader();
      open.delete(reader);
      socket = new Socket({ fd: reader, readable: true, writable: false });
      socket.on('error', () => undefined);
      socket.setEncoding('utf8').on('data', (chunk: string) => received.push(chunk));
      return { lines: received.lines, line: received.line };
    },
    closeWriter: () => closeEnd(writer),
    closeReader: () => {
      socket?.destroy();
      closeEnd(reader);
    },
    close() {
      socket?.destroy();
      for (const fd of [...open]) closeEnd(fd);
    },
  };
}
