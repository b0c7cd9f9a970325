import type { Writable } from 'node:stream';
import { pino, type Logger } from 'pino';
import type { LogLevel } from './config/schema.js';

/**
 * The process's log output and its exit.
 *
 * Why not pino's own stdout destination: it is asynchronous (SonicBoom, `sync: false`) and registers a handler on
 * the process's `exit` event that flushes what is buffered with `fs.writeSync`, retrying EAGAIN every 100 ms until
 * it is written. With stdout a pipe whose reader holds it open but stops reading (a paused terminal, a stalled log
 * shipper), that loop never ends: `process.exit` never returns, and no timer can interrupt it (SIGTERM and SIGINT
 * are already handled, so only SIGKILL ends the process).
 *
 * Here the lines go through `process.stdout`, which Node keeps non-blocking for pipes: a line that the pipe does not
 * take waits in memory (bounded), a line that cannot be written (the reader is gone: EPIPE) is counted, and the exit
 * never waits for stdout. What is still unwritten when the process exits is counted on stderr, in one line. A file
 * takes every line; a terminal is written synchronously by Node (one paused with Ctrl-S holds any program up).
 */

/** Log lines kept in memory while stdout does not take them; beyond this they are dropped, and counted. */
export const MAX_PENDING_BYTES = 8 * 1024 * 1024;

export interface LogOutputOptions {
  /** Where the lines go; default `process.stdout`. */
  readonly out?: Writable | undefined;
  /** Where the one-line notices about lost lines go; default `process.stderr`. */
  readonly err?: Writable | undefined;
  readonly maxPendingBytes?: number | undefined;
}

/** A pino destination that never blocks the process and knows how many of its lines were not written. */
export class LogOutput {
  readonly #out: Writable;
  readonly #err: Writable;
  readonly #maxPendingBytes: number;
  #pending = 0;
  #dropped = 0;
  #broken = false;
  #warned = false;
  #waiters: Array<() => void> = [];

  constructor(options: LogOutputOptions = {}) {
    this.#out = options.out ?? process.stdout;
    this.#err = options.err ?? process.stderr;
    this.#maxPendingBytes = options.maxPendingBytes ?? MAX_PENDING_BYTES;
    // Without a listener, an EPIPE (the reader is gone) would be an uncaught exception.
    this.#out.on('error', () => this.#break());
  }

  /** pino's destination interface: one serialized line, newline included. */
  write(line: string): void {
    if (this.#broken) {
      this.#dropped += 1;
      return;
    }
    if (this.#out.writableLength > this.#maxPendingBytes) {
      this.#dropped += 1;
      this.#warnOnce(`stdout has not taken the last ${this.#maxPendingBytes} bytes of log lines; dropping new ones`);
      return;
    }
    this.#pending += 1;
    this.#out.write(line, (err) => {
      this.#pending -= 1;
      if (err !== null && err !== undefined) {
        this.#dropped += 1;
        this.#break();
      }
      if (this.#pending === 0) this.#wake();
    });
  }

  /** Lines given to `write` that did not reach stdout (dropped) or have not yet (still in memory). */
  get unwritten(): number {
    return this.#dropped + this.#pending;
  }

  /** Resolves once every line given so far is written, or cannot be any more. */
  drained(): Promise<void> {
    if (this.#pending === 0 || this.#broken) return Promise.resolve();
    return new Promise((resolve) => this.#waiters.push(resolve));
  }

  /**
   * Says on stderr how many lines were not written, if any. Non-blocking like stdout: when stderr is a stalled pipe
   * too, the notice is lost rather than the exit delayed.
   */
  reportUnwritten(): void {
    const n = this.unwritten;
    if (n === 0) return;
    const why = this.#broken ? 'stdout is closed' : 'stdout did not take them before the exit';
    this.#tell(`${n} log line${n === 1 ? ' was' : 's were'} not written (${why})`);
  }

  #break(): void {
    if (this.#broken) return;
    this.#broken = true;
    this.#warnOnce('stdout is closed; log lines are no longer written');
    this.#wake();
  }

  #wake(): void {
    for (const resolve of this.#waiters.splice(0)) resolve();
  }

  #warnOnce(message: string): void {
    if (this.#warned) return;
    this.#warned = true;
    this.#tell(message);
  }

  #tell(message: string): void {
    try {
      this.#err.write(`deployer: ${message}\n`);
    } catch {
      // stderr is gone too: nobody to tell.
    }
  }
}

/** The process's logger: JSON lines on stdout through a `LogOutput`. */
export function createLogger(level: LogLevel, output: LogOutput): Logger {
  // No pretty printer: it would be a dependency, and `kubectl logs` readers pipe through jq anyway.
  return pino({ level, base: { app: 'deployer' } }, output);
}

export interface ShutdownOptions {
  /** Stops taking requests and resolves once the requests in flight are answered. */
  readonly close: () => Promise<void>;
  readonly graceSeconds: number;
  readonly logger: Logger;
  readonly output: LogOutput;
  /** Ends the process; default `process.exit`. */
  readonly exit?: ((code: number) => void) | undefined;
}

/**
 * SIGTERM and SIGINT: stop taking requests, let the deploys in flight finish, let stdout take the last log lines,
 * and exit; all within `graceSeconds`, whatever stdout is. Exit code 0 once every request was answered, 1 when the
 * grace ended first (or closing failed). Log lines still unwritten at the exit are counted on stderr.
 */
export function exitOnSignals(options: ShutdownOptions): void {
  const log = options.logger.child({ module: 'main' });
  const exit = options.exit ?? ((code: number) => process.exit(code));
  let closing = false;
  let exited = false;
  const finish = (code: number): void => {
    if (exited) return;
    exited = true;
    options.output.reportUnwritten();
    exit(code);
  };

  const shutdown = (signal: NodeJS.Signals): void => {
    // A repeated signal changes nothing: `npm start` in a terminal delivers Ctrl-C twice (to npm and to us), and
    // Kubernetes follows up with SIGKILL after the grace period anyway.
    if (closing) return;
    closing = true;
    log.info({ signal }, 'closing: no new requests, waiting for requests in flight');
    const graceSeconds = options.graceSeconds;
    let closed = false;
    // Bounded, so that the exit is ours and logged rather than the kubelet's SIGKILL at terminationGracePeriodSeconds.
    // Not unref'd: once the requests are answered, the process still waits (here) for stdout, up to the same bound.
    setTimeout(() => {
      if (!closed) log.error({ graceSeconds }, 'requests still in flight at the end of the shutdown grace: exiting anyway');
      finish(closed ? 0 : 1);
    }, graceSeconds * 1000);
    options.close().then(
      async () => {
        closed = true;
        log.info('closed');
        await options.output.drained();
        finish(0);
      },
      (err: unknown) => {
        log.error({ err }, 'closing failed');
        finish(1);
      },
    );
  };
  process.on('SIGTERM', shutdown);
  process.on('SIGINT', shutdown);
}
